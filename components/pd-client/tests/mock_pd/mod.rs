//! A tiny in-test PD on 127.0.0.1: enough of `pdpb.PD` to exercise the client's discovery,
//! header handling, retries and heartbeat stream. It runs on its own runtime so `kill` drops
//! every connection at once, the way a dying process would.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use proto::metapb;
use proto::pdpb::pd_server::{Pd, PdServer};
use proto::pdpb::*;
use tokio_stream::wrappers::{TcpListenerStream, UnboundedReceiverStream};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

/// What a mock PD knows; survives `kill` + `start` like PD's own storage.
#[derive(Default)]
pub struct MockState {
    pub cluster_id: u64,
    /// Advertised as the leader's client URL instead of the mock's own address.
    pub leader_url: Mutex<Option<String>>,
    pub next_id: AtomicU64,
    pub bootstrapped: AtomicBool,
    pub stores: Mutex<HashMap<u64, metapb::Store>>,
    /// Requests served other than GetMembers.
    pub requests: AtomicUsize,
    /// The header cluster id of every request other than GetMembers.
    pub seen_cluster_ids: Mutex<Vec<u64>>,
    pub heartbeats: Mutex<Vec<RegionHeartbeatRequest>>,
}

impl MockState {
    pub fn new(cluster_id: u64) -> Arc<MockState> {
        Arc::new(MockState {
            cluster_id,
            next_id: AtomicU64::new(100),
            ..Default::default()
        })
    }
}

pub struct MockPd {
    pub addr: SocketAddr,
    pub state: Arc<MockState>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl MockPd {
    /// Serves `state` on `addr` (port 0 for a fresh port).
    pub fn start(state: Arc<MockState>, addr: SocketAddr) -> MockPd {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = {
            let _guard = runtime.enter();
            bind(addr)
        };
        let addr = listener.local_addr().unwrap();
        let svc = Service {
            state: state.clone(),
            addr,
        };
        runtime.spawn(async move {
            tonic::transport::Server::builder()
                .add_service(PdServer::new(svc))
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await
                .unwrap();
        });
        MockPd {
            addr,
            state,
            runtime: Some(runtime),
        }
    }

    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// Stops serving and drops every connection; returns once the port is released.
    /// Call outside any async context.
    pub fn kill(mut self) -> (Arc<MockState>, SocketAddr) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(std::time::Duration::from_secs(10));
        }
        (self.state.clone(), self.addr)
    }
}

impl Drop for MockPd {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Binds with SO_REUSEADDR so a restarted mock gets its old port back.
fn bind(addr: SocketAddr) -> tokio::net::TcpListener {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        match socket.bind(addr).and_then(|()| socket.listen(64)) {
            Ok(l) => return l,
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("rebinding {addr}: {e}");
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => panic!("bind {addr}: {e}"),
        }
    }
}

struct Service {
    state: Arc<MockState>,
    addr: SocketAddr,
}

fn ok_header(cluster_id: u64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        cluster_id,
        error: None,
    })
}

fn err_header(cluster_id: u64, kind: ErrorType, message: &str) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        cluster_id,
        error: Some(Error {
            r#type: kind as i32,
            message: message.to_string(),
        }),
    })
}

impl Service {
    fn seen(&self, header: &Option<RequestHeader>) -> u64 {
        self.state.requests.fetch_add(1, Ordering::SeqCst);
        let id = header.as_ref().map_or(0, |h| h.cluster_id);
        self.state.seen_cluster_ids.lock().push(id);
        self.state.cluster_id
    }
}

type BoxStream<T> = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl Pd for Service {
    async fn get_members(
        &self,
        _: Request<GetMembersRequest>,
    ) -> Result<Response<GetMembersResponse>, Status> {
        let url = self
            .state
            .leader_url
            .lock()
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.addr));
        let leader = Member {
            name: "pd".into(),
            member_id: 1,
            peer_urls: vec![],
            client_urls: vec![url],
        };
        Ok(Response::new(GetMembersResponse {
            header: ok_header(self.state.cluster_id),
            members: vec![leader.clone()],
            leader: Some(leader),
            etcd_leader: None,
        }))
    }

    type TsoStream = BoxStream<TsoResponse>;
    async fn tso(
        &self,
        req: Request<Streaming<TsoRequest>>,
    ) -> Result<Response<Self::TsoStream>, Status> {
        let cluster_id = self.state.cluster_id;
        let mut inbound = req.into_inner();
        let out = async_stream_like(move |tx| async move {
            let mut logical = 0;
            while let Some(Ok(r)) = inbound.next().await {
                logical += r.count as i64;
                let _ = tx.send(Ok(TsoResponse {
                    header: ok_header(cluster_id),
                    count: r.count,
                    timestamp: Some(Timestamp {
                        physical: 1_000,
                        logical,
                        suffix_bits: 0,
                    }),
                }));
            }
        });
        Ok(Response::new(out))
    }

    async fn bootstrap(
        &self,
        req: Request<BootstrapRequest>,
    ) -> Result<Response<BootstrapResponse>, Status> {
        let c = self.seen(&req.get_ref().header);
        if self.state.bootstrapped.swap(true, Ordering::SeqCst) {
            return Ok(Response::new(BootstrapResponse {
                header: err_header(c, ErrorType::AlreadyBootstrapped, "cluster is bootstrapped"),
            }));
        }
        if let Some(s) = req.into_inner().store {
            self.state.stores.lock().insert(s.id, s);
        }
        Ok(Response::new(BootstrapResponse {
            header: ok_header(c),
        }))
    }

    async fn is_bootstrapped(
        &self,
        req: Request<IsBootstrappedRequest>,
    ) -> Result<Response<IsBootstrappedResponse>, Status> {
        let c = self.seen(&req.get_ref().header);
        Ok(Response::new(IsBootstrappedResponse {
            header: ok_header(c),
            bootstrapped: self.state.bootstrapped.load(Ordering::SeqCst),
        }))
    }

    async fn alloc_id(
        &self,
        req: Request<AllocIdRequest>,
    ) -> Result<Response<AllocIdResponse>, Status> {
        let c = self.seen(&req.get_ref().header);
        Ok(Response::new(AllocIdResponse {
            header: ok_header(c),
            id: self.state.next_id.fetch_add(1, Ordering::SeqCst),
        }))
    }

    async fn get_store(
        &self,
        req: Request<GetStoreRequest>,
    ) -> Result<Response<GetStoreResponse>, Status> {
        let c = self.seen(&req.get_ref().header);
        let id = req.get_ref().store_id;
        Ok(Response::new(match self.state.stores.lock().get(&id) {
            Some(s) => GetStoreResponse {
                header: ok_header(c),
                store: Some(s.clone()),
            },
            None => GetStoreResponse {
                header: err_header(c, ErrorType::Unknown, &format!("invalid store ID {id}")),
                store: None,
            },
        }))
    }

    async fn put_store(
        &self,
        req: Request<PutStoreRequest>,
    ) -> Result<Response<PutStoreResponse>, Status> {
        let c = self.seen(&req.get_ref().header);
        let store = req.into_inner().store.unwrap_or_default();
        let mut stores = self.state.stores.lock();
        if stores.get(&store.id).map(|s| s.state) == Some(metapb::StoreState::Tombstone as i32) {
            return Ok(Response::new(PutStoreResponse {
                header: err_header(c, ErrorType::StoreTombstone, "store is tombstone"),
            }));
        }
        stores.insert(store.id, store);
        Ok(Response::new(PutStoreResponse {
            header: ok_header(c),
        }))
    }

    async fn get_all_stores(
        &self,
        req: Request<GetAllStoresRequest>,
    ) -> Result<Response<GetAllStoresResponse>, Status> {
        let c = self.seen(&req.get_ref().header);
        let mut stores: Vec<_> = self.state.stores.lock().values().cloned().collect();
        stores.sort_by_key(|s| s.id);
        Ok(Response::new(GetAllStoresResponse {
            header: ok_header(c),
            stores,
        }))
    }

    async fn store_heartbeat(
        &self,
        req: Request<StoreHeartbeatRequest>,
    ) -> Result<Response<StoreHeartbeatResponse>, Status> {
        let c = self.seen(&req.get_ref().header);
        Ok(Response::new(StoreHeartbeatResponse {
            header: ok_header(c),
            cluster_version: String::new(),
        }))
    }

    type RegionHeartbeatStream = BoxStream<RegionHeartbeatResponse>;
    /// Answers every heartbeat with a transfer-leader step for the region.
    async fn region_heartbeat(
        &self,
        req: Request<Streaming<RegionHeartbeatRequest>>,
    ) -> Result<Response<Self::RegionHeartbeatStream>, Status> {
        let state = self.state.clone();
        let mut inbound = req.into_inner();
        let out = async_stream_like(move |tx| async move {
            while let Some(Ok(r)) = inbound.next().await {
                state.heartbeats.lock().push(r.clone());
                let region_id = r.region.as_ref().map_or(0, |r| r.id);
                let _ = tx.send(Ok(RegionHeartbeatResponse {
                    header: ok_header(state.cluster_id),
                    region_id,
                    transfer_leader: Some(TransferLeader {
                        peer: r.leader,
                        peers: vec![],
                    }),
                    ..Default::default()
                }));
            }
        });
        Ok(Response::new(out))
    }

    async fn get_region(
        &self,
        req: Request<GetRegionRequest>,
    ) -> Result<Response<GetRegionResponse>, Status> {
        let c = self.seen(&req.get_ref().header);
        Ok(Response::new(GetRegionResponse {
            header: ok_header(c),
            region: Some(metapb::Region {
                id: 2,
                ..Default::default()
            }),
            leader: None,
            ..Default::default()
        }))
    }

    async fn get_region_by_id(
        &self,
        req: Request<GetRegionByIdRequest>,
    ) -> Result<Response<GetRegionResponse>, Status> {
        let c = self.seen(&req.get_ref().header);
        Ok(Response::new(GetRegionResponse {
            header: ok_header(c),
            ..Default::default()
        }))
    }

    async fn scan_regions(
        &self,
        _: Request<ScanRegionsRequest>,
    ) -> Result<Response<ScanRegionsResponse>, Status> {
        Err(Status::unimplemented("ScanRegions"))
    }

    async fn ask_batch_split(
        &self,
        req: Request<AskBatchSplitRequest>,
    ) -> Result<Response<AskBatchSplitResponse>, Status> {
        let c = self.seen(&req.get_ref().header);
        let req = req.into_inner();
        let peers = req.region.map_or(0, |r| r.peers.len());
        let ids = (0..req.split_count)
            .map(|_| SplitId {
                new_region_id: self.state.next_id.fetch_add(1, Ordering::SeqCst),
                new_peer_ids: (0..peers)
                    .map(|_| self.state.next_id.fetch_add(1, Ordering::SeqCst))
                    .collect(),
            })
            .collect();
        Ok(Response::new(AskBatchSplitResponse {
            header: ok_header(c),
            ids,
        }))
    }

    async fn report_batch_split(
        &self,
        _: Request<ReportBatchSplitRequest>,
    ) -> Result<Response<ReportBatchSplitResponse>, Status> {
        Err(Status::unimplemented("ReportBatchSplit"))
    }

    async fn get_gc_safe_point(
        &self,
        _: Request<GetGcSafePointRequest>,
    ) -> Result<Response<GetGcSafePointResponse>, Status> {
        Err(Status::unimplemented("GetGCSafePoint"))
    }

    async fn update_gc_safe_point(
        &self,
        _: Request<UpdateGcSafePointRequest>,
    ) -> Result<Response<UpdateGcSafePointResponse>, Status> {
        Err(Status::unimplemented("UpdateGCSafePoint"))
    }
}

/// A response stream fed by a spawned task.
fn async_stream_like<T, F, Fut>(body: F) -> BoxStream<T>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::UnboundedSender<Result<T, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(body(tx));
    Box::pin(UnboundedReceiverStream::new(rx))
}
