//! The apply pool: a second batch system whose FSMs are one `ApplyFsm` per region. Committed
//! entries of many regions are written in one RocksDB batch per round together with each
//! region's applied index, then callbacks fire and results go back to the peers.

mod conf_change;
pub mod exec;
mod split;

use batch_system::Router;
use proto::eraftpb::Entry;
use proto::metapb::Region;
use proto::raft_serverpb::RaftApplyState;

use crate::errors::{Error, Result};
pub use crate::fsm::apply::{ApplyControlFsm, ApplyFsm, ApplyPollerBuilder};
use crate::msg::Callback;

/// A proposal's callback, waiting for its entry to be applied.
pub struct PendingCmd {
    pub index: u64,
    pub term: u64,
    pub callback: Callback,
}

/// Committed entries for one region, in log order.
pub struct Apply {
    pub peer_id: u64,
    /// The peer's term when it sent them (responses carry it).
    pub term: u64,
    pub entries: Vec<Entry>,
    /// Callbacks of the entries this peer proposed, in index order.
    pub cmds: Vec<PendingCmd>,
}

pub enum ApplyMsg {
    Apply(Apply),
    /// A snapshot replaced the region's data and state.
    Snapshot {
        region: Region,
        apply_state: RaftApplyState,
        peer_id: u64,
    },
    /// The region's peer is being removed: stop, and once this round's writes are durable,
    /// answer `PeerMsg::ApplyDestroyed`. Entries queued before it are applied first (FIFO).
    Destroy {
        peer_id: u64,
    },
}

/// Side effects of admin commands that the peer must act on.
#[derive(Debug, Clone, PartialEq)]
pub enum ExecResult {
    CompactLog {
        truncated_index: u64,
    },
    /// The region shrank to `derived`; `regions` were split off it.
    SplitRegion {
        derived: Region,
        regions: Vec<Region>,
    },
    /// Membership changed; raft-rs must apply `cc` too.
    ChangePeer {
        cc: proto::eraftpb::ConfChangeV2,
        region: Region,
    },
}

/// What the apply pool reports to a peer after a round.
#[derive(Debug)]
pub struct ApplyRes {
    pub region_id: u64,
    pub apply_state: RaftApplyState,
    pub applied_term: u64,
    pub exec_results: Vec<ExecResult>,
    /// Bytes and keys the applied puts and deletes wrote.
    pub written: crate::stats::Flow,
}

/// Routes apply work to regions' apply FSMs.
#[derive(Clone)]
pub struct ApplyRouter {
    pub inner: Router<ApplyFsm, ApplyControlFsm>,
}

impl ApplyRouter {
    pub fn send(&self, region_id: u64, msg: ApplyMsg) -> Result<()> {
        self.inner
            .force_send(region_id, msg)
            .map_err(|_| Error::RegionNotFound(region_id))
    }
}
