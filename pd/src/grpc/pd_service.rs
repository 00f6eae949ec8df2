//! The `pdpb.PD` gRPC service. Every answer carries a header with the cluster id; failures go
//! in `header.error` (never as a bare gRPC status), because clients look there and retry.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use proto::pdpb::pd_server::Pd;
use proto::pdpb::*;
use tonic::{Request, Response, Status, Streaming};
use tracing::debug;

use super::header::{error_header, ok_header, PdResponse};
use super::streams;
use crate::error::{Error, Result};
use crate::state::PdState;
use crate::tso::unix_millis;
use crate::ShutdownSignal;

pub struct PdService {
    state: Arc<PdState>,
    shutdown: ShutdownSignal,
}

impl PdService {
    pub fn new(state: Arc<PdState>, shutdown: ShutdownSignal) -> PdService {
        PdService { state, shutdown }
    }

    /// Runs one unary call: checks the cluster id, counts it, and puts the outcome in the
    /// response header.
    fn answer<T: PdResponse>(
        &self,
        method: &'static str,
        header: Option<&RequestHeader>,
        f: impl FnOnce() -> Result<T>,
    ) -> Response<T> {
        let state = &self.state;
        state
            .metrics
            .grpc_requests
            .with_label_values(&[method])
            .inc();
        let resp = match state.check_header(header).and_then(|()| f()) {
            Ok(mut resp) => {
                *resp.header_mut() = ok_header(state.cluster_id);
                resp
            }
            Err(err) => {
                debug!(method, %err, "request failed");
                state
                    .metrics
                    .grpc_errors
                    .with_label_values(&[method, err.label()])
                    .inc();
                let mut resp = T::default();
                *resp.header_mut() = error_header(state.cluster_id, &err);
                resp
            }
        };
        Response::new(resp)
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = std::result::Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Pd for PdService {
    async fn get_members(
        &self,
        request: Request<GetMembersRequest>,
    ) -> std::result::Result<Response<GetMembersResponse>, Status> {
        let req = request.into_inner();
        Ok(self.answer("GetMembers", req.header.as_ref(), || {
            let me = self.state.member.clone();
            Ok(GetMembersResponse {
                header: None,
                members: vec![me.clone()],
                leader: Some(me.clone()),
                etcd_leader: Some(me),
            })
        }))
    }

    type TsoStream = BoxStream<TsoResponse>;

    async fn tso(
        &self,
        request: Request<Streaming<TsoRequest>>,
    ) -> std::result::Result<Response<Self::TsoStream>, Status> {
        self.state
            .metrics
            .grpc_requests
            .with_label_values(&["Tso"])
            .inc();
        let stream = streams::tso(
            self.state.clone(),
            request.into_inner(),
            self.shutdown.clone(),
        );
        Ok(Response::new(stream))
    }

    async fn bootstrap(
        &self,
        request: Request<BootstrapRequest>,
    ) -> std::result::Result<Response<BootstrapResponse>, Status> {
        let req = request.into_inner();
        Ok(self.answer("Bootstrap", req.header.as_ref(), || {
            self.state.cluster.bootstrap(
                req.store.clone(),
                req.region.clone(),
                req.api_version,
                unix_millis(),
            )?;
            // Ids the store chose must never be handed out again.
            self.state.ids.ensure_above(bootstrap_max_id(&req))?;
            Ok(BootstrapResponse::default())
        }))
    }

    async fn is_bootstrapped(
        &self,
        request: Request<IsBootstrappedRequest>,
    ) -> std::result::Result<Response<IsBootstrappedResponse>, Status> {
        let req = request.into_inner();
        Ok(self.answer("IsBootstrapped", req.header.as_ref(), || {
            Ok(IsBootstrappedResponse {
                header: None,
                bootstrapped: self.state.cluster.is_bootstrapped(),
            })
        }))
    }

    async fn alloc_id(
        &self,
        request: Request<AllocIdRequest>,
    ) -> std::result::Result<Response<AllocIdResponse>, Status> {
        let req = request.into_inner();
        Ok(self.answer("AllocID", req.header.as_ref(), || {
            Ok(AllocIdResponse {
                header: None,
                id: self.state.alloc_id()?,
            })
        }))
    }

    async fn get_store(
        &self,
        request: Request<GetStoreRequest>,
    ) -> std::result::Result<Response<GetStoreResponse>, Status> {
        let req = request.into_inner();
        Ok(self.answer("GetStore", req.header.as_ref(), || {
            Ok(GetStoreResponse {
                header: None,
                store: Some(self.state.cluster.get_store(req.store_id)?),
            })
        }))
    }

    async fn put_store(
        &self,
        request: Request<PutStoreRequest>,
    ) -> std::result::Result<Response<PutStoreResponse>, Status> {
        let req = request.into_inner();
        Ok(self.answer("PutStore", req.header.as_ref(), || {
            self.state
                .cluster
                .put_store(req.store, req.api_version, unix_millis())?;
            Ok(PutStoreResponse::default())
        }))
    }

    async fn get_all_stores(
        &self,
        request: Request<GetAllStoresRequest>,
    ) -> std::result::Result<Response<GetAllStoresResponse>, Status> {
        let req = request.into_inner();
        Ok(self.answer("GetAllStores", req.header.as_ref(), || {
            Ok(GetAllStoresResponse {
                header: None,
                stores: self
                    .state
                    .cluster
                    .all_stores(req.exclude_tombstone_stores)?,
            })
        }))
    }

    async fn store_heartbeat(
        &self,
        request: Request<StoreHeartbeatRequest>,
    ) -> std::result::Result<Response<StoreHeartbeatResponse>, Status> {
        let req = request.into_inner();
        Ok(self.answer("StoreHeartbeat", req.header.as_ref(), || {
            self.state
                .cluster
                .store_heartbeat(req.stats, unix_millis())?;
            self.state.metrics.store_heartbeats.inc();
            Ok(StoreHeartbeatResponse {
                header: None,
                cluster_version: env!("CARGO_PKG_VERSION").to_string(),
            })
        }))
    }

    type RegionHeartbeatStream = BoxStream<RegionHeartbeatResponse>;

    async fn region_heartbeat(
        &self,
        request: Request<Streaming<RegionHeartbeatRequest>>,
    ) -> std::result::Result<Response<Self::RegionHeartbeatStream>, Status> {
        self.state
            .metrics
            .grpc_requests
            .with_label_values(&["RegionHeartbeat"])
            .inc();
        let stream = streams::region_heartbeat(
            self.state.clone(),
            request.into_inner(),
            self.shutdown.clone(),
        );
        Ok(Response::new(stream))
    }

    async fn get_region(
        &self,
        request: Request<GetRegionRequest>,
    ) -> std::result::Result<Response<GetRegionResponse>, Status> {
        let req = request.into_inner();
        Ok(self.answer("GetRegion", req.header.as_ref(), || {
            let region = self.state.cluster.region_by_key(&req.region_key)?;
            Ok(region_response(region))
        }))
    }

    async fn get_region_by_id(
        &self,
        request: Request<GetRegionByIdRequest>,
    ) -> std::result::Result<Response<GetRegionResponse>, Status> {
        let req = request.into_inner();
        Ok(self.answer("GetRegionByID", req.header.as_ref(), || {
            let region = self.state.cluster.region_by_id(req.region_id)?;
            Ok(region_response(region))
        }))
    }

    async fn scan_regions(
        &self,
        request: Request<ScanRegionsRequest>,
    ) -> std::result::Result<Response<ScanRegionsResponse>, Status> {
        let req = request.into_inner();
        Ok(self.answer("ScanRegions", req.header.as_ref(), || {
            let limit = usize::try_from(req.limit).unwrap_or(0);
            let regions = self
                .state
                .cluster
                .scan_regions(&req.start_key, &req.end_key, limit)?;
            Ok(ScanRegionsResponse {
                header: None,
                region_metas: regions.iter().map(|r| r.meta.clone()).collect(),
                leaders: regions
                    .iter()
                    .map(|r| r.leader.unwrap_or_default())
                    .collect(),
                regions: regions.iter().map(|r| r.to_pb()).collect(),
            })
        }))
    }

    async fn ask_batch_split(
        &self,
        request: Request<AskBatchSplitRequest>,
    ) -> std::result::Result<Response<AskBatchSplitResponse>, Status> {
        let req = request.into_inner();
        Ok(self.answer("AskBatchSplit", req.header.as_ref(), || {
            if !self.state.cluster.is_bootstrapped() {
                return Err(Error::NotBootstrapped);
            }
            let region = req
                .region
                .as_ref()
                .ok_or_else(|| Error::InvalidArgument("AskBatchSplit without a region".into()))?;
            Ok(AskBatchSplitResponse {
                header: None,
                ids: self
                    .state
                    .ask_batch_split(region.peers.len(), req.split_count)?,
            })
        }))
    }

    async fn report_batch_split(
        &self,
        request: Request<ReportBatchSplitRequest>,
    ) -> std::result::Result<Response<ReportBatchSplitResponse>, Status> {
        let req = request.into_inner();
        Ok(self.answer("ReportBatchSplit", req.header.as_ref(), || {
            self.state.cluster.report_split(req.regions.clone())?;
            Ok(ReportBatchSplitResponse::default())
        }))
    }

    async fn get_gc_safe_point(
        &self,
        request: Request<GetGcSafePointRequest>,
    ) -> std::result::Result<Response<GetGcSafePointResponse>, Status> {
        let req = request.into_inner();
        Ok(self.answer("GetGCSafePoint", req.header.as_ref(), || {
            Ok(GetGcSafePointResponse {
                header: None,
                safe_point: self.state.gc_safe_point(),
            })
        }))
    }

    async fn update_gc_safe_point(
        &self,
        request: Request<UpdateGcSafePointRequest>,
    ) -> std::result::Result<Response<UpdateGcSafePointResponse>, Status> {
        let req = request.into_inner();
        Ok(self.answer("UpdateGCSafePoint", req.header.as_ref(), || {
            Ok(UpdateGcSafePointResponse {
                header: None,
                new_safe_point: self.state.update_gc_safe_point(req.safe_point)?,
            })
        }))
    }
}

/// The highest id a bootstrap request carries (store, region, peers).
fn bootstrap_max_id(req: &BootstrapRequest) -> u64 {
    let store = req.store.as_ref().map_or(0, |s| s.id);
    let region = req.region.as_ref().map_or(0, |r| {
        r.peers.iter().map(|p| p.id).max().unwrap_or(0).max(r.id)
    });
    store.max(region)
}

fn region_response(region: crate::cluster::RegionInfo) -> GetRegionResponse {
    GetRegionResponse {
        header: None,
        leader: region.leader,
        down_peers: region.down_peers,
        pending_peers: region.pending_peers,
        region: Some(region.meta),
    }
}
