//! Writes (put, delete, delete range): the common command, every phase in order.
//!
//! 1. **Batch** (peer): consecutive plain writes a poller round drains from the mailbox are
//!    packed into one raft entry (`batch_command`, `flush_batch`): one encode, one log record
//!    and one apply round shared by many clients, each command still checked on its own.
//! 2. **Propose** (peer): the batch goes through `propose_command`'s checks and
//!    `propose_normal` like any command (see `operation::propose`).
//! 3. **Apply** (apply pool): `exec_writes` writes the requests into the round's batch
//!    (keys checked against the region, range deletes clipped to it) and `written_flow`
//!    counts the bytes and keys for the split policies and PD.
//! 4. **Answer** (apply pool): the entry's callback gets one response, which `split_response`
//!    hands back to each caller as the responses of its own requests.

use engine::KvWriteBatch;
use prost::Message as _;
use proto::metapb::Region;
use proto::raft_cmdpb::{
    CmdType, DeleteRangeResponse, DeleteResponse, PutResponse, RaftCmdRequest, RaftCmdResponse,
    Request, Response,
};

use crate::apply::response::missing;
use crate::context::PollContext;
use crate::errors::{err_resp, Error, Result};
use crate::msg::{Callback, CmdResponse, RaftCommand};
use crate::peer::proposal::ProposalBatch;
use crate::peer::Peer;
use crate::stats::Flow;
use crate::util;

// ---- Batch and propose on the peer ----

/// Whether a command may share an entry with others: plain writes only.
pub fn is_batchable(req: &RaftCmdRequest) -> bool {
    req.admin_request.is_none()
        && !req.requests.is_empty()
        && req
            .requests
            .iter()
            .all(|r| matches!(r.cmd_type(), CmdType::Put | CmdType::Delete))
        && req.header.as_ref().is_some_and(|h| !h.read_quorum)
}

/// Largest batch, in encoded request bytes: well below the entry limit, so one entry never
/// grows past what a follower can take in one message.
fn batch_size_limit(ctx: &PollContext) -> usize {
    (ctx.cfg.raft_entry_max_size as usize / 4).min(ctx.cfg.raft_max_size_per_msg as usize)
}

impl Peer {
    /// Adds a write command to the pending batch (proposing the batch first when the command
    /// cannot join it). Commands too large to share an entry go on their own.
    pub fn batch_command(&mut self, ctx: &mut PollContext, cmd: RaftCommand) {
        let size = cmd.request.encoded_len();
        let limit = batch_size_limit(ctx);
        if size >= limit {
            self.flush_batch(ctx);
            self.propose_command(ctx, cmd);
            return;
        }
        self.wake_up(ctx);
        let RaftCommand {
            request, callback, ..
        } = cmd;
        if let Err(e) = self.pre_propose_check(ctx, &request) {
            callback.invoke_with(err_resp(e, self.term()));
            return;
        }
        let joins =
            ctx.pending_batch.header == request.header && ctx.pending_batch.size + size <= limit;
        if !ctx.pending_batch.is_empty() && !joins {
            self.flush_batch(ctx);
        }
        let batch = &mut ctx.pending_batch;
        if batch.is_empty() {
            batch.header = request.header;
        }
        batch.size += size;
        batch.callers.push((callback, request.requests.len()));
        batch.requests.extend(request.requests);
    }

    /// Proposes the pending batch as one command whose answer is split among its callers.
    pub fn flush_batch(&mut self, ctx: &mut PollContext) {
        if ctx.pending_batch.is_empty() {
            return;
        }
        let ProposalBatch {
            header,
            requests,
            mut callers,
            ..
        } = ctx.pending_batch.take();
        let request = RaftCmdRequest {
            header,
            requests,
            admin_request: None,
        };
        let callback = if callers.len() == 1 {
            callers
                .pop()
                .map(|(cb, _)| cb)
                .unwrap_or_else(Callback::none)
        } else {
            Callback::new(move |resp: CmdResponse| split_response(resp.response, callers))
        };
        self.propose_command(ctx, RaftCommand::new(request, callback));
    }
}

/// Gives each caller the shared header and the responses of its own requests.
fn split_response(response: RaftCmdResponse, callers: Vec<(Callback, usize)>) {
    let RaftCmdResponse {
        header, responses, ..
    } = response;
    let mut responses = responses.into_iter();
    for (callback, count) in callers {
        callback.invoke_with(RaftCmdResponse {
            header: header.clone(),
            responses: responses.by_ref().take(count).collect(),
            admin_response: None,
        });
    }
}

// ---- Apply on the apply pool ----

/// Writes a command's puts, deletes and range deletes (clipped to the region) into the
/// round's batch; a key outside the region or an unknown column family fails the command.
pub(crate) fn exec_writes(
    wb: &mut KvWriteBatch,
    region: &Region,
    reqs: &[Request],
) -> Result<Vec<Response>> {
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

#[cfg(test)]
mod tests {
    use proto::raft_cmdpb::RaftRequestHeader;
    use std::sync::{Arc, Mutex};

    use proto::errorpb;
    use proto::raft_cmdpb::{
        CmdType, DeleteRangeRequest, DeleteRequest, PutRequest, PutResponse, RaftResponseHeader,
        Request, Response,
    };

    use super::*;
    use crate::stats::Flow;

    fn put_response(n: usize) -> Vec<Response> {
        (0..n)
            .map(|_| Response {
                cmd_type: CmdType::Put as i32,
                put: Some(PutResponse {}),
                ..Default::default()
            })
            .collect()
    }

    fn recorder() -> (Callback, Arc<Mutex<Option<RaftCmdResponse>>>) {
        let slot = Arc::new(Mutex::new(None));
        let s = slot.clone();
        (
            Callback::new(move |r: CmdResponse| *s.lock().unwrap() = Some(r.response)),
            slot,
        )
    }

    #[test]
    fn each_caller_gets_its_own_responses() {
        let (a, got_a) = recorder();
        let (b, got_b) = recorder();
        split_response(
            RaftCmdResponse {
                responses: put_response(3),
                ..Default::default()
            },
            vec![(a, 1), (b, 2)],
        );
        assert_eq!(got_a.lock().unwrap().as_ref().unwrap().responses.len(), 1);
        assert_eq!(got_b.lock().unwrap().as_ref().unwrap().responses.len(), 2);
    }

    #[test]
    fn an_error_reaches_every_caller() {
        let (a, got_a) = recorder();
        let (b, got_b) = recorder();
        let header = RaftResponseHeader {
            error: Some(errorpb::Error {
                message: "stale".into(),
                stale_command: Some(errorpb::StaleCommand {}),
                ..Default::default()
            }),
            current_term: 7,
        };
        split_response(
            RaftCmdResponse {
                header: Some(header.clone()),
                ..Default::default()
            },
            vec![(a, 2), (b, 1)],
        );
        for got in [got_a, got_b] {
            let r = got.lock().unwrap().take().unwrap();
            assert_eq!(r.header, Some(header.clone()));
            assert!(r.responses.is_empty());
        }
    }

    #[test]
    fn only_plain_writes_are_batched() {
        let header = Some(RaftRequestHeader::default());
        let put = Request {
            cmd_type: CmdType::Put as i32,
            ..Default::default()
        };
        let get = Request {
            cmd_type: CmdType::Get as i32,
            ..Default::default()
        };
        let req = |requests: Vec<Request>| RaftCmdRequest {
            header,
            requests,
            admin_request: None,
        };
        assert!(is_batchable(&req(vec![put.clone(), put.clone()])));
        assert!(!is_batchable(&req(vec![put.clone(), get])));
        assert!(!is_batchable(&req(vec![])));
        let mut quorum = req(vec![put]);
        quorum.header.as_mut().unwrap().read_quorum = true;
        assert!(!is_batchable(&quorum));
    }

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
