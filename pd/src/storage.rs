//! PD's durable state, typed, in its own RocksDB (column family `default`). Allocator windows,
//! bootstrap and store changes are written with sync; region changes only reach the WAL, which
//! survives a process crash, and stores re-report every region through heartbeats anyway.

use std::path::Path;

use engine::{KvEngine, KvRead, CF_DEFAULT};
use parking_lot::RwLock;
use prost::Message;
use proto::keyspacepb::KeyspaceMeta;
use proto::metapb;
use proto::pdpb;

use crate::config::ScheduleConfig;
use crate::error::{Error, Result};

const CLUSTER_ID: &[u8] = b"meta/cluster_id";
const MEMBER_ID: &[u8] = b"meta/member_id";
const BOOTSTRAPPED: &[u8] = b"meta/bootstrapped";
const API_VERSION: &[u8] = b"meta/api_version";
const ALLOC_ID: &[u8] = b"meta/alloc_id";
const TSO_WINDOW: &[u8] = b"meta/tso_window";
const GC_SAFE_POINT: &[u8] = b"meta/gc_safe_point";
const SCHEDULE_CONFIG: &[u8] = b"meta/schedule_config";
const KEYSPACE_PREFIX: &[u8] = b"keyspace/";
const STORE_PREFIX: &[u8] = b"store/";
const REGION_PREFIX: &[u8] = b"region/";

fn id_key(prefix: &[u8], id: u64) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// The end of a prefix scan: the prefix with its last byte bumped.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

fn corrupt(what: &str, detail: impl ToString) -> Error {
    Error::Corrupt {
        what: what.to_string(),
        detail: detail.to_string(),
    }
}

/// A region as PD keeps it on disk: its meta and the last known leader.
pub type StoredRegion = pdpb::Region;

/// Typed reads and writes of PD's metadata.
pub struct Storage {
    /// `None` once closed, so a late task cannot keep the database open after shutdown.
    engine: RwLock<Option<KvEngine>>,
}

impl Storage {
    pub fn open(dir: &Path) -> Result<Storage> {
        let engine = KvEngine::open(dir)?;
        Ok(Storage {
            engine: RwLock::new(Some(engine)),
        })
    }

    fn with_engine<T>(&self, f: impl FnOnce(&KvEngine) -> Result<T>) -> Result<T> {
        let guard = self.engine.read();
        match guard.as_ref() {
            Some(engine) => f(engine),
            None => Err(Error::ShuttingDown),
        }
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.with_engine(|e| Ok(e.get_value_cf(CF_DEFAULT, key)?))
    }

    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Result<()> {
        self.with_engine(|e| {
            let mut wb = e.write_batch();
            wb.put_cf(CF_DEFAULT, key, value)?;
            Ok(e.write(&wb, sync)?)
        })
    }

    fn get_u64(&self, key: &[u8], what: &str) -> Result<Option<u64>> {
        match self.get(key)? {
            None => Ok(None),
            Some(v) => {
                let bytes: [u8; 8] = v
                    .as_slice()
                    .try_into()
                    .map_err(|_| corrupt(what, format!("{} bytes, want 8", v.len())))?;
                Ok(Some(u64::from_be_bytes(bytes)))
            }
        }
    }

    fn put_u64(&self, key: &[u8], value: u64) -> Result<()> {
        self.put(key, &value.to_be_bytes(), true)
    }

    fn scan_msgs<M: Message + Default>(&self, prefix: &[u8], what: &str) -> Result<Vec<M>> {
        self.with_engine(|e| {
            let mut out = Vec::new();
            let mut failure = None;
            e.scan_cf(CF_DEFAULT, prefix, &prefix_end(prefix), |k, v| {
                match M::decode(v) {
                    Ok(m) => out.push(m),
                    Err(err) => {
                        failure = Some(corrupt(what, format!("key {k:?}: {err}")));
                        return Ok(false);
                    }
                }
                Ok(true)
            })?;
            match failure {
                Some(err) => Err(err),
                None => Ok(out),
            }
        })
    }

    pub fn cluster_id(&self) -> Result<Option<u64>> {
        self.get_u64(CLUSTER_ID, "cluster id")
    }

    pub fn save_cluster_id(&self, id: u64) -> Result<()> {
        self.put_u64(CLUSTER_ID, id)
    }

    pub fn member_id(&self) -> Result<Option<u64>> {
        self.get_u64(MEMBER_ID, "member id")
    }

    pub fn save_member_id(&self, id: u64) -> Result<()> {
        self.put_u64(MEMBER_ID, id)
    }

    /// When the cluster was bootstrapped (unix seconds), if it was.
    pub fn bootstrapped_at(&self) -> Result<Option<u64>> {
        self.get_u64(BOOTSTRAPPED, "bootstrap flag")
    }

    /// The cluster's storage API version (1 or 2) recorded at bootstrap; `None` for a
    /// cluster bootstrapped before the version was recorded (those serve API V2).
    pub fn api_version(&self) -> Result<Option<u64>> {
        self.get_u64(API_VERSION, "api version")
    }

    /// Writes the first store and region, the cluster's API version and the bootstrap flag
    /// in one durable batch.
    pub fn save_bootstrap(
        &self,
        store: &metapb::Store,
        region: &StoredRegion,
        api_version: u32,
        unix_secs: u64,
    ) -> Result<()> {
        self.with_engine(|e| {
            let mut wb = e.write_batch();
            wb.put_msg_cf(CF_DEFAULT, &id_key(STORE_PREFIX, store.id), store)?;
            let region_id = region.region.as_ref().map(|r| r.id).unwrap_or_default();
            wb.put_msg_cf(CF_DEFAULT, &id_key(REGION_PREFIX, region_id), region)?;
            wb.put_cf(
                CF_DEFAULT,
                API_VERSION,
                &u64::from(api_version).to_be_bytes(),
            )?;
            wb.put_cf(CF_DEFAULT, BOOTSTRAPPED, &unix_secs.to_be_bytes())?;
            Ok(e.write(&wb, true)?)
        })
    }

    /// The end of the id range already reserved on disk.
    pub fn alloc_id_end(&self) -> Result<Option<u64>> {
        self.get_u64(ALLOC_ID, "id allocator")
    }

    pub fn save_alloc_id_end(&self, end: u64) -> Result<()> {
        self.put_u64(ALLOC_ID, end)
    }

    /// The physical time (ms) below which every handed-out timestamp lies.
    pub fn tso_window(&self) -> Result<Option<u64>> {
        self.get_u64(TSO_WINDOW, "timestamp window")
    }

    pub fn save_tso_window(&self, physical_ms: u64) -> Result<()> {
        self.put_u64(TSO_WINDOW, physical_ms)
    }

    pub fn gc_safe_point(&self) -> Result<u64> {
        Ok(self.get_u64(GC_SAFE_POINT, "gc safe point")?.unwrap_or(0))
    }

    pub fn save_gc_safe_point(&self, safe_point: u64) -> Result<()> {
        self.put_u64(GC_SAFE_POINT, safe_point)
    }

    pub fn schedule_config(&self) -> Result<Option<ScheduleConfig>> {
        match self.get(SCHEDULE_CONFIG)? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| corrupt("schedule config", e)),
        }
    }

    pub fn save_schedule_config(&self, cfg: &ScheduleConfig) -> Result<()> {
        let bytes = serde_json::to_vec(cfg).map_err(|e| corrupt("schedule config", e))?;
        self.put(SCHEDULE_CONFIG, &bytes, true)
    }

    pub fn keyspace(&self, name: &str) -> Result<Option<KeyspaceMeta>> {
        let mut key = KEYSPACE_PREFIX.to_vec();
        key.extend_from_slice(name.as_bytes());
        match self.get(&key)? {
            None => Ok(None),
            Some(v) => KeyspaceMeta::decode(v.as_slice())
                .map(Some)
                .map_err(|e| corrupt("keyspace meta", e)),
        }
    }

    pub fn save_keyspace(&self, meta: &KeyspaceMeta) -> Result<()> {
        let mut key = KEYSPACE_PREFIX.to_vec();
        key.extend_from_slice(meta.name.as_bytes());
        self.put(&key, &meta.encode_to_vec(), true)
    }

    pub fn stores(&self) -> Result<Vec<metapb::Store>> {
        self.scan_msgs(STORE_PREFIX, "store")
    }

    pub fn save_store(&self, store: &metapb::Store) -> Result<()> {
        self.put(
            &id_key(STORE_PREFIX, store.id),
            &store.encode_to_vec(),
            true,
        )
    }

    pub fn regions(&self) -> Result<Vec<StoredRegion>> {
        self.scan_msgs(REGION_PREFIX, "region")
    }

    /// Saves `put` and forgets `delete` (regions a newer one replaced) in one batch.
    pub fn save_regions(&self, put: &[StoredRegion], delete: &[u64]) -> Result<()> {
        self.with_engine(|e| {
            let mut wb = e.write_batch();
            for id in delete {
                wb.delete_cf(CF_DEFAULT, &id_key(REGION_PREFIX, *id))?;
            }
            for r in put {
                let id = r.region.as_ref().map(|m| m.id).unwrap_or_default();
                wb.put_msg_cf(CF_DEFAULT, &id_key(REGION_PREFIX, id), r)?;
            }
            Ok(e.write(&wb, false)?)
        })
    }

    /// Makes everything durable and closes the database; later calls fail with ShuttingDown.
    pub fn close(&self) -> Result<()> {
        let engine = self.engine.write().take();
        if let Some(engine) = engine {
            engine.sync_wal()?;
            engine.flush()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_survive_reopen_and_close_blocks_access() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(dir.path()).unwrap();
        assert_eq!(s.cluster_id().unwrap(), None);
        s.save_cluster_id(42).unwrap();
        s.save_store(&metapb::Store {
            id: 7,
            address: "a:1".into(),
            ..Default::default()
        })
        .unwrap();
        let region = |id| StoredRegion {
            region: Some(metapb::Region {
                id,
                ..Default::default()
            }),
            ..Default::default()
        };
        s.save_regions(&[region(1), region(2)], &[]).unwrap();
        s.save_regions(&[region(3)], &[1]).unwrap();
        s.close().unwrap();
        assert!(matches!(s.cluster_id(), Err(Error::ShuttingDown)));
        drop(s);

        let s = Storage::open(dir.path()).unwrap();
        assert_eq!(s.cluster_id().unwrap(), Some(42));
        assert_eq!(s.stores().unwrap()[0].address, "a:1");
        let ids: Vec<u64> = s
            .regions()
            .unwrap()
            .iter()
            .map(|r| r.region.as_ref().unwrap().id)
            .collect();
        assert_eq!(ids, vec![2, 3]);
    }

    #[test]
    fn a_damaged_value_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(dir.path()).unwrap();
        s.put(CLUSTER_ID, b"abc", true).unwrap();
        assert!(matches!(s.cluster_id(), Err(Error::Corrupt { .. })));
        s.put(&id_key(STORE_PREFIX, 1), &[0xff, 0xff, 0xff], true)
            .unwrap();
        assert!(matches!(s.stores(), Err(Error::Corrupt { .. })));
    }
}
