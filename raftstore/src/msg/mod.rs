//! The one home of messages that cross threads, beside the routers that carry them: what
//! flows into peer and store mailboxes and the callbacks that answer commands (here), what
//! flows to and from the apply pool (`apply`), and the routers that carry them to the raft
//! pollers (`router`) and to the apply pool (`apply_router`).

pub mod apply;
pub mod apply_router;
pub mod router;

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use engine::KvSnapshot;
use proto::metapb;
use proto::raft_cmdpb::{RaftCmdRequest, RaftCmdResponse};
use proto::raft_serverpb::RaftMessage;

use crate::msg::apply::ApplyRes;
use crate::operation::read::delegate::ReadDelegate;
use crate::stats::{Flow, StoreFlow};

/// A consistent view of one region's data, taken when a read was served.
#[derive(Clone)]
pub struct RegionSnapshot {
    pub snapshot: KvSnapshot,
    pub region: Arc<metapb::Region>,
    /// The leader's raft term when the snapshot was taken. A write computed from this
    /// snapshot carries it in `RaftRequestHeader.term`, and the leader refuses the write
    /// (`StaleCommand`) once its term is more than one past it: by then another leader may
    /// have committed writes the snapshot does not show (TiKV's `check_term`).
    pub term: u64,
    /// Where a reader of the snapshot counts what it read; `None` for snapshots taken for a
    /// write's read-modify-write check that nobody reports.
    pub(crate) read_recorder: Option<ReadRecorder>,
}

impl RegionSnapshot {
    /// Counts `bytes` (keys + values) and `keys` a caller read from the snapshot, so the
    /// region's leader reports them to PD as read flow (region heartbeats' `bytes_read` and
    /// `keys_read`, which PD's hot-region views and key-space heatmap show).
    pub fn record_read(&self, bytes: u64, keys: u64) {
        if let Some(recorder) = &self.read_recorder {
            recorder.record(Flow { bytes, keys });
        }
    }
}

/// The read-flow counters of the region a snapshot was taken of and of its store.
#[derive(Clone)]
pub(crate) struct ReadRecorder {
    pub region: Arc<ReadDelegate>,
    pub store: Arc<StoreFlow>,
}

impl ReadRecorder {
    pub fn record(&self, flow: Flow) {
        self.region.record_read(flow);
        self.store.read.add(flow.bytes, flow.keys);
    }
}

/// What a command's caller receives.
pub struct CmdResponse {
    pub response: RaftCmdResponse,
    /// Present for successful reads that asked for a snapshot (`Snap`).
    pub snapshot: Option<RegionSnapshot>,
}

impl CmdResponse {
    pub fn new(response: RaftCmdResponse) -> CmdResponse {
        CmdResponse {
            response,
            snapshot: None,
        }
    }
}

/// Invoked exactly once with the command's outcome.
pub struct Callback(Option<Box<dyn FnOnce(CmdResponse) + Send>>);

impl Callback {
    pub fn new(f: impl FnOnce(CmdResponse) + Send + 'static) -> Callback {
        Callback(Some(Box::new(f)))
    }

    /// A callback nobody waits for (internal proposals such as log compaction).
    pub fn none() -> Callback {
        Callback(None)
    }

    pub fn invoke(mut self, resp: CmdResponse) {
        if let Some(f) = self.0.take() {
            f(resp)
        }
    }

    pub fn invoke_with(self, response: RaftCmdResponse) {
        self.invoke(CmdResponse::new(response))
    }

    pub fn is_none(&self) -> bool {
        self.0.is_none()
    }
}

impl fmt::Debug for Callback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Callback({})",
            if self.0.is_some() { "set" } else { "none" }
        )
    }
}

/// A request for a region's raft group, with its answer callback.
pub struct RaftCommand {
    pub request: RaftCmdRequest,
    pub callback: Callback,
    pub send_time: Instant,
}

impl RaftCommand {
    pub fn new(request: RaftCmdRequest, callback: Callback) -> RaftCommand {
        RaftCommand {
            request,
            callback,
            send_time: Instant::now(),
        }
    }
}

/// Periodic work of a peer; each tick is one-shot and re-registered by its handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PeerTick {
    Raft,
    RaftLogGc,
    SplitCheck,
    /// A leader reports its region to PD; keeps running while the region hibernates.
    PdHeartbeat,
    /// A merging region pushes its merge on (`operation::command::merge`).
    CheckMerge,
    /// A follower that restarted asleep and still knows no leader wakes up
    /// (`Peer::start_asleep`); fires once.
    AwaitLeader,
}

/// Periodic work of a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StoreTick {
    /// Ping peer stores and detect unreachable ones.
    StoreHeartbeat,
    /// Let the raft log engine reclaim files.
    PurgeRaftLog,
    /// Report the store's statistics to PD.
    PdStoreHeartbeat,
}

/// Messages that must not be dropped (they change a peer's view of the world).
#[derive(Debug)]
pub enum SignificantMsg {
    /// The store has not been heard from: followers whose leader lives there wake up.
    StoreUnreachable { store_id: u64 },
    /// The region heartbeat stream to PD was opened again (PD restarted or its leader
    /// changed): leaders report within one PD heartbeat interval, even if asleep with
    /// nothing new, since the PD now listening may not have heard them.
    PdReconnected,
}

/// A split the split checker or an operator asks of a peer: at `split_keys`, with the new
/// regions' `ids`, if the region's epoch is still `region_epoch`.
pub struct SplitRegion {
    pub region_epoch: proto::metapb::RegionEpoch,
    pub split_keys: Vec<Vec<u8>>,
    pub ids: Vec<crate::pd_client::SplitIds>,
    pub callback: Callback,
}

/// Everything a peer's mailbox carries, handled in FIFO order. Large payloads are boxed:
/// every peer's mailbox keeps a block of 31 message slots allocated, so the size of this type
/// is paid per peer even when idle.
pub enum PeerMsg {
    RaftMessage(Box<RaftMessage>),
    RaftCommand(Box<RaftCommand>),
    Tick(PeerTick),
    /// The log writer made the peer's readies up to `ready_number` durable.
    Persisted {
        peer_id: u64,
        ready_number: u64,
    },
    ApplyRes(Box<ApplyRes>),
    /// The region's apply FSM stopped after writing everything queued before its `Destroy`;
    /// nothing of the region is left in flight in the apply pool.
    ApplyDestroyed {
        peer_id: u64,
    },
    Significant(SignificantMsg),
    /// Sent once after the peer's mailbox is registered.
    Start,
    /// A received snapshot whose files the region worker checked: step it.
    VerifiedSnapshot(Box<RaftMessage>),
    /// The region worker finished a snapshot this peer asked for.
    SnapshotGenerated,
    /// The region worker ingested the snapshot peer `peer_id` began applying (or could not:
    /// the error says why; boxed to keep the message small).
    SnapshotApplied {
        peer_id: u64,
        result: std::result::Result<(), Box<String>>,
    },
    /// Split the region at these keys with these new ids (from the split checker or an
    /// operator), if its epoch is still `region_epoch`.
    SplitRegion(Box<SplitRegion>),
    /// The target's apply FSM waits for this merge source to apply everything up to its
    /// PrepareMerge (`request.commit`); the request carries the source's log entries this
    /// peer may lack.
    CatchUpLogs {
        target_region_id: u64,
        request: Box<proto::raft_cmdpb::CommitMergeRequest>,
    },
    /// The target region took in this region's range: the peer goes, its data stays.
    MergeResult {
        target_region_id: u64,
    },
    /// One operator step PD sent for this region.
    PdOperator(Box<proto::pdpb::RegionHeartbeatResponse>),
    /// The split checker measured the region's data.
    RegionSize(Box<MeasuredRegion>),
    /// The raft log engine, past its purge threshold, finds many of this region's entries in
    /// its oldest files: a leader compacts its log now (TiKV's `ForceCompactRaftLogs`).
    ForceCompactLog,
}

/// A busy peer's mailbox keeps a block of 31 `PeerMsg` slots (about 1 KiB at 24 bytes,
/// 1.5 KiB at 40; a hibernating peer gives it back), so the message stays at three words:
/// anything larger goes in a box.
const _: () = assert!(std::mem::size_of::<PeerMsg>() <= 24);

/// What the split checker measured of a region's data, as it was at `region_epoch`.
pub struct MeasuredRegion {
    pub region_epoch: proto::metapb::RegionEpoch,
    /// Bytes (keys and values, approximate).
    pub size: u64,
    pub keys: u64,
}

impl fmt::Debug for PeerMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerMsg::RaftMessage(m) => write!(f, "RaftMessage(region {})", m.region_id),
            PeerMsg::RaftCommand(_) => write!(f, "RaftCommand"),
            PeerMsg::Tick(t) => write!(f, "Tick({t:?})"),
            PeerMsg::Persisted { ready_number, .. } => write!(f, "Persisted({ready_number})"),
            PeerMsg::ApplyRes(r) => write!(f, "ApplyRes(region {})", r.region_id),
            PeerMsg::ApplyDestroyed { peer_id } => write!(f, "ApplyDestroyed(peer {peer_id})"),
            PeerMsg::Significant(m) => write!(f, "Significant({m:?})"),
            PeerMsg::Start => write!(f, "Start"),
            PeerMsg::ForceCompactLog => write!(f, "ForceCompactLog"),
            PeerMsg::SnapshotGenerated => write!(f, "SnapshotGenerated"),
            PeerMsg::VerifiedSnapshot(m) => write!(f, "VerifiedSnapshot(region {})", m.region_id),
            PeerMsg::SnapshotApplied { peer_id, .. } => {
                write!(f, "SnapshotApplied for peer {peer_id}")
            }
            PeerMsg::SplitRegion(split) => {
                let split_keys = &split.split_keys;
                write!(f, "SplitRegion({} keys)", split_keys.len())
            }
            PeerMsg::PdOperator(op) => write!(f, "PdOperator(region {})", op.region_id),
            PeerMsg::CatchUpLogs {
                target_region_id,
                request,
            } => write!(
                f,
                "CatchUpLogs(target {target_region_id}, commit {})",
                request.commit
            ),
            PeerMsg::MergeResult { target_region_id } => {
                write!(f, "MergeResult(target {target_region_id})")
            }
            PeerMsg::RegionSize(measured) => {
                write!(
                    f,
                    "RegionSize({} bytes, {} keys)",
                    measured.size, measured.keys
                )
            }
        }
    }
}

/// Messages for the store FSM.
#[derive(Debug)]
pub enum StoreMsg {
    /// A raft message for a region without a local mailbox.
    RaftMessage(Box<RaftMessage>),
    Tick(StoreTick),
    /// Another store's liveness ping.
    StoreHeartbeat {
        from_store: u64,
    },
    Start,
}

#[cfg(test)]
mod tests {
    /// Every peer's and every apply FSM's mailbox keeps one block of 31 message slots
    /// allocated for as long as the region lives, so the message types' sizes are paid per
    /// region: these bounds keep large payloads boxed.
    #[test]
    fn mailbox_messages_stay_small() {
        let peer = std::mem::size_of::<super::PeerMsg>();
        let apply = std::mem::size_of::<super::apply::ApplyMsg>();
        assert!(peer <= 48, "PeerMsg is {peer} bytes");
        assert!(apply <= 16, "ApplyMsg is {apply} bytes");
    }
}
