//! Raft log GC: the leader proposes `CompactLog` once enough applied entries are replicated
//! everywhere; every replica then drops them from its log.

use proto::raft_cmdpb::{
    AdminCmdType, AdminRequest, CompactLogRequest, RaftCmdRequest, RaftRequestHeader,
};

use crate::context::PollContext;
use crate::msg::{Callback, PeerTick, RaftCommand};
use crate::peer::Peer;

impl Peer {
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
        let Some(compact_index) = self.compact_log_index(ctx) else {
            return false;
        };
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
