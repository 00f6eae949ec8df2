//! The raft clock.

use crate::context::PollContext;
use crate::peer::{GroupState, Peer};

impl Peer {
    pub fn on_raft_tick(&mut self, ctx: &mut PollContext) {
        self.raft_tick_scheduled = false;
        if self.stopped || self.hibernation.state == GroupState::Idle {
            return;
        }
        self.raft_group.tick();
        self.check_hibernate(ctx);
        if self.hibernation.state == GroupState::Active {
            self.schedule_raft_tick(ctx);
        }
    }
}
