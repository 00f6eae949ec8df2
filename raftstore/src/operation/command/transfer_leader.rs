//! Leader transfer: hand leadership to a voter that has, or is about to have, the whole log.
//!
//! The leader accepts a transfer when the target is a voter whose log is at most
//! `leader_transfer_max_log_lag` entries behind and that needs no snapshot. Raft then holds the
//! transfer: it sends the target the missing entries and `MsgTimeoutNow` once the target has
//! all of them, refuses new proposals meanwhile (answered `NotLeader` without a hint, so
//! clients back off and retry), and gives up after an election timeout. The lease stays
//! suspended while the transfer is held, since the target may win at any moment; once
//! `MsgTimeoutNow` has gone out it stays off for the rest of the term even if raft gives up,
//! since that message may still arrive and win the target an election (`Lease::forfeit`).
//!
//! A transfer is not a log entry, so it has no apply phase. Its phases, in order:
//! 1. **Propose** (peer): `propose_transfer_leader` checks the target with
//!    `check_transfer_target` and asks raft-rs to transfer; the lease is suspended.
//! 2. **Held** (peer): while raft holds the transfer, `transfer_in_progress_error` answers
//!    other proposals, and `on_transfer_tick` resumes the lease once raft gives up.
//! 3. **Done**: the target wins an election; the old leader sees the new term in its next
//!    ready and steps down like any leader would.

use std::time::Instant;

use proto::metapb::PeerRole;
use proto::raft_cmdpb::RaftCmdRequest;
use raft::ProgressState;

use crate::context::PollContext;
use crate::errors::{Error, Result, TransferRefusal};
use crate::metrics::{LEADER_TRANSFERS, PROPOSALS_REFUSED_IN_TRANSFER};
use crate::peer::Peer;

/// Whether a target whose log matches the leader's up to `matched` may take over now. `last`
/// is the leader's last index, `truncated` the last index compacted out of its log,
/// `snapshot_pending` whether raft is sending the target a snapshot.
pub fn check_transfer_target(
    matched: u64,
    last: u64,
    truncated: u64,
    snapshot_pending: bool,
    max_lag: u64,
) -> std::result::Result<(), TransferRefusal> {
    if snapshot_pending {
        return Err(TransferRefusal::NeedsSnapshot);
    }
    if matched == 0 {
        return Err(TransferRefusal::Unanswered);
    }
    if last.saturating_sub(matched) > max_lag {
        return Err(TransferRefusal::LogLag {
            matched,
            last,
            max_lag,
        });
    }
    if matched < truncated {
        // The entries it lacks are gone: only a snapshot can bring it up to date.
        return Err(TransferRefusal::NeedsSnapshot);
    }
    Ok(())
}

impl Peer {
    /// Starts a transfer; answered at once (the caller watches the leader change).
    pub fn propose_transfer_leader(
        &mut self,
        ctx: &PollContext,
        req: &RaftCmdRequest,
    ) -> Result<Option<u64>> {
        let target = req
            .admin_request
            .as_ref()
            .and_then(|a| a.transfer_leader.as_ref())
            .and_then(|t| t.peer.as_ref())
            .ok_or_else(|| Error::InvalidRequest("transfer leader without a target".into()))?;
        let member = self
            .region_peer(target.id)
            .ok_or_else(|| Error::InvalidRequest(format!("peer {} is not a member", target.id)))?;
        if member.role() != PeerRole::Voter {
            return Err(Error::InvalidRequest(format!(
                "peer {} is not a voter",
                target.id
            )));
        }
        if target.id == self.peer_id() {
            return Ok(None);
        }
        let last = self.raft_group.raft.raft_log.last_index();
        let truncated = self.storage().truncated_index();
        let checked = match self.raft_group.raft.prs().get(target.id) {
            Some(p) => check_transfer_target(
                p.matched,
                last,
                truncated,
                p.state == ProgressState::Snapshot,
                ctx.cfg.leader_transfer_max_log_lag,
            ),
            None => Err(TransferRefusal::NoProgress),
        };
        if let Err(reason) = checked {
            LEADER_TRANSFERS.with_label_values(&["refused"]).inc();
            return Err(Error::TransferLeaderRefused {
                peer_id: target.id,
                reason,
            });
        }
        LEADER_TRANSFERS.with_label_values(&["started"]).inc();
        // The new leader may serve as soon as it wins, which may be any moment from now on:
        // our lease ends now and is not renewed until the transfer is over.
        self.lease.suspend(&self.read_delegate.lease);
        self.raft_group.transfer_leader(target.id);
        Ok(None)
    }

    /// The error for a proposal raft would drop because a transfer is held: the client backs
    /// off and asks again, by when the region has a new leader or this one takes writes again.
    pub fn transfer_in_progress_error(&self) -> Option<Error> {
        self.raft_group.raft.lead_transferee?;
        PROPOSALS_REFUSED_IN_TRANSFER.inc();
        Some(Error::NotLeader {
            region_id: self.region_id(),
            leader: None,
        })
    }

    /// Called on every raft tick: once raft gave up a transfer (or leadership moved), the lease
    /// may be renewed again, from acknowledgements of what is sent from now on.
    pub fn on_transfer_tick(&mut self) {
        if self.lease.is_suspended()
            && (!self.is_leader() || self.raft_group.raft.lead_transferee.is_none())
        {
            self.lease.resume(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_within_the_lag_is_accepted() {
        assert_eq!(check_transfer_target(100, 100, 10, false, 0), Ok(()));
        assert_eq!(check_transfer_target(90, 100, 10, false, 10), Ok(()));
        assert_eq!(check_transfer_target(100, 100, 10, false, 128), Ok(()));
    }

    #[test]
    fn lag_zero_requires_the_whole_log() {
        assert_eq!(
            check_transfer_target(99, 100, 10, false, 0),
            Err(TransferRefusal::LogLag {
                matched: 99,
                last: 100,
                max_lag: 0
            })
        );
    }

    #[test]
    fn a_far_behind_or_snapshot_target_is_refused() {
        assert!(matches!(
            check_transfer_target(1, 1000, 10, false, 128),
            Err(TransferRefusal::LogLag { .. })
        ));
        assert_eq!(
            check_transfer_target(100, 100, 10, true, 128),
            Err(TransferRefusal::NeedsSnapshot)
        );
        // Within the lag, but what it lacks was compacted.
        assert_eq!(
            check_transfer_target(95, 100, 98, false, 128),
            Err(TransferRefusal::NeedsSnapshot)
        );
    }

    #[test]
    fn a_target_that_never_answered_this_leader_is_not_called_behind() {
        // Its progress is still raft-rs's initial 0: neither a lag nor a missing snapshot.
        assert_eq!(
            check_transfer_target(0, 8, 5, false, 128),
            Err(TransferRefusal::Unanswered)
        );
        assert_eq!(
            check_transfer_target(0, 1000, 5, false, 128),
            Err(TransferRefusal::Unanswered)
        );
    }

    #[test]
    fn refusals_say_why() {
        let e = Error::TransferLeaderRefused {
            peer_id: 3,
            reason: TransferRefusal::LogLag {
                matched: 1,
                last: 500,
                max_lag: 128,
            },
        };
        let msg = proto::errorpb::Error::from(e).message;
        assert!(msg.contains("peer 3"), "{msg}");
        assert!(msg.contains("caught up"), "{msg}");
        assert!(msg.contains("128"), "{msg}");
    }
}
