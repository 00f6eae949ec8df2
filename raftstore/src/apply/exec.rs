//! Executing one committed command into the round's write batch.

use engine::KvWriteBatch;
use prost::Message as _;
use proto::eraftpb::{Entry, EntryType};
use proto::metapb::Region;
use proto::raft_cmdpb::{
    AdminCmdType, AdminRequest, AdminResponse, CmdType, CompactLogResponse, DeleteRangeResponse,
    DeleteResponse, PutResponse, RaftCmdRequest, RaftCmdResponse, RaftResponseHeader, Request,
    Response,
};
use proto::raft_serverpb::{RaftApplyState, RaftTruncatedState};
use tracing::{error, warn};

use super::{split, ExecResult};
use crate::errors::{err_resp, Error, Result};
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
        EntryType::EntryConfChangeV2 => super::conf_change::exec_conf_change(wb, region, entry),
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

fn exec_writes(wb: &mut KvWriteBatch, region: &Region, reqs: &[Request]) -> Result<Vec<Response>> {
    let mut responses = Vec::with_capacity(reqs.len());
    for r in reqs {
        let mut resp = Response {
            cmd_type: r.cmd_type,
            ..Default::default()
        };
        match r.cmd_type() {
            CmdType::Put => {
                let put = r.put.as_ref().ok_or_else(|| missing("put"))?;
                util::check_key_in_region(&put.key, region)?;
                let cf = util::cf_or_default(&put.cf)?;
                wb.put_cf(cf, &keys::data_key(&put.key), &put.value)?;
                resp.put = Some(PutResponse {});
            }
            CmdType::Delete => {
                let del = r.delete.as_ref().ok_or_else(|| missing("delete"))?;
                util::check_key_in_region(&del.key, region)?;
                let cf = util::cf_or_default(&del.cf)?;
                wb.delete_cf(cf, &keys::data_key(&del.key))?;
                resp.delete = Some(DeleteResponse {});
            }
            CmdType::DeleteRange => {
                let dr = r
                    .delete_range
                    .as_ref()
                    .ok_or_else(|| missing("delete range"))?;
                let cf = util::cf_or_default(&dr.cf)?;
                // Clip to the region so a range can never touch a neighbour's data.
                let start = keys::data_key(dr.start_key.as_slice().max(&region.start_key));
                let end = if dr.end_key.is_empty() {
                    keys::enc_end_key(&region.end_key)
                } else if region.end_key.is_empty() {
                    keys::data_key(&dr.end_key)
                } else {
                    keys::data_key(dr.end_key.as_slice().min(&region.end_key))
                };
                if start < end {
                    wb.delete_range_cf(cf, &start, &end)?;
                }
                resp.delete_range = Some(DeleteRangeResponse {});
            }
            other => {
                return Err(Error::InvalidRequest(format!(
                    "{other:?} cannot be applied as a write"
                )))
            }
        }
        responses.push(resp);
    }
    Ok(responses)
}

/// Bytes (key + value) and keys of the puts and deletes of a command. Range deletes are not
/// counted: their size is unknown without a scan.
pub fn written_flow(reqs: &[Request]) -> Flow {
    let mut flow = Flow::default();
    for r in reqs {
        let bytes = match r.cmd_type() {
            CmdType::Put => r.put.as_ref().map(|p| p.key.len() + p.value.len()),
            CmdType::Delete => r.delete.as_ref().map(|d| d.key.len()),
            _ => None,
        };
        if let Some(bytes) = bytes {
            flow.bytes += bytes as u64;
            flow.keys += 1;
        }
    }
    flow
}

fn exec_admin(
    apply_state: &mut RaftApplyState,
    admin: &AdminRequest,
    _term: u64,
) -> Result<(RaftCmdResponse, Option<ExecResult>)> {
    match admin.cmd_type() {
        AdminCmdType::CompactLog => {
            let req = admin
                .compact_log
                .as_ref()
                .ok_or_else(|| missing("compact log"))?;
            let truncated = apply_state.truncated_state.unwrap_or_default();
            if req.compact_index <= truncated.index {
                // Already compacted further; harmless.
                return Ok((admin_resp(AdminCmdType::CompactLog), None));
            }
            if req.compact_index > apply_state.applied_index {
                return Err(Error::InvalidRequest(format!(
                    "compact index {} beyond applied index {}",
                    req.compact_index, apply_state.applied_index
                )));
            }
            apply_state.truncated_state = Some(RaftTruncatedState {
                index: req.compact_index,
                term: req.compact_term,
            });
            let mut resp = admin_resp(AdminCmdType::CompactLog);
            if let Some(a) = resp.admin_response.as_mut() {
                a.compact_log = Some(CompactLogResponse {});
            }
            Ok((
                resp,
                Some(ExecResult::CompactLog {
                    truncated_index: req.compact_index,
                }),
            ))
        }
        other => Err(Error::InvalidRequest(format!(
            "admin command {other:?} is not supported"
        ))),
    }
}

fn admin_resp(ty: AdminCmdType) -> RaftCmdResponse {
    RaftCmdResponse {
        header: Some(RaftResponseHeader::default()),
        responses: vec![],
        admin_response: Some(AdminResponse {
            cmd_type: ty as i32,
            ..Default::default()
        }),
    }
}

fn missing(what: &str) -> Error {
    Error::InvalidRequest(format!("{what} request without a body"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::raft_cmdpb::{DeleteRangeRequest, DeleteRequest, PutRequest};

    #[test]
    fn written_flow_counts_puts_and_deletes() {
        let reqs = vec![
            Request {
                cmd_type: CmdType::Put as i32,
                put: Some(PutRequest {
                    cf: String::new(),
                    key: b"key".to_vec(),
                    value: b"value".to_vec(),
                }),
                ..Default::default()
            },
            Request {
                cmd_type: CmdType::Delete as i32,
                delete: Some(DeleteRequest {
                    cf: String::new(),
                    key: b"gone".to_vec(),
                }),
                ..Default::default()
            },
            Request {
                cmd_type: CmdType::DeleteRange as i32,
                delete_range: Some(DeleteRangeRequest::default()),
                ..Default::default()
            },
        ];
        assert_eq!(written_flow(&reqs), Flow { bytes: 12, keys: 2 });
    }
}
