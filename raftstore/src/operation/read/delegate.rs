//! The read delegate: what a lease read on the caller's thread needs to know about a region's
//! local peer (region, term, applied term, lease, hibernation, load), kept up to date by the
//! peer and readable from any thread without the raft pollers. `StoreMeta::readers` holds one
//! per region.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::RwLock;
use proto::metapb::Region;

use crate::operation::read::lease::RemoteLease;
use crate::split_policy::LoadStats;
use crate::stats::{Flow, FlowCounter};

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
