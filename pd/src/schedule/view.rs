//! The picture schedulers decide on: each store's health and load (counting what running
//! operators will still change), the region tree, and which regions already have an operator.

use std::collections::{BTreeMap, HashMap, HashSet};

use proto::metapb::{Peer, PeerRole};

use super::controller::OperatorController;
use super::operator::{Now, Operator};
use crate::cluster::{role, ClusterState, RegionInfo, RegionTree, StoreStatus};
use crate::config::ScheduleConfig;

/// Most regions one scheduling round looks at. A round over every region costs O(regions),
/// which at hundreds of thousands of regions would keep PD busy even when nothing needs
/// doing; instead each round patrols the next window, so a 300,000-region cluster is looked
/// over once every ~75 rounds (75 s at the default `schedule-interval`).
pub const PATROL_REGIONS_PER_ROUND: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreView {
    pub id: u64,
    pub status: StoreStatus,
    pub regions: i64,
    pub leaders: i64,
    /// The store's last heartbeat said it is busy (a full disk refusing writes, or full
    /// mailboxes): it takes no new peers.
    pub busy: bool,
}

pub struct ScheduleView<'a> {
    pub cfg: &'a ScheduleConfig,
    pub regions: &'a RegionTree,
    /// When (unix ms) regions were last reported split.
    pub split_at: &'a HashMap<u64, u64>,
    /// When (unix ms) PD loaded the cluster (see `ClusterState::loaded_at_ms`).
    pub loaded_at_ms: u64,
    /// The storage API version the cluster serves (its fixed region boundaries depend on it).
    pub api_version: u32,
    pub stores: BTreeMap<u64, StoreView>,
    /// Regions that already have an operator.
    pub busy: HashSet<u64>,
    /// Regions whose operator will still move their leader, to the store it moves it to.
    pub leader_moves: HashMap<u64, u64>,
    pub now: Now,
}

impl<'a> ScheduleView<'a> {
    pub fn new(
        state: &'a ClusterState,
        ops: &OperatorController,
        cfg: &'a ScheduleConfig,
        now: Now,
    ) -> ScheduleView<'a> {
        let loads = state.store_loads();
        let stores = state
            .stores
            .values()
            .map(|s| {
                let load = loads.get(&s.id()).copied().unwrap_or_default();
                let view = StoreView {
                    id: s.id(),
                    status: s.status(now.unix_ms, cfg),
                    regions: load.regions as i64,
                    leaders: load.leaders as i64,
                    busy: s.stats.as_ref().is_some_and(|st| st.is_busy),
                };
                (s.id(), view)
            })
            .collect();
        let mut view = ScheduleView {
            cfg,
            regions: &state.regions,
            split_at: &state.split_at,
            loaded_at_ms: state.loaded_at_ms,
            api_version: state.api_version,
            stores,
            busy: ops.busy_regions().collect(),
            leader_moves: HashMap::new(),
            now,
        };
        for influence in ops.influences() {
            view.add_influence(influence.store_id, influence.regions, influence.leaders);
        }
        for op in ops.running() {
            view.note_leader_move(op);
        }
        view
    }

    fn note_leader_move(&mut self, op: &Operator) {
        if let Some(to_store) = op.pending_leader_store() {
            self.leader_moves.insert(op.region_id, to_store);
        }
    }

    /// The store the region's leader is on once running operators are done with it.
    pub fn leader_store_after_moves(&self, region: &RegionInfo) -> Option<u64> {
        self.leader_moves
            .get(&region.id())
            .copied()
            .or_else(|| region.leader_store_id())
    }

    fn add_influence(&mut self, store_id: u64, regions: i64, leaders: i64) {
        if let Some(s) = self.stores.get_mut(&store_id) {
            s.regions += regions;
            s.leaders += leaders;
        }
    }

    /// Counts a newly made operator: its region is taken and its moves change the loads.
    pub fn record(&mut self, op: &Operator) {
        self.busy.insert(op.region_id);
        self.busy.extend(op.merge_target());
        for i in op.influence() {
            self.add_influence(i.store_id, i.regions, i.leaders);
        }
        self.note_leader_move(op);
    }

    /// The ids of the regions round `rotation` looks at: every region when there are at most
    /// [`PATROL_REGIONS_PER_ROUND`], starting at a different one each round; otherwise the
    /// round's window of that many, windows following each other round by round.
    pub fn patrol(&self, rotation: usize) -> Vec<u64> {
        let n = self.regions.len();
        if n == 0 {
            return Vec::new();
        }
        let (start, len) = if n <= PATROL_REGIONS_PER_ROUND {
            (rotation % n, n)
        } else {
            (
                rotation.wrapping_mul(PATROL_REGIONS_PER_ROUND) % n,
                PATROL_REGIONS_PER_ROUND,
            )
        };
        self.regions
            .iter()
            .map(|r| r.id())
            .cycle()
            .skip(start)
            .take(len)
            .collect()
    }

    /// A store PD never heard of counts as unreachable: nothing goes there, and nothing on it
    /// is removed on a guess.
    pub fn status(&self, store_id: u64) -> StoreStatus {
        self.stores
            .get(&store_id)
            .map_or(StoreStatus::Disconnected, |s| s.status)
    }

    /// Stores that may take new peers and leaders, and take part in balancing.
    pub fn up_stores(&self) -> Vec<StoreView> {
        self.stores
            .values()
            .filter(|s| s.status == StoreStatus::Up)
            .copied()
            .collect()
    }

    /// A peer that should be replaced: its store is down, offline or gone, or its leader has
    /// not heard from it for longer than `max-store-down-time`.
    pub fn is_unhealthy(&self, region: &RegionInfo, peer: &Peer) -> bool {
        self.status(peer.store_id).needs_replacement()
            || region
                .down_seconds(peer.id)
                .is_some_and(|s| s >= self.cfg.max_store_down_time.as_secs())
    }

    /// Whether `region` can hand its leadership to its voter on `to_store` now: no operator
    /// holds the region, no membership change is half done, and that voter is caught up and
    /// healthy.
    pub fn can_transfer_leader(&self, region: &RegionInfo, to_store: u64) -> bool {
        if self.busy.contains(&region.id()) || region.in_joint_state() {
            return false;
        }
        region.peer_on_store(to_store).is_some_and(|p| {
            role(p) == PeerRole::Voter && !region.is_pending(p.id) && !self.is_unhealthy(region, p)
        })
    }

    /// The least loaded Up store that is not busy and holds no peer of the region.
    pub fn pick_target(&self, region: &RegionInfo) -> Option<u64> {
        self.up_stores()
            .into_iter()
            .filter(|s| !s.busy && region.peer_on_store(s.id).is_none())
            .min_by_key(|s| (s.regions, s.id))
            .map(|s| s.id)
    }

    /// The store to hand leadership to before `leaving` goes: a healthy, caught-up voter on an
    /// Up store with the fewest leaders, else `fallback`.
    pub fn transfer_target(
        &self,
        region: &RegionInfo,
        leaving: &Peer,
        fallback: Option<u64>,
    ) -> Option<u64> {
        region
            .voters()
            .filter(|v| v.id != leaving.id && !region.is_pending(v.id))
            .filter(|v| !self.is_unhealthy(region, v))
            .filter_map(|v| self.stores.get(&v.store_id))
            .filter(|s| s.status == StoreStatus::Up)
            .min_by_key(|s| (s.leaders, s.id))
            .map(|s| s.id)
            .or(fallback)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proto::metapb::PeerRole::Voter;

    use super::*;
    use crate::schedule::testkit::Fixture;

    fn fixture_with(regions: u64) -> Fixture {
        let mut f = Fixture::new(&[1, 2, 3]);
        for id in 1..=regions {
            let start = format!("k{id:08}").into_bytes();
            let end = format!("k{:08}", id + 1).into_bytes();
            f.add_region(id, &start, &end, &[(id * 10, 1, Voter)], id * 10);
        }
        f
    }

    #[test]
    fn a_small_cluster_is_patrolled_whole_every_round() {
        let f = fixture_with(10);
        let view = f.view();
        let round: HashSet<u64> = view.patrol(3).into_iter().collect();
        assert_eq!(round.len(), 10);
        // Each round starts somewhere else.
        assert_ne!(view.patrol(0)[0], view.patrol(1)[0]);
    }

    #[test]
    fn a_large_cluster_is_patrolled_a_window_per_round_and_whole_over_rounds() {
        let n = 3 * PATROL_REGIONS_PER_ROUND as u64 + 17;
        let f = fixture_with(n);
        let view = f.view();
        let mut seen = HashSet::new();
        for round in 0..4 {
            let window = view.patrol(round);
            assert_eq!(window.len(), PATROL_REGIONS_PER_ROUND);
            seen.extend(window);
        }
        assert_eq!(seen.len() as u64, n, "four rounds cover every region");
    }
}
