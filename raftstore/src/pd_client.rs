//! What the store needs from the placement driver. The fleet wires this to PD over gRPC;
//! in-process clusters use a local allocator.

use proto::metapb::Region;
use proto::pdpb::{RegionHeartbeatRequest, StoreStats};

use crate::errors::Result;

/// Ids for one new region of a split: the region id and one peer id per existing peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitIds {
    pub new_region_id: u64,
    pub new_peer_ids: Vec<u64>,
}

pub trait PdClient: Send + Sync {
    /// Allocates ids for `count` new regions split off `region`. May block; it is only
    /// called from worker threads.
    fn ask_batch_split(&self, region: &Region, count: usize) -> Result<Vec<SplitIds>>;

    /// Reports the regions a split produced.
    fn report_batch_split(&self, _regions: &[Region]) {}

    /// A region leader's report (region meta, leader, down/pending peers, sizes, flow).
    /// Called from raft pollers: must not block. `header` is left empty.
    fn region_heartbeat(&self, _req: RegionHeartbeatRequest) {}

    /// The store's periodic statistics. Must not block.
    fn store_heartbeat(&self, _stats: StoreStats) {}

    /// How many times the region heartbeat stream has been (re)opened (wrapping); it grows when PD
    /// restarts or its leader changes. PD learns which stream reaches a store only from a
    /// region report sent on it, so a leader whose last report went out on an older stream
    /// reports again at its next tick instead of staying quiet (see
    /// [`crate::peer::pd_stats::may_skip_report`]). Must not block.
    fn heartbeat_session(&self) -> u32 {
        0
    }
}
