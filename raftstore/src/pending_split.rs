//! Raft messages for regions a local split has not created yet.
//!
//! Right after a split, the new region's peer on the old leader's store campaigns at once. A
//! follower store that has not applied the split yet has no peer to take the vote, and its
//! range still belongs to the parent region. Dropping the vote would leave the new region
//! leaderless for a whole election timeout, so such messages wait here until the split
//! creates the peer.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use proto::raft_serverpb::RaftMessage;

/// Messages kept per region; raft sends few before the peer exists.
const MAX_PER_REGION: usize = 16;
/// Regions with waiting messages; beyond this new ones are dropped.
const MAX_REGIONS: usize = 4096;

#[derive(Debug, Default)]
pub struct PendingSplitMessages {
    waiting: HashMap<u64, Vec<(Instant, RaftMessage)>>,
}

impl PendingSplitMessages {
    /// Keeps `msg` for its region; returns false when it had to be dropped.
    pub fn push(&mut self, msg: RaftMessage, now: Instant, max_age: Duration) -> bool {
        self.expire(now, max_age);
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

    fn expire(&mut self, now: Instant, max_age: Duration) {
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
}
