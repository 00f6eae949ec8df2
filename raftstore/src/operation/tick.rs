//! The raft clock.

use crate::context::PollContext;
use crate::peer::{GroupState, Peer};

impl Peer {
    pub fn on_raft_tick(&mut self, ctx: &mut PollContext) {
        self.raft_tick_scheduled = false;
        if self.stopped || self.hibernation.state == GroupState::Idle {
            return;
        }
        if !self.is_applying_snapshot() {
            // Only an election timeout could come of a follower's tick (see
            // `is_applying_snapshot`).
            self.raft_group.tick();
        }
        self.on_transfer_tick();
        self.retry_stalled_snapshots(ctx);
        self.report_caught_up_peers(ctx);
        self.check_hibernate(ctx);
        if self.hibernation.state == GroupState::Active {
            self.schedule_raft_tick(ctx);
        }
    }
}

impl Peer {
    /// A snapshot may be lost on the way (the follower was down or rejected its files); raft
    /// waits for it forever, so after a while report it failed and let raft send a new one.
    fn retry_stalled_snapshots(&mut self, ctx: &mut PollContext) {
        if !self.is_leader() {
            self.snapshot_wait_ticks.clear();
            return;
        }
        let limit = ctx.cfg.raft_election_timeout_ticks * 2;
        let waiting: Vec<u64> = self
            .raft_group
            .raft
            .prs()
            .iter()
            .filter(|(_, p)| p.state == raft::ProgressState::Snapshot)
            .map(|(id, _)| *id)
            .collect();
        self.snapshot_wait_ticks
            .retain(|(id, _)| waiting.contains(id));
        for id in waiting {
            let at = match self.snapshot_wait_ticks.iter().position(|(p, _)| *p == id) {
                Some(at) => at,
                None => {
                    self.snapshot_wait_ticks.push((id, 0));
                    self.snapshot_wait_ticks.len() - 1
                }
            };
            let ticks = &mut self.snapshot_wait_ticks[at].1;
            *ticks += 1;
            if *ticks > limit {
                *ticks = 0;
                self.raft_group
                    .report_snapshot(id, raft::SnapshotStatus::Failure);
            }
        }
    }
}
