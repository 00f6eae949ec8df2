//! The raft poller: drains peer mailboxes, then collects every touched peer's ready once per
//! round so the log writer sees many peers' entries together.

use batch_system::{HandleResult, HandlerBuilder, PollHandler};

use crate::context::PollContext;
use crate::fsm::peer::PeerFsm;
use crate::fsm::store::StoreFsm;

pub struct RaftPoller {
    ctx: PollContext,
}

impl PollHandler<PeerFsm, StoreFsm> for RaftPoller {
    fn begin(&mut self, _batch_size: usize) {}

    fn handle_control(&mut self, store: &mut StoreFsm) -> Option<usize> {
        let limit = self.ctx.cfg.messages_per_tick;
        store.handle_messages(&mut self.ctx, limit);
        Some(store.pending_messages())
    }

    fn handle_normal(&mut self, fsm: &mut PeerFsm) -> HandleResult {
        let limit = self.ctx.cfg.messages_per_tick;
        let handled = fsm.handle_messages(&mut self.ctx, limit);
        if handled >= limit && !fsm.peer.stopped {
            return HandleResult::KeepProcessing;
        }
        HandleResult::StopAt {
            progress: fsm.pending_messages(),
            skip_end: false,
        }
    }

    fn end(&mut self, batch: &mut [Option<Box<PeerFsm>>]) {
        for fsm in batch.iter_mut().flatten() {
            fsm.peer.handle_ready(&mut self.ctx);
        }
        // With `store-io-pool-size = 0` the round's readies are written here; their persisted
        // notices reach the peers in the next round.
        self.ctx.log_sink.flush();
        self.ctx.flush_ticks();
        self.ctx.transport.flush();
    }
}

/// Builds one poller context per raft poller thread.
pub struct RaftPollerBuilder {
    pub make_ctx: Box<dyn FnMut() -> PollContext + Send>,
}

impl HandlerBuilder<PeerFsm, StoreFsm> for RaftPollerBuilder {
    type Handler = RaftPoller;

    fn build(&mut self) -> RaftPoller {
        RaftPoller {
            ctx: (self.make_ctx)(),
        }
    }
}
