//! N stores in one process on real engines in temporary directories, wired through
//! `SimTransport`, with helpers to drive and inspect them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::{KvEngine, KvRead, RaftLogEngine, RaftLogOptions, CF_DEFAULT};
use proto::errorpb;
use proto::metapb::{Peer, Region, RegionEpoch};
use proto::raft_cmdpb::{
    CmdType, DeleteRequest, GetRequest, PutRequest, RaftCmdRequest, RaftCmdResponse,
    RaftRequestHeader, Request,
};
use raftstore::StoreDeps;
use raftstore::{Callback, CmdResponse, Config, SplitPolicy, Store};
use tempfile::TempDir;

use crate::pd::LocalPd;
use crate::transport::{Filter, IsolationFilter, PartitionFilter, SimTransport};
use crate::wait::{wait_for, wait_until};

/// How long helpers wait for a condition before failing the test.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

pub const CLUSTER_ID: u64 = 1;

/// Why a request did not succeed.
#[derive(Debug, Clone)]
pub enum RequestError {
    Region(Box<errorpb::Error>),
    Timeout,
    /// The store stopped before answering.
    Dropped,
    NoLeader,
}

/// An in-process cluster.
pub struct Cluster {
    pub cfg: Config,
    pub count: usize,
    root: TempDir,
    stores: HashMap<u64, Store>,
    pub transport: Arc<SimTransport>,
    regions: Vec<Region>,
    pub pd: Arc<LocalPd>,
    /// Replaces the config's built-in split policy on stores started afterwards.
    pub split_policy: Option<Arc<dyn SplitPolicy>>,
    /// How stores started afterwards open their raft logs (file size, purge threshold).
    pub raft_log_options: RaftLogOptions,
}

impl Cluster {
    /// A cluster of `count` stores (ids 1..=count) with test timings; nothing started yet.
    pub fn new(count: usize) -> Cluster {
        Cluster::with_config(count, Config::for_tests())
    }

    pub fn with_config(count: usize, cfg: Config) -> Cluster {
        crate::init_logging();
        Cluster {
            cfg,
            count,
            root: tempfile::Builder::new()
                .prefix("shoal-cluster")
                .tempdir()
                .expect("temp dir"),
            stores: HashMap::new(),
            transport: SimTransport::new(),
            regions: Vec::new(),
            pd: Arc::new(LocalPd::new()),
            split_policy: None,
            raft_log_options: RaftLogOptions::default(),
        }
    }

    /// Bootstraps and starts a cluster with one region covering every key.
    pub fn run(count: usize) -> Cluster {
        let mut c = Cluster::new(count);
        c.bootstrap(&[]);
        c.start();
        c
    }

    pub fn store_ids(&self) -> Vec<u64> {
        (1..=self.count as u64).collect()
    }

    pub fn store_dir(&self, store_id: u64) -> PathBuf {
        self.root.path().join(format!("store-{store_id}"))
    }

    pub fn kv_dir(&self, store_id: u64) -> PathBuf {
        self.store_dir(store_id).join("db")
    }

    pub fn raft_dir(&self, store_id: u64) -> PathBuf {
        self.store_dir(store_id).join("raft")
    }

    fn open_engines(&self, store_id: u64) -> raftstore::Result<(KvEngine, RaftLogEngine)> {
        let kv = KvEngine::open(&self.kv_dir(store_id))?;
        let raft = RaftLogEngine::open_with(&self.raft_dir(store_id), &self.raft_log_options)?;
        Ok((kv, raft))
    }

    /// Creates regions split at `split_keys` (sorted), each with a peer on every store.
    /// Region ids are 1.., peer ids are region_id * 1000 + store_id.
    pub fn bootstrap(&mut self, split_keys: &[Vec<u8>]) -> Vec<Region> {
        let stores = self.store_ids();
        self.bootstrap_on(split_keys, &stores)
    }

    /// Bootstraps every store with the key space split at `split_key`, starts the cluster
    /// and waits for both regions' leaders. Returns (left, right).
    pub fn start_two_regions(&mut self, split_key: &[u8]) -> (Region, Region) {
        let regions = self.bootstrap(&[split_key.to_vec()]);
        self.start();
        let left = regions.iter().find(|r| r.start_key.is_empty());
        let right = regions.iter().find(|r| r.end_key.is_empty());
        let (Some(left), Some(right)) = (left.cloned(), right.cloned()) else {
            panic!("bootstrap at {split_key:?} did not make two regions: {regions:?}");
        };
        self.wait_leader(left.id);
        self.wait_leader(right.id);
        (left, right)
    }

    /// Like `bootstrap`, with peers only on `stores`; the other stores start empty.
    pub fn bootstrap_on(&mut self, split_keys: &[Vec<u8>], stores: &[u64]) -> Vec<Region> {
        let mut bounds = vec![Vec::new()];
        bounds.extend(split_keys.iter().cloned());
        bounds.push(Vec::new());
        let mut regions = Vec::new();
        for (i, w) in bounds.windows(2).enumerate() {
            let id = i as u64 + 1;
            regions.push(Region {
                id,
                start_key: w[0].clone(),
                end_key: w[1].clone(),
                region_epoch: Some(RegionEpoch {
                    conf_ver: 1,
                    version: 1,
                }),
                peers: stores
                    .iter()
                    .map(|&s| Peer {
                        id: id * 1000 + s,
                        store_id: s,
                        ..Default::default()
                    })
                    .collect(),
            });
        }
        for store_id in self.store_ids() {
            let (kv, raft) = self.open_engines(store_id).expect("open engines");
            raftstore::bootstrap::bootstrap_store(&kv, CLUSTER_ID, store_id).expect("bootstrap");
            if stores.contains(&store_id) {
                raftstore::bootstrap::bootstrap_regions(&kv, &raft, &regions)
                    .expect("bootstrap regions");
            }
        }
        self.regions = regions.clone();
        regions
    }

    pub fn start(&mut self) {
        for id in self.store_ids() {
            self.start_store(id);
        }
    }

    /// Starts (or restarts) one store on its directories.
    pub fn start_store(&mut self, store_id: u64) {
        self.try_start_store(store_id).expect("start store");
    }

    pub fn try_start_store(&mut self, store_id: u64) -> raftstore::Result<()> {
        assert!(
            !self.stores.contains_key(&store_id),
            "store {store_id} already runs"
        );
        let (kv, raft) = self.open_engines(store_id)?;
        let deps = StoreDeps {
            pd: self.pd.clone(),
            split_policy: self.split_policy.clone(),
        };
        // What the store's peers are sent while they start (answers to a restarted leader's
        // campaign) waits for it, as a server's bound listener keeps it.
        self.transport.expect(store_id);
        let store = match Store::start(self.cfg.clone(), kv, raft, self.transport.clone(), deps) {
            Ok(store) => store,
            Err(e) => {
                self.transport.cancel_expect(store_id);
                return Err(e);
            }
        };
        self.transport.register(
            store_id,
            store.router().clone(),
            raftstore::snap::snap_dir(store.kv()),
        );
        self.stores.insert(store_id, store);
        Ok(())
    }

    /// Stops a store's threads (as a crash would, nothing is flushed on purpose).
    pub fn stop_store(&mut self, store_id: u64) {
        self.transport.unregister(store_id);
        if let Some(s) = self.stores.remove(&store_id) {
            s.stop();
        }
    }

    /// Restarts (stops, then starts with `self.cfg`) every store except `store_id`, one at a
    /// time, e.g. to give a region's followers other settings than its leader's.
    pub fn restart_stores_except(&mut self, store_id: u64) {
        for s in self.store_ids() {
            if s != store_id {
                self.stop_store(s);
                self.start_store(s);
            }
        }
    }

    /// The lowest-numbered store other than `store_id`, e.g. one holding a follower of a
    /// region led from `store_id`.
    pub fn store_other_than(&self, store_id: u64) -> u64 {
        self.store_ids()
            .into_iter()
            .find(|s| *s != store_id)
            .expect("the cluster has another store")
    }

    pub fn is_running(&self, store_id: u64) -> bool {
        self.stores.contains_key(&store_id)
    }

    pub fn store(&self, store_id: u64) -> &Store {
        self.stores.get(&store_id).expect("store is running")
    }

    pub fn add_filter(&self, f: impl Filter + 'static) {
        self.transport.add_filter(Arc::new(f));
    }

    pub fn clear_filters(&self) {
        self.transport.clear_filters();
    }

    pub fn partition(&self, a: &[u64], b: &[u64]) {
        self.add_filter(PartitionFilter::new(&[a, b]));
    }

    pub fn isolate(&self, store_id: u64) {
        self.add_filter(IsolationFilter(store_id));
    }

    pub fn bootstrapped_regions(&self) -> &[Region] {
        &self.regions
    }

    /// Leaders of `region_id` per running store, as (peer, term), from the stores' own view.
    pub fn leaders(&self, region_id: u64) -> Vec<(Peer, u64)> {
        let mut out = Vec::new();
        for (store_id, store) in &self.stores {
            let meta = store.meta().lock();
            if let Some(d) = meta.readers.get(&region_id) {
                let term = d.term();
                if term != 0 {
                    out.push((
                        Peer {
                            id: d.peer_id,
                            store_id: *store_id,
                            ..Default::default()
                        },
                        term,
                    ));
                }
            }
        }
        out
    }

    /// The highest raft term any running store's peer of `region_id` reports (0 if none
    /// knows the region): the current leadership's term once a leader is settled.
    pub fn newest_term(&self, region_id: u64) -> u64 {
        self.leaders(region_id)
            .into_iter()
            .map(|(_, term)| term)
            .max()
            .unwrap_or(0)
    }

    /// Whether the peer of `region_id` on `store_id` has stopped its raft clock.
    pub fn is_hibernating(&self, store_id: u64, region_id: u64) -> bool {
        self.store(store_id)
            .meta()
            .lock()
            .readers
            .get(&region_id)
            .is_some_and(|d| d.is_hibernating())
    }

    /// Waits until every running store's peer of `region_id` hibernates.
    pub fn wait_region_hibernated(&self, region_id: u64) -> bool {
        wait_until(DEFAULT_TIMEOUT, || {
            self.stores
                .keys()
                .all(|s| self.is_hibernating(*s, region_id))
        })
    }

    /// The leader with the highest term among running stores.
    pub fn leader_of(&self, region_id: u64) -> Option<Peer> {
        self.leaders(region_id)
            .into_iter()
            .max_by_key(|(_, t)| *t)
            .map(|(p, _)| p)
    }

    pub fn wait_leader(&self, region_id: u64) -> Peer {
        wait_for(DEFAULT_TIMEOUT, || self.leader_of(region_id))
            .unwrap_or_else(|| panic!("region {region_id} elected no leader"))
    }

    /// Waits for a leader of `region_id` on a store other than `store_id` (e.g. after the
    /// leader there was isolated).
    pub fn wait_leader_elsewhere(&self, region_id: u64, store_id: u64) -> Peer {
        wait_for(DEFAULT_TIMEOUT, || {
            self.leaders(region_id)
                .into_iter()
                .filter(|(p, _)| p.store_id != store_id)
                .max_by_key(|(_, t)| *t)
                .map(|(p, _)| p)
        })
        .unwrap_or_else(|| panic!("region {region_id} elected no leader off store {store_id}"))
    }

    /// The newest version of the region holding `key` known to any running store.
    pub fn region_for_key(&self, key: &[u8]) -> Option<Region> {
        self.stores
            .values()
            .filter_map(|s| s.meta().lock().search_region(key).cloned())
            .max_by_key(|r| r.region_epoch.as_ref().map_or(0, |e| e.version))
    }

    pub fn region(&self, region_id: u64) -> Option<Region> {
        self.stores
            .values()
            .filter_map(|s| s.meta().lock().region(region_id).cloned())
            .max_by_key(|r| {
                r.region_epoch
                    .as_ref()
                    .map_or((0, 0), |e| (e.version, e.conf_ver))
            })
    }

    /// Sends one command to a given store and waits for the answer.
    pub fn call_on_store(
        &self,
        store_id: u64,
        req: RaftCmdRequest,
        timeout: Duration,
    ) -> Result<CmdResponse, RequestError> {
        let Some(store) = self.stores.get(&store_id) else {
            return Err(RequestError::Dropped);
        };
        let (tx, rx) = crossbeam_channel::bounded(1);
        store.propose(
            req,
            Callback::new(move |resp| {
                let _ = tx.send(resp);
            }),
        );
        match rx.recv_timeout(timeout) {
            Ok(resp) => Ok(resp),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => Err(RequestError::Timeout),
            Err(_) => Err(RequestError::Dropped),
        }
    }

    /// Builds a request for the region of `key` addressed to `peer`.
    pub fn new_request(region: &Region, peer: Peer, requests: Vec<Request>) -> RaftCmdRequest {
        RaftCmdRequest {
            header: Some(RaftRequestHeader {
                region_id: region.id,
                peer: Some(peer),
                region_epoch: region.region_epoch,
                ..Default::default()
            }),
            requests,
            admin_request: None,
        }
    }

    /// Sends `requests` for `key` to its region's leader once.
    pub fn request_once(
        &self,
        key: &[u8],
        requests: Vec<Request>,
        read_quorum: bool,
        timeout: Duration,
    ) -> Result<RaftCmdResponse, RequestError> {
        let region = self.region_for_key(key).ok_or(RequestError::NoLeader)?;
        let leader = self.leader_of(region.id).ok_or(RequestError::NoLeader)?;
        let store_id = leader.store_id;
        let mut req = Cluster::new_request(&region, leader, requests);
        if let Some(h) = req.header.as_mut() {
            h.read_quorum = read_quorum;
        }
        let resp = self.call_on_store(store_id, req, timeout)?.response;
        match resp.header.as_ref().and_then(|h| h.error.clone()) {
            Some(e) => Err(RequestError::Region(Box::new(e))),
            None => Ok(resp),
        }
    }

    /// Retries a request across leader changes until it succeeds or `timeout` passes.
    pub fn request(
        &self,
        key: &[u8],
        requests: Vec<Request>,
        read_quorum: bool,
        timeout: Duration,
    ) -> Result<RaftCmdResponse, RequestError> {
        let deadline = Instant::now() + timeout;
        let mut last = RequestError::Timeout;
        while Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.request_once(
                key,
                requests.clone(),
                read_quorum,
                left.min(Duration::from_secs(2)),
            ) {
                Ok(r) => return Ok(r),
                Err(e) => {
                    last = e;
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
        Err(last)
    }

    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<(), RequestError> {
        self.request(key, vec![put_request(key, value)], false, DEFAULT_TIMEOUT)
            .map(|_| ())
    }

    pub fn must_put(&self, key: &[u8], value: &[u8]) {
        if let Err(e) = self.put(key, value) {
            panic!("put {:?} failed: {e:?}", String::from_utf8_lossy(key));
        }
    }

    pub fn must_delete(&self, key: &[u8]) {
        let req = Request {
            cmd_type: CmdType::Delete as i32,
            delete: Some(DeleteRequest {
                cf: String::new(),
                key: key.to_vec(),
            }),
            ..Default::default()
        };
        if let Err(e) = self.request(key, vec![req], false, DEFAULT_TIMEOUT) {
            panic!("delete failed: {e:?}");
        }
    }

    /// A linearizable read through the region's leader.
    pub fn get(&self, key: &[u8], read_quorum: bool) -> Result<Option<Vec<u8>>, RequestError> {
        let resp = self.request(key, vec![get_request(key)], read_quorum, DEFAULT_TIMEOUT)?;
        Ok(get_value(&resp))
    }

    pub fn must_get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.get(key, false)
            .unwrap_or_else(|e| panic!("get {:?} failed: {e:?}", String::from_utf8_lossy(key)))
    }

    /// Reads a key straight from one store's state machine.
    pub fn engine_get(&self, store_id: u64, key: &[u8]) -> Option<Vec<u8>> {
        self.store(store_id)
            .kv()
            .get_value_cf(CF_DEFAULT, &keys::data_key(key))
            .expect("engine read")
    }

    /// Waits until a store's state machine holds `value` for `key` (None = absent).
    pub fn must_engine_eq(&self, store_id: u64, key: &[u8], value: Option<&[u8]>) {
        let ok = wait_until(DEFAULT_TIMEOUT, || {
            self.engine_get(store_id, key).as_deref() == value
        });
        assert!(
            ok,
            "store {store_id}: key {:?} is {:?}, want {:?}",
            String::from_utf8_lossy(key),
            self.engine_get(store_id, key),
            value
        );
    }

    /// Asks the leader of `region_id` to hand leadership to `target`; returns the answer's error
    /// if it refused.
    pub fn transfer_leader(&self, region_id: u64, target: Peer) -> Result<(), RequestError> {
        let region = self.region(region_id).ok_or(RequestError::NoLeader)?;
        let leader = self.leader_of(region_id).ok_or(RequestError::NoLeader)?;
        let mut req = Cluster::new_request(&region, leader, vec![]);
        req.admin_request = Some(proto::raft_cmdpb::AdminRequest {
            cmd_type: proto::raft_cmdpb::AdminCmdType::TransferLeader as i32,
            transfer_leader: Some(proto::raft_cmdpb::TransferLeaderRequest {
                peer: Some(target),
                peers: vec![],
            }),
            ..Default::default()
        });
        let resp = self
            .call_on_store(leader.store_id, req, DEFAULT_TIMEOUT)?
            .response;
        match resp.header.and_then(|h| h.error) {
            Some(e) => Err(RequestError::Region(Box::new(e))),
            None => Ok(()),
        }
    }

    /// Proposes a membership change through the leader; returns the new region.
    pub fn change_peers(
        &self,
        region_id: u64,
        changes: Vec<(proto::raft_cmdpb::ConfChangeType, Peer)>,
    ) -> Result<Region, RequestError> {
        let region = self.region(region_id).ok_or(RequestError::NoLeader)?;
        let leader = self.leader_of(region_id).ok_or(RequestError::NoLeader)?;
        let mut req = Cluster::new_request(&region, leader, vec![]);
        req.admin_request = Some(proto::raft_cmdpb::AdminRequest {
            cmd_type: proto::raft_cmdpb::AdminCmdType::ChangePeerV2 as i32,
            change_peer_v2: Some(proto::raft_cmdpb::ChangePeerV2Request {
                changes: changes
                    .into_iter()
                    .map(|(ty, peer)| proto::raft_cmdpb::ChangePeerRequest {
                        change_type: ty as i32,
                        peer: Some(peer),
                    })
                    .collect(),
            }),
            ..Default::default()
        });
        let resp = self
            .call_on_store(leader.store_id, req, DEFAULT_TIMEOUT)?
            .response;
        if let Some(e) = resp.header.as_ref().and_then(|h| h.error.clone()) {
            return Err(RequestError::Region(Box::new(e)));
        }
        resp.admin_response
            .and_then(|a| a.change_peer_v2)
            .and_then(|c| c.region)
            .ok_or(RequestError::Dropped)
    }

    /// Like `change_peers`, retrying leader changes; panics on refusal.
    pub fn must_change_peers(
        &self,
        region_id: u64,
        changes: Vec<(proto::raft_cmdpb::ConfChangeType, Peer)>,
    ) -> Region {
        let deadline = Instant::now() + DEFAULT_TIMEOUT;
        loop {
            match self.change_peers(region_id, changes.clone()) {
                Ok(r) => {
                    // Answers come right after apply; wait until the stores' view shows it.
                    let want = r.region_epoch.map_or(0, |e| e.conf_ver);
                    wait_until(DEFAULT_TIMEOUT, || {
                        self.region(region_id)
                            .and_then(|x| x.region_epoch)
                            .is_some_and(|e| e.conf_ver >= want)
                    });
                    return r;
                }
                Err(RequestError::Region(e))
                    if e.not_leader.is_none()
                        && e.epoch_not_match.is_none()
                        && e.server_is_busy.is_none() =>
                {
                    panic!("membership change refused: {}", e.message)
                }
                Err(e) if Instant::now() >= deadline => panic!("membership change failed: {e:?}"),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Transfers leadership and waits until `target` leads.
    pub fn must_transfer_leader(&self, region_id: u64, target: Peer) {
        let ok = wait_until(DEFAULT_TIMEOUT, || {
            if self.leader_of(region_id).is_some_and(|l| l.id == target.id) {
                return true;
            }
            let _ = self.transfer_leader(region_id, target);
            std::thread::sleep(Duration::from_millis(20));
            false
        });
        assert!(
            ok,
            "leadership of region {region_id} did not move to {target:?}"
        );
    }

    /// Splits the region holding `split_keys[0]` at `split_keys` through its leader; returns
    /// the regions the split produced (left to right).
    pub fn split(&self, split_keys: &[&[u8]]) -> Result<Vec<Region>, RequestError> {
        let deadline = Instant::now() + DEFAULT_TIMEOUT;
        loop {
            let attempt = self.split_once(split_keys);
            match attempt {
                Ok(regions) => return Ok(regions),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(RequestError::Region(e))
                    if e.epoch_not_match.is_none() && e.not_leader.is_none() =>
                {
                    return Err(RequestError::Region(e))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    fn split_once(&self, split_keys: &[&[u8]]) -> Result<Vec<Region>, RequestError> {
        let region = self
            .region_for_key(split_keys[0])
            .ok_or(RequestError::NoLeader)?;
        let leader = self.leader_of(region.id).ok_or(RequestError::NoLeader)?;
        let store = self
            .stores
            .get(&leader.store_id)
            .ok_or(RequestError::Dropped)?;
        let (tx, rx) = crossbeam_channel::bounded(1);
        store.split_region(
            &region,
            split_keys.iter().map(|k| k.to_vec()).collect(),
            Callback::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        let resp = match rx.recv_timeout(DEFAULT_TIMEOUT) {
            Ok(r) => r.response,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => return Err(RequestError::Timeout),
            Err(_) => return Err(RequestError::Dropped),
        };
        if let Some(e) = resp.header.as_ref().and_then(|h| h.error.clone()) {
            return Err(RequestError::Region(Box::new(e)));
        }
        let mut regions = resp
            .admin_response
            .and_then(|a| a.splits)
            .map(|s| s.regions)
            .unwrap_or_default();
        regions.sort_by(|a, b| a.start_key.cmp(&b.start_key));
        Ok(regions)
    }

    /// Splits and waits until every new region has a leader.
    pub fn must_split(&self, split_keys: &[&[u8]]) -> Vec<Region> {
        let regions = self
            .split(split_keys)
            .unwrap_or_else(|e| panic!("split at {split_keys:?} failed: {e:?}"));
        for r in &regions {
            self.wait_leader(r.id);
        }
        regions
    }

    /// Hands `store_id` an operator step as PD would on its heartbeat stream.
    pub fn pd_operator(&self, store_id: u64, step: proto::pdpb::RegionHeartbeatResponse) {
        self.store(store_id).on_pd_operator(step);
    }

    /// Stops every store.
    pub fn shutdown(&mut self) {
        for id in self.store_ids() {
            self.stop_store(id);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown();
        self.transport.shutdown();
    }
}

pub fn put_request(key: &[u8], value: &[u8]) -> Request {
    Request {
        cmd_type: CmdType::Put as i32,
        put: Some(PutRequest {
            cf: String::new(),
            key: key.to_vec(),
            value: value.to_vec(),
        }),
        ..Default::default()
    }
}

pub fn get_request(key: &[u8]) -> Request {
    Request {
        cmd_type: CmdType::Get as i32,
        get: Some(GetRequest {
            cf: String::new(),
            key: key.to_vec(),
        }),
        ..Default::default()
    }
}

/// The value of the first Get in a response.
pub fn get_value(resp: &RaftCmdResponse) -> Option<Vec<u8>> {
    let g = resp.responses.first()?.get.as_ref()?;
    (!g.not_found).then(|| g.value.clone())
}

/// The operator step PD sends the source's leader to merge `source` into `target` (a region
/// heartbeat response carrying `Merge`); PD resends it with every heartbeat until the merge
/// is done.
pub fn merge_step(source: &Region, target: &Region) -> proto::pdpb::RegionHeartbeatResponse {
    proto::pdpb::RegionHeartbeatResponse {
        region_id: source.id,
        region_epoch: source.region_epoch,
        merge: Some(proto::pdpb::Merge {
            target: Some(target.clone()),
        }),
        ..Default::default()
    }
}
