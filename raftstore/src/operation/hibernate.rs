//! Hibernation: a region where nothing happens stops its raft clock once every peer agrees,
//! so thousands of idle regions cost no CPU. Any message or proposal wakes it.

use std::collections::HashSet;

use proto::raft_serverpb::{ExtraMessage, ExtraMessageType, RaftMessage};
use raft::StateRole;
use tracing::debug;

use crate::context::PollContext;
use crate::msg::PeerTick;
use crate::peer::{GroupState, Peer};

impl Peer {
    /// Starts the raft clock again if it was stopped.
    pub fn wake_up(&mut self, ctx: &mut PollContext) {
        if self.hibernation.state == GroupState::Idle {
            debug!(
                region_id = self.region_id(),
                peer_id = self.peer_id(),
                "wake up"
            );
            self.refresh_liveness_after_sleep(ctx);
            self.set_group_state(GroupState::Active);
            if self.is_leader() {
                // The tick registered while asleep is due far off.
                self.schedule_pd_heartbeat_tick(ctx);
            }
        }
        self.hibernation.idle_ticks = 0;
        self.schedule_raft_tick(ctx);
        if self.aux_ticks_paused {
            self.aux_ticks_paused = false;
            ctx.schedule_tick(self.region_id(), PeerTick::RaftLogGc);
            ctx.schedule_tick(self.region_id(), PeerTick::SplitCheck);
        }
    }

    fn set_group_state(&mut self, state: GroupState) {
        self.hibernation.state = state;
        self.read_delegate
            .set_hibernating(state == GroupState::Idle);
        if state == GroupState::Idle {
            self.release_idle_memory();
        }
    }

    /// Gives back what a sleeping region does not need, so a store of idle regions stays
    /// small: raft's per-follower inflight windows (`max-inflight-msgs` slots each, allocated
    /// again on the next send), the spare capacity of queues that are empty by now, and the
    /// entry cache's durable, applied entries (raft-engine still has them), and the buffers
    /// of the peer's and the apply FSM's mailboxes.
    pub fn release_idle_memory(&mut self) {
        let raft = &mut self.raft_group.raft;
        raft.maybe_free_inflight_buffers();
        if raft.raft_log.unstable.entries.is_empty() {
            raft.raft_log.unstable.entries = Vec::new();
        }
        raft.msgs.shrink_to_fit();
        self.hibernation.acks = Vec::new();
        self.proposals.shrink_to_fit();
        self.pending_reads.shrink_to_fit();
        self.unpersisted.shrink_to_fit();
        self.raft_group.mut_store().release_idle_cache();
        self.release_mailboxes = true;
    }

    pub fn schedule_raft_tick(&mut self, ctx: &mut PollContext) {
        if !self.raft_tick_scheduled && !self.stopped {
            self.raft_tick_scheduled = true;
            ctx.schedule_tick(self.region_id(), PeerTick::Raft);
        }
    }

    /// Whether this leader has nothing in flight: every peer holds and has committed the
    /// whole log, everything is applied and persisted, and nobody waits for an answer.
    fn leader_is_quiet(&self) -> bool {
        let raft = &self.raft_group.raft;
        let last = raft.raft_log.last_index();
        raft.state == StateRole::Leader
            && raft.raft_log.committed == last
            && self.storage().applied_index() == last
            && self.unpersisted.is_empty()
            && self.proposals.is_empty()
            && self.pending_reads.is_empty()
            && raft.lead_transferee.is_none()
            && !raft.has_pending_conf()
            && raft.prs().iter().all(|(_, p)| p.matched == last)
    }

    /// Called on every raft tick of a leader: after a few quiet ticks, ask the followers.
    pub fn check_hibernate(&mut self, ctx: &mut PollContext) {
        if !ctx.cfg.hibernate_regions || !self.is_leader() {
            return;
        }
        if !self.leader_is_quiet() {
            self.hibernation.idle_ticks = 0;
            self.hibernation.acks.clear();
            return;
        }
        self.hibernation.idle_ticks += 1;
        if self.hibernation.idle_ticks < ctx.cfg.hibernate_idle_ticks {
            return;
        }
        let followers: HashSet<u64> = self
            .region()
            .peers
            .iter()
            .map(|p| p.id)
            .filter(|id| *id != self.peer_id())
            .collect();
        if followers
            .iter()
            .all(|id| self.hibernation.acks.contains(id))
        {
            // Log GC and split checks do not run while asleep: settle both first.
            if self.maybe_compact_log(ctx) {
                return;
            }
            if self.split_check_due(ctx) {
                self.schedule_split_check(ctx);
            }
            self.set_group_state(GroupState::Idle);
            return;
        }
        let extra = self.hibernate_extra(ExtraMessageType::MsgHibernateRequest);
        for id in followers {
            if !self.hibernation.acks.contains(&id) {
                self.send_extra(ctx, id, extra);
            }
        }
    }

    fn hibernate_extra(&self, ty: ExtraMessageType) -> ExtraMessage {
        let raft = &self.raft_group.raft;
        ExtraMessage {
            r#type: ty as i32,
            index: raft.raft_log.last_index(),
            commit: raft.raft_log.committed,
            term: raft.term,
        }
    }

    fn send_extra(&self, ctx: &mut PollContext, to: u64, extra: ExtraMessage) {
        let Some(to_peer) = self.region_peer(to).cloned() else {
            return;
        };
        let region = self.region();
        ctx.transport.send(RaftMessage {
            region_id: region.id,
            from_peer: Some(self.meta),
            to_peer: Some(to_peer),
            region_epoch: region.region_epoch,
            extra: Some(extra),
            ..Default::default()
        });
    }

    /// Hibernation requests and answers.
    pub fn on_extra_message(&mut self, ctx: &mut PollContext, msg: &RaftMessage) {
        let (Some(extra), Some(from)) = (msg.extra.as_ref(), msg.from_peer.as_ref()) else {
            return;
        };
        let raft = &self.raft_group.raft;
        match extra.r#type() {
            ExtraMessageType::MsgHibernateRequest => {
                // Agree only if we follow this leader and hold exactly its log.
                let agree = raft.state == StateRole::Follower
                    && raft.leader_id == from.id
                    && raft.term == extra.term
                    && raft.raft_log.last_index() == extra.index
                    && raft.raft_log.committed == extra.commit
                    && self.unpersisted.is_empty();
                if agree && ctx.cfg.hibernate_regions {
                    let reply = self.hibernate_extra(ExtraMessageType::MsgHibernateResponse);
                    self.send_extra(ctx, from.id, reply);
                    self.set_group_state(GroupState::Idle);
                }
            }
            ExtraMessageType::MsgHibernateResponse => {
                let current = raft.state == StateRole::Leader
                    && raft.term == extra.term
                    && raft.raft_log.last_index() == extra.index;
                if current && !self.hibernation.acks.contains(&from.id) {
                    self.hibernation.acks.push(from.id);
                }
            }
            ExtraMessageType::MsgStoreHeartbeat => {}
        }
    }

    /// The store hosting `store_id` went silent: if our leader lives there, start the clock so
    /// an election can happen; as leader, stop sending to it eagerly.
    pub fn on_store_unreachable(&mut self, ctx: &mut PollContext, store_id: u64) {
        if self.is_leader() {
            let ids: Vec<u64> = self
                .region()
                .peers
                .iter()
                .filter(|p| p.store_id == store_id)
                .map(|p| p.id)
                .collect();
            if ids.is_empty() {
                return;
            }
            for id in ids {
                self.raft_group.report_unreachable(id);
            }
            // Tick again so check-quorum can step down a leader that lost its majority.
            self.wake_up(ctx);
            return;
        }
        let leader_store = self.leader().map(|p| p.store_id);
        if leader_store.is_none() || leader_store == Some(store_id) {
            self.wake_up(ctx);
        }
    }
}
