//! A real single-store raftstore with three regions and a `KvService` on top, plus helpers
//! that call the service the way a client would.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::{KvEngine, RaftLogEngine, CF_DEFAULT};
use keys::encode_bytes;
use proto::kvrpcpb::*;
use proto::metapb::{Peer, Region, RegionEpoch};
use proto::raft_serverpb::RaftMessage;
use proto::tikvpb::tikv_server::Tikv;
use raftstore::StoreDeps;
use raftstore::{Store, Transport};
use server::kv::{KvConfig, KvService};
use tempfile::TempDir;
use tonic::Request;

/// How long a test waits for a condition before failing.
pub const DEADLINE: Duration = Duration::from_secs(20);

const STORE_ID: u64 = 1;

/// A key of keyspace 0 (served by region 2).
pub fn key0(user_key: &str) -> Vec<u8> {
    [b"r\0\0\0".as_slice(), user_key.as_bytes()].concat()
}

/// A key of keyspace 1 (served by region 3).
pub fn key1(user_key: &str) -> Vec<u8> {
    [b"r\0\0\x01".as_slice(), user_key.as_bytes()].concat()
}

/// Polls `cond` until it holds or `deadline` passes; returns whether it held.
pub async fn wait_for<F, Fut>(deadline: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let until = Instant::now() + deadline;
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A single store talks to nobody.
struct NoopTransport;

impl Transport for NoopTransport {
    fn send(&self, _msg: RaftMessage) {}
}

pub struct Harness {
    service: Option<KvService>,
    store: Option<Arc<Store>>,
    regions: Vec<Region>,
    _dir: TempDir,
}

/// Regions `["", r0)`, `[r0, r1)`, `[r1, "")` with r0/r1 the encoded keyspace 0/1 prefixes.
fn regions() -> Vec<Region> {
    let bounds = [
        Vec::new(),
        encode_bytes(b"r\0\0\0"),
        encode_bytes(b"r\0\0\x01"),
        Vec::new(),
    ];
    bounds
        .windows(2)
        .enumerate()
        .map(|(i, w)| {
            let id = i as u64 + 1;
            Region {
                id,
                start_key: w[0].clone(),
                end_key: w[1].clone(),
                region_epoch: Some(RegionEpoch {
                    conf_ver: 1,
                    version: 1,
                }),
                peers: vec![Peer {
                    id: id * 1000 + STORE_ID,
                    store_id: STORE_ID,
                    ..Default::default()
                }],
            }
        })
        .collect()
}

impl Harness {
    pub fn start() -> Harness {
        Harness::start_with(raftstore::Config::for_tests(), KvConfig::default())
    }

    /// Bootstraps and starts the store, then waits until it leads every region.
    pub fn start_with(cfg: raftstore::Config, kv_cfg: KvConfig) -> Harness {
        test_cluster::init_logging();
        let dir = tempfile::Builder::new()
            .prefix("shoal-kv")
            .tempdir()
            .unwrap();
        let kv = KvEngine::open(&dir.path().join("db")).unwrap();
        let raft = RaftLogEngine::open(&dir.path().join("raft")).unwrap();
        let regions = regions();
        raftstore::bootstrap::bootstrap_store(&kv, 1, STORE_ID).unwrap();
        raftstore::bootstrap::bootstrap_regions(&kv, &raft, &regions).unwrap();
        let deps = StoreDeps {
            pd: Arc::new(test_cluster::LocalPd::new()),
            split_policy: None,
        };
        let store = Arc::new(Store::start(cfg, kv, raft, Arc::new(NoopTransport), deps).unwrap());
        let snap_dir: PathBuf = dir.path().join("snap");
        let service = KvService::new(store.clone(), snap_dir, kv_cfg);
        let h = Harness {
            service: Some(service),
            store: Some(store),
            regions,
            _dir: dir,
        };
        h.wait_leaders();
        h
    }

    fn wait_leaders(&self) {
        let store = self.store.as_ref().unwrap();
        let until = Instant::now() + DEADLINE;
        loop {
            let all_lead = {
                let meta = store.meta().lock();
                self.regions
                    .iter()
                    .all(|r| meta.readers.get(&r.id).is_some_and(|d| d.term() != 0))
            };
            if all_lead {
                return;
            }
            assert!(Instant::now() < until, "the store never led its regions");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn svc(&self) -> &KvService {
        self.service.as_ref().unwrap()
    }

    /// The context a client would send for the region holding raw `key`.
    pub fn ctx_for(&self, key: &[u8]) -> Context {
        let enc = encode_bytes(key);
        let region = self
            .regions
            .iter()
            .find(|r| enc >= r.start_key && (r.end_key.is_empty() || enc < r.end_key))
            .unwrap();
        Context {
            region_id: region.id,
            region_epoch: region.region_epoch,
            peer: region.peers.first().copied(),
            api_version: ApiVersion::V2 as i32,
            ..Default::default()
        }
    }

    pub async fn put(&self, key: &[u8], value: &[u8]) {
        self.put_ttl(key, value, 0).await
    }

    pub async fn put_ttl(&self, key: &[u8], value: &[u8], ttl: u64) {
        let resp = self
            .svc()
            .raw_put(Request::new(RawPutRequest {
                context: Some(self.ctx_for(key)),
                key: key.to_vec(),
                value: value.to_vec(),
                ttl,
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(
            resp.region_error.is_none() && resp.error.is_empty(),
            "{resp:?}"
        );
    }

    pub async fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let resp = self
            .svc()
            .raw_get(Request::new(RawGetRequest {
                context: Some(self.ctx_for(key)),
                key: key.to_vec(),
                cf: String::new(),
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(
            resp.region_error.is_none() && resp.error.is_empty(),
            "{resp:?}"
        );
        (!resp.not_found).then_some(resp.value)
    }

    /// Remaining ttl seconds, or `None` when the key does not exist.
    pub async fn ttl(&self, key: &[u8]) -> Option<u64> {
        let resp = self
            .svc()
            .raw_get_key_ttl(Request::new(RawGetKeyTtlRequest {
                context: Some(self.ctx_for(key)),
                key: key.to_vec(),
                cf: String::new(),
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(
            resp.region_error.is_none() && resp.error.is_empty(),
            "{resp:?}"
        );
        (!resp.not_found).then_some(resp.ttl)
    }

    /// Scans in the region of `start`.
    pub async fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: u32,
        key_only: bool,
        reverse: bool,
    ) -> Vec<KvPair> {
        let region_key = if reverse && !end.is_empty() {
            end
        } else {
            start
        };
        let resp = self
            .svc()
            .raw_scan(Request::new(RawScanRequest {
                context: Some(self.ctx_for(region_key)),
                start_key: start.to_vec(),
                end_key: end.to_vec(),
                limit,
                key_only,
                reverse,
                cf: String::new(),
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(resp.region_error.is_none(), "{resp:?}");
        resp.kvs
    }

    /// Compare-and-swap; `expected` None means "only if absent".
    pub async fn cas(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        value: &[u8],
        ttl: u64,
    ) -> RawCasResponse {
        let resp = self
            .svc()
            .raw_compare_and_swap(Request::new(RawCasRequest {
                context: Some(self.ctx_for(key)),
                key: key.to_vec(),
                value: value.to_vec(),
                previous_not_exist: expected.is_none(),
                previous_value: expected.unwrap_or_default().to_vec(),
                cf: String::new(),
                ttl,
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(
            resp.region_error.is_none() && resp.error.is_empty(),
            "{resp:?}"
        );
        resp
    }

    /// Writes a stored value as-is, bypassing the value format.
    pub fn write_stored_value(&self, key: &[u8], stored: &[u8]) {
        let kv = self.store.as_ref().unwrap().kv();
        let mut wb = kv.write_batch();
        wb.put_cf(CF_DEFAULT, &keys::data_key(&encode_bytes(key)), stored)
            .unwrap();
        kv.write(&wb, true).unwrap();
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // The service holds the store too; drop it first so the store can be stopped.
        self.service.take();
        if let Some(store) = self.store.take().and_then(Arc::into_inner) {
            store.stop();
        }
    }
}
