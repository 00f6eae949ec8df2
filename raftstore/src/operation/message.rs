//! Raft messages in and out of a peer.

use proto::eraftpb::{self, MessageType};
use proto::raft_serverpb::RaftMessage;
use protobuf::Message as _;
use raft::StateRole;
use tracing::{debug, info, warn};

use crate::context::PollContext;
use crate::metrics::RAFT_DROPPED_MESSAGES;
use crate::msg::PeerMsg;
use crate::peer::Peer;
use crate::util;

impl Peer {
    /// Wraps raft-rs messages for the wire and addresses them to the target peers' stores.
    pub fn build_raft_messages(&self, msgs: Vec<eraftpb::Message>) -> Vec<RaftMessage> {
        let region = self.region();
        let mut out = Vec::with_capacity(msgs.len());
        for m in msgs {
            let Some(to) = self.region_peer(m.to).cloned() else {
                // The target left the region; raft will learn it from the configuration.
                debug!(
                    region_id = region.id,
                    to = m.to,
                    "drop message to unknown peer"
                );
                continue;
            };
            if m.get_msg_type() == MessageType::MsgSnapshot {
                crate::failpoint!(crate::failpoints::SNAPSHOT_SEND);
            }
            let bytes = match m.write_to_bytes() {
                Ok(b) => b,
                Err(e) => {
                    warn!(region_id = region.id, "encode raft message: {e}");
                    continue;
                }
            };
            out.push(RaftMessage {
                region_id: region.id,
                from_peer: Some(self.meta),
                to_peer: Some(to),
                message: bytes,
                region_epoch: region.region_epoch,
                is_tombstone: false,
                start_key: region.start_key.clone(),
                end_key: region.end_key.clone(),
                extra: None,
            });
        }
        out
    }

    /// Sends raft's outgoing messages. A `MsgTimeoutNow` among them ends the lease for the
    /// rest of the term (`Lease::forfeit` says why).
    pub fn send_raft_messages(&mut self, ctx: &mut PollContext, msgs: Vec<eraftpb::Message>) {
        if msgs
            .iter()
            .any(|m| m.get_msg_type() == MessageType::MsgTimeoutNow)
        {
            let term = self.term();
            self.lease.forfeit(term, &self.read_delegate.lease);
        }
        for m in self.build_raft_messages(msgs) {
            ctx.transport.send(m);
        }
    }

    /// Steps a message from another peer into raft, dropping what cannot be trusted.
    pub fn on_raft_message(&mut self, ctx: &mut PollContext, msg: RaftMessage) {
        self.step_raft_message(ctx, msg, false);
    }

    /// A snapshot message whose files the region worker found intact.
    pub fn on_verified_snapshot(&mut self, ctx: &mut PollContext, msg: RaftMessage) {
        self.step_raft_message(ctx, msg, true);
    }

    /// `files_verified`: for a snapshot, whether the region worker checked its files.
    fn step_raft_message(&mut self, ctx: &mut PollContext, msg: RaftMessage, files_verified: bool) {
        if let Some(from) = &msg.from_peer {
            self.note_heard_from(from.id);
        }
        if msg.extra.is_some() {
            self.on_extra_message(ctx, &msg);
            return;
        }
        if msg.is_tombstone {
            self.on_tombstone_message(ctx, &msg);
            return;
        }
        if !self.validate_raft_message(&msg) {
            RAFT_DROPPED_MESSAGES.inc();
            self.maybe_tell_stale_peer(ctx, &msg);
            return;
        }
        let m = match proto::parse_raft::<eraftpb::Message>(&msg.message) {
            Ok(m) => m,
            Err(e) => {
                warn!(
                    region_id = msg.region_id,
                    "malformed raft message dropped: {e}"
                );
                RAFT_DROPPED_MESSAGES.inc();
                return;
            }
        };
        if m.get_msg_type() == MessageType::MsgTimeoutNow && self.is_applying_snapshot() {
            // The leader tries again; see `is_applying_snapshot`.
            debug!(
                region_id = msg.region_id,
                "leader transfer refused while applying a snapshot"
            );
            RAFT_DROPPED_MESSAGES.inc();
            return;
        }
        if m.get_msg_type() == MessageType::MsgSnapshot {
            if !files_verified {
                // Reading every file for its checksum takes long for a big snapshot: the
                // region worker does it and sends the message back.
                let snapshot = m.get_snapshot().clone();
                if !ctx.snap_generator.verify(msg, snapshot) {
                    RAFT_DROPPED_MESSAGES.inc();
                }
                return;
            }
            if !self.accept_snapshot(ctx, &m) {
                RAFT_DROPPED_MESSAGES.inc();
                return;
            }
        }
        if let Some(from) = msg.from_peer {
            if self
                .storage()
                .region()
                .peers
                .iter()
                .all(|p| p.id != from.id)
            {
                match self.peer_cache.iter_mut().find(|p| p.id == from.id) {
                    Some(known) => *known = from,
                    None => self.peer_cache.push(from),
                }
            }
        }
        if self.message_wakes(&m) {
            self.wake_up(ctx);
        }
        self.forget_leader_that_campaigns(&m);
        let last_index = self.raft_group.raft.raft_log.last_index();
        crate::invariant::enforce!(
            !commit_beyond_log(&m, self.term(), last_index),
            self.region_id(),
            self.peer_id(),
            "the leader (peer {}, term {}) says entries up to index {} are committed, but this \
             store's raft log ends at {last_index}: entries this store acknowledged are gone, \
             so its data went back in time (restored from an older copy, or a disk that lost \
             written data). The store cannot serve: delete it (`shoal-ctl store delete`), wipe \
             its data directory and start it as a new store",
            m.from,
            m.term,
            m.commit
        );
        if let Err(e) = self.raft_group.step(m) {
            debug!(region_id = msg.region_id, "step raft message: {e}");
        }
    }

    /// A snapshot (its files already checked by the region worker) is stepped into raft only
    /// if its range collides with no other local region (applying it clears that range).
    fn accept_snapshot(&self, ctx: &mut PollContext, m: &eraftpb::Message) -> bool {
        let region_id = self.region_id();
        crate::failpoint!(crate::failpoints::SNAPSHOT_RECEIVE);
        let data = match crate::region_snapshot::decode(m.get_snapshot()) {
            Ok(d) => d,
            Err(e) => {
                warn!(region_id, "snapshot rejected: {e}");
                return false;
            }
        };
        let Some(region) = data.region else {
            return false;
        };
        let snap_version = region.region_epoch.map_or(0, |e| e.version);
        let overlaps: Vec<(u64, u64)> = {
            let meta = ctx.store_meta.lock();
            meta.overlapping_regions(&region.start_key, &region.end_key)
                .into_iter()
                .filter(|id| *id != region_id)
                .map(|id| {
                    let version = meta
                        .region(id)
                        .and_then(|r| r.region_epoch)
                        .map_or(0, |e| e.version);
                    (id, version)
                })
                .collect()
        };
        if overlaps.is_empty() {
            return true;
        }
        // A local region older than the snapshot's whose range the snapshot covers was
        // merged into this region while this store lagged (its merge never reached it here):
        // it goes, keeping its keys for the snapshot to replace. Raft sends the snapshot
        // again once it is gone.
        for &(id, version) in overlaps.iter().filter(|(_, v)| *v < snap_version) {
            info!(
                region_id,
                stale_region = id,
                stale_version = version,
                snap_version,
                "snapshot covers a stale local region; removing it first"
            );
            let _ = ctx.router.force_send(
                id,
                PeerMsg::MergeResult {
                    target_region_id: region_id,
                },
            );
        }
        warn!(
            region_id,
            ?overlaps,
            "snapshot overlaps local regions; rejected"
        );
        false
    }

    /// Whether a message means the group is busy again. A follower needs its clock only to
    /// detect a missing leader, so routine traffic from its leader does not wake it; a leader
    /// wakes for anything but heartbeat answers.
    /// A vote request from the very peer this follower takes for its leader, for a later
    /// term: that leader has lost its leadership (it restarted, typically), so raft-rs's
    /// leader lease, which keeps a live leader from being disrupted by other candidates,
    /// guards nothing. Without forgetting the leader, a follower that hibernated (its clock
    /// stopped, so the lease never runs out) would ignore the vote until its store noticed
    /// the leader's store was gone, and the region would stay leaderless that long. Votes are
    /// still granted only to an up-to-date log, once per term; and the old leader serves no
    /// lease read once it campaigns (it is no longer leader).
    fn forget_leader_that_campaigns(&mut self, m: &eraftpb::Message) {
        let region_id = self.region_id();
        let raft = &mut self.raft_group.raft;
        let vote = matches!(
            m.get_msg_type(),
            MessageType::MsgRequestVote | MessageType::MsgRequestPreVote
        );
        if vote
            && raft.state == StateRole::Follower
            && m.from == raft.leader_id
            && m.term > raft.term
        {
            debug!(
                region_id,
                leader = m.from,
                "the leader campaigns: forgetting it"
            );
            raft.leader_id = raft::INVALID_ID;
        }
    }

    fn message_wakes(&self, m: &eraftpb::Message) -> bool {
        let ty = m.get_msg_type();
        if self.is_leader() {
            // Late heartbeat answers arrive after the group went idle; they need no clock.
            return ty != MessageType::MsgHeartbeatResponse;
        }
        // A follower that restarted asleep knows no leader yet (`start_asleep`); the first
        // heartbeat or append of its current term comes from the term's only leader, and
        // raft-rs adopts it.
        let from_leader = m.from == self.leader_id() || self.leader_id() == raft::INVALID_ID;
        let routine = matches!(ty, MessageType::MsgHeartbeat | MessageType::MsgAppend)
            && from_leader
            && m.term == self.term();
        !routine
    }

    /// A peer that is no longer a member (it missed its removal, e.g. while partitioned)
    /// learns it from the answer, so it can clean up.
    pub(crate) fn maybe_tell_stale_peer(&self, ctx: &mut PollContext, msg: &RaftMessage) {
        let (Some(from), Some(to)) = (msg.from_peer, msg.to_peer) else {
            return;
        };
        let current = self.region().region_epoch.unwrap_or_default();
        let epoch = msg.region_epoch.unwrap_or_default();
        let member = self.region().peers.iter().any(|p| p.id == from.id);
        let removed = !member && epoch.conf_ver < current.conf_ver;
        if !removed || to.id != self.peer_id() {
            return;
        }
        ctx.transport.send(RaftMessage {
            region_id: msg.region_id,
            from_peer: Some(self.meta),
            to_peer: Some(from),
            region_epoch: Some(current),
            is_tombstone: true,
            ..Default::default()
        });
    }

    /// A member of a newer configuration says this peer was removed.
    fn on_tombstone_message(&mut self, ctx: &mut PollContext, msg: &RaftMessage) {
        let current = self.region().region_epoch.unwrap_or_default();
        let epoch = msg.region_epoch.unwrap_or_default();
        let for_me = msg.to_peer.is_some_and(|p| p.id == self.peer_id());
        // A peer still waiting for its first snapshot cannot tell a stale answer from a real
        // one; it is cleaned up by its region's leader instead.
        if for_me && self.storage().is_initialized() && epoch.conf_ver > current.conf_ver {
            tracing::info!(
                region_id = msg.region_id,
                peer_id = self.peer_id(),
                "removed from the region while away; destroying"
            );
            self.destroy(ctx);
        }
    }

    /// A message is accepted only if it is for this peer and not from a configuration this
    /// region has already left.
    fn validate_raft_message(&self, msg: &RaftMessage) -> bool {
        let (Some(from), Some(to)) = (msg.from_peer.as_ref(), msg.to_peer.as_ref()) else {
            return false;
        };
        if to.id != self.peer_id() || to.store_id != self.meta.store_id {
            debug!(
                region_id = msg.region_id,
                to = to.id,
                "message for another peer dropped"
            );
            return false;
        }
        let current = self.region().region_epoch.unwrap_or_default();
        let epoch = msg.region_epoch.unwrap_or_default();
        let member = self.region().peers.iter().any(|p| p.id == from.id);
        if util::is_epoch_stale(&epoch, &current) && !member {
            debug!(
                region_id = msg.region_id,
                from = from.id,
                "message from a stale, removed peer dropped"
            );
            return false;
        }
        true
    }
}

/// Whether `m` is a heartbeat of this term's leader naming a commit index past the end of
/// this peer's log. raft-rs commits a heartbeat's index without further checks (and panics
/// without saying why when it is past the log): a leader only sends what this peer has
/// acknowledged, so the peer has lost entries it once wrote durably.
fn commit_beyond_log(m: &eraftpb::Message, term: u64, last_index: u64) -> bool {
    m.get_msg_type() == MessageType::MsgHeartbeat && m.term >= term && m.commit > last_index
}

#[cfg(test)]
mod lost_entries_tests {
    use super::*;

    fn heartbeat(term: u64, commit: u64) -> eraftpb::Message {
        let mut m = eraftpb::Message::default();
        m.set_msg_type(MessageType::MsgHeartbeat);
        m.term = term;
        m.commit = commit;
        m
    }

    #[test]
    fn only_a_current_leaders_heartbeat_past_the_log_means_lost_entries() {
        assert!(commit_beyond_log(&heartbeat(5, 17), 5, 16));
        assert!(
            commit_beyond_log(&heartbeat(6, 17), 5, 16),
            "a newer leader"
        );
        assert!(!commit_beyond_log(&heartbeat(5, 16), 5, 16));
        assert!(
            !commit_beyond_log(&heartbeat(4, 17), 5, 16),
            "a stale leader is ignored"
        );
        let mut append = heartbeat(5, 17);
        append.set_msg_type(MessageType::MsgAppend);
        assert!(
            !commit_beyond_log(&append, 5, 16),
            "appends bound the commit themselves"
        );
    }
}
