//! Hibernation: a region where nothing happens stops its raft clock once every peer agrees,
//! so thousands of idle regions cost no CPU. Any message or proposal wakes it.

use std::collections::HashSet;

use proto::raft_serverpb::{ExtraMessage, ExtraMessageType, RaftMessage};
use raft::StateRole;
use tracing::debug;

use crate::context::PollContext;
use crate::msg::PeerTick;
use crate::peer::{GroupState, Peer};
use crate::stats::StoreLiveness;

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
        let followers: HashSet<u64> = self.other_peer_ids().collect();
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

    /// The ids of the region's other peers.
    fn other_peer_ids(&self) -> impl Iterator<Item = u64> + '_ {
        let me = self.peer_id();
        self.region()
            .peers
            .iter()
            .map(|p| p.id)
            .filter(move |id| *id != me)
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
            ExtraMessageType::MsgLeaderQuery => {
                if !self.is_leader() {
                    return;
                }
                if self.region().peers.iter().all(|p| p.id != from.id) {
                    // Removed while its store was down: tell it, so it cleans up.
                    self.maybe_tell_stale_peer(ctx, msg);
                    return;
                }
                // A heartbeat to every follower: the asker learns its leader and commit
                // index (or, if it is behind, answers and gets appends); the others take it
                // as routine. No peer's clock starts.
                self.raft_group.ping();
            }
            ExtraMessageType::MsgStoreHeartbeat => {}
        }
    }

    /// The store hosting `store_id` went silent. A follower whose leader lives there (or
    /// that knows no leader) starts its clock so an election can happen. A leader marks the
    /// peers there unreachable (raft stops streaming appends to them) and wakes only if the
    /// stores it still reaches hold no quorum of voters, so check-quorum can step it down:
    /// one dead store among three must not wake every region it has a peer of.
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
            if self.reaches_quorum(&ctx.store_liveness) {
                // Asleep, but reporting to PD at the usual interval (see `pd_heartbeat`).
                self.schedule_pd_heartbeat_tick(ctx);
            } else {
                self.wake_up(ctx);
            }
            return;
        }
        let leader_store = self.leader().map(|p| p.store_id);
        if leader_store.is_none() || leader_store == Some(store_id) {
            self.wake_up(ctx);
        }
    }

    /// Whether the peers on stores not declared unreachable form a quorum of the current
    /// (possibly joint) voter configuration.
    fn reaches_quorum(&self, liveness: &StoreLiveness) -> bool {
        let reachable: ReachableSet = self
            .region()
            .peers
            .iter()
            .filter(|p| p.id == self.peer_id() || !liveness.is_unreachable(p.store_id))
            .map(|p| p.id)
            .collect();
        self.raft_group.raft.prs().has_quorum(&reachable)
    }

    /// A follower restarted with a vote for another peer (so some peer of its region
    /// campaigned, and most likely leads) starts asleep instead of ticking towards an
    /// election, and asks the region's peers who leads (`MsgLeaderQuery`); the leader answers
    /// with a heartbeat, which this peer takes without waking (`message_wakes`). A store
    /// restarting with 100,000s of peers thus wakes no sleeping region and starts no
    /// election. A region with no live leader is still found: its campaigning candidates'
    /// votes wake this peer, and a leader on an unreachable store wakes it through
    /// `on_store_unreachable`; as a last resort `PeerTick::AwaitLeader` wakes a peer that
    /// heard of no leader at all (e.g. one removed from its region while its store was down).
    pub fn may_start_asleep(&self, ctx: &PollContext) -> bool {
        let raft = &self.raft_group.raft;
        ctx.cfg.hibernate_regions
            && raft.state == StateRole::Follower
            && raft.leader_id == raft::INVALID_ID
            && raft.vote != raft::INVALID_ID
            && raft.vote != self.peer_id()
            && self.storage().is_initialized()
            && !self.is_applying_snapshot()
            && self.pending_merge_state.is_none()
    }

    /// See `may_start_asleep`.
    pub fn start_asleep(&mut self, ctx: &mut PollContext) {
        debug!(
            region_id = self.region_id(),
            peer_id = self.peer_id(),
            "restarted follower starts asleep"
        );
        self.set_group_state(GroupState::Idle);
        // Log GC and split checks resume when the region wakes.
        self.aux_ticks_paused = true;
        let query = self.hibernate_extra(ExtraMessageType::MsgLeaderQuery);
        for id in self.other_peer_ids() {
            self.send_extra(ctx, id, query);
        }
        // Spread over [wait, 2 * wait) so a restarted store's fallbacks do not all fire at once.
        let wait = ctx.cfg.sleeping_follower_leader_wait;
        let jitter = wait.mul_f64(rand::random::<f64>());
        ctx.schedule_tick_after(self.region_id(), PeerTick::AwaitLeader, wait + jitter);
    }

    /// The last resort of `start_asleep`: still asleep and still without a leader.
    pub fn on_await_leader_tick(&mut self, ctx: &mut PollContext) {
        if self.is_hibernating() && !self.is_leader() && self.leader_id() == raft::INVALID_ID {
            debug!(
                region_id = self.region_id(),
                "no leader heard of since the restart; waking up"
            );
            self.wake_up(ctx);
        }
    }
}

/// The id set raft-rs's quorum check takes.
type ReachableSet = std::collections::HashSet<u64, std::hash::BuildHasherDefault<fxhash::FxHasher>>;
