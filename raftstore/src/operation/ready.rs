//! The ready loop: take raft-rs's `Ready`, hand entries and hard state to the log writer (or
//! keep them for the poller's own write at the end of its round), send what may go out now,
//! and resume when the write is reported durable.

use proto::raft_serverpb::RaftLocalState;
use raft::StateRole;
use tracing::info;

use crate::context::PollContext;
use crate::log_writer::WriteTask;
use crate::operation::commit_broadcast::BcastEvent;
use crate::peer::{Peer, UnpersistedReady};

impl Peer {
    /// Handles one ready if raft has any; called once per poller round for every active peer.
    pub fn handle_ready(&mut self, ctx: &mut PollContext) {
        if self.stopped || self.pending_remove {
            return;
        }
        if self.is_leader() && !self.pending_reads.is_empty() {
            self.send_pending_read_indexes();
        }
        if !self.raft_group.has_ready() || self.ingesting_snapshot {
            return;
        }
        if self.has_unapplied_snapshot() && !self.apply_pool_idle() {
            // Entries handed to the apply pool earlier would land on top of the snapshot's
            // newer data. The ready stays with raft until their apply result arrives (that
            // result puts this peer back in a poller round); TiKV holds a pending snapshot
            // the same way.
            crate::failpoint!(crate::failpoints::SNAPSHOT_APPLY_DEFERRED);
            return;
        }
        let mut ready = self.raft_group.ready();
        if let Some(ss) = ready.ss() {
            let (role, leader) = (ss.raft_state, ss.leader_id);
            self.on_role_changed(ctx, role, leader);
        }
        // A leader may send appends before its own log is durable.
        if !ready.messages().is_empty() {
            let msgs = ready.take_messages();
            self.send_raft_messages(ctx, msgs);
        }
        if !ready.read_states().is_empty() {
            let states = ready.take_read_states();
            self.on_read_states(ctx, states);
        }
        let committed = ready.take_committed_entries();
        self.handle_committed_entries(ctx, committed);

        let snapshot_applied = if ready.snapshot().is_empty() {
            false
        } else {
            let snapshot = ready.snapshot().clone();
            self.apply_snapshot(ctx, &snapshot, ready.number());
            true
        };
        let entries = ready.take_entries();
        let hs = ready.hs().cloned();
        let must_persist = !entries.is_empty() || ready.must_sync() || snapshot_applied;
        let persisted_msgs = ready.take_persisted_messages();
        if let Some(hs) = &hs {
            self.storage_mut().set_hard_state(hs);
        }
        if must_persist || !self.unpersisted.is_empty() {
            // Readies complete in order: even one with nothing to write waits its turn.
            if let Some(first) = entries.first() {
                // Entries from `first.index` on are being replaced; earlier readies can only
                // vouch for what precedes them.
                for r in self.unpersisted.iter_mut() {
                    r.persisted_index = r.persisted_index.min(first.index - 1);
                }
            }
            self.storage_mut().append(&entries);
            self.check_commit_within_log();
            let raft_state: Option<RaftLocalState> =
                must_persist.then(|| *self.storage().raft_state());
            let persisted_index = if entries.is_empty() {
                self.unpersisted
                    .back()
                    .map_or(self.storage().persisted_index(), |r| r.persisted_index)
            } else {
                self.storage().last_index()
            };
            let task = WriteTask {
                region_id: self.region_id(),
                peer_id: self.peer_id(),
                ready_number: ready.number(),
                entries,
                raft_state,
                messages: self.build_raft_messages(persisted_msgs),
                clean_log: snapshot_applied,
            };
            self.unpersisted.push_back(UnpersistedReady {
                number: ready.number(),
                persisted_index,
            });
            if !ctx.log_sink.submit(task) {
                // The writer is gone only while the store shuts down.
                self.stopped = true;
            }
            self.raft_group.advance_append_async(ready);
        } else {
            self.send_raft_messages(ctx, persisted_msgs);
            let mut light = self.raft_group.advance_append(ready);
            if let Some(commit) = light.commit_index() {
                let mut hs = self.raft_group.raft.hard_state();
                hs.commit = commit;
                self.storage_mut().set_hard_state(&hs);
                self.check_commit_within_log();
            }
            let msgs = light.take_messages();
            self.send_raft_messages(ctx, msgs);
            let committed = light.take_committed_entries();
            self.handle_committed_entries(ctx, committed);
        }
    }

    /// A commit index past the log's end would make raft hand out entries this peer never had.
    fn check_commit_within_log(&self) {
        let commit = self.storage().raft_state().commit;
        let last = self.storage().last_index();
        crate::enforce!(
            commit <= last,
            self.region_id(),
            self.peer_id(),
            "commit index {commit} is beyond the last log index {last}"
        );
    }

    /// Whether raft holds a snapshot that the next ready will carry. raft-rs keeps a snapshot
    /// until its ready is persisted, so one already applied here (`pending_snapshot`) does not
    /// count.
    fn has_unapplied_snapshot(&self) -> bool {
        self.raft_group.snap().is_some_and(|s| {
            self.pending_snapshot
                .is_none_or(|(_, index)| index != s.get_metadata().index)
        })
    }

    /// Whether every entry handed to the apply pool has been applied and written, so nothing
    /// of this region is in flight there.
    pub fn apply_pool_idle(&self) -> bool {
        self.storage().applied_index() >= self.last_sent_to_apply
    }

    /// The log writer made readies up to `number` durable.
    pub fn on_persisted(&mut self, number: u64) {
        crate::enforce!(
            number > self.persisted_number
                && self.unpersisted.front().is_some_and(|r| r.number <= number),
            self.region_id(),
            self.peer_id(),
            "persisted ready {number} after ready {}, with readies {:?} waiting",
            self.persisted_number,
            self.unpersisted
                .iter()
                .map(|r| r.number)
                .collect::<Vec<_>>()
        );
        self.persisted_number = number;
        let mut persisted_index = None;
        while let Some(front) = self.unpersisted.front() {
            if front.number > number {
                break;
            }
            persisted_index = self.unpersisted.pop_front().map(|r| r.persisted_index);
        }
        let Some(index) = persisted_index else {
            // A notice for a ready of an older incarnation; nothing of ours is pending.
            return;
        };
        self.storage_mut().on_persisted(index);
        self.raft_group.on_persist_ready(number);
        self.maybe_advance_snapshot_apply();
    }

    /// Tells raft an applied snapshot is applied, once the ready carrying it is durable and
    /// its files are ingested.
    pub(crate) fn maybe_advance_snapshot_apply(&mut self) {
        if let Some((ready, index)) = self.pending_snapshot {
            if self.persisted_number >= ready && !self.ingesting_snapshot {
                self.pending_snapshot = None;
                self.raft_group.advance_apply_to(index);
            }
        }
    }

    fn on_role_changed(&mut self, ctx: &mut PollContext, role: StateRole, leader: u64) {
        let term = self.term();
        if role == StateRole::Leader {
            crate::metrics::BECAME_LEADER.inc();
            info!(
                region_id = self.region_id(),
                peer_id = self.peer_id(),
                term,
                "became leader"
            );
            self.read_delegate.set_term(term);
            // Persisted with this ready (it carries the term's first entry), so a restart
            // tells a leader of this term from a candidate that lost it.
            self.storage_mut().set_led_term(term);
            let last_index = self.raft_group.raft.raft_log.last_index();
            self.on_commit_broadcast_event(BcastEvent::BecameLeader { last_index });
        } else {
            let led_term = self.read_delegate.term();
            if led_term != 0 {
                crate::metrics::STEPPED_DOWN.inc();
                info!(
                    region_id = self.region_id(),
                    peer_id = self.peer_id(),
                    term,
                    leader,
                    "stepped down"
                );
                self.report_flow_on_step_down(ctx, led_term);
            }
            self.read_delegate.set_term(0);
            self.lease.expire(&self.read_delegate.lease);
            self.fail_pending_reads();
            // A PrepareMerge this peer proposed applies (or not) like any entry; no longer
            // leading, it has no proposals left to hold back.
            self.prepare_merge_fence = 0;
        }
        self.hibernation.idle_ticks = 0;
        self.hibernation.acks.clear();
        // A follower still asleep here took its leader from a routine heartbeat or append of
        // its own term (`message_wakes`): it restarted asleep and asked who leads. Knowing
        // the leader is all it was missing; everything else wakes the peer first.
        if role == StateRole::Leader || !self.is_hibernating() {
            self.wake_up(ctx);
        }
        let leading = role == StateRole::Leader;
        ctx.store_meta.lock().set_leader(self.region_id(), leading);
        if leading {
            self.on_became_leader_for_pd(ctx);
        }
    }
}
