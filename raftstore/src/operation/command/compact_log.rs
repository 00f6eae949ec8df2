//! `CompactLog`: raft log GC, every phase in order.
//!
//! 1. **Propose** (peer, leader only): on `on_raft_log_gc_tick`, `maybe_compact_log` proposes
//!    compacting up to the highest index every follower has (or further when the log passes
//!    its count or size limit, leaving slow followers to catch up by snapshot). When the raft
//!    log engine passes its purge threshold and names the region (`ForceCompactLog`, from the
//!    GC worker's purge), `on_force_compact_log` compacts up to the applied index at once.
//! 2. **Apply** (apply pool): `exec_compact_log` moves the truncated state in the apply state,
//!    never past the applied index, in the same batch as the data.
//! 3. **Apply result** (peer, every replica): `on_ready_compact_log` drops the entries from
//!    the cache and has the GC worker (`worker::raftlog_gc`) delete them from the raft log
//!    engine, off the raft threads.

use proto::raft_cmdpb::{
    AdminCmdType, AdminRequest, CompactLogRequest, CompactLogResponse, RaftCmdRequest,
    RaftCmdResponse, RaftRequestHeader,
};
use proto::raft_serverpb::{MergeState, RaftApplyState, RaftTruncatedState};

use crate::apply::response::{admin_resp, missing};
use crate::context::PollContext;
use crate::errors::{Error, Result};
use crate::msg::apply::ExecResult;
use crate::msg::{Callback, PeerTick, RaftCommand};
use crate::peer::Peer;
use crate::worker::raftlog_gc::GcTask;

// ---- Propose ----

impl Peer {
    /// Leaders consider compacting their log every `raft_log_gc_tick_interval`.
    pub fn on_raft_log_gc_tick(&mut self, ctx: &mut PollContext) {
        if self.is_hibernating() {
            self.aux_ticks_paused = true;
            return;
        }
        ctx.schedule_tick(self.region_id(), PeerTick::RaftLogGc);
        if self.is_leader() {
            self.maybe_compact_log(ctx);
        }
    }

    /// Proposes `CompactLog` if the log is worth compacting now; returns whether it did.
    pub fn maybe_compact_log(&mut self, ctx: &mut PollContext) -> bool {
        match self.compact_log_index(ctx) {
            Some(compact_index) => self.propose_compact_log(ctx, compact_index),
            None => false,
        }
    }

    /// The raft log engine keeps too many of this region's entries in its oldest files (the
    /// log is past `raft-engine.purge-threshold`), so those files cannot be deleted. A leader
    /// compacts up to its applied index now (keeping that last entry), whatever its followers
    /// have: disk space the log holds is bounded, and a follower that lacks the entries
    /// catches up from a snapshot.
    /// A follower does nothing here; its entries go when its leader's compaction applies, or
    /// the log engine copies them forward itself after asking a few times. Neither does a
    /// merging region: its entries are what the merge carries.
    pub fn on_force_compact_log(&mut self, ctx: &mut PollContext) {
        if !self.is_leader() || self.is_merging() {
            return;
        }
        let applied = self.storage().applied_index();
        let first = self.storage().truncated_index() + 1;
        // Keep the last applied entry so its term stays known.
        if applied > first {
            self.propose_compact_log(ctx, applied - 1);
        }
    }

    /// Proposes compacting the log up to `compact_index`; false when its term is unknown.
    fn propose_compact_log(&mut self, ctx: &mut PollContext, compact_index: u64) -> bool {
        let Ok(compact_term) = self.raft_group.raft.raft_log.term(compact_index) else {
            return false;
        };
        let req = RaftCmdRequest {
            header: Some(RaftRequestHeader {
                region_id: self.region_id(),
                peer: Some(self.meta),
                region_epoch: self.region().region_epoch,
                ..Default::default()
            }),
            admin_request: Some(AdminRequest {
                cmd_type: AdminCmdType::CompactLog as i32,
                compact_log: Some(CompactLogRequest {
                    compact_index,
                    compact_term,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.propose_command(ctx, RaftCommand::new(req, Callback::none()));
        true
    }

    /// The index to compact to, if compaction is worth it now. Entries every peer has and
    /// this peer has applied can go; followers never need a snapshot for them.
    fn compact_log_index(&self, ctx: &PollContext) -> Option<u64> {
        let applied = self.storage().applied_index();
        let first = self.storage().truncated_index() + 1;
        let replicated = self
            .raft_group
            .raft
            .prs()
            .iter()
            .map(|(_, p)| p.matched)
            .min()?;
        let over_count = applied.saturating_sub(first) >= ctx.cfg.raft_log_gc_count_limit;
        let over_size = self.storage().log_size_hint() >= ctx.cfg.raft_log_gc_size_limit;
        // Past the limits the log is cut at the applied index even if a follower lags: it
        // will catch up from a snapshot instead.
        let candidate = if over_count || over_size {
            applied
        } else {
            replicated.min(applied)
        };
        if candidate <= first {
            return None;
        }
        if candidate - first < ctx.cfg.raft_log_gc_threshold && !over_count && !over_size {
            return None;
        }
        // Keep the last entry so its term stays known.
        Some(candidate - 1)
    }
}

// ---- Apply on the apply pool ----

/// Moves the truncated state up to `compact_index` (never past the applied index); the log
/// itself is trimmed later, when the peer handles the result. Compacting to an index already
/// compacted past is harmless and answered with success. While the region is a merge source
/// (`merge_state` set) nothing is compacted: `CommitMerge` carries the source's entries from
/// the merge's `min_index` on, and a compaction proposed before the PrepareMerge applied
/// could reach past it (TiKV skips compaction in merging mode the same way).
pub(crate) fn exec_compact_log(
    apply_state: &mut RaftApplyState,
    admin: &AdminRequest,
    merge_state: Option<&MergeState>,
) -> Result<(RaftCmdResponse, Option<ExecResult>)> {
    let req = admin
        .compact_log
        .as_ref()
        .ok_or_else(|| missing("compact log"))?;
    if merge_state.is_some() {
        return Ok((admin_resp(AdminCmdType::CompactLog), None));
    }
    let truncated = apply_state.truncated_state.unwrap_or_default();
    if req.compact_index <= truncated.index {
        // Already compacted further; harmless.
        return Ok((admin_resp(AdminCmdType::CompactLog), None));
    }
    if req.compact_index > apply_state.applied_index {
        return Err(Error::InvalidRequest(format!(
            "compact index {} beyond applied index {}",
            req.compact_index, apply_state.applied_index
        )));
    }
    apply_state.truncated_state = Some(RaftTruncatedState {
        index: req.compact_index,
        term: req.compact_term,
    });
    let mut resp = admin_resp(AdminCmdType::CompactLog);
    if let Some(a) = resp.admin_response.as_mut() {
        a.compact_log = Some(CompactLogResponse {});
    }
    Ok((
        resp,
        Some(ExecResult::CompactLog {
            truncated_index: req.compact_index,
        }),
    ))
}

// ---- Apply result on the peer ----

impl Peer {
    /// The log is compacted up to `truncated_index`: drop those entries from the cache now,
    /// and from the raft log engine on the GC worker, off the raft threads.
    pub(crate) fn on_ready_compact_log(&mut self, ctx: &mut PollContext, truncated_index: u64) {
        self.storage_mut().compact_cache_to(truncated_index + 1);
        let _ = ctx.gc.send(GcTask::Compact {
            region_id: self.region_id(),
            compact_to: truncated_index + 1,
        });
    }
}

#[cfg(test)]
mod tests {
    use proto::raft_cmdpb::CompactLogRequest;

    use super::*;

    fn compaction_to(index: u64) -> AdminRequest {
        AdminRequest {
            cmd_type: AdminCmdType::CompactLog as i32,
            compact_log: Some(CompactLogRequest {
                compact_index: index,
                compact_term: 5,
            }),
            ..Default::default()
        }
    }

    fn applied_to(index: u64) -> RaftApplyState {
        RaftApplyState {
            applied_index: index,
            truncated_state: Some(RaftTruncatedState { index: 10, term: 5 }),
            ..Default::default()
        }
    }

    #[test]
    fn a_compaction_moves_the_truncated_state_up_to_the_applied_index() {
        let mut state = applied_to(100);
        let (_, result) = exec_compact_log(&mut state, &compaction_to(90), None).unwrap();
        assert_eq!(state.truncated_state.unwrap().index, 90);
        assert!(matches!(
            result,
            Some(ExecResult::CompactLog {
                truncated_index: 90
            })
        ));
        assert!(exec_compact_log(&mut state, &compaction_to(101), None).is_err());
    }

    /// A compaction proposed before the PrepareMerge applied, applied after it, must not cut
    /// away the entries from `min_index` on that CommitMerge carries to the target.
    #[test]
    fn a_merge_source_keeps_its_log() {
        let mut state = applied_to(100);
        let merge = MergeState {
            min_index: 40,
            commit: 95,
            ..Default::default()
        };
        let (resp, result) =
            exec_compact_log(&mut state, &compaction_to(90), Some(&merge)).unwrap();
        assert!(resp.header.and_then(|h| h.error).is_none(), "answered");
        assert!(result.is_none());
        assert_eq!(state.truncated_state.unwrap().index, 10);
    }
}
