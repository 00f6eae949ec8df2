//! Proposals waiting for their entry to commit, matched by (term, index).

use std::collections::VecDeque;
use std::time::Instant;

use proto::raft_cmdpb::{RaftRequestHeader, Request};

use crate::msg::Callback;

/// One proposed entry and who waits for it.
#[derive(Debug)]
pub struct Proposal {
    pub index: u64,
    pub term: u64,
    pub callback: Callback,
    pub propose_time: Instant,
}

/// What happened to the proposals in front of a committed entry.
pub enum Matched {
    /// The entry is this proposal.
    Found(Proposal),
    /// No proposal of ours was made at this index.
    NotFound,
}

/// Proposals in (term, index) order.
#[derive(Default, Debug)]
pub struct ProposalQueue {
    queue: VecDeque<Proposal>,
}

impl ProposalQueue {
    /// Drops the spare capacity (a sleeping region keeps none).
    pub fn shrink_to_fit(&mut self) {
        self.queue.shrink_to_fit();
    }

    pub fn push(&mut self, p: Proposal) {
        if let Some(last) = self.queue.back() {
            debug_assert!(
                (p.term, p.index) > (last.term, last.index),
                "proposals must be ordered"
            );
        }
        self.queue.push_back(p);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Finds the proposal for a committed entry. Proposals before it that can never commit
    /// (an older term, overwritten by a new leader) are handed to `stale`.
    pub fn find(&mut self, term: u64, index: u64, mut stale: impl FnMut(Proposal)) -> Matched {
        while let Some(front) = self.queue.front() {
            // Log terms never decrease along the log, so a proposal of an older term can no
            // longer commit once an entry of `term` has; same-term proposals commit in order.
            let keep = front.term > term || (front.term == term && front.index > index);
            if keep {
                break;
            }
            let p = self.queue.pop_front().expect("front exists");
            if p.term == term && p.index == index {
                return Matched::Found(p);
            }
            stale(p);
        }
        Matched::NotFound
    }

    /// Drains every proposal (leadership lost, peer destroyed).
    pub fn drain(&mut self) -> impl Iterator<Item = Proposal> + '_ {
        self.queue.drain(..)
    }
}

/// Write commands of one peer waiting to be proposed together.
///
/// A poller keeps one (`PollContext::pending_batch`) rather than every peer its own: a batch
/// only lives while its peer's messages are handled (`PeerFsm::handle_messages` flushes it
/// before it returns), and an idle peer should not carry its space.
#[derive(Default)]
pub struct ProposalBatch {
    pub(crate) header: Option<RaftRequestHeader>,
    pub(crate) requests: Vec<Request>,
    /// Each caller and how many of the batch's requests are its own, in order.
    pub(crate) callers: Vec<(Callback, usize)>,
    pub(crate) size: usize,
}

impl ProposalBatch {
    pub fn is_empty(&self) -> bool {
        self.callers.is_empty()
    }

    pub(crate) fn take(&mut self) -> ProposalBatch {
        std::mem::take(self)
    }
}

/// A new poller's context starts with an empty batch: a clone of the context template never
/// copies commands (the template's batch is empty anyway).
impl Clone for ProposalBatch {
    fn clone(&self) -> Self {
        ProposalBatch::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(term: u64, index: u64) -> Proposal {
        Proposal {
            index,
            term,
            callback: Callback::none(),
            propose_time: Instant::now(),
        }
    }

    #[test]
    fn matches_in_order_and_reports_overwritten() {
        let mut q = ProposalQueue::default();
        q.push(p(2, 10));
        q.push(p(2, 11));
        q.push(p(2, 12));
        let mut stale = vec![];
        assert!(
            matches!(q.find(2, 10, |s| stale.push(s.index)), Matched::Found(x) if x.index == 10)
        );
        // A new leader (term 3) committed index 11: proposals of term 2 can never commit now,
        // whatever their index.
        assert!(matches!(
            q.find(3, 11, |s| stale.push(s.index)),
            Matched::NotFound
        ));
        assert_eq!(stale, vec![11, 12]);
        assert!(q.is_empty());
    }

    #[test]
    fn future_proposals_stay_queued() {
        let mut q = ProposalQueue::default();
        q.push(p(2, 10));
        assert!(matches!(
            q.find(2, 9, |_| panic!("not stale")),
            Matched::NotFound
        ));
        assert_eq!(q.len(), 1);
    }
}
