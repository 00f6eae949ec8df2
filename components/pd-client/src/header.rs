//! Response headers: every PD response carries one, and an error in it fails the request.

use proto::pdpb::{self, ErrorType, ResponseHeader};

use crate::errors::{Error, Result};

/// A PD response with a `ResponseHeader`.
pub(crate) trait HasHeader {
    fn header(&self) -> Option<&ResponseHeader>;
}

macro_rules! has_header {
    ($($t:ty),* $(,)?) => {
        $(impl HasHeader for $t {
            fn header(&self) -> Option<&ResponseHeader> {
                self.header.as_ref()
            }
        })*
    };
}

has_header!(
    pdpb::GetMembersResponse,
    pdpb::TsoResponse,
    pdpb::BootstrapResponse,
    pdpb::IsBootstrappedResponse,
    pdpb::AllocIdResponse,
    pdpb::GetStoreResponse,
    pdpb::PutStoreResponse,
    pdpb::GetAllStoresResponse,
    pdpb::StoreHeartbeatResponse,
    pdpb::RegionHeartbeatResponse,
    pdpb::GetRegionResponse,
    pdpb::ScanRegionsResponse,
    pdpb::AskBatchSplitResponse,
    pdpb::ReportBatchSplitResponse,
    pdpb::GetGcSafePointResponse,
    pdpb::UpdateGcSafePointResponse,
);

/// Turns an error carried in the header into `Err`. A missing header is tolerated on
/// everything but `GetMembers` (checked by discovery), since only the error matters here.
pub(crate) fn check<R: HasHeader>(resp: R) -> Result<R> {
    if let Some(err) = resp.header().and_then(|h| h.error.as_ref()) {
        let kind = ErrorType::try_from(err.r#type).unwrap_or(ErrorType::Unknown);
        if kind != ErrorType::Ok {
            return Err(Error::from_header(kind, err.message.clone()));
        }
    }
    Ok(resp)
}

/// The header every request carries.
pub(crate) fn request_header(cluster_id: u64) -> Option<pdpb::RequestHeader> {
    Some(pdpb::RequestHeader {
        cluster_id,
        sender_id: 0,
    })
}
