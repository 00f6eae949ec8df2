//! When a leader tells its followers at once that entries committed.
//!
//! By default raft-rs answers every commit advance with an append to each follower that
//! carries nothing but the new commit index, and each follower answers that append: a
//! replicated write costs twice the messages it needs, and the followers a second ready
//! round. Peers run with raft-rs's `skip_bcast_commit` instead, as TiKV's raftstore does: a
//! follower learns a commit from the next append (under load, the next write's) or from the
//! next heartbeat. Only the followers' state machines lag; what is committed and what a
//! client is told do not change, and reads are served by the leader.
//!
//! Some entries must reach the followers' state machines at once, so for them the leader
//! broadcasts every commit until the entry has applied on the leader (TiKV's "urgent"
//! proposals and its rule for a new leader):
//! - a new leader's log up to its first entry, so followers settle the previous terms'
//!   entries promptly and a leader transferred back finds them applied;
//! - splits, so the new regions' peers exist on the followers' stores when the new regions'
//!   leaders talk to them;
//! - membership changes (raft-rs also broadcasts while one is pending);
//! - PrepareMerge, CommitMerge and RollbackMerge, whose followers must apply them for the
//!   merge to go on or end.

use proto::raft_cmdpb::AdminCmdType;

use crate::peer::Peer;

/// Whether the commit of an entry holding this admin command must reach followers at once.
pub fn is_urgent(admin: AdminCmdType) -> bool {
    matches!(
        admin,
        AdminCmdType::BatchSplit
            | AdminCmdType::ChangePeerV2
            | AdminCmdType::PrepareMerge
            | AdminCmdType::CommitMerge
            | AdminCmdType::RollbackMerge
    )
}

/// The index up to which commits are broadcast after `event`, given the current one (0:
/// none). Broadcasting ends once the applied index reaches it.
pub fn next_bcast_until(current: u64, event: BcastEvent) -> u64 {
    match event {
        BcastEvent::Proposed { index, admin } if admin.is_some_and(is_urgent) => current.max(index),
        BcastEvent::Proposed { .. } => current,
        BcastEvent::BecameLeader { last_index } => last_index,
        BcastEvent::Applied { index } if current != 0 && index >= current => 0,
        BcastEvent::Applied { .. } => current,
    }
}

/// What moves the broadcast window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BcastEvent {
    /// This leader proposed an entry at `index`; `admin` is its admin command, if any.
    Proposed {
        index: u64,
        admin: Option<AdminCmdType>,
    },
    /// This peer became leader with its log ending at `last_index` (its term's first entry).
    BecameLeader { last_index: u64 },
    /// The peer's applied index reached `index`.
    Applied { index: u64 },
}

impl Peer {
    /// Moves the broadcast window on `event` and tells raft-rs whether to broadcast commits.
    pub fn on_commit_broadcast_event(&mut self, event: BcastEvent) {
        let next = next_bcast_until(self.bcast_commit_until, event);
        if next != self.bcast_commit_until {
            self.bcast_commit_until = next;
            self.raft_group.skip_bcast_commit(next == 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_writes_and_log_compaction_do_not_open_the_window() {
        for admin in [None, Some(AdminCmdType::CompactLog)] {
            let event = BcastEvent::Proposed { index: 7, admin };
            assert_eq!(next_bcast_until(0, event), 0, "{admin:?}");
            assert_eq!(next_bcast_until(5, event), 5, "{admin:?}");
        }
    }

    #[test]
    fn urgent_entries_open_the_window_until_they_apply() {
        for admin in [
            AdminCmdType::BatchSplit,
            AdminCmdType::ChangePeerV2,
            AdminCmdType::PrepareMerge,
            AdminCmdType::CommitMerge,
            AdminCmdType::RollbackMerge,
        ] {
            let until = next_bcast_until(
                0,
                BcastEvent::Proposed {
                    index: 10,
                    admin: Some(admin),
                },
            );
            assert_eq!(until, 10, "{admin:?}");
            assert_eq!(
                next_bcast_until(until, BcastEvent::Applied { index: 9 }),
                10,
                "{admin:?} closed the window before it applied"
            );
            assert_eq!(
                next_bcast_until(until, BcastEvent::Applied { index: 10 }),
                0
            );
        }
    }

    #[test]
    fn a_later_urgent_entry_extends_the_window_and_an_earlier_one_does_not_shrink_it() {
        let split = |index| BcastEvent::Proposed {
            index,
            admin: Some(AdminCmdType::BatchSplit),
        };
        assert_eq!(next_bcast_until(10, split(12)), 12);
        assert_eq!(next_bcast_until(12, split(11)), 12);
    }

    #[test]
    fn a_new_leader_broadcasts_until_its_first_entry_applies() {
        let until = next_bcast_until(0, BcastEvent::BecameLeader { last_index: 31 });
        assert_eq!(until, 31);
        assert_eq!(
            next_bcast_until(until, BcastEvent::Applied { index: 30 }),
            31
        );
        assert_eq!(
            next_bcast_until(until, BcastEvent::Applied { index: 32 }),
            0
        );
    }

    #[test]
    fn applying_with_no_window_keeps_it_closed() {
        assert_eq!(next_bcast_until(0, BcastEvent::Applied { index: 100 }), 0);
    }
}
