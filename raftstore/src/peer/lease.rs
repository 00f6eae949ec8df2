//! The leader lease: while valid, the leader can serve reads without a raft round trip.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::store_meta::ReadDelegate;

/// The peer-side lease; mirrored into the read delegate for lock-free local reads.
pub struct Lease {
    max_lease: Duration,
    bound: Option<Instant>,
    term: u64,
}

impl Lease {
    pub fn new(max_lease: Duration) -> Lease {
        Lease {
            max_lease,
            bound: None,
            term: 0,
        }
    }

    /// Extends the lease to `send_ts + max_lease`: a quorum acknowledged something we sent at
    /// `send_ts`, so no other leader can be elected before the bound.
    pub fn renew(&mut self, send_ts: Instant, term: u64, delegate: &Arc<ReadDelegate>) {
        let bound = send_ts + self.max_lease;
        if self.term != term {
            self.term = term;
            self.bound = None;
        }
        if self.bound.is_none_or(|b| b < bound) {
            self.bound = Some(bound);
            delegate.lease.renew(bound, term);
        }
    }

    pub fn expire(&mut self, delegate: &Arc<ReadDelegate>) {
        self.bound = None;
        delegate.lease.expire();
    }

    pub fn is_valid(&self, term: u64, now: Instant) -> bool {
        self.term == term && self.bound.is_some_and(|b| now < b)
    }
}
