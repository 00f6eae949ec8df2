//! The metadata every peer of a store shares: which region owns which key range, which
//! regions this store leads, and the read delegates (`operation::read::delegate`) that let
//! lease reads bypass the raft pollers.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound::{Excluded, Unbounded};
use std::sync::Arc;

use proto::metapb::Region;

use crate::operation::read::delegate::ReadDelegate;

/// Shared by all peers of a store, behind one lock.
#[derive(Debug, Default)]
pub struct StoreMeta {
    pub store_id: u64,
    /// Encoded end key (data key space) -> region id, for initialized regions.
    region_ranges: BTreeMap<Vec<u8>, u64>,
    regions: HashMap<u64, Region>,
    pub readers: HashMap<u64, Arc<ReadDelegate>>,
    /// Regions whose local peer is the leader.
    leaders: HashSet<u64>,
    /// Store id -> how many of `regions` have a peer on it (this store included), so the
    /// stores to ping each store heartbeat cost the stores, not the regions.
    peer_stores: HashMap<u64, usize>,
    /// Messages for regions a split will create here but has not yet.
    pub pending_split: crate::pending_split::PendingSplitMessages,
}

impl StoreMeta {
    pub fn new(store_id: u64) -> StoreMeta {
        StoreMeta {
            store_id,
            ..Default::default()
        }
    }

    pub fn region(&self, region_id: u64) -> Option<&Region> {
        self.regions.get(&region_id)
    }

    pub fn regions(&self) -> impl Iterator<Item = &Region> {
        self.regions.values()
    }

    pub fn region_count(&self) -> usize {
        self.regions.len()
    }

    /// Records whether this store's peer of `region_id` leads it.
    pub fn set_leader(&mut self, region_id: u64, is_leader: bool) {
        if is_leader {
            self.leaders.insert(region_id);
        } else {
            self.leaders.remove(&region_id);
        }
        self.publish_counts();
    }

    /// Mirrors the region and leader counts into `shoal_raftstore_regions` and
    /// `shoal_raftstore_leaders` (one store per process in production; in-process test
    /// clusters share the gauges, so there they show whichever store changed last).
    fn publish_counts(&self) {
        crate::metrics::REGIONS.set(self.regions.len() as i64);
        crate::metrics::LEADERS.set(self.leaders.len() as i64);
    }

    /// How many regions this store leads.
    pub fn leader_count(&self) -> usize {
        self.leaders.len()
    }

    /// Ids of the regions this store leads.
    pub fn leader_region_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.leaders.iter().copied()
    }

    /// The stores holding a peer of any local region, this one included.
    pub fn peer_store_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.peer_stores.keys().copied()
    }

    /// Records a region and its range, replacing an older version of it.
    pub fn set_region(&mut self, region: Region) {
        if let Some(old) = self.regions.get(&region.id) {
            let old_end = keys::enc_end_key(&old.end_key);
            if self.region_ranges.get(&old_end) == Some(&region.id) {
                self.region_ranges.remove(&old_end);
            }
            uncount_peer_stores(&mut self.peer_stores, old);
        }
        for peer in &region.peers {
            *self.peer_stores.entry(peer.store_id).or_insert(0) += 1;
        }
        self.region_ranges
            .insert(keys::enc_end_key(&region.end_key), region.id);
        if let Some(reader) = self.readers.get(&region.id) {
            reader.set_region(region.clone());
        }
        self.regions.insert(region.id, region);
        self.publish_counts();
    }

    pub fn remove_region(&mut self, region_id: u64) -> Option<Region> {
        self.leaders.remove(&region_id);
        let region = self.regions.remove(&region_id);
        self.publish_counts();
        let region = region?;
        uncount_peer_stores(&mut self.peer_stores, &region);
        let end = keys::enc_end_key(&region.end_key);
        if self.region_ranges.get(&end) == Some(&region_id) {
            self.region_ranges.remove(&end);
        }
        self.readers.remove(&region_id);
        Some(region)
    }

    /// The region whose range holds the user key `key`.
    pub fn search_region(&self, key: &[u8]) -> Option<&Region> {
        let data_key = keys::data_key(key);
        let (_, id) = self
            .region_ranges
            .range((Excluded(data_key.clone()), Unbounded))
            .next()?;
        let region = self.regions.get(id)?;
        (keys::enc_start_key(&region.start_key) <= data_key).then_some(region)
    }

    /// Ids of local regions overlapping the user key range `[start, end)` (empty end = +inf).
    pub fn overlapping_regions(&self, start: &[u8], end: &[u8]) -> Vec<u64> {
        let enc_start = keys::enc_start_key(start);
        let enc_end = keys::enc_end_key(end);
        let mut ids = Vec::new();
        for (_, id) in self.region_ranges.range((Excluded(enc_start), Unbounded)) {
            let Some(region) = self.regions.get(id) else {
                continue;
            };
            if keys::enc_start_key(&region.start_key) >= enc_end {
                break;
            }
            ids.push(*id);
        }
        ids
    }
}

/// Takes `region`'s peers out of the per-store counts, dropping stores no region uses.
fn uncount_peer_stores(counts: &mut HashMap<u64, usize>, region: &Region) {
    for peer in &region.peers {
        if let Some(n) = counts.get_mut(&peer.store_id) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&peer.store_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(id: u64, start: &[u8], end: &[u8]) -> Region {
        Region {
            id,
            start_key: start.to_vec(),
            end_key: end.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn search_and_overlap() {
        let mut meta = StoreMeta::new(1);
        meta.set_region(region(1, b"", b"b"));
        meta.set_region(region(2, b"b", b"d"));
        meta.set_region(region(3, b"d", b""));
        assert_eq!(meta.search_region(b"a").unwrap().id, 1);
        assert_eq!(meta.search_region(b"b").unwrap().id, 2);
        assert_eq!(meta.search_region(b"c").unwrap().id, 2);
        assert_eq!(meta.search_region(b"zzz").unwrap().id, 3);
        assert_eq!(meta.overlapping_regions(b"a", b"c"), vec![1, 2]);
        assert_eq!(meta.overlapping_regions(b"d", b""), vec![3]);
        assert!(meta.overlapping_regions(b"b", b"b\0").contains(&2));
        meta.remove_region(2);
        assert!(meta.search_region(b"c").is_none());
    }

    #[test]
    fn shrinking_a_region_moves_its_range() {
        let mut meta = StoreMeta::new(1);
        meta.set_region(region(1, b"", b""));
        meta.set_region(region(1, b"", b"m"));
        meta.set_region(region(2, b"m", b""));
        assert_eq!(meta.search_region(b"a").unwrap().id, 1);
        assert_eq!(meta.search_region(b"x").unwrap().id, 2);
    }

    #[test]
    fn leaders_are_counted_and_forgotten_with_their_region() {
        let mut meta = StoreMeta::new(1);
        meta.set_region(region(1, b"", b"m"));
        meta.set_region(region(2, b"m", b""));
        meta.set_leader(1, true);
        meta.set_leader(2, true);
        meta.set_leader(2, true);
        assert_eq!(meta.leader_count(), 2);
        meta.set_leader(2, false);
        assert_eq!(meta.leader_region_ids().collect::<Vec<_>>(), vec![1]);
        meta.remove_region(1);
        assert_eq!(meta.leader_count(), 0);
    }

    #[test]
    fn peer_stores_follow_membership_changes_and_removals() {
        let with_stores = |id: u64, stores: &[u64]| Region {
            id,
            peers: stores
                .iter()
                .map(|&store_id| proto::metapb::Peer {
                    id: id * 10 + store_id,
                    store_id,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let stores = |meta: &StoreMeta| {
            let mut ids: Vec<u64> = meta.peer_store_ids().collect();
            ids.sort();
            ids
        };
        let mut meta = StoreMeta::new(1);
        meta.set_region(with_stores(1, &[1, 2, 3]));
        meta.set_region(with_stores(2, &[1, 2, 4]));
        assert_eq!(stores(&meta), vec![1, 2, 3, 4]);
        // Region 1 moves its peer from store 3 to store 5: store 3 has no region left.
        meta.set_region(with_stores(1, &[1, 2, 5]));
        assert_eq!(stores(&meta), vec![1, 2, 4, 5]);
        meta.remove_region(2);
        assert_eq!(stores(&meta), vec![1, 2, 5]);
        meta.remove_region(1);
        assert!(stores(&meta).is_empty());
    }
}
