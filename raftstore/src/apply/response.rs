//! Building the answers of applied commands.

use proto::raft_cmdpb::{AdminCmdType, AdminResponse, RaftCmdResponse, RaftResponseHeader};

use crate::errors::Error;

/// A successful answer to an admin command of type `ty`, its body left for the caller.
pub(crate) fn admin_resp(ty: AdminCmdType) -> RaftCmdResponse {
    RaftCmdResponse {
        header: Some(RaftResponseHeader::default()),
        responses: vec![],
        admin_response: Some(AdminResponse {
            cmd_type: ty as i32,
            ..Default::default()
        }),
    }
}

/// The error for a request whose body (put, delete, compact log, ...) is absent.
pub(crate) fn missing(what: &str) -> Error {
    Error::InvalidRequest(format!("{what} request without a body"))
}
