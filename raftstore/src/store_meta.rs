//! The metadata every peer of a store shares: which region owns which key range, and the read
//! delegates that let lease reads bypass the raft pollers.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound::{Excluded, Unbounded};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use proto::metapb::Region;

use crate::split_policy::LoadStats;
use crate::stats::{Flow, FlowCounter};

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

/// What a lease read needs to know about a region's local peer.
#[derive(Debug)]
pub struct ReadDelegate {
    pub region_id: u64,
    pub peer_id: u64,
    region: RwLock<Arc<Region>>,
    term: AtomicU64,
    applied_term: AtomicU64,
    pub lease: RemoteLease,
    /// Whether the local peer's raft clock is stopped (for observability).
    hibernating: AtomicBool,
    /// Recent accesses, kept only when the split policy splits by load.
    load: Option<parking_lot::Mutex<LoadStats>>,
    /// Bytes and keys read since the leader's last PD report.
    read_flow: FlowCounter,
}

impl ReadDelegate {
    pub fn new(region: Region, peer_id: u64, load: Option<LoadStats>) -> ReadDelegate {
        ReadDelegate {
            region_id: region.id,
            peer_id,
            region: RwLock::new(Arc::new(region)),
            term: AtomicU64::new(0),
            applied_term: AtomicU64::new(0),
            lease: RemoteLease::default(),
            hibernating: AtomicBool::new(false),
            load: load.map(parking_lot::Mutex::new),
            read_flow: FlowCounter::default(),
        }
    }

    pub fn region(&self) -> Arc<Region> {
        self.region.read().clone()
    }

    pub fn set_region(&self, region: Region) {
        *self.region.write() = Arc::new(region);
    }

    pub fn term(&self) -> u64 {
        self.term.load(Ordering::Acquire)
    }

    pub fn set_term(&self, term: u64) {
        self.term.store(term, Ordering::Release);
    }

    pub fn applied_term(&self) -> u64 {
        self.applied_term.load(Ordering::Acquire)
    }

    pub fn set_applied_term(&self, term: u64) {
        self.applied_term.store(term, Ordering::Release);
    }

    /// Records a request on `key` for load-based splitting (a no-op unless enabled).
    pub fn record_access(&self, key: &[u8]) {
        if let Some(load) = &self.load {
            load.lock().record(key, Instant::now());
        }
    }

    /// Requests per second and a sorted key sample of the recent load.
    pub fn load_snapshot(&self) -> (f64, Vec<Vec<u8>>) {
        match &self.load {
            Some(load) => {
                let mut l = load.lock();
                (l.qps(Instant::now()), l.sorted_keys())
            }
            None => (0.0, Vec::new()),
        }
    }

    /// Counts a served read, on whichever thread served it.
    pub fn record_read(&self, flow: Flow) {
        self.read_flow.add(flow.bytes, flow.keys);
    }

    /// Reads served since the last call.
    pub fn take_read_flow(&self) -> Flow {
        self.read_flow.take()
    }

    pub fn is_hibernating(&self) -> bool {
        self.hibernating.load(Ordering::Acquire)
    }

    pub fn set_hibernating(&self, v: bool) {
        self.hibernating.store(v, Ordering::Release);
    }

    /// A local read is safe only for a leader holding a lease in its current term that has
    /// applied an entry of that term (so it has seen every write committed before it).
    pub fn can_read_locally(&self, now: Instant) -> bool {
        let term = self.term();
        term != 0 && self.applied_term() == term && self.lease.is_valid(term, now)
    }
}

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
    }

    /// How many regions this store leads.
    pub fn leader_count(&self) -> usize {
        self.leaders.len()
    }

    /// Ids of the regions this store leads.
    pub fn leader_region_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.leaders.iter().copied()
    }

    /// Records a region and its range, replacing an older version of it.
    pub fn set_region(&mut self, region: Region) {
        if let Some(old) = self.regions.get(&region.id) {
            let old_end = keys::enc_end_key(&old.end_key);
            if self.region_ranges.get(&old_end) == Some(&region.id) {
                self.region_ranges.remove(&old_end);
            }
        }
        self.region_ranges
            .insert(keys::enc_end_key(&region.end_key), region.id);
        if let Some(reader) = self.readers.get(&region.id) {
            reader.set_region(region.clone());
        }
        self.regions.insert(region.id, region);
    }

    pub fn remove_region(&mut self, region_id: u64) -> Option<Region> {
        self.leaders.remove(&region_id);
        let region = self.regions.remove(&region_id)?;
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
