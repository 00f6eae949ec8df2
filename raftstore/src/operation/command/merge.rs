//! Region merge: a small region (the source) hands its range to an adjacent region (the
//! target) whose peers live on the same stores. Both share each store's engine, so no data
//! moves; the merge is a protocol over two raft logs (after TiKV's raftstore).
//!
//! 1. **Prepare** (source leader, on PD's `Merge` step): `PrepareMerge{min_index, target}`
//!    is refused while a split or membership change is in flight, while any peer lags by more
//!    than `merge-max-log-gap` entries, or unless both regions sit on the same stores. From
//!    the proposal on, the leader serves no lease reads and takes no other proposal.
//! 2. **Apply PrepareMerge** (every source peer): version and conf_ver + 1, state `Merging`
//!    with the `MergeState`; later writes in the source's log are refused, and reads fail
//!    with `ProposalInMergingMode` (clients retry and find the merged region).
//! 3. **Commit** (every source peer, each `CheckMerge` tick): sends `CommitMerge{source,
//!    commit, entries}` to the target peer on its own store; whichever store holds the
//!    target's leader proposes it. `entries` are the source's log `[min_index, commit]` (the
//!    first one only anchors the rest by index and term), so a lagging source peer can catch
//!    up even after the source's other peers are gone.
//! 4. **Apply CommitMerge** (every target peer): the target's apply FSM holds back until the
//!    local source peer has applied up to its PrepareMerge (`CatchUpLogs`, appending the
//!    carried entries if its log lacks them), then extends the range with version
//!    `max(source, target) + 1` and writes the source's tombstone in the same batch. The
//!    source peer is destroyed without deleting its range.
//! 5. **Rollback** (source leader): once the local target's epoch moved past the one the
//!    merge recorded without taking in the source, `CommitMerge` can never apply (it checks
//!    that epoch), so `RollbackMerge{commit}` puts the source back to `Normal` (version + 1).

use engine::{KvWriteBatch, CF_RAFT};
use proto::eraftpb::Entry;
use proto::metapb::{PeerRole, Region, RegionEpoch};
use proto::raft_cmdpb::{
    AdminCmdType, AdminRequest, AdminResponse, CommitMergeRequest, CommitMergeResponse,
    PrepareMergeRequest, PrepareMergeResponse, RaftCmdRequest, RaftCmdResponse, RaftRequestHeader,
    RaftResponseHeader, RollbackMergeRequest, RollbackMergeResponse,
};
use proto::raft_serverpb::{MergeState, PeerState, RegionLocalState};
use protobuf::Message as _;
use raft::GetEntriesContext;
use tracing::{debug, info, warn};

use crate::context::PollContext;
use crate::errors::{Error, Result};
use crate::msg::apply::{ApplyMsg, ExecResult};
use crate::msg::{Callback, PeerMsg, PeerTick, RaftCommand};
use crate::peer::Peer;

// ---- Prepare (source leader) ----

impl Peer {
    /// Whether the region is merging away: PrepareMerge applied, or proposed by this leader
    /// and not yet applied.
    pub(crate) fn is_merging(&self) -> bool {
        self.pending_merge_state.is_some() || self.prepare_merge_fence != 0
    }

    /// PD asks this region to merge into `target`. Refusals are logged; PD asks again.
    pub fn on_merge_step(&mut self, ctx: &mut PollContext, target: Region) {
        let region_id = self.region_id();
        if self.is_merging() {
            // PD resends the step until the merge is done; this one is under way.
            debug!(region_id, "merge step: already merging");
            return;
        }
        let admin = match self.prepare_merge_request(ctx, target) {
            Ok(admin) => admin,
            Err(e) => {
                info!(region_id, "merge step refused: {e}");
                return;
            }
        };
        let req = self.admin_command(admin);
        let index = self.raft_group.raft.raft_log.last_index() + 1;
        self.propose_command(ctx, RaftCommand::new(req, Callback::none()));
        if self.raft_group.raft.raft_log.last_index() >= index {
            info!(region_id, index, "PrepareMerge proposed");
        }
    }

    /// Builds `PrepareMerge` if the region may merge into `target` now.
    fn prepare_merge_request(&self, ctx: &PollContext, target: Region) -> Result<AdminRequest> {
        let region = self.region();
        if !self.is_leader() {
            return Err(Error::NotLeader {
                region_id: region.id,
                leader: self.leader(),
            });
        }
        if self.is_merging() {
            return Err(Error::ProposalInMergingMode(region.id));
        }
        check_adjacent_on_same_stores(region, &target)?;
        let busy = |why: &str| Err(Error::InvalidRequest(format!("cannot merge now: {why}")));
        if self.is_splitting() {
            return busy("a split is committed but not applied");
        }
        if self.raft_group.raft.has_pending_conf() || in_joint_state(region) {
            return busy("a membership change is in flight");
        }
        let log = &self.raft_group.raft.raft_log;
        let last = log.last_index();
        let min_matched = self
            .raft_group
            .raft
            .prs()
            .iter()
            .map(|(_, p)| p.matched)
            .min()
            .unwrap_or(0);
        if min_matched == 0 {
            // raft-rs knows a follower's position only once it answered this leader.
            return busy("a peer has not answered since this leader was elected");
        }
        if last.saturating_sub(min_matched) > ctx.cfg.merge_max_log_gap {
            return busy("a peer lags too far behind the leader's log");
        }
        if min_matched < self.storage().truncated_index() {
            return busy("a peer needs a snapshot");
        }
        // Anything but a log compaction between the slowest peer and the end of the log
        // (proposed, committed or not yet applied) would be applied by catching up on
        // entries a merge carries, outside the order its own checks assume; a compaction
        // there that reaches `min_matched` would cut away entries the merge carries.
        let low = min_matched.min(self.storage().applied_index()) + 1;
        if low <= last {
            let entries = log
                .slice(low, last + 1, None, GetEntriesContext::empty(false))
                .map_err(Error::Raft)?;
            if entries.iter().any(|e| blocks_merge(e, min_matched)) {
                return busy("an admin command or a log compaction is not yet applied");
            }
            // CommitMerge carries these entries: it must fit in one raft entry, or the merge
            // could neither commit nor, with the target unchanged, roll back.
            let carried: u64 = entries.iter().map(|e| e.data.len() as u64 + 32).sum();
            if carried > ctx.cfg.raft_entry_max_size / 2 {
                return busy("the entries a merge would carry are too large");
            }
        }
        Ok(AdminRequest {
            cmd_type: AdminCmdType::PrepareMerge as i32,
            prepare_merge: Some(PrepareMergeRequest {
                min_index: min_matched,
                target: Some(target),
            }),
            ..Default::default()
        })
    }

    /// A command of this region carrying `admin`, under the current epoch.
    fn admin_command(&self, admin: AdminRequest) -> RaftCmdRequest {
        RaftCmdRequest {
            header: Some(RaftRequestHeader {
                region_id: self.region_id(),
                peer: Some(self.meta),
                region_epoch: self.region().region_epoch,
                ..Default::default()
            }),
            requests: vec![],
            admin_request: Some(admin),
        }
    }

    /// Called when a `PrepareMerge` proposal is accepted into the log at `index`: no lease
    /// read from here on, since the target may take the range over as soon as the entry
    /// applies on any store.
    pub(crate) fn on_prepare_merge_proposed(&mut self, index: u64) {
        self.prepare_merge_fence = index;
        self.lease.expire(&self.read_delegate.lease);
    }
}

/// Whether `a` and `b` touch (one's end is the other's start) and have peers on the same
/// stores, all voters. Errors say which condition fails.
fn check_adjacent_on_same_stores(a: &Region, b: &Region) -> Result<()> {
    if a.id == b.id {
        return Err(Error::InvalidRequest(
            "a region cannot merge into itself".into(),
        ));
    }
    let adjacent = (!a.start_key.is_empty() && b.end_key == a.start_key)
        || (!a.end_key.is_empty() && b.start_key == a.end_key);
    if !adjacent {
        return Err(Error::InvalidRequest(format!(
            "region {} is not adjacent to region {}",
            b.id, a.id
        )));
    }
    let stores = |r: &Region| {
        let mut s: Vec<u64> = r.peers.iter().map(|p| p.store_id).collect();
        s.sort_unstable();
        s
    };
    if stores(a) != stores(b) || in_joint_state(a) || in_joint_state(b) {
        return Err(Error::InvalidRequest(format!(
            "regions {} and {} do not have voters on the same stores",
            a.id, b.id
        )));
    }
    if a.peers
        .iter()
        .chain(&b.peers)
        .any(|p| p.role() != PeerRole::Voter)
    {
        return Err(Error::InvalidRequest(
            "only regions made of voters merge".into(),
        ));
    }
    Ok(())
}

fn in_joint_state(region: &Region) -> bool {
    region
        .peers
        .iter()
        .any(|p| matches!(p.role(), PeerRole::IncomingVoter | PeerRole::DemotingVoter))
}

/// Whether an entry not yet applied everywhere keeps a merge from being prepared at
/// `min_matched`: any admin command but a log compaction, and a compaction to `min_matched`
/// or beyond, which would cut away the entries `CommitMerge` carries (`[min_matched,
/// commit]`). Compactions below it, which the log GC proposes for what every peer has, do
/// not (TiKV refuses every compaction here).
fn blocks_merge(entry: &Entry, min_matched: u64) -> bool {
    match crate::operation::committed::admin_request(entry) {
        Some(admin) if admin.cmd_type() == AdminCmdType::CompactLog => admin
            .compact_log
            .is_none_or(|c| c.compact_index >= min_matched),
        Some(_) => true,
        // Membership changes are their own entry type.
        None => entry.get_entry_type() != proto::eraftpb::EntryType::EntryNormal,
    }
}

// ---- Commit or roll back (every source peer) ----

impl Peer {
    /// Pushes a prepared merge on: `CommitMerge` to the local target peer, or, once the
    /// target can no longer take it, `RollbackMerge` (leader only).
    pub fn on_check_merge_tick(&mut self, ctx: &mut PollContext) {
        let Some(state) = self.pending_merge_state.clone() else {
            return;
        };
        if self.pending_remove {
            return;
        }
        ctx.schedule_tick(self.region_id(), PeerTick::CheckMerge);
        let Some(recorded) = state.target.as_ref() else {
            return;
        };
        let region_id = self.region_id();
        let (local_target, source_known) = {
            let meta = ctx.store_meta.lock();
            (
                meta.region(recorded.id).cloned(),
                meta.region(region_id).is_some(),
            )
        };
        if !source_known {
            // The local target already took this region in; `MergeResult` is on its way.
            return;
        }
        let Some(local_target) = local_target.or_else(|| {
            // The target itself went (merged into another region): whatever holds its range
            // here now stands in for it, and has moved on if it is newer.
            ctx.store_meta
                .lock()
                .search_region(&recorded.start_key)
                .filter(|r| r.id != region_id)
                .cloned()
        }) else {
            debug!(
                region_id,
                target = recorded.id,
                "merge target has no peer here yet"
            );
            return;
        };
        let want = recorded.region_epoch.unwrap_or_default();
        let have = local_target.region_epoch.unwrap_or_default();
        if local_target.id == recorded.id && have == want {
            self.send_commit_merge(ctx, &state);
        } else if target_moved_on(&want, &have)
            && !covers(&local_target, self.region())
            && self.is_leader()
        {
            info!(
                region_id,
                target = recorded.id,
                ?want,
                ?have,
                "merge target changed; rolling back"
            );
            let admin = AdminRequest {
                cmd_type: AdminCmdType::RollbackMerge as i32,
                rollback_merge: Some(RollbackMergeRequest {
                    commit: state.commit,
                }),
                ..Default::default()
            };
            let req = self.admin_command(admin);
            self.propose_command(ctx, RaftCommand::new(req, Callback::none()));
        }
    }

    /// Sends `CommitMerge` with this peer's log entries `[min_index, commit]` to the local
    /// target peer; it proposes it if it leads the target.
    fn send_commit_merge(&mut self, ctx: &mut PollContext, state: &MergeState) {
        let region_id = self.region_id();
        let Some(target) = state.target.as_ref() else {
            return;
        };
        let entries = match self.merge_entries(state) {
            Ok(e) => e,
            Err(e) => {
                debug!(region_id, "cannot carry the merge's entries from here: {e}");
                return;
            }
        };
        let req = RaftCmdRequest {
            header: Some(RaftRequestHeader {
                region_id: target.id,
                region_epoch: target.region_epoch,
                ..Default::default()
            }),
            requests: vec![],
            admin_request: Some(AdminRequest {
                cmd_type: AdminCmdType::CommitMerge as i32,
                commit_merge: Some(CommitMergeRequest {
                    source: Some(self.region().clone()),
                    commit: state.commit,
                    entries,
                }),
                ..Default::default()
            }),
        };
        let cmd = RaftCommand::new(req, Callback::none());
        let _ = ctx
            .router
            .try_send(target.id, PeerMsg::RaftCommand(Box::new(cmd)));
    }

    /// This peer's log `[min_index, commit]`, encoded; the first entry is an anchor holding
    /// only the index and term of `min_index` (its data may be compacted).
    fn merge_entries(&self, state: &MergeState) -> Result<Vec<Vec<u8>>> {
        let log = &self.raft_group.raft.raft_log;
        let anchor = Entry {
            index: state.min_index,
            term: log.term(state.min_index).map_err(Error::Raft)?,
            ..Default::default()
        };
        let rest = log
            .slice(
                state.min_index + 1,
                state.commit + 1,
                None,
                GetEntriesContext::empty(false),
            )
            .map_err(Error::Raft)?;
        std::iter::once(anchor)
            .chain(rest)
            .map(|e| e.write_to_bytes().map_err(Error::from))
            .collect()
    }

    /// The target's apply FSM waits for this peer to apply up to its PrepareMerge at
    /// `request.commit`. Answers at once if it has; otherwise appends the carried entries
    /// its log lacks, commits up to there, and answers once they apply (`on_apply_res`).
    pub fn on_catch_up_logs(
        &mut self,
        ctx: &mut PollContext,
        target_region_id: u64,
        request: CommitMergeRequest,
    ) {
        let commit = request.commit;
        self.catch_up_logs = Some(Box::new((target_region_id, commit)));
        if self.storage().applied_index() >= commit {
            self.maybe_report_merge_source_ready(ctx);
            return;
        }
        self.wake_up(ctx);
        let entries: Vec<Entry> = match request
            .entries
            .iter()
            .map(|b| proto::parse_raft::<Entry>(b))
            .collect::<std::result::Result<_, _>>()
        {
            Ok(e) => e,
            Err(e) => {
                warn!(
                    region_id = self.region_id(),
                    "CommitMerge carries undecodable entries: {e}"
                );
                return;
            }
        };
        let log = &mut self.raft_group.raft.raft_log;
        if log.last_index() >= commit
            && entries
                .last()
                .is_some_and(|e| log.term(commit).ok() == Some(e.term))
        {
            // The log holds the PrepareMerge already: only its commit is unknown here.
            log.commit_to(commit);
            return;
        }
        // Anchor at the newest of `min_index` and this log's compacted index.
        let Some(first) = entries.first() else {
            return;
        };
        let anchor_index = first.index.max(log.first_index() - 1);
        let at = (anchor_index - first.index) as usize;
        let Some(anchor) = entries.get(at) else {
            return;
        };
        info!(
            region_id = self.region_id(),
            from = anchor.index + 1,
            commit,
            "catching up on the source's log from the entries the merge carries"
        );
        let log = &mut self.raft_group.raft.raft_log;
        let appended = log.maybe_append(anchor.index, anchor.term, commit, &entries[at + 1..]);
        crate::enforce!(
            appended.is_some(),
            self.region_id(),
            self.peer_id(),
            "the log disagrees with the committed entries a merge carries (anchor {} term {})",
            anchor.index,
            anchor.term
        );
    }

    /// Tells the waiting target's apply FSM once this peer has applied up to the
    /// PrepareMerge it waits for.
    pub(crate) fn maybe_report_merge_source_ready(&mut self, ctx: &mut PollContext) {
        let Some(&(target, commit)) = self.catch_up_logs.as_deref() else {
            return;
        };
        if self.storage().applied_index() < commit {
            return;
        }
        self.catch_up_logs = None;
        let msg = ApplyMsg::MergeSourceReady {
            source_id: self.region_id(),
        };
        let _ = ctx.apply_router.send(target, msg);
    }

    /// The target took in this region's range: the peer goes and its data stays.
    pub fn on_merge_result(&mut self, ctx: &mut PollContext, target_region_id: u64) {
        info!(
            region_id = self.region_id(),
            target = target_region_id,
            "merged into the target; destroying the source peer"
        );
        self.keep_data_on_destroy = true;
        self.destroy(ctx);
    }
}

/// Whether `have` is a later epoch of the target than the recorded `want`.
fn target_moved_on(want: &RegionEpoch, have: &RegionEpoch) -> bool {
    have.version > want.version || have.conf_ver > want.conf_ver
}

/// Whether `outer`'s range holds all of `inner`'s.
fn covers(outer: &Region, inner: &Region) -> bool {
    let starts_before = outer.start_key <= inner.start_key;
    let ends_after =
        outer.end_key.is_empty() || (!inner.end_key.is_empty() && outer.end_key >= inner.end_key);
    starts_before && ends_after
}

// ---- Target side: propose and apply results ----

impl Peer {
    /// Refuses a `CommitMerge` the target cannot take now: it is merging itself, a split or
    /// membership change is in flight, or the source is not its neighbour on the same stores.
    pub(crate) fn check_commit_merge(&self, req: &RaftCmdRequest) -> Result<()> {
        let source = req
            .admin_request
            .as_ref()
            .and_then(|a| a.commit_merge.as_ref())
            .and_then(|c| c.source.as_ref())
            .ok_or_else(|| Error::InvalidRequest("CommitMerge without a source".into()))?;
        if self.is_splitting()
            || self.raft_group.raft.has_pending_conf()
            || in_joint_state(self.region())
        {
            return Err(Error::InvalidRequest(
                "cannot take a merge in now: a split or membership change is in flight".into(),
            ));
        }
        check_adjacent_on_same_stores(self.region(), source)
    }

    /// PrepareMerge applied here: the region is merging until it commits or rolls back.
    pub fn on_ready_prepare_merge(
        &mut self,
        ctx: &mut PollContext,
        region: Region,
        state: MergeState,
    ) {
        info!(
            region_id = self.region_id(),
            target = state.target.as_ref().map_or(0, |t| t.id),
            commit = state.commit,
            "PrepareMerge applied"
        );
        self.prepare_merge_fence = 0;
        self.pending_merge_state = Some(Box::new(state));
        self.lease.expire(&self.read_delegate.lease);
        self.storage_mut().set_region(region.clone());
        ctx.store_meta.lock().set_region(region);
        self.fail_pending_reads_merging();
        self.on_check_merge_tick(ctx);
        if self.is_leader() {
            self.heartbeat_pd(ctx);
        }
    }

    /// CommitMerge applied here: this region took in `source`'s range.
    pub fn on_ready_commit_merge(&mut self, ctx: &mut PollContext, region: Region, source: Region) {
        info!(
            region_id = self.region_id(),
            source = source.id,
            version = region.region_epoch.map_or(0, |e| e.version),
            "CommitMerge applied"
        );
        self.storage_mut().set_region(region.clone());
        {
            let mut meta = ctx.store_meta.lock();
            meta.remove_region(source.id);
            meta.set_region(region);
        }
        let _ = ctx.router.force_send(
            source.id,
            PeerMsg::MergeResult {
                target_region_id: self.region_id(),
            },
        );
        // The merged range's size is unknown until measured again.
        self.pd_stats.approximate_size = None;
        self.pd_stats.approximate_keys = None;
        self.split_check_pending = true;
        if self.is_leader() {
            self.heartbeat_pd(ctx);
        }
    }

    /// RollbackMerge applied here: the region takes reads and writes again.
    pub fn on_ready_rollback_merge(&mut self, ctx: &mut PollContext, region: Region) {
        info!(region_id = self.region_id(), "merge rolled back");
        self.pending_merge_state = None;
        self.prepare_merge_fence = 0;
        self.storage_mut().set_region(region.clone());
        ctx.store_meta.lock().set_region(region);
        if self.is_leader() {
            self.heartbeat_pd(ctx);
        }
    }

    /// Reads waiting on ReadIndex can no longer be served here once the region is merging.
    fn fail_pending_reads_merging(&mut self) {
        let (term, region_id) = (self.term(), self.region_id());
        for req in self.pending_reads.drain() {
            for (_, cb) in req.cmds {
                cb.invoke_with(crate::errors::err_resp(
                    Error::ProposalInMergingMode(region_id),
                    term,
                ));
            }
        }
    }
}

// ---- Apply on the apply pool ----

/// If `req` is a `CommitMerge` under the current epoch whose source has not confirmed it
/// is caught up (`ready_source`), the request to wait on. A `CommitMerge` under a stale
/// epoch (say, a second copy after the first applied) is not waited on: it fails its epoch
/// check when applied.
pub fn commit_merge_waiting(
    req: &RaftCmdRequest,
    region: &Region,
    ready_source: Option<u64>,
) -> Option<Box<CommitMergeRequest>> {
    let admin = req.admin_request.as_ref()?;
    if admin.cmd_type() != AdminCmdType::CommitMerge {
        return None;
    }
    let cm = admin.commit_merge.as_ref()?;
    let source_id = cm.source.as_ref()?.id;
    if ready_source == Some(source_id) || crate::util::check_region_epoch(req, region).is_err() {
        return None;
    }
    Some(Box::new(cm.clone()))
}

fn admin_response(
    cmd_type: AdminCmdType,
    fill: impl FnOnce(&mut AdminResponse),
) -> RaftCmdResponse {
    let mut admin = AdminResponse {
        cmd_type: cmd_type as i32,
        ..Default::default()
    };
    fill(&mut admin);
    RaftCmdResponse {
        header: Some(RaftResponseHeader::default()),
        responses: vec![],
        admin_response: Some(admin),
    }
}

fn put_region_state(
    wb: &mut KvWriteBatch,
    region: &Region,
    state: PeerState,
    merge_state: Option<MergeState>,
) -> Result<()> {
    let local = RegionLocalState {
        state: state as i32,
        region: Some(region.clone()),
        merge_state,
    };
    wb.put_msg_cf(CF_RAFT, &keys::region_state_key(region.id), &local)?;
    Ok(())
}

/// Applies `PrepareMerge` at log `index`: version and conf_ver + 1, state `Merging`.
pub fn exec_prepare_merge(
    wb: &mut KvWriteBatch,
    region: &Region,
    admin: &AdminRequest,
    index: u64,
) -> Result<(RaftCmdResponse, Option<ExecResult>)> {
    let req = admin
        .prepare_merge
        .as_ref()
        .ok_or_else(|| Error::InvalidRequest("PrepareMerge without a request".into()))?;
    let target = req
        .target
        .clone()
        .ok_or_else(|| Error::InvalidRequest("PrepareMerge without a target".into()))?;
    check_adjacent_on_same_stores(region, &target)?;
    let mut merging = region.clone();
    let mut epoch = merging.region_epoch.unwrap_or_default();
    epoch.version += 1;
    epoch.conf_ver += 1;
    merging.region_epoch = Some(epoch);
    let state = MergeState {
        min_index: req.min_index,
        target: Some(target),
        commit: index,
    };
    put_region_state(wb, &merging, PeerState::Merging, Some(state.clone()))?;
    let resp = admin_response(AdminCmdType::PrepareMerge, |a| {
        a.prepare_merge = Some(PrepareMergeResponse {})
    });
    Ok((
        resp,
        Some(ExecResult::PrepareMerge {
            region: merging,
            state,
        }),
    ))
}

/// Applies `CommitMerge` on the target, its source already caught up on this store: the
/// range grows by the source's, version becomes `max(source, target) + 1`, and the source's
/// tombstone is written in the same batch.
pub fn exec_commit_merge(
    wb: &mut KvWriteBatch,
    region: &Region,
    admin: &AdminRequest,
) -> Result<(RaftCmdResponse, Option<ExecResult>)> {
    let source = admin
        .commit_merge
        .as_ref()
        .and_then(|c| c.source.clone())
        .ok_or_else(|| Error::InvalidRequest("CommitMerge without a source".into()))?;
    check_adjacent_on_same_stores(region, &source)?;
    let mut merged = region.clone();
    if source.end_key == region.start_key && !region.start_key.is_empty() {
        merged.start_key = source.start_key.clone();
    } else {
        merged.end_key = source.end_key.clone();
    }
    let mut epoch = merged.region_epoch.unwrap_or_default();
    let source_version = source.region_epoch.map_or(0, |e| e.version);
    epoch.version = epoch.version.max(source_version) + 1;
    merged.region_epoch = Some(epoch);
    put_region_state(wb, &merged, PeerState::Normal, None)?;
    put_region_state(wb, &source, PeerState::Tombstone, None)?;
    let resp = admin_response(AdminCmdType::CommitMerge, |a| {
        a.commit_merge = Some(CommitMergeResponse {})
    });
    Ok((
        resp,
        Some(ExecResult::CommitMerge {
            region: merged,
            source,
        }),
    ))
}

/// Applies `RollbackMerge`: the source is `Normal` again with version + 1. Refused unless it
/// names the PrepareMerge this region is merging by.
pub fn exec_rollback_merge(
    wb: &mut KvWriteBatch,
    region: &Region,
    admin: &AdminRequest,
    merge_state: Option<&MergeState>,
) -> Result<(RaftCmdResponse, Option<ExecResult>)> {
    let commit = admin
        .rollback_merge
        .as_ref()
        .map(|r| r.commit)
        .ok_or_else(|| Error::InvalidRequest("RollbackMerge without a request".into()))?;
    match merge_state {
        Some(s) if s.commit == commit => {}
        _ => {
            return Err(Error::InvalidRequest(format!(
                "RollbackMerge of the PrepareMerge at {commit}, which is not the pending merge"
            )))
        }
    }
    let mut normal = region.clone();
    let mut epoch = normal.region_epoch.unwrap_or_default();
    epoch.version += 1;
    normal.region_epoch = Some(epoch);
    put_region_state(wb, &normal, PeerState::Normal, None)?;
    let resp = admin_response(AdminCmdType::RollbackMerge, |a| {
        a.rollback_merge = Some(RollbackMergeResponse {})
    });
    Ok((resp, Some(ExecResult::RollbackMerge { region: normal })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::metapb::Peer as MetaPeer;

    fn region(id: u64, start: &[u8], end: &[u8], stores: &[u64]) -> Region {
        Region {
            id,
            start_key: start.to_vec(),
            end_key: end.to_vec(),
            region_epoch: Some(RegionEpoch {
                conf_ver: 1,
                version: 3,
            }),
            peers: stores
                .iter()
                .map(|s| MetaPeer {
                    id: id * 10 + s,
                    store_id: *s,
                    ..Default::default()
                })
                .collect(),
        }
    }

    #[test]
    fn only_neighbours_on_the_same_stores_merge() {
        let left = region(1, b"", b"m", &[1, 2, 3]);
        let right = region(2, b"m", b"", &[3, 2, 1]);
        assert!(check_adjacent_on_same_stores(&left, &right).is_ok());
        assert!(check_adjacent_on_same_stores(&right, &left).is_ok());
        let far = region(3, b"x", b"", &[1, 2, 3]);
        assert!(check_adjacent_on_same_stores(&left, &far).is_err());
        let elsewhere = region(4, b"m", b"", &[1, 2, 4]);
        assert!(check_adjacent_on_same_stores(&left, &elsewhere).is_err());
        assert!(check_adjacent_on_same_stores(&left, &left).is_err());
    }

    fn command_entry(index: u64, admin: Option<AdminRequest>) -> Entry {
        let req = RaftCmdRequest {
            admin_request: admin,
            ..Default::default()
        };
        Entry {
            index,
            data: prost::Message::encode_to_vec(&req).into(),
            ..Default::default()
        }
    }

    fn compaction_to(index: u64) -> AdminRequest {
        AdminRequest {
            cmd_type: AdminCmdType::CompactLog as i32,
            compact_log: Some(proto::raft_cmdpb::CompactLogRequest {
                compact_index: index,
                compact_term: 1,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn only_compactions_below_the_slowest_peer_let_a_merge_be_prepared() {
        let min_matched = 50;
        assert!(!blocks_merge(&command_entry(60, None), min_matched));
        assert!(!blocks_merge(
            &command_entry(60, Some(compaction_to(49))),
            min_matched
        ));
        // A forced compaction to the applied index would take what CommitMerge carries.
        assert!(blocks_merge(
            &command_entry(60, Some(compaction_to(50))),
            min_matched
        ));
        assert!(blocks_merge(
            &command_entry(60, Some(compaction_to(58))),
            min_matched
        ));
        let split = AdminRequest {
            cmd_type: AdminCmdType::BatchSplit as i32,
            ..Default::default()
        };
        assert!(blocks_merge(&command_entry(60, Some(split)), min_matched));
        let mut conf_change = Entry::default();
        conf_change.set_entry_type(proto::eraftpb::EntryType::EntryConfChangeV2);
        assert!(blocks_merge(&conf_change, min_matched));
    }

    #[test]
    fn covering_ranges() {
        let whole = region(1, b"", b"", &[1]);
        let mid = region(2, b"c", b"f", &[1]);
        let tail = region(3, b"f", b"", &[1]);
        assert!(covers(&whole, &mid));
        assert!(covers(&whole, &tail));
        assert!(!covers(&mid, &tail));
        assert!(!covers(&tail, &mid));
        assert!(covers(&region(4, b"a", b"f", &[1]), &mid));
    }
}
