//! What crosses between a region's peer (raft pollers) and its apply FSM (apply pool):
//! committed entries with their proposals' callbacks going one way, apply results with the
//! side effects of admin commands coming back.

use proto::eraftpb::Entry;
use proto::metapb::Region;
use proto::raft_serverpb::RaftApplyState;

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
    /// When the peer handed the entries over (for `shoal_raftstore_commit_to_apply_seconds`).
    pub committed_at: std::time::Instant,
}

/// A snapshot replaced the region's data and state.
pub struct AppliedSnapshot {
    pub region: Region,
    pub apply_state: RaftApplyState,
    pub peer_id: u64,
}

/// What an apply FSM's mailbox carries. Large payloads are boxed: every region's mailbox
/// keeps a block of 31 message slots allocated, so the size of this type is paid per region
/// even when idle.
pub enum ApplyMsg {
    Apply(Box<Apply>),
    Snapshot(Box<AppliedSnapshot>),
    /// The region's peer is being removed: stop, and once this round's writes are durable,
    /// answer `PeerMsg::ApplyDestroyed`. Entries queued before it are applied first (FIFO).
    Destroy {
        peer_id: u64,
    },
    /// The local peer of merge source `source_id` has applied everything up to its
    /// PrepareMerge: the `CommitMerge` this FSM is waiting on can apply now.
    MergeSourceReady {
        source_id: u64,
    },
    /// The region went idle (hibernated): once nothing is queued, give back the mailbox's
    /// message buffer (`MailboxReceiver::release_memory`).
    ReleaseMemory,
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
    /// This region (the merge source) now takes no writes; `state` says where it goes.
    PrepareMerge {
        region: Region,
        state: proto::raft_serverpb::MergeState,
    },
    /// This region (the merge target) took in `source`'s range and is now `region`.
    CommitMerge {
        region: Region,
        source: Region,
    },
    /// The merge this region prepared is called off; it takes writes again as `region`.
    RollbackMerge {
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
