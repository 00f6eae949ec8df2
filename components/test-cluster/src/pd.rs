//! A local stand-in for PD's id allocation, shared by the stores of one cluster.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use proto::metapb::Region;
use raftstore::{PdClient, SplitIds};

pub struct LocalPd {
    next_id: AtomicU64,
    /// Every region reported by a split, in report order.
    pub reported: Mutex<Vec<Region>>,
}

impl LocalPd {
    /// Ids start high so they never collide with the ids bootstrap hands out.
    pub fn new() -> LocalPd {
        LocalPd {
            next_id: AtomicU64::new(1_000_000),
            reported: Mutex::new(Vec::new()),
        }
    }

    pub fn alloc_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

impl Default for LocalPd {
    fn default() -> Self {
        LocalPd::new()
    }
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
}
