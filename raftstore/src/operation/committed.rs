//! Committed entries go to the apply pool with their callbacks; apply results come back.

use std::time::Instant;

use prost::Message as _;
use proto::eraftpb::{Entry, EntryType};
use proto::raft_cmdpb::{AdminCmdType, AdminRequest};

use crate::context::PollContext;
use crate::errors::{err_resp, Error};
use crate::msg::apply::{Apply, ApplyMsg, ApplyRes, ExecResult, PendingCmd};
use crate::operation::commit_broadcast::BcastEvent;
use crate::peer::proposal::Matched;
use crate::peer::Peer;

/// The admin part of a command entry; prost skips the header and the writes, so probing a
/// write entry costs no allocation.
#[derive(Clone, PartialEq, prost::Message)]
struct AdminProbe {
    #[prost(message, optional, tag = "3")]
    admin_request: Option<AdminRequest>,
}

/// The admin command type of a normal entry, if it carries one (an undecodable entry has
/// none: apply refuses it).
pub(crate) fn admin_type(entry: &Entry) -> Option<AdminCmdType> {
    admin_request(entry).map(|a| a.cmd_type())
}

/// The admin request of a normal entry, if it carries one (an undecodable entry has none).
pub(crate) fn admin_request(entry: &Entry) -> Option<AdminRequest> {
    if entry.get_entry_type() != EntryType::EntryNormal || entry.data.is_empty() {
        return None;
    }
    AdminProbe::decode(&entry.data[..])
        .ok()
        .and_then(|p| p.admin_request)
}

/// Whether a committed entry is a `BatchSplit`.
fn is_batch_split(entry: &Entry) -> bool {
    admin_type(entry) == Some(AdminCmdType::BatchSplit)
}

impl Peer {
    /// Matches committed entries with their proposals and ships them to the apply pool.
    pub fn handle_committed_entries(&mut self, ctx: &mut PollContext, entries: Vec<Entry>) {
        let Some(last) = entries.last() else {
            return;
        };
        let last_index = last.index;
        let term = self.term();
        let is_leader = self.is_leader();
        let mut cmds = Vec::new();
        let mut newest_own: Option<Instant> = None;
        for e in &entries {
            if is_batch_split(e) {
                self.last_committed_split_idx = e.index;
                // Local readers stop using the lease at once (see the field's invariant).
                self.read_delegate.lease.expire();
            }
            let matched = self.proposals.find(e.term, e.index, |stale| {
                stale
                    .callback
                    .invoke_with(err_resp(Error::StaleCommand, term));
            });
            if let Matched::Found(p) = matched {
                if is_leader && p.term == term {
                    newest_own = Some(p.propose_time);
                    crate::metrics::PROPOSE_TO_COMMIT
                        .observe(p.propose_time.elapsed().as_secs_f64());
                }
                cmds.push(PendingCmd {
                    index: p.index,
                    term: p.term,
                    callback: p.callback,
                });
            }
        }
        // A quorum accepted an entry we proposed at that time: no other leader can exist
        // before it plus the lease.
        if let Some(sent) = newest_own {
            self.renew_lease(sent, term);
        }
        self.last_sent_to_apply = last_index;
        let msg = ApplyMsg::Apply(Box::new(Apply {
            peer_id: self.peer_id(),
            term,
            entries,
            cmds,
            committed_at: Instant::now(),
        }));
        if ctx.apply_router.send(self.region_id(), msg).is_err() {
            self.stopped = true;
        }
    }

    /// The apply pool finished a batch of this region's entries.
    pub fn on_apply_res(&mut self, ctx: &mut PollContext, res: ApplyRes) {
        if self.stopped {
            return;
        }
        let applied = res.apply_state.applied_index;
        crate::enforce!(
            applied >= self.storage().applied_index() && applied <= self.last_sent_to_apply,
            self.region_id(),
            self.peer_id(),
            "apply result at index {applied}, but applied index is {} and last index sent to \
             apply is {}",
            self.storage().applied_index(),
            self.last_sent_to_apply
        );
        self.written_since_split_check.bytes += res.written.bytes;
        self.written_since_split_check.keys += res.written.keys;
        let leading = self.is_leader();
        self.pd_stats.on_written(res.written, leading);
        let limit = ctx.cfg.raft_entry_cache_limit;
        self.storage_mut().on_applied(res.apply_state, limit);
        self.raft_group.advance_apply_to(applied);
        self.on_commit_broadcast_event(BcastEvent::Applied { index: applied });
        self.read_delegate.set_applied_term(res.applied_term);
        for r in res.exec_results {
            match r {
                ExecResult::CompactLog { truncated_index } => {
                    self.on_ready_compact_log(ctx, truncated_index);
                }
                ExecResult::SplitRegion { derived, regions } => {
                    self.on_ready_split_region(ctx, derived, regions);
                }
                ExecResult::ChangePeer { cc, region } => {
                    self.on_ready_change_peer(ctx, cc, region);
                    if self.stopped {
                        return;
                    }
                }
                ExecResult::PrepareMerge { region, state } => {
                    self.on_ready_prepare_merge(ctx, region, state);
                }
                ExecResult::CommitMerge { region, source } => {
                    self.on_ready_commit_merge(ctx, region, source);
                }
                ExecResult::RollbackMerge { region } => {
                    self.on_ready_rollback_merge(ctx, region);
                }
            }
        }
        if self.prepare_merge_fence != 0 && applied >= self.prepare_merge_fence {
            // The PrepareMerge applied without taking effect (it failed a check there).
            self.prepare_merge_fence = 0;
        }
        self.maybe_report_merge_source_ready(ctx);
        self.serve_ready_reads(ctx);
    }
}
