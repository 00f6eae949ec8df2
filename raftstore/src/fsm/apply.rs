//! The apply FSM (one per region) and the poller that batches their writes; the apply logic
//! itself lives in `crate::apply`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use batch_system::MailboxReceiver;
use batch_system::{Fsm, HandleResult, HandlerBuilder, PollHandler};
use crossbeam_channel::Receiver;
use engine::{KvEngine, KvWriteBatch, CF_RAFT};
use proto::metapb::Region;
use proto::raft_cmdpb::RaftCmdResponse;
use proto::raft_serverpb::{MergeState, RaftApplyState};

use crate::apply::exec::{self, Applied, ApplyTarget};
use crate::metrics::{APPLY_BATCH_WRITES, APPLY_ENTRIES};
use crate::msg::apply::{AppliedSnapshot, Apply, ApplyMsg, ApplyRes, ExecResult};
use crate::msg::router::RaftRouter;
use crate::msg::{Callback, PeerMsg};
use crate::stats::{Flow, StoreFlow};

/// Applies one region's committed entries in order.
pub struct ApplyFsm {
    /// The region's apply mailbox, fed only by its peer: entries arrive in log order (FIFO),
    /// and a `Snapshot` or `Destroy` is handled only after everything queued before it.
    receiver: MailboxReceiver<ApplyMsg>,
    /// The region as of the last applied entry: splits and membership changes applied here
    /// update it before the next entry is checked against it.
    region: Region,
    /// What has been applied, written to CF raft in the same batch as the data it covers.
    ///
    /// Invariants: entries are applied with no gap and never twice (`applied_index + 1` is
    /// the next entry's index, enforced on every entry); `applied_index` never goes back
    /// except when a snapshot replaces the whole state.
    apply_state: RaftApplyState,
    /// Term of the entry at `apply_state.applied_index`; responses and the peer's lease
    /// checks use it (a leader serves local reads only once it has applied an entry of its
    /// own term).
    applied_term: u64,
    /// A membership change applied here removed this store's peer: later entries belong to
    /// a region this store is leaving and are not applied (the range is deleted next).
    removed: bool,
    /// Set while this region is a merge source (PrepareMerge applied, not rolled back).
    merge_state: Option<Box<MergeState>>,
    /// A `CommitMerge` waits for the local peer of its source to catch up: the batches
    /// from that entry on, applied once `MergeSourceReady` arrives (TiKV's
    /// `WaitMergeSource`).
    merge_wait: Option<Box<MergeWait>>,
    /// The source that confirmed it is caught up; its `CommitMerge` may apply.
    ready_merge_source: Option<u64>,
    /// Set by `Destroy`; the batch system drops the FSM once it is set.
    stopped: bool,
}

/// One `Box<ApplyFsm>` per region; jemalloc's size classes around it are 256 and 320 bytes.
const _: () = assert!(std::mem::size_of::<ApplyFsm>() <= 256);

/// Batches held back behind a `CommitMerge` that waits for its source.
struct MergeWait {
    source_id: u64,
    /// The first batch starts with the `CommitMerge` entry.
    batches: VecDeque<Apply>,
}

impl ApplyFsm {
    /// `merge_state`: the region's recorded merge, if it is a merge source.
    pub fn new(
        receiver: MailboxReceiver<ApplyMsg>,
        region: Region,
        apply_state: RaftApplyState,
        merge_state: Option<MergeState>,
    ) -> ApplyFsm {
        let applied_term = apply_state.applied_term;
        ApplyFsm {
            receiver,
            region,
            apply_state,
            applied_term,
            removed: false,
            merge_state: merge_state.map(Box::new),
            merge_wait: None,
            ready_merge_source: None,
            stopped: false,
        }
    }

    /// Applies a batch, or holds it back while a `CommitMerge` waits for its source.
    fn handle_apply(
        &mut self,
        ctx: &mut ApplyContext,
        apply: Apply,
        written: &mut Flow,
    ) -> Vec<ExecResult> {
        if let Some(wait) = &mut self.merge_wait {
            wait.batches.push_back(apply);
            return Vec::new();
        }
        let mut results = Vec::new();
        let Apply {
            peer_id,
            term,
            entries,
            cmds,
            committed_at,
        } = apply;
        let mut cmds = cmds.into_iter().peekable();
        let mut entries = entries.into_iter();
        while let Some(entry) = entries.next() {
            if self.removed {
                break;
            }
            if entry.index <= self.apply_state.applied_index {
                // Already applied before a restart; raft may hand it over again.
                continue;
            }
            crate::enforce!(
                entry.index == self.apply_state.applied_index + 1,
                self.region.id,
                peer_id,
                "apply gap: applied index {}, next entry {}",
                self.apply_state.applied_index,
                entry.index
            );
            let mut target = ApplyTarget {
                region: &self.region,
                apply_state: &mut self.apply_state,
                merge_state: self.merge_state.as_deref(),
                ready_merge_source: self.ready_merge_source,
            };
            let (resp, res) =
                match exec::apply_entry(&mut ctx.wb, &mut target, &entry, term, written) {
                    Applied::Done(resp, res) => (resp, res),
                    Applied::WaitMergeSource(request) => {
                        let source_id = request.source.as_ref().map_or(0, |s| s.id);
                        let rest = Apply {
                            peer_id,
                            term,
                            entries: std::iter::once(entry).chain(entries).collect(),
                            cmds: cmds.collect(),
                            committed_at,
                        };
                        self.wait_for_merge_source(ctx, source_id, request, rest, peer_id);
                        return results;
                    }
                };
            self.apply_state.applied_index = entry.index;
            self.apply_state.applied_term = entry.term;
            self.applied_term = entry.term;
            APPLY_ENTRIES.inc();
            while let Some(cmd) = cmds.next_if(|c| c.index <= entry.index) {
                if cmd.index == entry.index && cmd.term == entry.term {
                    ctx.callbacks.push((cmd.callback, resp.clone()));
                }
            }
            match &res {
                Some(ExecResult::SplitRegion { derived, .. }) => self.region = derived.clone(),
                Some(ExecResult::ChangePeer { region, .. }) => {
                    self.removed = !region.peers.iter().any(|p| p.id == peer_id);
                    self.region = region.clone();
                }
                Some(ExecResult::PrepareMerge { region, state }) => {
                    self.region = region.clone();
                    self.merge_state = Some(Box::new(state.clone()));
                }
                Some(ExecResult::CommitMerge { region, .. }) => {
                    self.region = region.clone();
                    self.ready_merge_source = None;
                }
                Some(ExecResult::RollbackMerge { region }) => {
                    self.region = region.clone();
                    self.merge_state = None;
                }
                _ => {}
            }
            results.extend(res);
        }
        results
    }

    /// Parks `rest` (starting at a `CommitMerge`) and asks the local peer of the source to
    /// catch up to its PrepareMerge. The source shares this store's engine, so once it has
    /// applied everything up to there its keys are already in place for the target.
    fn wait_for_merge_source(
        &mut self,
        ctx: &mut ApplyContext,
        source_id: u64,
        request: Box<proto::raft_cmdpb::CommitMergeRequest>,
        rest: Apply,
        peer_id: u64,
    ) {
        let msg = PeerMsg::CatchUpLogs {
            target_region_id: self.region.id,
            request,
        };
        // A merge is prepared only while source and target have peers on the same stores,
        // and the source cannot change membership while merging: its peer must be here.
        crate::enforce!(
            ctx.raft_router.force_send(source_id, msg).is_ok(),
            self.region.id,
            peer_id,
            "merge source region {source_id} has no peer on this store"
        );
        self.merge_wait = Some(Box::new(MergeWait {
            source_id,
            batches: VecDeque::from([rest]),
        }));
    }

    /// The source confirmed it is caught up: applies the held-back batches.
    fn on_merge_source_ready(
        &mut self,
        ctx: &mut ApplyContext,
        source_id: u64,
        written: &mut Flow,
    ) -> Vec<ExecResult> {
        let Some(wait) = self.merge_wait.take_if(|w| w.source_id == source_id) else {
            return Vec::new();
        };
        self.ready_merge_source = Some(source_id);
        let mut results = Vec::new();
        for apply in wait.batches {
            // A later CommitMerge may park the rest again; `handle_apply` queues behind it.
            results.extend(self.handle_apply(ctx, apply, written));
        }
        results
    }
}

impl Fsm for ApplyFsm {
    type Message = ApplyMsg;

    fn is_stopped(&self) -> bool {
        self.stopped
    }
}

/// The apply system's control FSM; it has no work of its own yet.
pub struct ApplyControlFsm {
    pub receiver: Receiver<()>,
}

impl Fsm for ApplyControlFsm {
    type Message = ();

    fn is_stopped(&self) -> bool {
        false
    }
}

/// State of one apply poller round.
pub struct ApplyContext {
    kv: KvEngine,
    wb: KvWriteBatch,
    callbacks: Vec<(Callback, RaftCmdResponse)>,
    results: Vec<ApplyRes>,
    /// (region id, peer id) of apply FSMs stopped this round, told once the batch is written.
    destroyed: Vec<(u64, u64)>,
    raft_router: RaftRouter,
    messages_per_tick: usize,
    flow: Arc<StoreFlow>,
    /// Write early once the batch is this big, so one hot region cannot build a huge batch.
    flush_bytes: usize,
    /// When each batch of entries in this round was handed over by its peer.
    committed_at: Vec<Instant>,
}

impl ApplyContext {
    /// Writes the batch (data and applied indexes together), then answers and reports.
    fn flush(&mut self) {
        if !self.wb.is_empty() {
            crate::failpoint!(crate::failpoints::APPLY_BEFORE_WRITE);
            let start = Instant::now();
            if let Err(e) = self.kv.write(&self.wb, false) {
                // Continuing would acknowledge writes that are not stored.
                panic!("apply write batch failed: {e}");
            }
            crate::failpoint!(crate::failpoints::APPLY_AFTER_WRITE);
            APPLY_BATCH_WRITES.observe(start.elapsed().as_secs_f64());
            self.wb.clear();
        }
        for committed in self.committed_at.drain(..) {
            crate::metrics::COMMIT_TO_APPLY.observe(committed.elapsed().as_secs_f64());
        }
        for (cb, resp) in self.callbacks.drain(..) {
            cb.invoke_with(resp);
        }
        for res in self.results.drain(..) {
            let region_id = res.region_id;
            let _ = self
                .raft_router
                .force_send(region_id, PeerMsg::ApplyRes(Box::new(res)));
        }
        for (region_id, peer_id) in self.destroyed.drain(..) {
            let _ = self
                .raft_router
                .force_send(region_id, PeerMsg::ApplyDestroyed { peer_id });
        }
    }
}

impl PollHandler<ApplyFsm, ApplyControlFsm> for ApplyContext {
    fn begin(&mut self, _batch_size: usize) {}

    fn handle_control(&mut self, control: &mut ApplyControlFsm) -> Option<usize> {
        while control.receiver.try_recv().is_ok() {}
        Some(control.receiver.len())
    }

    fn handle_normal(&mut self, fsm: &mut ApplyFsm) -> HandleResult {
        let mut applied_any = false;
        let mut exec_results = Vec::new();
        let mut written = Flow::default();
        let mut release_memory = false;
        for _ in 0..self.messages_per_tick {
            let Ok(msg) = fsm.receiver.try_recv() else {
                break;
            };
            match msg {
                ApplyMsg::Apply(apply) => {
                    applied_any = true;
                    self.committed_at.push(apply.committed_at);
                    exec_results.extend(fsm.handle_apply(self, *apply, &mut written));
                }
                ApplyMsg::Snapshot(snapshot) => {
                    let AppliedSnapshot {
                        region,
                        apply_state,
                        peer_id,
                    } = *snapshot;
                    // The peer applies a snapshot only when nothing of the region is in flight
                    // here, so it can only move the applied index forward.
                    crate::enforce!(
                        apply_state.applied_index >= fsm.apply_state.applied_index,
                        fsm.region.id,
                        peer_id,
                        "snapshot at index {} would move the applied index back from {}",
                        apply_state.applied_index,
                        fsm.apply_state.applied_index
                    );
                    fsm.region = region;
                    fsm.applied_term = apply_state.applied_term;
                    fsm.apply_state = apply_state;
                }
                ApplyMsg::Destroy { peer_id } => {
                    fsm.stopped = true;
                    self.destroyed.push((fsm.region.id, peer_id));
                    break;
                }
                ApplyMsg::MergeSourceReady { source_id } => {
                    applied_any = true;
                    exec_results.extend(fsm.on_merge_source_ready(self, source_id, &mut written));
                }
                ApplyMsg::ReleaseMemory => release_memory = true,
            }
        }
        if release_memory && !fsm.stopped {
            fsm.receiver.release_memory();
        }
        if applied_any && !fsm.stopped {
            let key = keys::apply_state_key(fsm.region.id);
            if let Err(e) = self.wb.put_msg_cf(CF_RAFT, &key, &fsm.apply_state) {
                panic!("encode apply state of region {}: {e}", fsm.region.id);
            }
            self.flow.written.add(written.bytes, written.keys);
            self.results.push(ApplyRes {
                region_id: fsm.region.id,
                apply_state: fsm.apply_state,
                applied_term: fsm.applied_term,
                exec_results,
                written,
            });
            if self.wb.data_size() >= self.flush_bytes {
                self.flush();
            }
        }
        HandleResult::StopAt {
            progress: fsm.receiver.len(),
            skip_end: false,
        }
    }

    fn end(&mut self, _batch: &mut [Option<Box<ApplyFsm>>]) {
        self.flush();
    }
}

/// Builds one apply context per apply poller thread.
pub struct ApplyPollerBuilder {
    pub kv: KvEngine,
    pub raft_router: RaftRouter,
    pub messages_per_tick: usize,
    /// The store's flow counters, fed with every applied write.
    pub flow: Arc<StoreFlow>,
}

impl HandlerBuilder<ApplyFsm, ApplyControlFsm> for ApplyPollerBuilder {
    type Handler = ApplyContext;

    fn build(&mut self) -> ApplyContext {
        ApplyContext {
            wb: self.kv.write_batch(),
            kv: self.kv.clone(),
            callbacks: Vec::new(),
            results: Vec::new(),
            destroyed: Vec::new(),
            raft_router: self.raft_router.clone(),
            messages_per_tick: self.messages_per_tick,
            flow: self.flow.clone(),
            flush_bytes: 1024 * 1024,
            committed_at: Vec::new(),
        }
    }
}
