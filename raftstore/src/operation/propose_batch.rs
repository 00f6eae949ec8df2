//! Many clients' writes to one region in one raft entry.
//!
//! Under load a region's mailbox holds many small write commands at once. Proposing each as
//! its own entry costs an encode, a log record and an apply round per write; packing the
//! consecutive ones a poller round drains into one entry shares all of that. Each command is
//! still checked on its own first, so a bad one is refused alone, and each caller gets the
//! responses of its own requests back.

use prost::Message as _;
use proto::raft_cmdpb::{CmdType, RaftCmdRequest, RaftCmdResponse, RaftRequestHeader, Request};

use crate::context::PollContext;
use crate::errors::err_resp;
use crate::msg::{Callback, CmdResponse, RaftCommand};
use crate::peer::Peer;

/// Write commands waiting to be proposed together.
#[derive(Default)]
pub struct ProposalBatch {
    header: Option<RaftRequestHeader>,
    requests: Vec<Request>,
    /// Each caller and how many of the batch's requests are its own, in order.
    callers: Vec<(Callback, usize)>,
    size: usize,
}

impl ProposalBatch {
    pub fn is_empty(&self) -> bool {
        self.callers.is_empty()
    }

    fn take(&mut self) -> ProposalBatch {
        std::mem::take(self)
    }
}

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
            self.pending_batch.header == request.header && self.pending_batch.size + size <= limit;
        if !self.pending_batch.is_empty() && !joins {
            self.flush_batch(ctx);
        }
        let batch = &mut self.pending_batch;
        if batch.is_empty() {
            batch.header = request.header;
        }
        batch.size += size;
        batch.callers.push((callback, request.requests.len()));
        batch.requests.extend(request.requests);
    }

    /// Proposes the pending batch as one command whose answer is split among its callers.
    pub fn flush_batch(&mut self, ctx: &mut PollContext) {
        if self.pending_batch.is_empty() {
            return;
        }
        let ProposalBatch {
            header,
            requests,
            mut callers,
            ..
        } = self.pending_batch.take();
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use proto::errorpb;
    use proto::raft_cmdpb::{PutResponse, RaftResponseHeader, Response};

    use super::*;

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
}
