//! PD's shared state: identity, storage, allocators, the cluster, operators and the heartbeat
//! streams, used by the gRPC and HTTP services and the scheduler loop.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use proto::keyspacepb::{KeyspaceMeta, KeyspaceState};
use proto::pdpb::{Member, RequestHeader, SplitId};
use tracing::{info, warn};

use crate::cluster::Cluster;
use crate::config::{Config, ScheduleConfig};
use crate::error::{Error, Result};
use crate::heatmap::FlowHistory;
use crate::id::IdAllocator;
use crate::metrics::Metrics;
use crate::schedule::keyspace_split::DEFAULT_KEYSPACE_ID;
use crate::schedule::OperatorController;
use crate::storage::Storage;
use crate::streams::HeartbeatStreams;
use crate::tso::{unix_millis, Tso};

/// The name clients use for the default keyspace.
pub const DEFAULT_KEYSPACE_NAME: &str = "DEFAULT";

/// Most regions one AskBatchSplit may ask for.
pub(crate) const MAX_SPLIT_COUNT: u32 = 1024;

pub struct PdState {
    pub cluster_id: u64,
    pub member: Member,
    pub storage: Arc<Storage>,
    pub ids: IdAllocator,
    pub tso: Tso,
    pub cluster: Cluster,
    /// Lock order: `cluster` before `operators` whenever both are held.
    pub operators: Mutex<OperatorController>,
    pub schedule: RwLock<ScheduleConfig>,
    gc_safe_point: Mutex<u64>,
    pub default_keyspace: KeyspaceMeta,
    pub metrics: Arc<Metrics>,
    pub streams: HeartbeatStreams,
    /// Per-minute region flow for the key-space heatmap. Held alone, briefly.
    pub flow_history: Mutex<FlowHistory>,
}

/// A random 64-bit number from the standard library's per-process random hasher keys.
fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(unix_millis());
    h.finish()
}

/// A new cluster id: the creation time in the high bits, randomness in the low bits.
fn new_cluster_id() -> u64 {
    let secs = unix_millis() / 1000;
    (secs << 32) | (random_u64() & 0xffff_ffff)
}

/// The schedule config of an earlier run (possibly changed through the HTTP API) wins over the
/// file's; a saved config that no longer parses or validates is replaced by the file's.
fn load_schedule_config(storage: &Storage, from_file: &ScheduleConfig) -> Result<ScheduleConfig> {
    let saved = match storage.schedule_config() {
        Ok(saved) => saved,
        Err(e @ Error::Corrupt { .. }) => {
            warn!(%e, "the saved schedule config is unreadable; using the config file's");
            None
        }
        Err(e) => return Err(e),
    };
    match saved {
        Some(saved) if saved.validate().is_ok() => {
            if saved != *from_file {
                warn!("using the schedule config saved by an earlier run; the [schedule] section of the config file is ignored");
            }
            Ok(saved)
        }
        _ => {
            storage.save_schedule_config(from_file)?;
            Ok(from_file.clone())
        }
    }
}

impl PdState {
    /// Opens PD's data dir and loads or creates every piece of persistent state.
    pub fn open(cfg: &Config, advertise_url: String) -> Result<PdState> {
        let storage = Arc::new(Storage::open(&cfg.data_dir)?);
        let cluster_id = match storage.cluster_id()? {
            Some(id) => id,
            None => {
                let id = new_cluster_id();
                storage.save_cluster_id(id)?;
                info!(cluster_id = id, "new cluster id");
                id
            }
        };
        let member_id = match storage.member_id()? {
            Some(id) => id,
            None => {
                let id = random_u64().max(1);
                storage.save_member_id(id)?;
                id
            }
        };
        let member = Member {
            name: cfg.name.clone(),
            member_id,
            // PD serves its peers on the client URL too: there is a single member.
            peer_urls: vec![advertise_url.clone()],
            client_urls: vec![advertise_url],
        };
        let schedule = load_schedule_config(&storage, &cfg.schedule)?;
        let default_keyspace = match storage.keyspace(DEFAULT_KEYSPACE_NAME)? {
            Some(meta) => meta,
            None => {
                let now = (unix_millis() / 1000) as i64;
                let meta = KeyspaceMeta {
                    id: DEFAULT_KEYSPACE_ID,
                    name: DEFAULT_KEYSPACE_NAME.into(),
                    state: KeyspaceState::Enabled as i32,
                    created_at: now,
                    state_changed_at: now,
                    config: Default::default(),
                };
                storage.save_keyspace(&meta)?;
                meta
            }
        };
        let gc_safe_point = storage.gc_safe_point()?;
        let ids = IdAllocator::open(storage.clone(), cfg.id_batch_size)?;
        let tso = Tso::open(storage.clone(), cfg.tso_save_interval)?;
        let cluster = Cluster::load(storage.clone(), unix_millis())?;
        let metrics = Arc::new(Metrics::new());
        info!(cluster_id, name = %cfg.name, "PD state opened");
        Ok(PdState {
            cluster_id,
            member,
            operators: Mutex::new(OperatorController::new(metrics.clone())),
            storage,
            ids,
            tso,
            cluster,
            schedule: RwLock::new(schedule),
            gc_safe_point: Mutex::new(gc_safe_point),
            default_keyspace,
            metrics,
            streams: HeartbeatStreams::default(),
            flow_history: Mutex::new(FlowHistory::default()),
        })
    }

    /// Refuses requests meant for another cluster. A missing header or a zero id (a client
    /// that does not know the id yet) is accepted.
    pub fn check_header(&self, header: Option<&RequestHeader>) -> Result<()> {
        match header {
            Some(h) if h.cluster_id != 0 && h.cluster_id != self.cluster_id => {
                Err(Error::ClusterIdMismatch {
                    request: h.cluster_id,
                    actual: self.cluster_id,
                })
            }
            _ => Ok(()),
        }
    }

    pub fn schedule_config(&self) -> ScheduleConfig {
        self.schedule.read().clone()
    }

    /// Applies a partial update of the schedule config and persists it.
    pub fn update_schedule_config(&self, patch: &serde_json::Value) -> Result<ScheduleConfig> {
        let mut cfg = self.schedule.write();
        let next = cfg.patched(patch)?;
        self.storage.save_schedule_config(&next)?;
        info!(?next, "schedule config updated");
        *cfg = next.clone();
        Ok(next)
    }

    pub fn alloc_id(&self) -> Result<u64> {
        let id = self.ids.alloc()?;
        self.metrics.ids_allocated.inc();
        Ok(id)
    }

    /// Ids for `count` new regions split off a region with `peer_count` peers.
    pub fn ask_batch_split(&self, peer_count: usize, count: u32) -> Result<Vec<SplitId>> {
        if count == 0 || count > MAX_SPLIT_COUNT {
            return Err(Error::InvalidArgument(format!(
                "split count must be between 1 and {MAX_SPLIT_COUNT}, got {count}"
            )));
        }
        if peer_count == 0 {
            return Err(Error::InvalidArgument(
                "the region to split has no peers".into(),
            ));
        }
        (0..count)
            .map(|_| {
                let new_region_id = self.alloc_id()?;
                let new_peer_ids = (0..peer_count)
                    .map(|_| self.alloc_id())
                    .collect::<Result<Vec<u64>>>()?;
                Ok(SplitId {
                    new_region_id,
                    new_peer_ids,
                })
            })
            .collect()
    }

    pub fn gc_safe_point(&self) -> u64 {
        *self.gc_safe_point.lock()
    }

    /// Raises the GC safe point (it never goes down); returns the point in force afterwards.
    pub fn update_gc_safe_point(&self, proposed: u64) -> Result<u64> {
        let mut current = self.gc_safe_point.lock();
        if proposed > *current {
            self.storage.save_gc_safe_point(proposed)?;
            *current = proposed;
        }
        Ok(*current)
    }

    /// The keyspace called `name`; only the default keyspace exists.
    pub fn load_keyspace(&self, name: &str) -> Result<KeyspaceMeta> {
        if name == self.default_keyspace.name {
            Ok(self.default_keyspace.clone())
        } else {
            Err(Error::EntryNotFound(format!(
                "keyspace {name:?} does not exist"
            )))
        }
    }

    /// Refreshes the gauges that describe the cluster.
    pub fn refresh_gauges(&self) {
        let cfg = self.schedule_config();
        let now = unix_millis();
        let state = self.cluster.read();
        self.metrics.regions.set(state.regions.len() as i64);
        self.metrics.stores.reset();
        for s in state.stores.values() {
            self.metrics
                .stores
                .with_label_values(&[s.status(now, &cfg).name()])
                .inc();
        }
        drop(state);
        let running = self.operators.lock().running().count();
        self.metrics.running_operators.set(running as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_schedule_config_wins_unless_it_is_unusable() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        let file = ScheduleConfig::default();
        assert_eq!(load_schedule_config(&storage, &file).unwrap(), file);
        let changed = ScheduleConfig {
            max_replicas: 5,
            ..file.clone()
        };
        storage.save_schedule_config(&changed).unwrap();
        assert_eq!(load_schedule_config(&storage, &file).unwrap(), changed);
        let invalid = ScheduleConfig {
            max_replicas: 0,
            ..file.clone()
        };
        storage.save_schedule_config(&invalid).unwrap();
        assert_eq!(load_schedule_config(&storage, &file).unwrap(), file);
        assert_eq!(storage.schedule_config().unwrap(), Some(file));
    }

    #[test]
    fn a_former_leaders_late_report_adds_its_flow_only() {
        use proto::metapb::{Peer, Region, RegionEpoch, Store};
        use proto::pdpb::RegionHeartbeatRequest;

        use crate::heatmap::FlowKind;

        let dir = tempfile::tempdir().unwrap();
        let cfg = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let pd = PdState::open(&cfg, "http://127.0.0.1:1".into()).unwrap();
        let peer = |id| Peer {
            id,
            store_id: 1,
            ..Default::default()
        };
        let region = Region {
            id: 2,
            region_epoch: Some(RegionEpoch {
                conf_ver: 1,
                version: 1,
            }),
            peers: vec![peer(3), peer(4)],
            ..Default::default()
        };
        let store = Store {
            id: 1,
            address: "127.0.0.1:2".into(),
            ..Default::default()
        };
        pd.cluster
            .bootstrap(Some(store), Some(region.clone()), 0, unix_millis())
            .unwrap();
        let report = |leader, term, bytes_written| RegionHeartbeatRequest {
            region: Some(region.clone()),
            leader: Some(peer(leader)),
            term,
            bytes_written,
            ..Default::default()
        };
        // The next leader reports first; the former leader's last report comes after it.
        pd.handle_region_heartbeat(&report(4, 7, 0)).unwrap();
        pd.handle_region_heartbeat(&report(3, 6, 1000)).unwrap();
        let state = pd.cluster.read();
        let known = state.regions.get(2).unwrap();
        assert_eq!(
            known.leader.map(|l| l.id),
            Some(4),
            "the stale leader is ignored"
        );
        assert_eq!(known.term, 7);
        drop(state);
        let map = pd
            .flow_history
            .lock()
            .matrix(unix_millis(), FlowKind::Write, 10, 10);
        let total: u64 =
            map.values.iter().flatten().sum::<u64>() + map.unplaced.iter().sum::<u64>();
        assert_eq!(total, 1000, "its flow was still served");
    }

    #[test]
    fn opening_twice_keeps_the_identity() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let first = PdState::open(&cfg, "http://127.0.0.1:1".into()).unwrap();
        let (cluster_id, member_id) = (first.cluster_id, first.member.member_id);
        assert_ne!(cluster_id, 0);
        let created = first.default_keyspace.created_at;
        first.storage.close().unwrap();
        drop(first);
        let again = PdState::open(&cfg, "http://127.0.0.1:2".into()).unwrap();
        assert_eq!(again.cluster_id, cluster_id);
        assert_eq!(again.member.member_id, member_id);
        assert_eq!(again.default_keyspace.created_at, created);
        assert_eq!(
            again.member.client_urls,
            vec!["http://127.0.0.1:2".to_string()]
        );
        assert!(again.load_keyspace("other").is_err());
        assert_eq!(again.update_gc_safe_point(10).unwrap(), 10);
        assert_eq!(again.update_gc_safe_point(5).unwrap(), 10);
        assert!(again.ask_batch_split(3, 0).is_err());
        assert!(again.ask_batch_split(0, 1).is_err());
        let ids = again.ask_batch_split(3, 2).unwrap();
        assert_eq!(ids.len(), 2);
        assert_eq!(ids[1].new_peer_ids.len(), 3);
    }
}
