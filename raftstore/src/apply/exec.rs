//! The apply pool's dispatch table: one committed entry goes to the apply half of its
//! command in `operation::command` (writes, `BatchSplit`, `CompactLog`, `ConfChangeV2`
//! entries, the three merge commands), which adds its writes to the round's batch. An entry
//! that fails leaves nothing in the batch and answers its proposer with the error.

use engine::KvWriteBatch;
use prost::Message as _;
use proto::eraftpb::{Entry, EntryType};
use proto::metapb::Region;
use proto::raft_cmdpb::{
    AdminCmdType, CommitMergeRequest, RaftCmdRequest, RaftCmdResponse, RaftResponseHeader,
};
use proto::raft_serverpb::{MergeState, RaftApplyState};
use tracing::{error, warn};

use crate::errors::{err_resp, Error, Result};
use crate::msg::apply::ExecResult;
use crate::operation::command::write::{exec_writes, written_flow};
use crate::operation::command::{compact_log, conf_change, merge, split};
use crate::stats::Flow;
use crate::util;

/// What the apply FSM knows of its region when it applies an entry.
pub struct ApplyTarget<'a> {
    pub region: &'a Region,
    pub apply_state: &'a mut RaftApplyState,
    /// Set while the region is a merge source (PrepareMerge applied): writes are refused.
    pub merge_state: Option<&'a MergeState>,
    /// The merge source whose local peer confirmed it has applied up to its PrepareMerge;
    /// a `CommitMerge` of any other source waits.
    pub ready_merge_source: Option<u64>,
}

/// What applying one entry came to.
// Returned by value and taken apart at once for every entry: boxing the common variant
// would cost an allocation per entry to save stack space nobody holds on to.
#[allow(clippy::large_enum_variant)]
pub enum Applied {
    /// The response for its proposer and any admin side effect.
    Done(RaftCmdResponse, Option<ExecResult>),
    /// A `CommitMerge` whose source has not confirmed it is caught up: nothing was applied,
    /// and the entry must be applied again once it has.
    WaitMergeSource(Box<CommitMergeRequest>),
}

/// Applies one entry; adds the bytes and keys it wrote to `written`.
pub fn apply_entry(
    wb: &mut KvWriteBatch,
    target: &mut ApplyTarget<'_>,
    entry: &Entry,
    term: u64,
    written: &mut Flow,
) -> Applied {
    let region = target.region;
    let outcome = match entry.get_entry_type() {
        EntryType::EntryNormal if entry.data.is_empty() => {
            // A new leader's empty entry: nothing to apply.
            Ok((RaftCmdResponse::default(), None))
        }
        EntryType::EntryNormal => match RaftCmdRequest::decode(&entry.data[..]) {
            Ok(req) => {
                if let Some(wait) =
                    merge::commit_merge_waiting(&req, region, target.ready_merge_source)
                {
                    return Applied::WaitMergeSource(wait);
                }
                exec_command(wb, target, entry.index, &req, written)
            }
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
            Applied::Done(resp, res)
        }
        Err(e) => Applied::Done(err_resp(e, term), None),
    }
}

fn exec_command(
    wb: &mut KvWriteBatch,
    target: &mut ApplyTarget<'_>,
    index: u64,
    req: &RaftCmdRequest,
    written: &mut Flow,
) -> Result<(RaftCmdResponse, Option<ExecResult>)> {
    let region = target.region;
    util::check_region_epoch(req, region)?;
    let admin_type = req.admin_request.as_ref().map(|a| a.cmd_type());
    if target.merge_state.is_some()
        && !matches!(
            admin_type,
            Some(AdminCmdType::RollbackMerge | AdminCmdType::CompactLog)
        )
    {
        // Entries a leader appended after the PrepareMerge: the range may already belong to
        // the target, so nothing more is applied here unless the merge rolls back.
        return Err(Error::ProposalInMergingMode(region.id));
    }
    if let Some(admin) = &req.admin_request {
        return match admin.cmd_type() {
            AdminCmdType::BatchSplit => split::exec_batch_split(wb, region, admin),
            AdminCmdType::CompactLog => {
                compact_log::exec_compact_log(target.apply_state, admin, target.merge_state)
            }
            AdminCmdType::PrepareMerge => merge::exec_prepare_merge(wb, region, admin, index),
            AdminCmdType::CommitMerge => merge::exec_commit_merge(wb, region, admin),
            AdminCmdType::RollbackMerge => {
                merge::exec_rollback_merge(wb, region, admin, target.merge_state)
            }
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
