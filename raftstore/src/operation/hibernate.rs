//! Hibernation: a region where nothing happens stops its raft clock once every peer agrees,
//! so thousands of idle regions cost no CPU. Any message or proposal wakes it.

use std::collections::HashSet;
use std::time::Duration;

use proto::raft_serverpb::{ExtraMessage, ExtraMessageType, RaftMessage};
use raft::StateRole;
use tracing::debug;

use crate::context::PollContext;
use crate::msg::PeerTick;
use crate::peer::storage::RAFT_INIT_LOG_TERM;
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
                    self.forget_leader_that_asks(ctx, from.id, extra.term);
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
        debug!(
            region_id = self.region_id(),
            peer_id = self.peer_id(),
            silent_store = store_id,
            ?leader_store,
            raft_leader_id = self.raft_group.raft.leader_id,
            state = ?self.raft_group.raft.state,
            term = self.raft_group.raft.term,
            silent_ms = ctx.store_liveness.last_heard(store_id).map(|h| h.elapsed().as_millis() as u64),
            "a store is unreachable"
        );
        if leader_store.is_none() || leader_store == Some(store_id) {
            self.wake_up(ctx);
        }
        if leader_store == Some(store_id) {
            self.hasten_election(ctx, store_id);
        }
    }

    /// The leader's store went silent: campaign within a few ticks instead of at the end of
    /// this follower's randomized election timeout (10-20 ticks by default, counted from the
    /// last message the leader sent; a follower that slept counts from when it woke, so
    /// without this a dead leader's sleeping region waited the silence plus 10-20 s).
    ///
    /// The followers all learn of the silence at about the same moment, so they take turns
    /// by rank: the one with the lowest peer id among the region's voters off the silent
    /// store campaigns after 1 tick, the next after 1 + 2 x `raft-heartbeat-ticks` ticks (5
    /// by default), and so on (see [`staggered_wait`]). The first one's pre-vote then meets
    /// followers that have not campaigned and grant it, and its election ends long before
    /// the next one's turn; the next turn matters only when the first could not win (its
    /// log was behind, or its store is gone too). Random waits of 1..=4 ticks, used before,
    /// let two followers campaign in the same tick about once in four: both granted each
    /// other's pre-vote, both voted for themselves, and the split vote cost a whole
    /// randomized election timeout more.
    ///
    /// Raft's check-quorum rule keeps a follower from voting for `election_timeout` ticks
    /// after it heard from its leader, so that no new leader is elected while the old one
    /// may still read under its lease (the lease counts from when the leader sent what a
    /// quorum acknowledged). Moving `election_elapsed` past the election timeout gives that
    /// up early, which is safe only once every lease this follower's acknowledgements could
    /// have backed has ended: nothing from the leader's store has arrived here for at least
    /// `raft-store-max-leader-lease` (every message is noted as it arrives, before it is
    /// delivered). If the store spoke since, or the silence is shorter than the lease (a
    /// `store-unreachable-timeout` below the lease), the peer waits out its election timeout
    /// as before. A leader that is alive but cut off only from this follower keeps its
    /// region: the pre-vote finds no quorum among followers that still hear it.
    fn hasten_election(&mut self, ctx: &PollContext, store_id: u64) {
        let silent_for = ctx
            .store_liveness
            .last_heard(store_id)
            .map(|heard| heard.elapsed());
        if silent_for.is_some_and(|s| s < ctx.cfg.raft_store_max_leader_lease) {
            return;
        }
        let others_off_silent_store = self
            .region()
            .peers
            .iter()
            .filter(|p| {
                p.store_id != store_id
                    && p.id < self.peer_id()
                    && p.role() != proto::metapb::PeerRole::Learner
            })
            .count();
        let raft = &mut self.raft_group.raft;
        if raft.state != StateRole::Follower || !raft.promotable() {
            return;
        }
        let timeout = raft.election_timeout();
        let wait = staggered_wait(others_off_silent_store, raft.heartbeat_timeout(), timeout);
        // Raft campaigns once `election_elapsed` reaches the randomized timeout, which lies
        // in [timeout, 2 x timeout); it must end `wait` ticks from now, and `election_elapsed`
        // must reach at least `timeout` (or this follower would refuse others' votes as
        // still in its leader's lease).
        let target = timeout + wait;
        if raft.randomized_election_timeout() < target && target < 2 * timeout {
            raft.set_randomized_election_timeout(target);
        }
        let elapsed = raft
            .randomized_election_timeout()
            .saturating_sub(wait)
            .max(timeout);
        raft.election_elapsed = raft.election_elapsed.max(elapsed);
        let ticks_left = raft
            .randomized_election_timeout()
            .saturating_sub(raft.election_elapsed);
        debug!(
            region_id = self.region_id(),
            peer_id = self.peer_id(),
            leader_store = store_id,
            ticks_left,
            "the leader's store is silent: campaigning early"
        );
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

    /// A follower restarted in a term some peer of its region campaigned for (its term is
    /// past the bootstrap term, or it holds a vote) and that it did not lead (it voted for
    /// another peer, ran and lost, or never voted: it learned the term from the leader's
    /// appends or from a candidate it refused, e.g. the election ended while its store was
    /// down) most likely has a leader. It starts asleep instead of ticking towards an
    /// election, and asks the region's peers who leads (`MsgLeaderQuery`, repeated by
    /// `ask_who_leads`); the leader answers
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
            && (raft.vote != raft::INVALID_ID || raft.term > RAFT_INIT_LOG_TERM)
            && !self.led_current_term()
            && self.storage().is_initialized()
            && !self.is_applying_snapshot()
            && self.pending_merge_state.is_none()
    }

    /// The peer this follower takes for its leader asks who leads: it restarted without
    /// knowing it led (its persisted state predates `led_term`, or lost it), so the region
    /// has no leader. Sleeping, this follower would keep its lease on that peer and ignore
    /// every vote but its own leader's; it forgets the leader and starts its clock, so the
    /// region elects one within an election timeout. A query from an earlier term (sent
    /// before the asker won a later election) says nothing about the current leader.
    fn forget_leader_that_asks(&mut self, ctx: &mut PollContext, asker: u64, asker_term: u64) {
        let raft = &self.raft_group.raft;
        if raft.leader_id != asker || raft.state != StateRole::Follower || raft.term != asker_term {
            return;
        }
        debug!(
            region_id = self.region_id(),
            leader = asker,
            "the leader restarted and asks who leads: forgetting it"
        );
        self.raft_group.raft.leader_id = raft::INVALID_ID;
        self.wake_up(ctx);
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
        self.hibernation.leader_queries = 0;
        self.ask_who_leads(ctx);
    }

    /// Sends `MsgLeaderQuery` to the region's other peers and registers the next
    /// `PeerTick::AwaitLeader`. The answer (a heartbeat) can be lost: the leader's store may
    /// not reach this store yet (its connection still backing off after the restart), and a
    /// sleeping leader sends nothing else. So the query is repeated once per election
    /// timeout, plus a random part up to as long again so a restarted store's queries spread
    /// out, until `sleeping-follower-leader-wait` worth of rounds has passed.
    fn ask_who_leads(&mut self, ctx: &mut PollContext) {
        let query = self.hibernate_extra(ExtraMessageType::MsgLeaderQuery);
        for id in self.other_peer_ids() {
            self.send_extra(ctx, id, query);
        }
        self.hibernation.leader_queries = self.hibernation.leader_queries.saturating_add(1);
        let interval = ctx.cfg.election_timeout();
        let jitter = interval.mul_f64(rand::random::<f64>());
        ctx.schedule_tick_after(self.region_id(), PeerTick::AwaitLeader, interval + jitter);
    }

    /// A round of `ask_who_leads` ended. Still asleep and still without a leader, the peer
    /// asks again; after `leader_query_rounds` rounds it wakes up and ticks towards an
    /// election, the last resort (e.g. it was removed from its region while its store was
    /// down, and nobody answers).
    pub fn on_await_leader_tick(&mut self, ctx: &mut PollContext) {
        let waiting =
            self.is_hibernating() && !self.is_leader() && self.leader_id() == raft::INVALID_ID;
        if !waiting {
            self.hibernation.leader_queries = 0;
            return;
        }
        let rounds = leader_query_rounds(
            ctx.cfg.sleeping_follower_leader_wait,
            ctx.cfg.election_timeout(),
        );
        if self.hibernation.leader_queries < rounds {
            self.ask_who_leads(ctx);
            return;
        }
        debug!(
            region_id = self.region_id(),
            queries = self.hibernation.leader_queries,
            "no leader heard of since the restart; waking up"
        );
        self.hibernation.leader_queries = 0;
        self.wake_up(ctx);
    }
}

/// How many `MsgLeaderQuery` rounds, one per `interval` (the election timeout) plus jitter,
/// a follower restarted asleep sends before it wakes: enough to cover `wait`
/// (`sleeping-follower-leader-wait`), at least one.
pub fn leader_query_rounds(wait: Duration, interval: Duration) -> u16 {
    if interval.is_zero() {
        return 1;
    }
    let rounds = wait.as_nanos().div_ceil(interval.as_nanos()).max(1);
    u16::try_from(rounds).unwrap_or(u16::MAX)
}

/// The id set raft-rs's quorum check takes.
type ReachableSet = std::collections::HashSet<u64, std::hash::BuildHasherDefault<fxhash::FxHasher>>;

/// Ticks a follower waits before campaigning on its leader's silence when `rank` voters of
/// its region off the silent store have lower peer ids (see `Peer::hasten_election`): 1 for
/// the first, then `2 x heartbeat_ticks` more for each rank, at most `election_timeout - 1`
/// (raft-rs draws randomized election timeouts below twice the election timeout, and the
/// campaign must come before that).
pub(crate) fn staggered_wait(
    rank: usize,
    heartbeat_ticks: usize,
    election_timeout: usize,
) -> usize {
    let step = 2 * heartbeat_ticks.max(1);
    rank.saturating_mul(step)
        .saturating_add(1)
        .min(election_timeout.saturating_sub(1).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn followers_campaign_in_turns_by_rank() {
        // The defaults (2 heartbeat ticks, 10-tick election timeout): 1, 5, 9 ticks.
        assert_eq!(staggered_wait(0, 2, 10), 1);
        assert_eq!(staggered_wait(1, 2, 10), 5);
        assert_eq!(staggered_wait(2, 2, 10), 9);
        // Never at or past the election timeout, however many ranks.
        assert_eq!(staggered_wait(3, 2, 10), 9);
        assert_eq!(staggered_wait(usize::MAX, 2, 10), 9);
        // Degenerate timings still give a wait of at least one tick.
        assert_eq!(staggered_wait(0, 0, 1), 1);
        assert_eq!(staggered_wait(4, 0, 0), 1);
    }

    #[test]
    fn leader_queries_cover_the_wait_in_election_timeouts() {
        let s = Duration::from_secs;
        // The defaults: 60 s of waiting in 10 s election timeouts.
        assert_eq!(leader_query_rounds(s(60), s(10)), 6);
        // A part of a round counts as a round.
        assert_eq!(leader_query_rounds(s(61), s(10)), 7);
        // At least one query, however short the wait or long the timeout.
        assert_eq!(leader_query_rounds(s(0), s(10)), 1);
        assert_eq!(leader_query_rounds(s(5), s(10)), 1);
        assert_eq!(leader_query_rounds(s(5), Duration::ZERO), 1);
        // Counted in a u16: a wait of many thousands of timeouts saturates.
        assert_eq!(
            leader_query_rounds(s(10_000_000), Duration::from_millis(10)),
            u16::MAX
        );
    }
}
