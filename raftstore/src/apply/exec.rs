//! Executing one committed command into the round's write batch.

use engine::KvWriteBatch;
use prost::Message as _;
use proto::eraftpb::{Entry, EntryType};
use proto::metapb::Region;
use proto::raft_cmdpb::{
    AdminCmdType, AdminRequest, RaftCmdRequest, RaftCmdResponse, RaftResponseHeader,
};
use proto::raft_serverpb::RaftApplyState;
use tracing::{error, warn};

use crate::errors::{err_resp, Error, Result};
use crate::msg::apply::ExecResult;
use crate::operation::command::write::{exec_writes, written_flow};
use crate::operation::command::{compact_log, conf_change, split};
use crate::stats::Flow;
use crate::util;

/// Applies one entry; returns the response for its proposer and any admin side effect, and
/// adds the bytes and keys it wrote to `written`.
pub fn apply_entry(
    wb: &mut KvWriteBatch,
    region: &Region,
    apply_state: &mut RaftApplyState,
    entry: &Entry,
    term: u64,
    written: &mut Flow,
) -> (RaftCmdResponse, Option<ExecResult>) {
    let outcome = match entry.get_entry_type() {
        EntryType::EntryNormal if entry.data.is_empty() => {
            // A new leader's empty entry: nothing to apply.
            Ok((RaftCmdResponse::default(), None))
        }
        EntryType::EntryNormal => match RaftCmdRequest::decode(&entry.data[..]) {
            Ok(req) => exec_command(wb, region, apply_state, &req, term, written),
            Err(e) => {
                error!(
                    region_id = region.id,
                    index = entry.index,
                    "undecodable entry: {e}"
                );
                Err(Error::Codec(e.to_string()))
            }
        },
        EntryType::EntryConfChangeV2 => conf_change::exec_conf_change(wb, region, entry),
        other => {
            warn!(
                region_id = region.id,
                index = entry.index,
                "unsupported entry type {other:?}"
            );
            Err(Error::InvalidRequest(format!(
                "unsupported entry type {other:?}"
            )))
        }
    };
    match outcome {
        Ok((mut resp, res)) => {
            resp.header
                .get_or_insert_with(Default::default)
                .current_term = term;
            (resp, res)
        }
        Err(e) => (err_resp(e, term), None),
    }
}

fn exec_command(
    wb: &mut KvWriteBatch,
    region: &Region,
    apply_state: &mut RaftApplyState,
    req: &RaftCmdRequest,
    term: u64,
    written: &mut Flow,
) -> Result<(RaftCmdResponse, Option<ExecResult>)> {
    util::check_region_epoch(req, region)?;
    if let Some(admin) = &req.admin_request {
        if admin.cmd_type() == AdminCmdType::BatchSplit {
            return split::exec_batch_split(wb, region, admin);
        }
        return exec_admin(apply_state, admin, term);
    }
    wb.set_save_point();
    match exec_writes(wb, region, &req.requests) {
        Ok(responses) => {
            wb.pop_save_point()?;
            let flow = written_flow(&req.requests);
            written.bytes += flow.bytes;
            written.keys += flow.keys;
            Ok((
                RaftCmdResponse {
                    header: Some(RaftResponseHeader::default()),
                    responses,
                    admin_response: None,
                },
                None,
            ))
        }
        Err(e) => {
            // Nothing of a failed command may reach the engine.
            wb.rollback_to_save_point()?;
            Err(e)
        }
    }
}

fn exec_admin(
    apply_state: &mut RaftApplyState,
    admin: &AdminRequest,
    _term: u64,
) -> Result<(RaftCmdResponse, Option<ExecResult>)> {
    match admin.cmd_type() {
        AdminCmdType::CompactLog => compact_log::exec_compact_log(apply_state, admin),
        other => Err(Error::InvalidRequest(format!(
            "admin command {other:?} is not supported"
        ))),
    }
}
