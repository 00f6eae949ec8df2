//! A local stand-in for PD, shared by the stores of one cluster: it hands out ids and records
//! what the stores report (region and store heartbeats) so tests can inspect it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use proto::metapb::Region;
use proto::pdpb::{RegionHeartbeatRequest, StoreStats};
use raftstore::{PdClient, SplitIds};

use crate::wait::wait_for;

/// The newest report of one region and the flow summed over all its reports (stale ones too).
#[derive(Clone, Debug, Default)]
pub struct RegionReports {
    pub latest: RegionHeartbeatRequest,
    /// When the latest report arrived.
    pub received: Option<Instant>,
    /// How many reports were accepted.
    pub count: u64,
    pub bytes_written: u64,
    pub keys_written: u64,
    pub bytes_read: u64,
    pub keys_read: u64,
}

pub struct LocalPd {
    next_id: AtomicU64,
    /// Every region reported by a split, in report order.
    pub reported: Mutex<Vec<Region>>,
    regions: Mutex<HashMap<u64, RegionReports>>,
    stores: Mutex<HashMap<u64, StoreStats>>,
    /// How many statistics reports each store sent.
    store_reports: Mutex<HashMap<u64, u64>>,
}

impl LocalPd {
    /// Ids start high so they never collide with the ids bootstrap hands out.
    pub fn new() -> LocalPd {
        LocalPd {
            next_id: AtomicU64::new(1_000_000),
            reported: Mutex::new(Vec::new()),
            regions: Mutex::new(HashMap::new()),
            stores: Mutex::new(HashMap::new()),
            store_reports: Mutex::new(HashMap::new()),
        }
    }

    pub fn alloc_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The newest accepted heartbeat of a region.
    pub fn region_heartbeat(&self, region_id: u64) -> Option<RegionHeartbeatRequest> {
        self.regions
            .lock()
            .get(&region_id)
            .map(|r| r.latest.clone())
    }

    /// Everything recorded about a region's reports.
    pub fn region_reports(&self, region_id: u64) -> Option<RegionReports> {
        self.regions.lock().get(&region_id).cloned()
    }

    /// The newest statistics a store reported.
    pub fn store_stats(&self, store_id: u64) -> Option<StoreStats> {
        self.stores.lock().get(&store_id).cloned()
    }

    /// How many statistics reports `store_id` has sent (a clock ticking at the store
    /// heartbeat interval).
    pub fn store_report_count(&self, store_id: u64) -> u64 {
        self.store_reports
            .lock()
            .get(&store_id)
            .copied()
            .unwrap_or(0)
    }

    /// Waits until the newest heartbeat of `region_id` satisfies `pred`.
    pub fn wait_region_heartbeat(
        &self,
        region_id: u64,
        timeout: Duration,
        mut pred: impl FnMut(&RegionHeartbeatRequest) -> bool,
    ) -> Option<RegionHeartbeatRequest> {
        wait_for(timeout, || {
            self.region_heartbeat(region_id).filter(|r| pred(r))
        })
    }

    /// Waits until the newest statistics of `store_id` satisfy `pred`.
    pub fn wait_store_stats(
        &self,
        store_id: u64,
        timeout: Duration,
        mut pred: impl FnMut(&StoreStats) -> bool,
    ) -> Option<StoreStats> {
        wait_for(timeout, || self.store_stats(store_id).filter(|s| pred(s)))
    }
}

impl Default for LocalPd {
    fn default() -> Self {
        LocalPd::new()
    }
}

/// Whether `new` may replace `old` as a region's report: like PD, never go back to an older
/// epoch or an older leader term.
fn supersedes(new: &RegionHeartbeatRequest, old: &RegionHeartbeatRequest) -> bool {
    let epoch = |r: &RegionHeartbeatRequest| {
        r.region
            .as_ref()
            .and_then(|r| r.region_epoch)
            .unwrap_or_default()
    };
    let (n, o) = (epoch(new), epoch(old));
    n.version >= o.version && n.conf_ver >= o.conf_ver && new.term >= old.term
}

impl PdClient for LocalPd {
    fn ask_batch_split(&self, region: &Region, count: usize) -> raftstore::Result<Vec<SplitIds>> {
        Ok((0..count)
            .map(|_| SplitIds {
                new_region_id: self.alloc_id(),
                new_peer_ids: region.peers.iter().map(|_| self.alloc_id()).collect(),
            })
            .collect())
    }

    fn report_batch_split(&self, regions: &[Region]) {
        self.reported.lock().extend(regions.iter().cloned());
    }

    fn region_heartbeat(&self, req: RegionHeartbeatRequest) {
        let Some(region_id) = req.region.as_ref().map(|r| r.id) else {
            return;
        };
        let mut regions = self.regions.lock();
        let entry = regions.entry(region_id).or_default();
        // Like PD, the flow of a stale report still counts: a leader that steps down reports
        // what it served last, possibly after the next leader's first report.
        entry.bytes_written += req.bytes_written;
        entry.keys_written += req.keys_written;
        entry.bytes_read += req.bytes_read;
        entry.keys_read += req.keys_read;
        if entry.count > 0 && !supersedes(&req, &entry.latest) {
            return;
        }
        entry.count += 1;
        entry.received = Some(Instant::now());
        entry.latest = req;
    }

    fn store_heartbeat(&self, stats: StoreStats) {
        *self.store_reports.lock().entry(stats.store_id).or_default() += 1;
        self.stores.lock().insert(stats.store_id, stats);
    }
}
