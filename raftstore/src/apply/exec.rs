//! The apply pool's dispatch table: one committed entry goes to the apply half of its
//! command in `operation::command` (writes, `BatchSplit`, `CompactLog`, `ConfChangeV2`
//! entries), which adds its writes to the round's batch. An entry that fails leaves nothing in
//! the batch and answers its proposer with the error.

use engine::KvWriteBatch;
use prost::Message as _;
use proto::eraftpb::{Entry, EntryType};
use proto::metapb::Region;
use proto::raft_cmdpb::{AdminCmdType, RaftCmdRequest, RaftCmdResponse, RaftResponseHeader};
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
            Ok(req) => exec_command(wb, region, apply_state, &req, written),
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
    written: &mut Flow,
) -> Result<(RaftCmdResponse, Option<ExecResult>)> {
    util::check_region_epoch(req, region)?;
    if let Some(admin) = &req.admin_request {
        return match admin.cmd_type() {
            AdminCmdType::BatchSplit => split::exec_batch_split(wb, region, admin),
            AdminCmdType::CompactLog => compact_log::exec_compact_log(apply_state, admin),
            other => Err(Error::InvalidRequest(format!(
                "admin command {other:?} is not supported"
            ))),
        };
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
