//! The raft poller: drains peer mailboxes, then collects every touched peer's ready once per
//! round so the log writer sees many peers' entries together.

use batch_system::{HandleResult, HandlerBuilder, InlinePoller, PollHandler};

use crate::context::PollContext;
use crate::fsm::apply::{ApplyContext, ApplyControlFsm, ApplyFsm};
use crate::fsm::peer::PeerFsm;
use crate::fsm::store::StoreFsm;

/// The apply system driven from a raft poller's thread (`apply-pool-size = 0`).
pub type InlineApply = InlinePoller<ApplyFsm, ApplyControlFsm, ApplyContext>;

/// Apply rounds a raft poller runs at the end of one of its own rounds before it goes on
/// with raft work; whatever is left is applied at the end of its next round, or before it
/// waits for work. Committed entries reach the apply system only from raft pollers, so with
/// one raft poller a round's applies take one or two apply rounds; the limit keeps a poller
/// from being held by applies other raft pollers keep handing over.
const INLINE_APPLY_ROUNDS: usize = 4;

pub struct RaftPoller {
    ctx: PollContext,
    /// Set when the store has no apply threads: this poller applies what its peers commit.
    apply: Option<InlineApply>,
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
        // Committed entries are applied (and answered) before this round's log write: they
        // are durable on a quorum already, and the fsync would only delay the answers.
        if let Some(apply) = &mut self.apply {
            apply.poll(INLINE_APPLY_ROUNDS);
        }
        // With `store-io-pool-size = 0` the round's readies are written here; their persisted
        // notices reach the peers in the next round.
        self.ctx.log_sink.flush();
        self.ctx.flush_ticks();
        self.ctx.transport.flush();
    }

    fn pause(&mut self) {
        // Nothing this poller handed to the apply system may wait while it sleeps: no other
        // thread would apply it.
        if let Some(apply) = &mut self.apply {
            apply.poll(usize::MAX);
        }
    }
}

/// Builds one poller context per raft poller thread.
pub struct RaftPollerBuilder {
    pub make_ctx: Box<dyn FnMut() -> PollContext + Send>,
    /// One inline apply poller per raft poller thread when the store has no apply threads;
    /// empty otherwise.
    pub inline_apply: Vec<InlineApply>,
}

impl HandlerBuilder<PeerFsm, StoreFsm> for RaftPollerBuilder {
    type Handler = RaftPoller;

    fn build(&mut self) -> RaftPoller {
        RaftPoller {
            ctx: (self.make_ctx)(),
            apply: self.inline_apply.pop(),
        }
    }
}
