//! The regions PD knows, ordered by start key. Keys are memcomparable-encoded; an empty end key
//! means +infinity. A newer region replaces every older region it overlaps, so the tree never
//! holds two regions claiming the same key.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;

use proto::metapb::{self, Peer, PeerRole, RegionEpoch};
use proto::pdpb::{self, PeerStats};

use super::flow_rate::RegionFlow;

/// A peer's role, reading unknown values as Voter.
pub fn role(p: &Peer) -> PeerRole {
    PeerRole::try_from(p.role).unwrap_or(PeerRole::Voter)
}

/// One region with what its leader last reported.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RegionInfo {
    pub meta: metapb::Region,
    pub leader: Option<Peer>,
    pub down_peers: Vec<PeerStats>,
    pub pending_peers: Vec<Peer>,
    pub approximate_size: u64,
    pub approximate_keys: u64,
    pub term: u64,
    pub bytes_written: u64,
    pub keys_written: u64,
    pub bytes_read: u64,
    pub keys_read: u64,
    /// The flow rate measured over this range's reports (kept across reports while the range
    /// stays the same; see `flow_rate`).
    pub flow: RegionFlow,
}

impl RegionInfo {
    pub fn new(meta: metapb::Region, leader: Option<Peer>) -> RegionInfo {
        RegionInfo {
            meta,
            leader,
            ..Default::default()
        }
    }

    pub fn id(&self) -> u64 {
        self.meta.id
    }

    pub fn epoch(&self) -> RegionEpoch {
        self.meta.region_epoch.unwrap_or_default()
    }

    pub fn start_key(&self) -> &[u8] {
        &self.meta.start_key
    }

    pub fn end_key(&self) -> &[u8] {
        &self.meta.end_key
    }

    pub fn contains_key(&self, key: &[u8]) -> bool {
        key >= self.start_key() && (self.end_key().is_empty() || key < self.end_key())
    }

    /// Whether `key` lies strictly inside the range (a possible split point).
    pub fn strictly_contains(&self, key: &[u8]) -> bool {
        key > self.start_key() && (self.end_key().is_empty() || key < self.end_key())
    }

    pub fn peer(&self, peer_id: u64) -> Option<&Peer> {
        self.meta.peers.iter().find(|p| p.id == peer_id)
    }

    pub fn peer_on_store(&self, store_id: u64) -> Option<&Peer> {
        self.meta.peers.iter().find(|p| p.store_id == store_id)
    }

    pub fn voters(&self) -> impl Iterator<Item = &Peer> {
        self.meta
            .peers
            .iter()
            .filter(|p| role(p) == PeerRole::Voter)
    }

    pub fn learners(&self) -> impl Iterator<Item = &Peer> {
        self.meta
            .peers
            .iter()
            .filter(|p| role(p) == PeerRole::Learner)
    }

    /// Whether a membership change is half done (some peer is incoming or demoting).
    pub fn in_joint_state(&self) -> bool {
        self.meta
            .peers
            .iter()
            .any(|p| matches!(role(p), PeerRole::IncomingVoter | PeerRole::DemotingVoter))
    }

    pub fn leader_store_id(&self) -> Option<u64> {
        self.leader.as_ref().map(|l| l.store_id)
    }

    pub fn is_leader(&self, peer_id: u64) -> bool {
        self.leader.as_ref().is_some_and(|l| l.id == peer_id)
    }

    pub fn is_pending(&self, peer_id: u64) -> bool {
        self.pending_peers.iter().any(|p| p.id == peer_id)
    }

    /// How long the leader has not heard from the peer, if it reported it down.
    pub fn down_seconds(&self, peer_id: u64) -> Option<u64> {
        self.down_peers
            .iter()
            .find(|d| d.peer.as_ref().is_some_and(|p| p.id == peer_id))
            .map(|d| d.down_seconds)
    }

    /// The form kept on disk and sent in ScanRegions.
    pub fn to_pb(&self) -> pdpb::Region {
        pdpb::Region {
            region: Some(self.meta.clone()),
            leader: self.leader,
            down_peers: self.down_peers.clone(),
            pending_peers: self.pending_peers.clone(),
        }
    }

    /// Rebuilds a region from its stored form (statistics start empty).
    pub fn from_pb(stored: pdpb::Region) -> Option<RegionInfo> {
        let meta = stored.region?;
        Some(RegionInfo {
            meta,
            leader: stored.leader,
            ..Default::default()
        })
    }
}

/// Whether `a` is an older epoch than `b` (version first, then conf_ver).
pub fn epoch_is_older(a: &RegionEpoch, b: &RegionEpoch) -> bool {
    a.version < b.version || (a.version == b.version && a.conf_ver < b.conf_ver)
}

/// Regions and leaders each store holds, as the region tree says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreLoad {
    pub regions: u64,
    pub leaders: u64,
}

/// Regions by start key and by id, with each store's region and leader counts kept as
/// regions come and go (so schedulers and the HTTP API need not count them every time).
/// How far regions cover a range from its start ([`RegionTree::covered_from`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Coverage {
    /// The whole range is covered.
    Whole,
    /// Covered from the start up to this key (exclusive), where the first hole begins.
    Until(Vec<u8>),
}

#[derive(Default, Debug)]
pub struct RegionTree {
    by_start: BTreeMap<Vec<u8>, u64>,
    regions: HashMap<u64, RegionInfo>,
    loads: HashMap<u64, StoreLoad>,
    /// Regions whose measured leader key rate is above zero: the hot-region scheduler looks
    /// at these only, not at every region.
    flowing: HashSet<u64>,
}

impl RegionTree {
    pub fn new() -> RegionTree {
        RegionTree::default()
    }

    pub fn len(&self) -> usize {
        self.regions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }

    pub fn get(&self, id: u64) -> Option<&RegionInfo> {
        self.regions.get(&id)
    }

    /// For tests that adjust a region's reported state; it must not change peers, the
    /// leader or the flow, which the store loads and the flowing set count.
    #[cfg(test)]
    pub fn get_mut(&mut self, id: u64) -> Option<&mut RegionInfo> {
        self.regions.get_mut(&id)
    }

    /// Regions and leaders per store id.
    pub fn store_loads(&self) -> &HashMap<u64, StoreLoad> {
        &self.loads
    }

    /// Adds (`added`) or takes away a region's peers and leader from the store loads.
    fn account(&mut self, r: &RegionInfo, added: bool) {
        let step = |n: &mut u64| {
            if added {
                *n += 1;
            } else {
                *n = n.saturating_sub(1);
            }
        };
        for p in &r.meta.peers {
            step(&mut self.loads.entry(p.store_id).or_default().regions);
        }
        if let Some(l) = &r.leader {
            step(&mut self.loads.entry(l.store_id).or_default().leaders);
        }
    }

    /// Regions whose measured leader key rate is above zero, in no particular order.
    pub fn with_flow(&self) -> impl Iterator<Item = &RegionInfo> {
        self.flowing.iter().filter_map(|id| self.regions.get(id))
    }

    /// Every region in key order.
    pub fn iter(&self) -> impl Iterator<Item = &RegionInfo> + Clone {
        self.by_start.values().filter_map(|id| self.regions.get(id))
    }

    /// The region containing `key`.
    pub fn find(&self, key: &[u8]) -> Option<&RegionInfo> {
        let (_, id) = self
            .by_start
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(key)))
            .next_back()?;
        let region = self.regions.get(id)?;
        region.contains_key(key).then_some(region)
    }

    /// The regions right before and right after `region` in key order, if they touch it
    /// (the one ending where it starts, the one starting where it ends).
    pub fn neighbours(&self, region: &RegionInfo) -> (Option<&RegionInfo>, Option<&RegionInfo>) {
        let start = region.start_key();
        let prev = (!start.is_empty())
            .then(|| {
                self.by_start
                    .range::<[u8], _>((Bound::Unbounded, Bound::Excluded(start)))
                    .next_back()
            })
            .flatten()
            .and_then(|(_, id)| self.regions.get(id))
            .filter(|r| r.end_key() == start);
        let end = region.end_key();
        let next = (!end.is_empty())
            .then(|| self.by_start.get(end))
            .flatten()
            .and_then(|id| self.regions.get(id));
        (prev, next)
    }

    /// Ids of regions intersecting `[start, end)`, in key order.
    pub fn overlapping(&self, start: &[u8], end: &[u8]) -> Vec<u64> {
        self.overlapping_ids(start, end).collect()
    }

    /// How far the tree's regions cover `[start, end)` without a hole, walking lazily from
    /// `start` and stopping at the first hole: O(log n) plus one step per region covered. An
    /// empty `end` is the end of the key space.
    pub fn covered_from(&self, start: &[u8], end: &[u8]) -> Coverage {
        let mut covered_to = start.to_vec();
        for id in self.overlapping_ids(start, end) {
            let Some(region) = self.regions.get(&id) else {
                break;
            };
            if region.start_key() > covered_to.as_slice() {
                break;
            }
            if region.end_key().is_empty() {
                return Coverage::Whole;
            }
            if region.end_key() > covered_to.as_slice() {
                covered_to = region.end_key().to_vec();
            }
            if !end.is_empty() && covered_to.as_slice() >= end {
                return Coverage::Whole;
            }
        }
        Coverage::Until(covered_to)
    }

    /// [`overlapping`](Self::overlapping) lazily: O(log n) to the first, then one step per
    /// region, so a page of a large tree costs the page. An empty or reversed range (a
    /// non-empty `end` at or before `start`) overlaps no region.
    fn overlapping_ids<'a>(
        &'a self,
        start: &'a [u8],
        end: &'a [u8],
    ) -> impl Iterator<Item = u64> + 'a {
        let range_is_empty = !end.is_empty() && end <= start;
        let containing = self
            .by_start
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(start)))
            .next_back()
            .and_then(|(_, id)| self.regions.get(id))
            .filter(|r| r.end_key().is_empty() || r.end_key() > start)
            .filter(|_| !range_is_empty)
            .map(|r| r.id());
        let after = self
            .by_start
            .range::<[u8], _>((Bound::Excluded(start), Bound::Unbounded))
            .take_while(move |(k, _)| end.is_empty() || k.as_slice() < end)
            .map(|(_, id)| *id);
        containing.into_iter().chain(after)
    }

    /// Why `meta` is older than what the tree holds, if it is: the same region with an older
    /// epoch, or an overlapping region that has split or merged since.
    pub fn staleness(&self, meta: &metapb::Region) -> Option<String> {
        let epoch = meta.region_epoch.unwrap_or_default();
        if let Some(old) = self.regions.get(&meta.id) {
            if epoch_is_older(&epoch, &old.epoch()) {
                return Some(format!(
                    "region {} epoch {:?} is older than the known {:?}",
                    meta.id,
                    epoch,
                    old.epoch()
                ));
            }
        }
        for id in self.overlapping(&meta.start_key, &meta.end_key) {
            if id == meta.id {
                continue;
            }
            let Some(other) = self.regions.get(&id) else {
                continue;
            };
            if other.epoch().version > epoch.version {
                return Some(format!(
                    "region {} version {} overlaps region {} with the newer version {}",
                    meta.id,
                    epoch.version,
                    id,
                    other.epoch().version
                ));
            }
        }
        None
    }

    /// Puts `info` in the tree, replacing its own older entry and every region it overlaps;
    /// returns the overlapped regions it removed.
    pub fn insert(&mut self, info: RegionInfo) -> Vec<RegionInfo> {
        let id = info.id();
        if let Some(old) = self.regions.remove(&id) {
            if self.by_start.get(old.start_key()) == Some(&id) {
                self.by_start.remove(old.start_key());
            }
            self.account(&old, false);
            self.flowing.remove(&id);
        }
        let mut removed = Vec::new();
        for other in self.overlapping(info.start_key(), info.end_key()) {
            if let Some(r) = self.regions.remove(&other) {
                if self.by_start.get(r.start_key()) == Some(&other) {
                    self.by_start.remove(r.start_key());
                }
                self.account(&r, false);
                self.flowing.remove(&other);
                removed.push(r);
            }
        }
        self.by_start.insert(info.start_key().to_vec(), id);
        self.account(&info, true);
        if info.flow.leader_key_rate() > 0 {
            self.flowing.insert(id);
        }
        self.regions.insert(id, info);
        removed
    }

    /// Regions intersecting `[start, end)` in key order, at most `limit` (0 = all).
    pub fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Vec<&RegionInfo> {
        let take = if limit == 0 { usize::MAX } else { limit };
        self.overlapping_ids(start, end)
            .take(take)
            .filter_map(|id| self.regions.get(&id))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(id: u64, start: &[u8], end: &[u8], version: u64, conf_ver: u64) -> RegionInfo {
        RegionInfo::new(
            metapb::Region {
                id,
                start_key: start.to_vec(),
                end_key: end.to_vec(),
                region_epoch: Some(RegionEpoch { conf_ver, version }),
                peers: vec![Peer {
                    id: id * 10,
                    store_id: 1,
                    ..Default::default()
                }],
            },
            None,
        )
    }

    fn ids(tree: &RegionTree) -> Vec<u64> {
        tree.iter().map(|r| r.id()).collect()
    }

    /// Regions 1 `[, b)`, 2 `[b, d)` and 3 `[d, )`.
    fn three_regions() -> RegionTree {
        let mut t = RegionTree::new();
        t.insert(region(1, b"", b"b", 2, 1));
        t.insert(region(2, b"b", b"d", 2, 1));
        t.insert(region(3, b"d", b"", 2, 1));
        t
    }

    #[test]
    fn lookup_by_key_including_the_unbounded_last_region() {
        let t = three_regions();
        assert_eq!(t.find(b"").unwrap().id(), 1);
        assert_eq!(t.find(b"a").unwrap().id(), 1);
        assert_eq!(t.find(b"b").unwrap().id(), 2);
        assert_eq!(t.find(b"c\xff").unwrap().id(), 2);
        assert_eq!(t.find(b"d").unwrap().id(), 3);
        assert_eq!(t.find(b"\xff\xff\xff").unwrap().id(), 3);
        assert_eq!(t.scan(b"a", b"c", 0).len(), 2);
        assert_eq!(t.scan(b"", b"", 2).len(), 2);
        assert_eq!(t.scan(b"d", b"", 0)[0].id(), 3);
    }

    #[test]
    fn an_empty_or_reversed_range_holds_no_region() {
        let t = three_regions();
        assert!(t.scan(b"c", b"c", 0).is_empty());
        assert!(t.scan(b"c", b"a", 0).is_empty());
        assert!(t.scan(b"e", b"d", 0).is_empty());
        assert!(t.overlapping(b"c", b"c").is_empty());
        // Adjacent bounds still hold the region between them.
        assert_eq!(t.scan(b"c", b"c\0", 0)[0].id(), 2);
    }

    #[test]
    fn coverage_stops_at_the_first_hole() {
        let mut t = RegionTree::new();
        // A hole between "d" and "f".
        for (id, start, end) in [(1, "", "b"), (2, "b", "d"), (4, "f", "h"), (5, "h", "")] {
            t.insert(region(id, start.as_bytes(), end.as_bytes(), 1, 1));
        }
        let until = |k: &[u8]| Coverage::Until(k.to_vec());
        assert_eq!(t.covered_from(b"", b""), until(b"d"));
        assert_eq!(t.covered_from(b"a", b"c"), Coverage::Whole);
        assert_eq!(t.covered_from(b"a", b"d"), Coverage::Whole);
        assert_eq!(t.covered_from(b"a", b"e"), until(b"d"));
        // A start inside the hole is not covered at all.
        assert_eq!(t.covered_from(b"e", b"g"), until(b"e"));
        // From the hole's far side to the end of the key space.
        assert_eq!(t.covered_from(b"f", b""), Coverage::Whole);
        t.insert(region(3, b"d", b"f", 1, 1));
        assert_eq!(t.covered_from(b"", b""), Coverage::Whole);
        assert_eq!(RegionTree::new().covered_from(b"a", b""), until(b"a"));
    }

    #[test]
    fn a_gap_answers_nothing() {
        let mut t = RegionTree::new();
        t.insert(region(1, b"", b"b", 1, 1));
        t.insert(region(3, b"d", b"", 1, 1));
        assert!(t.find(b"c").is_none());
        assert!(RegionTree::new().find(b"").is_none());
    }

    #[test]
    fn a_newer_region_replaces_every_region_it_overlaps() {
        let mut t = RegionTree::new();
        t.insert(region(1, b"", b"b", 2, 1));
        t.insert(region(2, b"b", b"d", 2, 1));
        t.insert(region(3, b"d", b"", 2, 1));
        // A merge of 1 and 2 (version grows) replaces both.
        let merged = region(2, b"", b"d", 3, 1);
        assert!(t.staleness(&merged.meta).is_none());
        let removed = t.insert(merged);
        assert_eq!(removed.iter().map(|r| r.id()).collect::<Vec<_>>(), vec![1]);
        assert_eq!(ids(&t), vec![2, 3]);
        assert_eq!(t.find(b"a").unwrap().id(), 2);
        // A region that moved its start key replaces its own old entry.
        t.insert(region(3, b"e", b"", 3, 1));
        assert_eq!(ids(&t), vec![2, 3]);
        assert!(t.find(b"d").is_none());
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn stale_reports_are_recognised() {
        let mut t = RegionTree::new();
        t.insert(region(1, b"", b"m", 3, 4));
        t.insert(region(2, b"m", b"", 3, 1));
        // Same region, older version or older conf_ver.
        assert!(t.staleness(&region(1, b"", b"m", 2, 9).meta).is_some());
        assert!(t.staleness(&region(1, b"", b"m", 3, 3).meta).is_some());
        assert!(t.staleness(&region(1, b"", b"m", 3, 4).meta).is_none());
        assert!(t.staleness(&region(1, b"", b"m", 3, 5).meta).is_none());
        // The parent of a split, reported after its children were learned.
        assert!(t.staleness(&region(1, b"", b"", 2, 4).meta).is_some());
        // An unknown region that overlaps nothing newer is fine.
        assert!(t.staleness(&region(9, b"x", b"", 4, 1).meta).is_none());
    }

    #[test]
    fn region_helpers() {
        let mut r = region(1, b"b", b"d", 1, 1);
        assert!(r.strictly_contains(b"c"));
        assert!(!r.strictly_contains(b"b"));
        assert!(!r.strictly_contains(b"d"));
        r.meta.end_key.clear();
        assert!(r.strictly_contains(b"zzz"));
        r.meta.peers[0].role = PeerRole::IncomingVoter as i32;
        assert!(r.in_joint_state());
        let back = RegionInfo::from_pb(r.to_pb()).unwrap();
        assert_eq!(back.meta, r.meta);
    }

    #[test]
    fn a_scan_pages_through_the_tree_in_key_order() {
        let mut t = RegionTree::new();
        let key = |i: u32| format!("k{i:05}").into_bytes();
        let n = 1_000u32;
        for i in 0..n {
            let start = if i == 0 { Vec::new() } else { key(i) };
            let end = if i + 1 == n { Vec::new() } else { key(i + 1) };
            t.insert(region(u64::from(i) + 1, &start, &end, 1, 1));
        }
        // From a key inside a region: that region first, then its successors.
        let page = t.scan(b"k00500x", b"", 3);
        let ids: Vec<u64> = page.iter().map(|r| r.id()).collect();
        assert_eq!(ids, vec![501, 502, 503]);
        // A page ending at the tail, a bounded range, and everything.
        assert_eq!(t.scan(&key(998), b"", 10).len(), 2);
        assert_eq!(t.scan(&key(10), &key(20), 0).len(), 10);
        assert_eq!(t.scan(b"", b"", 0).len(), n as usize);
        assert_eq!(t.overlapping(b"", &key(3)), vec![1, 2, 3]);
    }

    #[test]
    fn store_loads_follow_inserts_and_overlaps() {
        let with =
            |id: u64, start: &[u8], end: &[u8], version: u64, stores: &[u64], leader: u64| {
                let mut r = region(id, start, end, version, 1);
                r.meta.peers = stores
                    .iter()
                    .map(|s| Peer {
                        id: id * 10 + s,
                        store_id: *s,
                        ..Default::default()
                    })
                    .collect();
                r.leader = r.meta.peers.iter().find(|p| p.store_id == leader).copied();
                r
            };
        let recount = |t: &RegionTree| {
            let mut loads: HashMap<u64, StoreLoad> = HashMap::new();
            for r in t.iter() {
                for p in &r.meta.peers {
                    loads.entry(p.store_id).or_default().regions += 1;
                }
                if let Some(l) = &r.leader {
                    loads.entry(l.store_id).or_default().leaders += 1;
                }
            }
            loads.retain(|_, l| *l != StoreLoad::default());
            loads
        };
        let kept = |t: &RegionTree| {
            let mut loads = t.store_loads().clone();
            loads.retain(|_, l| *l != StoreLoad::default());
            loads
        };
        let mut t = RegionTree::new();
        t.insert(with(1, b"", b"", 1, &[1, 2, 3], 1));
        assert_eq!(kept(&t), recount(&t));
        // A split: the parent shrinks, a child arrives with another leader.
        t.insert(with(1, b"", b"m", 2, &[1, 2, 3], 1));
        t.insert(with(2, b"m", b"", 2, &[1, 2, 3], 2));
        assert_eq!(kept(&t), recount(&t));
        // A membership change and a leader move.
        t.insert(with(2, b"m", b"", 2, &[1, 2, 4], 4));
        assert_eq!(kept(&t), recount(&t));
        // A merge: region 1 takes everything, region 2 is overlapped away.
        t.insert(with(1, b"", b"", 3, &[1, 2, 3], 3));
        assert_eq!(kept(&t), recount(&t));
        assert_eq!(t.store_loads()[&4], StoreLoad::default());
        assert_eq!(
            t.store_loads()[&3],
            StoreLoad {
                regions: 1,
                leaders: 1
            }
        );
    }
}
