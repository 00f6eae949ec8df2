//! One region's replica on this store: its raft group, proposals, reads, lease and
//! hibernation state. Behaviour lives in `operation/`; this module holds state and accessors.

pub mod pd_stats;
pub mod peer_map;
pub mod proposal;
pub mod storage;

use std::collections::VecDeque;
use std::sync::Arc;

use proto::metapb::{self, Region};
use raft::{RawNode, StateRole};

use crate::config::Config;
use crate::errors::Result;
use crate::operation::read::delegate::ReadDelegate;
use crate::operation::read::lease::Lease;
use crate::operation::read::queue::ReadIndexQueue;
use pd_stats::PdStats;
use proposal::ProposalQueue;
use storage::PeerStorage;

/// A ready handed to the log writer and not yet reported durable.
#[derive(Debug)]
pub struct UnpersistedReady {
    pub number: u64,
    /// Highest log index made durable once this ready is persisted.
    pub persisted_index: u64,
}

/// Whether a region's raft clock is running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    /// Ticking normally.
    Active,
    /// Every peer agreed that nothing happens: no ticks until a message or proposal arrives.
    Idle,
}

/// Bookkeeping for hibernation.
#[derive(Debug)]
pub struct Hibernation {
    pub state: GroupState,
    /// Consecutive leader ticks with nothing to do.
    pub idle_ticks: usize,
    /// Followers that agreed to hibernate at the current log position, each once.
    pub acks: Vec<u64>,
    /// `MsgLeaderQuery` rounds a follower restarted asleep has sent without hearing of a
    /// leader (`start_asleep`); 0 once it knows one.
    pub leader_queries: u16,
}

/// A region's replica.
pub struct Peer {
    pub(crate) meta: metapb::Peer,
    pub(crate) raft_group: RawNode<PeerStorage>,
    /// Commands proposed by this peer as leader, waiting for their entries to apply.
    ///
    /// Invariants: ordered by (term, index), strictly increasing; every proposal's index is
    /// above `last_sent_to_apply` when pushed; each callback is answered exactly once, with
    /// its entry's result when an entry of the same (term, index) applies, or `StaleCommand`
    /// when an entry of a later term commits at or past its index (see `ProposalQueue::find`).
    pub(crate) proposals: ProposalQueue,
    /// ReadIndex requests in the order they were sent, each waiting for a quorum to confirm
    /// its read index and for the applied index to reach it before it is answered.
    pub(crate) pending_reads: ReadIndexQueue,
    pub(crate) lease: Lease,
    pub(crate) read_delegate: Arc<ReadDelegate>,
    /// Readies handed to the log writer, oldest first.
    ///
    /// Invariants: numbers strictly increase along the queue and all exceed
    /// `persisted_number`; the writer reports them durable in the same order, and a report
    /// that does not move past `persisted_number` or covers no waiting ready stops the store
    /// (`on_persisted`). The peer is destroyed
    /// only once this is empty, so no write of a removed peer lands after its range is
    /// deleted.
    pub(crate) unpersisted: VecDeque<UnpersistedReady>,
    /// The newest ready number the log writer reported durable.
    ///
    /// Invariant: only grows; raft learns of persisted entries (`on_persist_ready`) in this
    /// order, never ahead of the log writer's fsync.
    pub(crate) persisted_number: u64,
    pub(crate) hibernation: Hibernation,
    /// A raft tick is registered with the ticker.
    pub(crate) raft_tick_scheduled: bool,
    /// Highest log index handed to the apply pool.
    ///
    /// Invariants: `storage().applied_index() <= last_sent_to_apply <= commit index`; an
    /// apply result outside `[applied index, last_sent_to_apply]` stops the store. A new
    /// snapshot is applied only when `applied index == last_sent_to_apply` (nothing of the
    /// region in flight in the apply pool), and then both jump to the snapshot's index.
    pub(crate) last_sent_to_apply: u64,
    /// Log index of the newest `BatchSplit` this peer saw committed (0: none).
    ///
    /// Invariant: while it is above the applied index, this peer serves no lease read, and
    /// the read delegate's lease stays expired. The split's new regions may already have
    /// leaders on stores that applied it, taking writes in a range this peer's region still
    /// covers until it applies the split; a lease read of that range would miss them (TiKV's
    /// `last_committed_split_idx`). ReadIndex reads are safe: they wait for the split to apply.
    pub(crate) last_committed_split_idx: u64,
    /// Peers learned from messages, for addressing replies before the region is known; one
    /// per peer id. A few at most, so a vector (no hash table kept by every idle peer).
    pub(crate) peer_cache: Vec<metapb::Peer>,
    /// Ticks each follower has been waiting for a snapshot the leader sent: (peer id, ticks).
    pub(crate) snapshot_wait_ticks: Vec<(u64, usize)>,
    /// A snapshot applied in a ready; raft learns it is applied once that ready is durable.
    /// (ready number, snapshot index) of that ready.
    ///
    /// Invariants: at most one at a time; while set, a ready carrying the same snapshot is
    /// not applied again; cleared when `persisted_number` reaches its ready number.
    pub(crate) pending_snapshot: Option<(u64, u64)>,
    /// The region worker is ingesting a snapshot this peer began applying: no ready is
    /// handled and the peer is not destroyed until it is done (`PeerMsg::SnapshotApplied`).
    pub(crate) ingesting_snapshot: bool,
    /// The region must be checked on the next split-check tick whatever was written (it was
    /// just created or split, or PD asked).
    pub(crate) split_check_pending: bool,
    /// Key + value bytes and keys applied since the split policy last looked at the region;
    /// the next check runs once they reach the policy's `SplitCheckTrigger`.
    pub(crate) written_since_split_check: crate::stats::Flow,
    /// Log GC and split check ticks are not registered while the region hibernates.
    pub(crate) aux_ticks_paused: bool,
    /// Regions split off this one by the last split, reported with EpochNotMatch.
    pub(crate) split_siblings: Vec<Region>,
    /// What the leader reports to PD.
    pub(crate) pd_stats: PdStats,
    /// Being removed: waiting for the apply pool and the log writer to drain before the
    /// range is deleted (see `operation::destroy`). No raft activity meanwhile.
    ///
    /// Invariant: once set it is never cleared; commands get `RegionNotFound` from then on.
    pub(crate) pending_remove: bool,
    /// Set from the moment PrepareMerge applies until the merge commits (the peer goes) or
    /// rolls back: the region takes no reads or writes, and its peers push the merge on
    /// every `CheckMerge` tick (`operation::command::merge`).
    pub(crate) pending_merge_state: Option<Box<proto::raft_serverpb::MergeState>>,
    /// Log index of a PrepareMerge this leader proposed and has not yet applied (0: none).
    /// Invariant: while set, no other write or admin command is proposed and no lease read
    /// is served; cleared when leadership changes or the entry applies.
    pub(crate) prepare_merge_fence: u64,
    /// Log index up to which this leader tells followers of every commit at once (0: none;
    /// commits then reach them with the next append or heartbeat). See
    /// `operation::commit_broadcast`.
    ///
    /// Invariant: raft-rs's `skip_bcast_commit` is off exactly while this is set.
    pub(crate) bcast_commit_until: u64,
    /// A target's apply FSM waits for this merge source to apply up to the index here:
    /// (target region id, PrepareMerge index). Boxed: only a merging source holds one.
    pub(crate) catch_up_logs: Option<Box<(u64, u64)>>,
    /// Destroying this peer keeps its key range: the range now belongs to another region
    /// (a merge target, or a newer region whose snapshot replaces it).
    pub(crate) keep_data_on_destroy: bool,
    /// The apply FSM stopped after writing everything queued before its `Destroy`.
    pub(crate) apply_destroyed: bool,
    pub(crate) stopped: bool,
    /// The region just went idle: the peer FSM gives back its and its apply FSM's mailbox
    /// buffers once this round's messages are handled (`PeerFsm::handle_messages`, which
    /// also gives back its own after every round of a sleeping peer).
    pub(crate) release_mailboxes: bool,
}

impl Peer {
    /// Builds a peer over its loaded storage.
    pub fn new(
        cfg: &Config,
        meta: metapb::Peer,
        storage: PeerStorage,
        logger: &slog::Logger,
    ) -> Result<Peer> {
        let applied = storage.applied_index();
        let applied_term = storage.applied_term();
        let load = cfg
            .load_sampling_window()
            .map(|window| crate::split_policy::LoadStats::new(window, 1024));
        let read_delegate = Arc::new(ReadDelegate::new(storage.region().clone(), meta.id, load));
        read_delegate.set_applied_term(applied_term);
        let raft_cfg = raft::Config {
            id: meta.id,
            election_tick: cfg.raft_election_timeout_ticks,
            heartbeat_tick: cfg.raft_heartbeat_ticks,
            applied,
            max_size_per_msg: cfg.raft_max_size_per_msg,
            max_inflight_msgs: cfg.raft_max_inflight_msgs,
            check_quorum: true,
            pre_vote: true,
            // See `operation::commit_broadcast`: turned off while urgent entries commit.
            skip_bcast_commit: true,
            ..Default::default()
        };
        let mut raft_group = RawNode::new(&raft_cfg, storage, logger)?;
        // raft-rs gives every progress a `max-inflight-msgs` window up front; only a leader
        // sending entries fills one, and `add` allocates it again then.
        raft_group.raft.maybe_free_inflight_buffers();
        Ok(Peer {
            meta,
            raft_group,
            proposals: ProposalQueue::default(),
            pending_reads: ReadIndexQueue::default(),
            lease: Lease::new(cfg.raft_store_max_leader_lease),
            read_delegate,
            unpersisted: VecDeque::new(),
            persisted_number: 0,
            hibernation: Hibernation {
                state: GroupState::Active,
                idle_ticks: 0,
                acks: Vec::new(),
                leader_queries: 0,
            },
            raft_tick_scheduled: false,
            last_sent_to_apply: applied,
            last_committed_split_idx: 0,
            split_siblings: Vec::new(),
            ingesting_snapshot: false,
            split_check_pending: true,
            written_since_split_check: Default::default(),
            peer_cache: Vec::new(),
            pending_snapshot: None,
            snapshot_wait_ticks: Vec::new(),
            aux_ticks_paused: false,
            pd_stats: PdStats::default(),
            pending_remove: false,
            pending_merge_state: None,
            prepare_merge_fence: 0,
            bcast_commit_until: 0,
            catch_up_logs: None,
            keep_data_on_destroy: false,
            apply_destroyed: false,
            stopped: false,
            release_mailboxes: false,
        })
    }

    pub fn region_id(&self) -> u64 {
        self.storage().region_id()
    }

    pub fn peer_id(&self) -> u64 {
        self.meta.id
    }

    pub fn region(&self) -> &Region {
        self.storage().region()
    }

    pub fn storage(&self) -> &PeerStorage {
        self.raft_group.store()
    }

    pub fn storage_mut(&mut self) -> &mut PeerStorage {
        self.raft_group.mut_store()
    }

    pub fn term(&self) -> u64 {
        self.raft_group.raft.term
    }

    pub fn is_leader(&self) -> bool {
        self.raft_group.raft.state == StateRole::Leader
    }

    pub fn leader_id(&self) -> u64 {
        self.raft_group.raft.leader_id
    }

    /// The region's peer with this id, if it is a member.
    pub fn region_peer(&self, peer_id: u64) -> Option<&metapb::Peer> {
        self.region()
            .peers
            .iter()
            .find(|p| p.id == peer_id)
            .or_else(|| self.peer_cache.iter().find(|p| p.id == peer_id))
    }

    /// The leader as a `metapb::Peer`, for NotLeader hints.
    pub fn leader(&self) -> Option<metapb::Peer> {
        self.region_peer(self.leader_id()).cloned()
    }

    /// raft-rs took a snapshot (from the moment it is stepped, through its apply and ingest,
    /// until raft-rs is told it is applied): raft-rs's applied index lies below the log's
    /// first index, and raft-rs fails reading the entries it takes for unapplied if the peer
    /// becomes leader meanwhile. So the peer starts no election (no raft ticks, no
    /// `MsgTimeoutNow`) until then.
    pub fn is_applying_snapshot(&self) -> bool {
        let log = &self.raft_group.raft.raft_log;
        self.pending_snapshot.is_some()
            || self.ingesting_snapshot
            || log.applied + 1 < log.first_index()
    }

    pub fn is_hibernating(&self) -> bool {
        self.hibernation.state == GroupState::Idle
    }

    /// Whether this peer led its region in its current term, by its persisted raft state: it
    /// voted for itself and the ready that made it leader of the term was written. A
    /// candidate that lost the term also voted for itself, but follows another peer.
    pub fn led_current_term(&self) -> bool {
        let raft = &self.raft_group.raft;
        raft.term > 0
            && raft.vote == self.meta.id
            && self.storage().raft_state().led_term == raft.term
    }

    /// On restart, a peer that led its region in its last term campaigns at once. Its
    /// region's other peers may be asleep with this peer as their leader; they weigh the vote
    /// at once (`forget_leader_that_campaigns`) instead of waiting for this store to be
    /// noticed gone and an election timeout to pass. Pre-vote keeps a peer that fell behind
    /// from disturbing a newer leader. A peer that ran for the term and lost starts asleep
    /// like any follower (`may_start_asleep`): campaigning would wake the region it follows.
    pub fn campaign_if_it_led(&mut self) {
        if self.led_current_term() {
            let _ = self.raft_group.campaign();
        }
    }
}
