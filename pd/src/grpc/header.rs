//! The response header every PD answer carries: the cluster id, and on failure the error
//! (clients look for errors there, not in the gRPC status).

use proto::pdpb::*;

use crate::error::Error;

/// A response type with a `header` field.
pub trait PdResponse: Default {
    fn header_mut(&mut self) -> &mut Option<ResponseHeader>;
}

macro_rules! pd_responses {
    ($($t:ty),* $(,)?) => {
        $(impl PdResponse for $t {
            fn header_mut(&mut self) -> &mut Option<ResponseHeader> {
                &mut self.header
            }
        })*
    };
}

pd_responses!(
    GetMembersResponse,
    TsoResponse,
    BootstrapResponse,
    IsBootstrappedResponse,
    AllocIdResponse,
    GetStoreResponse,
    PutStoreResponse,
    GetAllStoresResponse,
    StoreHeartbeatResponse,
    RegionHeartbeatResponse,
    GetRegionResponse,
    ScanRegionsResponse,
    AskBatchSplitResponse,
    ReportBatchSplitResponse,
    GetGcSafePointResponse,
    UpdateGcSafePointResponse,
);

pub fn ok_header(cluster_id: u64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        cluster_id,
        error: None,
    })
}

pub fn error_header(cluster_id: u64, err: &Error) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        cluster_id,
        error: Some(err.to_pb()),
    })
}
