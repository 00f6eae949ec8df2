//! Test helpers: a tiny `tikvpb.Tikv` server that records raft traffic, and builders for
//! raft and snapshot messages.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use proto::eraftpb::{self, MessageType};
use proto::kvrpcpb::*;
use proto::metapb;
use proto::raft_serverpb::{
    Done, RaftMessage, RaftMessageBatch, RaftSnapshotData, SnapshotCfFile, SnapshotChunk,
    SnapshotMeta,
};
use proto::tikvpb::tikv_server::{Tikv, TikvServer};
use protobuf::Message as _;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status, Streaming};

pub const DEADLINE: Duration = Duration::from_secs(30);

/// Polls `cond` until it holds or the deadline passes.
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What the recording store saw.
#[derive(Default)]
pub struct Recorded {
    pub raft: Mutex<Vec<RaftMessage>>,
    pub snapshots: Mutex<Vec<RaftMessage>>,
    pub snap_dir: PathBuf,
}

pub struct RecordingStore {
    pub addr: SocketAddr,
    pub recorded: Arc<Recorded>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl RecordingStore {
    /// Serves on `addr` (port 0 for any) on a runtime of its own; snapshots land in
    /// `snap_dir`.
    pub fn start(addr: SocketAddr, snap_dir: &Path) -> RecordingStore {
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
        let recorded = Arc::new(Recorded {
            snap_dir: snap_dir.to_path_buf(),
            ..Default::default()
        });
        let svc = MockTikv {
            recorded: recorded.clone(),
        };
        runtime.spawn(async move {
            tonic::transport::Server::builder()
                .add_service(TikvServer::new(svc))
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await
                .unwrap();
        });
        RecordingStore {
            addr,
            recorded,
            runtime: Some(runtime),
        }
    }
}

/// Stopping waits for the runtime, so every connection is closed and the port is free.
impl Drop for RecordingStore {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(10));
        }
    }
}

/// Binds with SO_REUSEADDR, retrying briefly while a previous listener lets go of the port.
fn bind(addr: SocketAddr) -> tokio::net::TcpListener {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        match socket.bind(addr).and_then(|()| socket.listen(64)) {
            Ok(l) => return l,
            Err(e) if Instant::now() < deadline => {
                eprintln!("rebinding {addr}: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("bind {addr}: {e}"),
        }
    }
}

struct MockTikv {
    recorded: Arc<Recorded>,
}

macro_rules! recording_tikv {
    ($($name:ident($req:ty) -> $resp:ty;)*) => {
        #[tonic::async_trait]
        impl Tikv for MockTikv {
            $(async fn $name(&self, _: Request<$req>) -> Result<Response<$resp>, Status> {
                Err(Status::unimplemented(stringify!($name)))
            })*

            async fn batch_raft(
                &self,
                request: Request<Streaming<RaftMessageBatch>>,
            ) -> Result<Response<Done>, Status> {
                let mut stream = request.into_inner();
                while let Some(batch) = stream.message().await? {
                    self.recorded.raft.lock().extend(batch.msgs);
                }
                Ok(Response::new(Done {}))
            }

            async fn snapshot(
                &self,
                request: Request<Streaming<SnapshotChunk>>,
            ) -> Result<Response<Done>, Status> {
                let msg = server::transport::receive::receive_snapshot_files(
                    &self.recorded.snap_dir,
                    request.into_inner(),
                )
                .await?;
                self.recorded.snapshots.lock().push(msg);
                Ok(Response::new(Done {}))
            }
        }
    };
}

recording_tikv! {
    kv_get(GetRequest) -> GetResponse;
    kv_scan(ScanRequest) -> ScanResponse;
    kv_prewrite(PrewriteRequest) -> PrewriteResponse;
    kv_pessimistic_lock(PessimisticLockRequest) -> PessimisticLockResponse;
    kv_pessimistic_rollback(PessimisticRollbackRequest) -> PessimisticRollbackResponse;
    kv_txn_heart_beat(TxnHeartBeatRequest) -> TxnHeartBeatResponse;
    kv_check_txn_status(CheckTxnStatusRequest) -> CheckTxnStatusResponse;
    kv_check_secondary_locks(CheckSecondaryLocksRequest) -> CheckSecondaryLocksResponse;
    kv_commit(CommitRequest) -> CommitResponse;
    kv_batch_get(BatchGetRequest) -> BatchGetResponse;
    kv_batch_rollback(BatchRollbackRequest) -> BatchRollbackResponse;
    kv_scan_lock(ScanLockRequest) -> ScanLockResponse;
    kv_resolve_lock(ResolveLockRequest) -> ResolveLockResponse;
    raw_get(RawGetRequest) -> RawGetResponse;
    raw_batch_get(RawBatchGetRequest) -> RawBatchGetResponse;
    raw_put(RawPutRequest) -> RawPutResponse;
    raw_batch_put(RawBatchPutRequest) -> RawBatchPutResponse;
    raw_delete(RawDeleteRequest) -> RawDeleteResponse;
    raw_batch_delete(RawBatchDeleteRequest) -> RawBatchDeleteResponse;
    raw_scan(RawScanRequest) -> RawScanResponse;
    raw_delete_range(RawDeleteRangeRequest) -> RawDeleteRangeResponse;
    raw_batch_scan(RawBatchScanRequest) -> RawBatchScanResponse;
    raw_get_key_ttl(RawGetKeyTtlRequest) -> RawGetKeyTtlResponse;
    raw_compare_and_swap(RawCasRequest) -> RawCasResponse;
    unsafe_destroy_range(UnsafeDestroyRangeRequest) -> UnsafeDestroyRangeResponse;
    mvcc_get_by_key(MvccGetByKeyRequest) -> MvccGetByKeyResponse;
}

/// A raft heartbeat from peer 1 (store 1) to peer 2 on `to_store`.
pub fn heartbeat(region_id: u64, to_store: u64, term: u64) -> RaftMessage {
    let mut m = eraftpb::Message::default();
    m.set_msg_type(MessageType::MsgHeartbeat);
    m.from = 1;
    m.to = 2;
    m.term = term;
    RaftMessage {
        region_id,
        from_peer: Some(metapb::Peer {
            id: 1,
            store_id: 1,
            ..Default::default()
        }),
        to_peer: Some(metapb::Peer {
            id: 2,
            store_id: to_store,
            ..Default::default()
        }),
        message: m.write_to_bytes().unwrap(),
        ..Default::default()
    }
}

/// A snapshot message for `region_id` at term 5, index 10, describing `files` (cf, bytes).
pub fn snapshot_message(region_id: u64, to_store: u64, files: &[(&str, &[u8])]) -> RaftMessage {
    use prost::Message as _;
    let data = RaftSnapshotData {
        region: Some(metapb::Region {
            id: region_id,
            ..Default::default()
        }),
        file_size: files.iter().map(|(_, b)| b.len() as u64).sum(),
        meta: Some(SnapshotMeta {
            cf_files: files
                .iter()
                .map(|(cf, bytes)| SnapshotCfFile {
                    cf: cf.to_string(),
                    size: bytes.len() as u64,
                    checksum: crc32fast::hash(bytes),
                })
                .collect(),
        }),
    };
    let mut snapshot = eraftpb::Snapshot {
        data: data.encode_to_vec().into(),
        ..Default::default()
    };
    snapshot.mut_metadata().term = 5;
    snapshot.mut_metadata().index = 10;
    let mut m = eraftpb::Message::default();
    m.set_msg_type(MessageType::MsgSnapshot);
    m.from = 1;
    m.to = 2;
    m.term = 5;
    m.set_snapshot(snapshot);
    RaftMessage {
        message: m.write_to_bytes().unwrap(),
        ..heartbeat(region_id, to_store, 5)
    }
}

/// The path `raftstore::snap::files` gives a snapshot file of `snapshot_message`.
pub fn snap_file(dir: &Path, prefix: &str, region_id: u64, cf: &str) -> PathBuf {
    dir.join(raftstore::snap::file_name(prefix, region_id, 5, 10, cf))
}
