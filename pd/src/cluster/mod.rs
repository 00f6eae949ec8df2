//! The cluster PD manages: bootstrap state, stores and the region tree, kept in memory behind
//! one lock and written through to storage on every change that matters after a restart.

mod flow_rate;
mod heartbeat;
mod region_tree;
mod stores;
mod superseded;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::{RwLock, RwLockReadGuard};
use proto::metapb::{self, StoreState};
use proto::pdpb::StoreStats;
use tracing::{info, warn};

pub use flow_rate::{FlowTotals, RegionFlow, RATE_WINDOW_SECS};
pub use heartbeat::{region_from_heartbeat, RegionUpdate};
pub use region_tree::{epoch_is_older, role, RegionInfo, RegionTree, StoreLoad};
pub use stores::{StoreInfo, StoreStatus};

use crate::error::{Error, Result};
use crate::storage::Storage;

/// How long split times are remembered (the longest `split-merge-interval` allowed).
pub const SPLIT_MEMORY_MS: u64 = 24 * 60 * 60 * 1000;

/// Everything PD knows about the cluster's layout.
#[derive(Default, Debug)]
pub struct ClusterState {
    pub bootstrapped: bool,
    /// The storage API version (1 or 2) the cluster serves, fixed at bootstrap; 2 before it.
    pub api_version: u32,
    pub stores: BTreeMap<u64, StoreInfo>,
    pub regions: RegionTree,
    /// When (unix ms) each region was last reported split, for `split-merge-interval`: a
    /// region split recently is not merged back. Entries older than `SPLIT_MEMORY_MS` are
    /// dropped on the next split report.
    pub split_at: HashMap<u64, u64>,
    /// When (unix ms) this PD loaded the cluster, i.e. started; 0 in states built by hand.
    /// Splits before it are not in `split_at`, so merges wait `split-merge-interval` from it
    /// (PD's merge checker: "recently-start"), lest a restart undo every recent split.
    pub loaded_at_ms: u64,
    /// Regions replaced while part of their range has no region yet (mid-split): they answer
    /// lookups of those keys until it has (see `superseded`).
    pub superseded: superseded::SupersededRegions,
}

impl ClusterState {
    pub fn store(&self, id: u64) -> Option<&StoreInfo> {
        self.stores.get(&id)
    }

    /// Peer and leader counts per store.
    /// Regions and leaders per store, kept up to date by the region tree (O(stores)).
    pub fn store_loads(&self) -> HashMap<u64, StoreLoad> {
        self.regions.store_loads().clone()
    }

    fn require_bootstrapped(&self) -> Result<()> {
        if self.bootstrapped {
            Ok(())
        } else {
            Err(Error::NotBootstrapped)
        }
    }
}

/// The API version of a cluster bootstrapped without one: API V2.
pub const DEFAULT_API_VERSION: u32 = 2;

pub struct Cluster {
    storage: Arc<Storage>,
    state: RwLock<ClusterState>,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidArgument(msg.into())
}

impl Cluster {
    /// Loads what a previous run persisted. Stores count as just heard from, so a PD restart
    /// does not declare the whole fleet down.
    pub fn load(storage: Arc<Storage>, now_ms: u64) -> Result<Cluster> {
        let mut state = ClusterState {
            bootstrapped: storage.bootstrapped_at()?.is_some(),
            // Clusters bootstrapped before the version was recorded serve API V2.
            api_version: storage
                .api_version()?
                .map_or(DEFAULT_API_VERSION, |v| v as u32),
            loaded_at_ms: now_ms,
            ..Default::default()
        };
        for store in storage.stores()? {
            state.stores.insert(store.id, StoreInfo::new(store, now_ms));
        }
        for stored in storage.regions()? {
            if let Some(info) = RegionInfo::from_pb(stored) {
                state.regions.insert(info);
            }
        }
        info!(
            bootstrapped = state.bootstrapped,
            stores = state.stores.len(),
            regions = state.regions.len(),
            "cluster metadata loaded"
        );
        Ok(Cluster {
            storage,
            state: RwLock::new(state),
        })
    }

    pub fn read(&self) -> RwLockReadGuard<'_, ClusterState> {
        self.state.read()
    }

    pub fn is_bootstrapped(&self) -> bool {
        self.state.read().bootstrapped
    }

    /// The storage API version (1 or 2) the cluster serves.
    pub fn api_version(&self) -> u32 {
        self.state.read().api_version
    }

    /// Records the first store and region, and `api_version` (1 or 2; 0 = not given, read as
    /// 2) as the cluster's for good. The region must cover the whole key space and have its
    /// peers on that store.
    pub fn bootstrap(
        &self,
        store: Option<metapb::Store>,
        region: Option<metapb::Region>,
        api_version: u32,
        now_ms: u64,
    ) -> Result<()> {
        let api_version = match api_version {
            0 => DEFAULT_API_VERSION,
            1 | 2 => api_version,
            other => return Err(invalid(format!("api_version must be 1 or 2, not {other}"))),
        };
        let mut store = store.ok_or_else(|| invalid("bootstrap without a store"))?;
        let region = region.ok_or_else(|| invalid("bootstrap without a region"))?;
        if store.id == 0 || store.address.is_empty() {
            return Err(invalid("the bootstrap store needs an id and an address"));
        }
        if region.id == 0 || region.region_epoch.is_none() || region.peers.is_empty() {
            return Err(invalid(
                "the bootstrap region needs an id, an epoch and peers",
            ));
        }
        if !region.start_key.is_empty() || !region.end_key.is_empty() {
            return Err(invalid(
                "the bootstrap region must cover the whole key space",
            ));
        }
        if region
            .peers
            .iter()
            .any(|p| p.id == 0 || p.store_id != store.id)
        {
            return Err(invalid(
                "every peer of the bootstrap region must be on the bootstrap store",
            ));
        }
        let mut state = self.state.write();
        if state.bootstrapped {
            return Err(Error::AlreadyBootstrapped);
        }
        store.state = StoreState::Up as i32;
        let leader = (region.peers.len() == 1).then(|| region.peers[0]);
        let info = RegionInfo::new(region, leader);
        self.storage
            .save_bootstrap(&store, &info.to_pb(), api_version, now_ms / 1000)?;
        info!(
            store_id = store.id,
            region_id = info.id(),
            api_version,
            "cluster bootstrapped"
        );
        state.bootstrapped = true;
        state.api_version = api_version;
        state.stores.insert(store.id, StoreInfo::new(store, now_ms));
        state.regions.insert(info);
        Ok(())
    }

    /// Registers a store or updates its address, labels and version. Tombstone stores are
    /// refused, and so is an address another live store already uses, and a store whose
    /// `api_version` (1 or 2; 0 = not checked) is not the cluster's.
    pub fn put_store(
        &self,
        store: Option<metapb::Store>,
        api_version: u32,
        now_ms: u64,
    ) -> Result<()> {
        let store = store.ok_or_else(|| invalid("PutStore without a store"))?;
        if store.id == 0 || store.address.is_empty() {
            return Err(invalid("a store needs an id and an address"));
        }
        let mut state = self.state.write();
        state.require_bootstrapped()?;
        if api_version != 0 && api_version != state.api_version {
            return Err(Error::ApiVersionMismatch {
                store_id: store.id,
                store: api_version,
                cluster: state.api_version,
            });
        }
        if let Some(other) = state
            .stores
            .values()
            .find(|s| s.id() != store.id && !s.is_tombstone() && s.meta.address == store.address)
        {
            return Err(invalid(format!(
                "address {} is already used by store {}; decommission that store first",
                store.address,
                other.id()
            )));
        }
        let mut meta = store;
        match state.stores.get(&meta.id) {
            Some(old) if old.is_tombstone() => return Err(Error::StoreTombstone(meta.id)),
            // Decommissioning continues across store restarts.
            Some(old) => meta.state = old.meta.state,
            None => meta.state = StoreState::Up as i32,
        }
        self.storage.save_store(&meta)?;
        match state.stores.get_mut(&meta.id) {
            Some(existing) => {
                existing.meta = meta;
                existing.last_heartbeat_ms = now_ms;
            }
            None => {
                info!(store_id = meta.id, address = %meta.address, "store registered");
                state.stores.insert(meta.id, StoreInfo::new(meta, now_ms));
            }
        }
        Ok(())
    }

    pub fn store_heartbeat(&self, stats: Option<StoreStats>, now_ms: u64) -> Result<()> {
        let stats = stats.ok_or_else(|| invalid("store heartbeat without stats"))?;
        let mut state = self.state.write();
        state.require_bootstrapped()?;
        let store = state
            .stores
            .get_mut(&stats.store_id)
            .ok_or(Error::StoreNotFound(stats.store_id))?;
        if store.is_tombstone() {
            return Err(Error::StoreTombstone(stats.store_id));
        }
        store.last_heartbeat_ms = now_ms;
        store.meta.last_heartbeat = (now_ms * 1_000_000) as i64;
        store.stats = Some(stats);
        Ok(())
    }

    pub fn get_store(&self, id: u64) -> Result<metapb::Store> {
        let state = self.state.read();
        state.require_bootstrapped()?;
        state
            .stores
            .get(&id)
            .map(|s| s.meta.clone())
            .ok_or(Error::StoreNotFound(id))
    }

    pub fn all_stores(&self, exclude_tombstone: bool) -> Result<Vec<metapb::Store>> {
        let state = self.state.read();
        state.require_bootstrapped()?;
        Ok(state
            .stores
            .values()
            .filter(|s| !(exclude_tombstone && s.is_tombstone()))
            .map(|s| s.meta.clone())
            .collect())
    }

    /// Starts decommissioning a store: Up -> Offline. An Offline store is left as it is; a
    /// Tombstone one is refused (`StoreTombstone`). Refused with `StoresNotEnough` when fewer
    /// than `max_replicas` Up stores would remain, since no region could then move its peer
    /// off the store and it would stay Offline for good (PD checks the same before it takes a
    /// store offline).
    pub fn set_store_offline(&self, id: u64, max_replicas: u64) -> Result<metapb::Store> {
        let mut state = self.state.write();
        let up_after = state
            .stores
            .values()
            .filter(|s| s.state() == StoreState::Up && s.id() != id)
            .count();
        let store = state.stores.get_mut(&id).ok_or(Error::StoreNotFound(id))?;
        match store.state() {
            StoreState::Tombstone => return Err(Error::StoreTombstone(id)),
            StoreState::Offline => {}
            StoreState::Up => {
                if (up_after as u64) < max_replicas {
                    return Err(Error::StoresNotEnough {
                        store_id: id,
                        up_after,
                        max_replicas,
                    });
                }
                self.save_store_state(store, StoreState::Offline)?;
                info!(store_id = id, "store set offline; its peers will move away");
            }
        }
        Ok(store.meta.clone())
    }

    /// Cancels a decommission: Offline -> Up, so PD stops moving the store's peers away
    /// (`pd-ctl store cancel-delete`). An Up store is left as it is; a Tombstone one has
    /// already lost its peers and is refused (`StoreTombstone`).
    pub fn set_store_up(&self, id: u64) -> Result<metapb::Store> {
        let mut state = self.state.write();
        let store = state.stores.get_mut(&id).ok_or(Error::StoreNotFound(id))?;
        match store.state() {
            StoreState::Tombstone => return Err(Error::StoreTombstone(id)),
            StoreState::Up => {}
            StoreState::Offline => {
                self.save_store_state(store, StoreState::Up)?;
                info!(store_id = id, "decommission cancelled; store is Up again");
            }
        }
        Ok(store.meta.clone())
    }

    /// Persists `store` in `new_state`, then records it in memory (so a failed write leaves
    /// both as they were).
    fn save_store_state(&self, store: &mut StoreInfo, new_state: StoreState) -> Result<()> {
        let mut meta = store.meta.clone();
        meta.state = new_state as i32;
        self.storage.save_store(&meta)?;
        store.meta = meta;
        Ok(())
    }

    /// Marks offline stores that no longer hold any peer as Tombstone; returns their ids.
    pub fn bury_empty_offline_stores(&self, busy: &[u64]) -> Result<Vec<u64>> {
        let mut state = self.state.write();
        let loads = state.store_loads();
        let empty: Vec<u64> = state
            .stores
            .values()
            .filter(|s| s.state() == StoreState::Offline)
            .filter(|s| loads.get(&s.id()).map_or(0, |l| l.regions) == 0)
            .filter(|s| !busy.contains(&s.id()))
            .map(|s| s.id())
            .collect();
        for id in &empty {
            if let Some(store) = state.stores.get_mut(id) {
                self.save_store_state(store, StoreState::Tombstone)?;
                info!(
                    store_id = id,
                    "offline store holds no peers any more: tombstone"
                );
            }
        }
        Ok(empty)
    }

    /// Applies a region report (heartbeat or split) unless it is stale; persists it when its
    /// meta or leader changed.
    pub fn update_region(&self, mut info: RegionInfo) -> Result<RegionUpdate> {
        let mut state = self.state.write();
        state.require_bootstrapped()?;
        if let Some(reason) = state.regions.staleness(&info.meta) {
            return Ok(RegionUpdate::Stale(reason));
        }
        let old = state.regions.get(info.id());
        if let Some(old) = old {
            let same_epoch = old.epoch() == info.epoch();
            if same_epoch && info.term != 0 && info.term < old.term {
                return Ok(RegionUpdate::Stale(format!(
                    "region {} reported by a leader of term {} after term {}",
                    info.id(),
                    info.term,
                    old.term
                )));
            }
            if info.leader.is_none() {
                // A split report carries no leader; keep the one we know if it is still a peer.
                info.leader = old.leader.filter(|l| info.peer(l.id).is_some());
            }
            // The rate goes on being measured while the range stays; a split or merge makes
            // the old range's rate meaningless for the new one.
            if old.start_key() == info.start_key() && old.end_key() == info.end_key() {
                info.flow = old.flow.followed_by(&info.flow);
            } else {
                info.flow = RegionFlow::default().followed_by(&info.flow);
            }
        }
        if info.leader.is_none() {
            info.leader = heartbeat::guess_leader(&state.regions, &info);
        }
        let meta_changed = old.is_none_or(|o| o.meta != info.meta || o.leader != info.leader);
        // The region's previous extent, when this report moves or shrinks it (a split).
        let moved_from = old
            .filter(|o| o.start_key() != info.start_key() || o.end_key() != info.end_key())
            .cloned();
        let overlapped: Vec<u64> = state
            .regions
            .overlapping(info.start_key(), info.end_key())
            .into_iter()
            .filter(|id| *id != info.id())
            .collect();
        if meta_changed || !overlapped.is_empty() {
            self.storage.save_regions(&[info.to_pb()], &overlapped)?;
        }
        let removed = state.regions.insert(info);
        if !removed.is_empty() {
            let ids: Vec<u64> = removed.iter().map(|r| r.id()).collect();
            tracing::debug!(?ids, "regions replaced by a newer region");
        }
        if moved_from.is_some() || !removed.is_empty() {
            let now = crate::tso::unix_millis();
            let state = &mut *state;
            for replaced in moved_from.into_iter().chain(removed) {
                state.superseded.remember(replaced, &state.regions, now);
            }
        }
        Ok(RegionUpdate::Accepted { meta_changed })
    }

    /// The regions of a split report, each applied like a heartbeat without statistics.
    pub fn report_split(&self, regions: Vec<metapb::Region>) -> Result<()> {
        if regions.is_empty() {
            return Err(invalid("a split report without regions"));
        }
        for meta in &regions {
            heartbeat::check_region_meta(meta)?;
        }
        // Guess every leader from the tree before the first piece replaces the parent.
        let leaders: Vec<_> = {
            let state = self.state.read();
            regions
                .iter()
                .map(|m| heartbeat::guess_leader(&state.regions, &RegionInfo::new(m.clone(), None)))
                .collect()
        };
        {
            let now = crate::tso::unix_millis();
            let mut state = self.state.write();
            state
                .split_at
                .retain(|_, at| now.saturating_sub(*at) < SPLIT_MEMORY_MS);
            state.split_at.extend(regions.iter().map(|r| (r.id, now)));
        }
        for (meta, leader) in regions.into_iter().zip(leaders) {
            let id = meta.id;
            if let RegionUpdate::Stale(reason) =
                self.update_region(RegionInfo::new(meta, leader))?
            {
                warn!(region_id = id, %reason, "split report ignored");
            }
        }
        Ok(())
    }

    /// Looks up a region by id.
    pub fn region_by_id(&self, id: u64) -> Result<RegionInfo> {
        let state = self.state.read();
        state.require_bootstrapped()?;
        state
            .regions
            .get(id)
            .cloned()
            .ok_or_else(|| Error::RegionNotFound(format!("no region with id {id}")))
    }

    /// The region containing an (encoded) key. Mid-split, a key no reported region covers yet
    /// gets the region it belonged to before (with its old epoch), so the client retries
    /// through the store's `EpochNotMatch` instead of failing.
    pub fn region_by_key(&self, key: &[u8]) -> Result<RegionInfo> {
        let state = self.state.read();
        state.require_bootstrapped()?;
        state
            .regions
            .find(key)
            .or_else(|| state.superseded.find(key, crate::tso::unix_millis()))
            .cloned()
            .ok_or_else(|| Error::RegionNotFound(format!("no region contains key {key:?}")))
    }

    pub fn scan_regions(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<RegionInfo>> {
        let state = self.state.read();
        state.require_bootstrapped()?;
        Ok(state
            .regions
            .scan(start, end, limit)
            .into_iter()
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests;
