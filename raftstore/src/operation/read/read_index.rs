//! ReadIndex: the leader confirms with a quorum that it is still leader, then serves the read
//! once it has applied up to the commit index it saw.

use std::sync::Arc;
use std::time::Instant;

use proto::raft_cmdpb::RaftCmdRequest;

use crate::context::PollContext;
use crate::errors::{err_resp, Error};
use crate::msg::Callback;
use crate::operation::read::queue::ReadIndexRequest;
use crate::peer::Peer;

impl Peer {
    /// Starts a ReadIndex round for a read the lease cannot serve.
    pub fn read_index(&mut self, req: RaftCmdRequest, cb: Callback) {
        let id = self.pending_reads.next_id();
        self.pending_reads.reqs.push_back(ReadIndexRequest {
            id,
            cmds: vec![(req, cb)],
            propose_time: Instant::now(),
            read_index: None,
            sent: false,
        });
        self.send_pending_read_indexes();
    }

    /// Hands waiting ReadIndex requests to raft once this leader has committed in its term.
    /// Must not run between taking a ready and advancing it.
    pub fn send_pending_read_indexes(&mut self) {
        if !self.raft_group.raft.commit_to_current_term() {
            return;
        }
        for req in self.pending_reads.reqs.iter_mut().filter(|r| !r.sent) {
            req.sent = true;
            // The send time is what a quorum confirms, and what the lease may be renewed from.
            req.propose_time = Instant::now();
            self.raft_group.read_index(req.id.to_be_bytes().to_vec());
        }
    }

    /// Raft answered some ReadIndex rounds.
    pub fn on_read_states(&mut self, ctx: &mut PollContext, states: Vec<raft::ReadState>) {
        let term = self.term();
        for rs in states {
            let Ok(id_bytes) = <[u8; 8]>::try_from(rs.request_ctx.as_slice()) else {
                continue;
            };
            let id = u64::from_be_bytes(id_bytes);
            if let Some(sent) = self.pending_reads.confirm(id, rs.index) {
                if self.is_leader() {
                    self.renew_lease(sent, term);
                }
            }
        }
        self.serve_ready_reads(ctx);
    }

    /// Serves confirmed reads whose index has been applied.
    pub fn serve_ready_reads(&mut self, ctx: &mut PollContext) {
        if self.pending_reads.is_empty() {
            return;
        }
        // A new leader must apply an entry of its own term before its state is current.
        if self.storage().applied_term() != self.term() {
            return;
        }
        let applied = self.storage().applied_index();
        let term = self.term();
        let mut snapshot = None;
        let region = Arc::new(self.region().clone());
        while let Some(req) = self.pending_reads.pop_ready(applied) {
            let snap = snapshot.get_or_insert_with(|| ctx.kv.snapshot());
            for (cmd, cb) in req.cmds {
                let resp = super::execute_read(snap, &region, &cmd, term);
                let flow = super::read_flow(&cmd, &resp);
                self.read_delegate.record_read(flow);
                ctx.flow.read.add(flow.bytes, flow.keys);
                cb.invoke(super::with_read_recorder(
                    resp,
                    &self.read_delegate,
                    &ctx.flow,
                ));
            }
        }
    }

    /// Leadership is gone: pending reads can no longer be confirmed here.
    pub fn fail_pending_reads(&mut self) {
        let term = self.term();
        let leader = self.leader();
        let region_id = self.region_id();
        for req in self.pending_reads.drain() {
            for (_, cb) in req.cmds {
                cb.invoke_with(err_resp(Error::NotLeader { region_id, leader }, term));
            }
        }
    }
}
