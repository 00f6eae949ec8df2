//! The leader lease: while valid, the leader answers reads without a raft round trip.
//!
//! `Lease` is the peer's own view: renewed from the send time of a message a quorum
//! acknowledged, bounded by `raft_store_max_leader_lease` (shorter than an election timeout,
//! so no other leader can exist inside it), suspended during a leader transfer, and given up
//! for the rest of a term in which this leader sent `MsgTimeoutNow` (see `forfeit`). The peer
//! mirrors it into a `RemoteLease` inside the region's read delegate, which any thread can
//! check without locks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

// ---- The peer's lease ----

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
    /// A term in which this leader sent `MsgTimeoutNow` (0: none): no lease in that term.
    forfeited_term: u64,
}

impl Lease {
    pub fn new(max_lease: Duration) -> Lease {
        Lease {
            max_lease,
            bound: None,
            term: 0,
            suspended: false,
            renew_from: None,
            forfeited_term: 0,
        }
    }

    /// Extends the lease to `send_ts + max_lease`: a quorum acknowledged something we sent at
    /// `send_ts`, so no other leader can be elected before the bound.
    /// Does nothing while suspended, or for `send_ts` before the end of the last suspension.
    pub fn renew(&mut self, send_ts: Instant, term: u64, remote: &RemoteLease) {
        if self.suspended
            || term == self.forfeited_term
            || self.renew_from.is_some_and(|from| send_ts < from)
        {
            return;
        }
        let bound = send_ts + self.max_lease;
        if self.term != term {
            self.term = term;
            self.bound = None;
        }
        if self.bound.is_none_or(|b| b < bound) {
            self.bound = Some(bound);
            remote.renew(bound, term);
        }
    }

    /// Ends the lease (leadership is lost); a later leadership renews it from scratch.
    pub fn expire(&mut self, remote: &RemoteLease) {
        self.bound = None;
        self.suspended = false;
        self.renew_from = None;
        remote.expire();
    }

    /// Ends the lease and keeps it from being renewed until `resume` (a leader transfer
    /// started).
    pub fn suspend(&mut self, remote: &RemoteLease) {
        self.bound = None;
        self.suspended = true;
        remote.expire();
    }

    /// The transfer is over without a leader change: acknowledgements of what is sent from
    /// `now` on renew the lease again.
    pub fn resume(&mut self, now: Instant) {
        self.suspended = false;
        self.renew_from = Some(now);
    }

    /// This leader sent `MsgTimeoutNow` in `term`: its target campaigns whenever the message
    /// arrives, however late (a network may hold it for seconds), and the other voters grant
    /// a transfer campaign even while they hear from this leader (raft-rs skips its
    /// check-quorum lease check for it). So no acknowledgement received in `term` proves that
    /// no other leader exists: the lease ends and stays off for the rest of the term, and
    /// reads go through ReadIndex, which a deposed leader cannot complete.
    pub fn forfeit(&mut self, term: u64, remote: &RemoteLease) {
        self.forfeited_term = term;
        self.bound = None;
        remote.expire();
    }

    /// Whether a leader transfer keeps the lease from being renewed.
    pub fn is_suspended(&self) -> bool {
        self.suspended
    }

    pub fn is_valid(&self, term: u64, now: Instant) -> bool {
        self.term == term && term != self.forfeited_term && self.bound.is_some_and(|b| now < b)
    }
}

// ---- The lock-free mirror ----

/// Monotonic nanoseconds since the process's first call; shared by all lease holders.
pub fn monotonic_nanos(at: Instant) -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(|| Instant::now() - Duration::from_secs(1));
    at.saturating_duration_since(origin).as_nanos() as u64
}

/// A leader lease readable without locks from any thread.
#[derive(Debug, Default)]
pub struct RemoteLease {
    expire_nanos: AtomicU64,
    term: AtomicU64,
}

impl RemoteLease {
    pub fn renew(&self, bound: Instant, term: u64) {
        self.term.store(term, Ordering::Release);
        self.expire_nanos
            .store(monotonic_nanos(bound), Ordering::Release);
    }

    pub fn expire(&self) {
        self.expire_nanos.store(0, Ordering::Release);
    }

    /// True while `now` is inside a lease granted in `term`.
    pub fn is_valid(&self, term: u64, now: Instant) -> bool {
        self.term.load(Ordering::Acquire) == term
            && monotonic_nanos(now) < self.expire_nanos.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn a_suspended_lease_is_not_renewed_until_resumed_and_then_only_from_later_sends() {
        let remote = RemoteLease::default();
        let mut lease = Lease::new(Duration::from_secs(9));
        let t0 = Instant::now();
        lease.renew(t0, 5, &remote);
        assert!(lease.is_valid(5, t0) && remote.is_valid(5, t0));

        lease.suspend(&remote);
        assert!(!lease.is_valid(5, t0) && !remote.is_valid(5, t0));
        lease.renew(t0 + Duration::from_millis(1), 5, &remote);
        assert!(!lease.is_valid(5, t0) && !remote.is_valid(5, t0));

        let resumed = t0 + Duration::from_millis(10);
        lease.resume(resumed);
        assert!(!lease.is_suspended());
        // Sent during the transfer: does not count.
        lease.renew(t0 + Duration::from_millis(5), 5, &remote);
        assert!(!lease.is_valid(5, resumed));
        lease.renew(resumed, 5, &remote);
        assert!(lease.is_valid(5, resumed) && remote.is_valid(5, resumed));
    }

    #[test]
    fn stepping_down_clears_a_suspension() {
        let remote = RemoteLease::default();
        let mut lease = Lease::new(Duration::from_secs(9));
        lease.suspend(&remote);
        lease.expire(&remote);
        assert!(!lease.is_suspended());
        let now = Instant::now();
        lease.renew(now, 7, &remote);
        assert!(lease.is_valid(7, now));
    }

    #[test]
    fn a_forfeited_term_gets_no_lease_and_the_next_term_does() {
        let remote = RemoteLease::default();
        let mut lease = Lease::new(Duration::from_secs(9));
        let t0 = Instant::now();
        lease.renew(t0, 5, &remote);
        lease.forfeit(5, &remote);
        assert!(!lease.is_valid(5, t0) && !remote.is_valid(5, t0));
        lease.suspend(&remote);
        lease.resume(t0);
        lease.renew(t0 + Duration::from_millis(1), 5, &remote);
        assert!(!lease.is_valid(5, t0) && !remote.is_valid(5, t0));
        lease.renew(t0, 6, &remote);
        assert!(lease.is_valid(6, t0) && remote.is_valid(6, t0));
    }

    #[test]
    fn lease_validity_follows_term_and_time() {
        let lease = RemoteLease::default();
        let now = Instant::now();
        assert!(!lease.is_valid(1, now));
        lease.renew(now + Duration::from_secs(5), 1);
        assert!(lease.is_valid(1, now));
        assert!(!lease.is_valid(2, now));
        assert!(!lease.is_valid(1, now + Duration::from_secs(6)));
        lease.expire();
        assert!(!lease.is_valid(1, now));
    }
}
