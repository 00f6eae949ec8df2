//! The peer FSM: a thin shell that feeds mailbox messages to the peer's feature handlers.

use batch_system::Fsm;
use batch_system::MailboxReceiver;

use crate::context::PollContext;
use crate::msg::apply::ApplyMsg;
use crate::msg::{MeasuredRegion, PeerMsg, PeerTick, SignificantMsg, SplitRegion};
use crate::operation::command::write::is_batchable;
use crate::peer::Peer;

/// A region's peer as the raft pollers drive it; one per region, boxed.
pub struct PeerFsm {
    pub peer: Peer,
    receiver: MailboxReceiver<PeerMsg>,
}

/// Every peer of a store holds one `Box<PeerFsm>`, and jemalloc rounds it up to its size class
/// (..., 1536, 1792, 2048, 2560 bytes): a few bytes over 1792 cost 256 more per peer (25 MiB
/// at 100,000 peers). Rarely used state goes behind a box or into the poller's context.
const _: () = assert!(std::mem::size_of::<PeerFsm>() <= 1792);

impl PeerFsm {
    pub fn new(peer: Peer, receiver: MailboxReceiver<PeerMsg>) -> PeerFsm {
        PeerFsm { peer, receiver }
    }

    pub fn pending_messages(&self) -> usize {
        self.receiver.len()
    }

    /// Drains up to `limit` messages; returns how many were handled.
    pub fn handle_messages(&mut self, ctx: &mut PollContext, limit: usize) -> usize {
        let mut handled = 0;
        while handled < limit {
            let Ok(msg) = self.receiver.try_recv() else {
                break;
            };
            handled += 1;
            if self.peer.pending_remove {
                self.peer.on_message_while_removing(ctx, msg);
                if self.peer.stopped {
                    break;
                }
                continue;
            }
            match msg {
                PeerMsg::RaftCommand(c) if is_batchable(&c.request) => {
                    self.peer.batch_command(ctx, *c)
                }
                other => {
                    // Everything else keeps its place after the writes queued before it.
                    self.peer.flush_batch(ctx);
                    self.handle(ctx, other);
                }
            }
            if self.peer.stopped {
                break;
            }
        }
        self.peer.flush_batch(ctx);
        let went_idle = std::mem::take(&mut self.peer.release_mailboxes);
        if !self.peer.stopped && (went_idle || (handled > 0 && self.peer.is_hibernating())) {
            // Also after the odd message a sleeping peer takes without waking (a late tick,
            // a late hibernate reply): its first message allocated a new buffer.
            self.receiver.release_memory();
        }
        if went_idle && !self.peer.stopped {
            let region_id = self.peer.region_id();
            // Lost only if the apply FSM is gone, and its buffer with it.
            let _ = ctx.apply_router.send(region_id, ApplyMsg::ReleaseMemory);
        }
        handled
    }

    fn handle(&mut self, ctx: &mut PollContext, msg: PeerMsg) {
        let peer = &mut self.peer;
        match msg {
            PeerMsg::RaftMessage(m) => peer.on_raft_message(ctx, *m),
            PeerMsg::VerifiedSnapshot(m) => peer.on_verified_snapshot(ctx, *m),
            PeerMsg::RaftCommand(c) => peer.propose_command(ctx, *c),
            PeerMsg::Tick(PeerTick::Raft) => peer.on_raft_tick(ctx),
            PeerMsg::Tick(PeerTick::RaftLogGc) => peer.on_raft_log_gc_tick(ctx),
            PeerMsg::Tick(PeerTick::SplitCheck) => peer.on_split_check_tick(ctx),
            PeerMsg::Tick(PeerTick::PdHeartbeat) => peer.on_pd_heartbeat_tick(ctx),
            PeerMsg::PdOperator(op) => peer.on_pd_operator(ctx, *op),
            PeerMsg::Tick(PeerTick::CheckMerge) => peer.on_check_merge_tick(ctx),
            PeerMsg::Tick(PeerTick::AwaitLeader) => peer.on_await_leader_tick(ctx),
            PeerMsg::CatchUpLogs {
                target_region_id,
                request,
            } => peer.on_catch_up_logs(ctx, target_region_id, *request),
            PeerMsg::MergeResult { target_region_id } => {
                peer.on_merge_result(ctx, target_region_id)
            }
            PeerMsg::RegionSize(measured) => {
                let MeasuredRegion {
                    region_epoch,
                    size,
                    keys,
                } = *measured;
                peer.on_region_size(ctx, region_epoch, size, keys)
            }
            PeerMsg::SplitRegion(split) => {
                let SplitRegion {
                    region_epoch,
                    split_keys,
                    ids,
                    callback,
                } = *split;
                peer.on_split_region(ctx, region_epoch, split_keys, ids, callback)
            }
            PeerMsg::Persisted {
                peer_id,
                ready_number,
            } => {
                if peer_id == peer.peer_id() {
                    peer.on_persisted(ready_number);
                }
            }
            PeerMsg::ApplyRes(res) => peer.on_apply_res(ctx, *res),
            PeerMsg::ForceCompactLog => peer.on_force_compact_log(ctx),
            // Only sent after `destroy`, whose messages go to `on_message_while_removing`.
            PeerMsg::ApplyDestroyed { .. } => {}
            PeerMsg::Significant(SignificantMsg::StoreUnreachable { store_id }) => {
                peer.on_store_unreachable(ctx, store_id)
            }
            PeerMsg::Significant(SignificantMsg::PdReconnected) => peer.on_pd_reconnected(ctx),
            PeerMsg::SnapshotGenerated => peer.on_snapshot_generated(),
            PeerMsg::SnapshotApplied { peer_id, result } => {
                if peer_id == peer.peer_id() {
                    peer.on_snapshot_applied(result.map_err(|e| *e));
                }
            }
            PeerMsg::Start if peer.may_start_asleep(ctx) => peer.start_asleep(ctx),
            PeerMsg::Start => {
                peer.wake_up(ctx);
                ctx.schedule_tick(peer.region_id(), PeerTick::RaftLogGc);
                ctx.schedule_tick(peer.region_id(), PeerTick::SplitCheck);
                if peer.pending_merge_state.is_some() {
                    // Restarted while merging: push the merge on.
                    ctx.schedule_tick(peer.region_id(), PeerTick::CheckMerge);
                }
            }
        }
    }
}

impl Fsm for PeerFsm {
    type Message = PeerMsg;

    fn is_stopped(&self) -> bool {
        self.peer.stopped
    }
}
