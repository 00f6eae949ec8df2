//! The reads a peer has waiting on ReadIndex rounds, in the order they were sent: a peer
//! field (`Peer::pending_reads`), driven by `read_index`.

use std::collections::VecDeque;
use std::time::Instant;

use proto::raft_cmdpb::RaftCmdRequest;

use crate::msg::Callback;

/// Reads waiting for one ReadIndex round.
pub struct ReadIndexRequest {
    pub id: u64,
    pub cmds: Vec<(RaftCmdRequest, Callback)>,
    pub propose_time: Instant,
    /// Set once raft answered.
    pub read_index: Option<u64>,
    /// Handed to raft. A leader that has not committed an entry of its term yet would drop
    /// the request, so it waits here until it can be sent.
    pub sent: bool,
}

/// ReadIndex requests in the order they were sent.
#[derive(Default)]
pub struct ReadIndexQueue {
    pub(crate) reqs: VecDeque<ReadIndexRequest>,
    next_id: u64,
}

impl ReadIndexQueue {
    /// Drops the spare capacity (a sleeping region keeps none).
    pub fn shrink_to_fit(&mut self) {
        self.reqs.shrink_to_fit();
    }

    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    pub(crate) fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Marks request `id` confirmed at `index`; returns its send time (a quorum answered a
    /// message sent then, which also renews the lease).
    pub(crate) fn confirm(&mut self, id: u64, index: u64) -> Option<Instant> {
        let req = self.reqs.iter_mut().find(|r| r.id == id)?;
        req.read_index = Some(index);
        Some(req.propose_time)
    }

    pub(crate) fn pop_ready(&mut self, applied: u64) -> Option<ReadIndexRequest> {
        match self.reqs.front() {
            Some(r) if r.read_index.is_some_and(|i| i <= applied) => self.reqs.pop_front(),
            _ => None,
        }
    }

    pub fn drain(&mut self) -> impl Iterator<Item = ReadIndexRequest> + '_ {
        self.reqs.drain(..)
    }
}
