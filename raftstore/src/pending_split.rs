//! Raft messages for regions a local split has not created yet.
//!
//! Right after a split, the new region's peer on the old leader's store campaigns at once. A
//! follower store that has not applied the split yet has no peer to take the vote, and its
//! range still belongs to the parent region. Dropping the vote would leave the new region
//! leaderless for a whole election timeout, so such messages wait here until the split
//! creates the peer.
//!
//! A store that lags behind a pre-split of many regions receives such messages by the tens of
//! thousands a second, so keeping them must cost O(1) per message: old messages are swept out
//! at most once per [`SWEEP_SHARE`]th of their lifetime, never on every push (a sweep on every
//! push cost one pass over up to 65,536 waiting messages each time, which kept a lagging
//! store's only raft poller busy sweeping while the messages it never got to piled up in its
//! mailbox by the gigabyte).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use proto::raft_serverpb::RaftMessage;

/// Messages kept per region; raft sends few before the peer exists.
const MAX_PER_REGION: usize = 16;
/// Regions with waiting messages; beyond this new ones are dropped.
const MAX_REGIONS: usize = 4096;
/// Waiting messages are swept out at most once per this share of their lifetime, so a message
/// is dropped at most `max_age / SWEEP_SHARE` after it expired; `take` never hands out an
/// expired one.
const SWEEP_SHARE: u32 = 4;

#[derive(Debug, Default)]
pub struct PendingSplitMessages {
    waiting: HashMap<u64, Vec<(Instant, RaftMessage)>>,
    /// When the next sweep of expired messages is due; `None` before the first push.
    next_sweep: Option<Instant>,
    /// Messages the sweeps have looked at, ever (what keeping messages costs).
    swept: u64,
}

impl PendingSplitMessages {
    /// Keeps `msg` for its region; returns false when it had to be dropped.
    pub fn push(&mut self, msg: RaftMessage, now: Instant, max_age: Duration) -> bool {
        self.maybe_expire(now, max_age);
        if !self.waiting.contains_key(&msg.region_id) && self.waiting.len() >= MAX_REGIONS {
            return false;
        }
        let queue = self.waiting.entry(msg.region_id).or_default();
        if queue.len() >= MAX_PER_REGION {
            queue.remove(0);
        }
        queue.push((now, msg));
        true
    }

    /// The messages waiting for `region_id`, oldest first, no older than `max_age`.
    pub fn take(&mut self, region_id: u64, now: Instant, max_age: Duration) -> Vec<RaftMessage> {
        self.waiting
            .remove(&region_id)
            .unwrap_or_default()
            .into_iter()
            .filter(|(at, _)| now.saturating_duration_since(*at) <= max_age)
            .map(|(_, m)| m)
            .collect()
    }

    pub fn len(&self) -> usize {
        self.waiting.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Messages the sweeps of expired messages have looked at since this was created.
    pub fn swept(&self) -> u64 {
        self.swept
    }

    /// Sweeps out expired messages if a sweep is due.
    fn maybe_expire(&mut self, now: Instant, max_age: Duration) {
        if self.next_sweep.is_some_and(|due| now < due) {
            return;
        }
        self.next_sweep = Some(now + max_age / SWEEP_SHARE);
        self.swept += self.waiting.values().map(|q| q.len() as u64).sum::<u64>();
        self.waiting.retain(|_, queue| {
            queue.retain(|(at, _)| now.saturating_duration_since(*at) <= max_age);
            !queue.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(region_id: u64, n: u64) -> RaftMessage {
        RaftMessage {
            region_id,
            start_key: n.to_be_bytes().to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn messages_come_back_in_order_for_their_region_only() {
        let mut p = PendingSplitMessages::default();
        let now = Instant::now();
        let age = Duration::from_secs(10);
        assert!(p.push(msg(7, 1), now, age));
        assert!(p.push(msg(8, 2), now, age));
        assert!(p.push(msg(7, 3), now, age));
        let got: Vec<_> = p
            .take(7, now, age)
            .into_iter()
            .map(|m| m.start_key)
            .collect();
        assert_eq!(
            got,
            vec![1u64.to_be_bytes().to_vec(), 3u64.to_be_bytes().to_vec()]
        );
        assert!(p.take(7, now, age).is_empty());
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn old_messages_expire_and_queues_stay_bounded() {
        let mut p = PendingSplitMessages::default();
        let start = Instant::now();
        let age = Duration::from_secs(1);
        p.push(msg(1, 0), start, age);
        let later = start + Duration::from_secs(5);
        assert!(p.take(1, later, age).is_empty());
        for i in 0..(MAX_PER_REGION as u64 + 5) {
            p.push(msg(2, i), later, age);
        }
        let kept = p.take(2, later, age);
        assert_eq!(kept.len(), MAX_PER_REGION);
        assert_eq!(kept[0].start_key, 5u64.to_be_bytes().to_vec());
    }

    #[test]
    fn keeping_a_message_does_not_look_at_every_waiting_one() {
        let mut p = PendingSplitMessages::default();
        let start = Instant::now();
        let age = Duration::from_secs(2);
        for region in 0..MAX_REGIONS as u64 {
            assert!(p.push(msg(region, 0), start, age));
        }
        // A lagging store keeps receiving messages for the regions its splits will create.
        let later = start + Duration::from_millis(1);
        for n in 0..1000u64 {
            p.push(msg(n % MAX_REGIONS as u64, n), later, age);
        }
        assert_eq!(p.len(), MAX_REGIONS + 1000);
        // At most one sweep ran (the first push's, over an empty map); a sweep per push
        // would have looked at about 12 million messages.
        assert!(
            p.swept() <= 2 * p.len() as u64,
            "sweeps looked at {} messages to keep {}",
            p.swept(),
            p.len()
        );
    }

    #[test]
    fn expired_regions_make_room_once_a_sweep_is_due() {
        let mut p = PendingSplitMessages::default();
        let start = Instant::now();
        let age = Duration::from_secs(1);
        for region in 0..MAX_REGIONS as u64 {
            assert!(p.push(msg(region, 0), start, age));
        }
        let new_region = MAX_REGIONS as u64;
        assert!(
            !p.push(msg(new_region, 0), start + Duration::from_millis(10), age),
            "every region's messages are still live: no room"
        );
        let expired = start + age + age / SWEEP_SHARE + Duration::from_millis(1);
        assert!(p.push(msg(new_region, 1), expired, age));
        assert_eq!(p.len(), 1);
        assert_eq!(p.take(new_region, expired, age).len(), 1);
    }
}
