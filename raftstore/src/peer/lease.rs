//! The leader lease: while valid, the leader can serve reads without a raft round trip.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::store_meta::ReadDelegate;

/// The peer-side lease; mirrored into the read delegate for lock-free local reads.
pub struct Lease {
    max_lease: Duration,
    bound: Option<Instant>,
    term: u64,
    /// A leader transfer is under way: its target may win at any moment, so nothing renews
    /// the lease.
    suspended: bool,
    /// After a transfer that did not happen, only acknowledgements of what was sent from this
    /// time on renew the lease.
    renew_from: Option<Instant>,
}

impl Lease {
    pub fn new(max_lease: Duration) -> Lease {
        Lease {
            max_lease,
            bound: None,
            term: 0,
            suspended: false,
            renew_from: None,
        }
    }

    /// Extends the lease to `send_ts + max_lease`: a quorum acknowledged something we sent at
    /// `send_ts`, so no other leader can be elected before the bound.
    /// Does nothing while suspended, or for `send_ts` before the end of the last suspension.
    pub fn renew(&mut self, send_ts: Instant, term: u64, delegate: &Arc<ReadDelegate>) {
        if self.suspended || self.renew_from.is_some_and(|from| send_ts < from) {
            return;
        }
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

    /// Ends the lease (leadership is lost); a later leadership renews it from scratch.
    pub fn expire(&mut self, delegate: &Arc<ReadDelegate>) {
        self.bound = None;
        self.suspended = false;
        self.renew_from = None;
        delegate.lease.expire();
    }

    /// Ends the lease and keeps it from being renewed until `resume` (a leader transfer
    /// started).
    pub fn suspend(&mut self, delegate: &Arc<ReadDelegate>) {
        self.bound = None;
        self.suspended = true;
        delegate.lease.expire();
    }

    /// The transfer is over without a leader change: acknowledgements of what is sent from
    /// `now` on renew the lease again.
    pub fn resume(&mut self, now: Instant) {
        self.suspended = false;
        self.renew_from = Some(now);
    }

    /// Whether a leader transfer keeps the lease from being renewed.
    pub fn is_suspended(&self) -> bool {
        self.suspended
    }

    pub fn is_valid(&self, term: u64, now: Instant) -> bool {
        self.term == term && self.bound.is_some_and(|b| now < b)
    }
}

#[cfg(test)]
mod tests {
    use proto::metapb::Region;

    use super::*;

    #[test]
    fn a_suspended_lease_is_not_renewed_until_resumed_and_then_only_from_later_sends() {
        let delegate = Arc::new(ReadDelegate::new(Region::default(), 1, None));
        let mut lease = Lease::new(Duration::from_secs(9));
        let t0 = Instant::now();
        lease.renew(t0, 5, &delegate);
        assert!(lease.is_valid(5, t0) && delegate.lease.is_valid(5, t0));

        lease.suspend(&delegate);
        assert!(!lease.is_valid(5, t0) && !delegate.lease.is_valid(5, t0));
        lease.renew(t0 + Duration::from_millis(1), 5, &delegate);
        assert!(!lease.is_valid(5, t0) && !delegate.lease.is_valid(5, t0));

        let resumed = t0 + Duration::from_millis(10);
        lease.resume(resumed);
        assert!(!lease.is_suspended());
        // Sent during the transfer: does not count.
        lease.renew(t0 + Duration::from_millis(5), 5, &delegate);
        assert!(!lease.is_valid(5, resumed));
        lease.renew(resumed, 5, &delegate);
        assert!(lease.is_valid(5, resumed) && delegate.lease.is_valid(5, resumed));
    }

    #[test]
    fn stepping_down_clears_a_suspension() {
        let delegate = Arc::new(ReadDelegate::new(Region::default(), 1, None));
        let mut lease = Lease::new(Duration::from_secs(9));
        lease.suspend(&delegate);
        lease.expire(&delegate);
        assert!(!lease.is_suspended());
        let now = Instant::now();
        lease.renew(now, 7, &delegate);
        assert!(lease.is_valid(7, now));
    }
}
