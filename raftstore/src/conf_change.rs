//! Membership changes as pure functions: the region a `ChangePeerV2` produces, and the raft-rs
//! `ConfChangeV2` that carries it. Both the proposer (to refuse bad changes early) and the
//! apply pool (to apply them) use these.

use proto::eraftpb::{ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2};
use proto::metapb::{Peer, PeerRole, Region};
use proto::raft_cmdpb::{ChangePeerRequest, ConfChangeType as CmdChangeType};

use crate::errors::{Error, Result};

fn role(p: &Peer) -> PeerRole {
    PeerRole::try_from(p.role).unwrap_or(PeerRole::Voter)
}

fn refuse(why: String) -> Error {
    Error::InvalidRequest(why)
}

/// The region after `changes`: one change is a simple change, several enter a joint state
/// and no change leaves it. `conf_ver` grows by the number of changes (at least one).
pub fn region_after(region: &Region, changes: &[ChangePeerRequest]) -> Result<Region> {
    let mut out = region.clone();
    let joint = changes.len() > 1;
    if changes.is_empty() {
        let mut in_joint = false;
        for p in out.peers.iter_mut() {
            match role(p) {
                PeerRole::IncomingVoter => {
                    p.role = PeerRole::Voter as i32;
                    in_joint = true;
                }
                PeerRole::DemotingVoter => {
                    p.role = PeerRole::Learner as i32;
                    in_joint = true;
                }
                _ => {}
            }
        }
        if !in_joint {
            return Err(refuse("the region is not in a joint state".into()));
        }
    } else if region
        .peers
        .iter()
        .any(|p| matches!(role(p), PeerRole::IncomingVoter | PeerRole::DemotingVoter))
    {
        return Err(refuse(
            "the region is in a joint state; leave it first".into(),
        ));
    }
    for ch in changes {
        let target = ch
            .peer
            .ok_or_else(|| refuse("a membership change without a peer".into()))?;
        let existing = out.peers.iter().position(|p| p.id == target.id);
        if existing.is_none() && out.peers.iter().any(|p| p.store_id == target.store_id) {
            return Err(refuse(format!(
                "store {} already holds a peer of region {}",
                target.store_id, region.id
            )));
        }
        let kind = CmdChangeType::try_from(ch.change_type)
            .map_err(|_| refuse(format!("unknown change type {}", ch.change_type)))?;
        match (kind, existing) {
            (CmdChangeType::AddNode, Some(i)) => match role(&out.peers[i]) {
                PeerRole::Learner => {
                    out.peers[i].role = if joint {
                        PeerRole::IncomingVoter
                    } else {
                        PeerRole::Voter
                    } as i32
                }
                _ => return Err(refuse(format!("peer {} is already a voter", target.id))),
            },
            (CmdChangeType::AddNode, None) => out.peers.push(Peer {
                role: if joint {
                    PeerRole::IncomingVoter
                } else {
                    PeerRole::Voter
                } as i32,
                ..target
            }),
            (CmdChangeType::AddLearnerNode, Some(i)) => match role(&out.peers[i]) {
                PeerRole::Voter => {
                    out.peers[i].role = if joint {
                        PeerRole::DemotingVoter
                    } else {
                        PeerRole::Learner
                    } as i32
                }
                _ => return Err(refuse(format!("peer {} is already a learner", target.id))),
            },
            (CmdChangeType::AddLearnerNode, None) => out.peers.push(Peer {
                role: PeerRole::Learner as i32,
                ..target
            }),
            (CmdChangeType::RemoveNode, Some(i)) => {
                if joint && role(&out.peers[i]) == PeerRole::Voter {
                    return Err(refuse(format!(
                        "demote voter {} before removing it in a joint change",
                        target.id
                    )));
                }
                out.peers.remove(i);
            }
            (CmdChangeType::RemoveNode, None) => {
                return Err(refuse(format!("peer {} is not a member", target.id)))
            }
        }
    }
    let incoming = out
        .peers
        .iter()
        .filter(|p| matches!(role(p), PeerRole::Voter | PeerRole::IncomingVoter))
        .count();
    let outgoing = out
        .peers
        .iter()
        .filter(|p| matches!(role(p), PeerRole::Voter | PeerRole::DemotingVoter))
        .count();
    if incoming == 0 || (joint && outgoing == 0) {
        return Err(refuse(
            "the change would leave the region without a voter".into(),
        ));
    }
    let mut epoch = out.region_epoch.unwrap_or_default();
    epoch.conf_ver += changes.len().max(1) as u64;
    out.region_epoch = Some(epoch);
    Ok(out)
}

/// The raft-rs change for `changes`: simple for one, explicit joint for several, leave-joint
/// for none.
pub fn to_raft(changes: &[ChangePeerRequest]) -> ConfChangeV2 {
    let mut cc = ConfChangeV2::default();
    for ch in changes {
        let mut single = ConfChangeSingle::default();
        single.set_change_type(match CmdChangeType::try_from(ch.change_type) {
            Ok(CmdChangeType::AddNode) => ConfChangeType::AddNode,
            Ok(CmdChangeType::AddLearnerNode) => ConfChangeType::AddLearnerNode,
            _ => ConfChangeType::RemoveNode,
        });
        single.node_id = ch.peer.map_or(0, |p| p.id);
        cc.mut_changes().push(single);
    }
    cc.set_transition(if changes.len() > 1 {
        ConfChangeTransition::Explicit
    } else {
        ConfChangeTransition::Auto
    });
    cc
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::metapb::RegionEpoch;

    fn peer(id: u64, role: PeerRole) -> Peer {
        Peer {
            id,
            store_id: id,
            role: role as i32,
            is_witness: false,
        }
    }

    fn region() -> Region {
        Region {
            id: 1,
            region_epoch: Some(RegionEpoch {
                conf_ver: 1,
                version: 1,
            }),
            peers: vec![peer(1, PeerRole::Voter), peer(2, PeerRole::Voter)],
            ..Default::default()
        }
    }

    fn change(ty: CmdChangeType, p: Peer) -> ChangePeerRequest {
        ChangePeerRequest {
            change_type: ty as i32,
            peer: Some(p),
        }
    }

    #[test]
    fn learner_then_promotion_through_joint_state() {
        let r = region_after(
            &region(),
            &[change(
                CmdChangeType::AddLearnerNode,
                peer(3, PeerRole::Learner),
            )],
        )
        .unwrap();
        assert_eq!(role(&r.peers[2]), PeerRole::Learner);
        assert_eq!(r.region_epoch.unwrap().conf_ver, 2);
        // Replace 1 by 3: promote 3 and demote 1 together.
        let j = region_after(
            &r,
            &[
                change(CmdChangeType::AddNode, peer(3, PeerRole::Voter)),
                change(CmdChangeType::AddLearnerNode, peer(1, PeerRole::Learner)),
            ],
        )
        .unwrap();
        assert_eq!(role(&j.peers[2]), PeerRole::IncomingVoter);
        assert_eq!(role(&j.peers[0]), PeerRole::DemotingVoter);
        let left = region_after(&j, &[]).unwrap();
        assert_eq!(role(&left.peers[2]), PeerRole::Voter);
        assert_eq!(role(&left.peers[0]), PeerRole::Learner);
        let removed = region_after(
            &left,
            &[change(
                CmdChangeType::RemoveNode,
                peer(1, PeerRole::Learner),
            )],
        )
        .unwrap();
        assert_eq!(
            removed.peers.iter().map(|p| p.id).collect::<Vec<_>>(),
            vec![2, 3]
        );
        assert_eq!(removed.region_epoch.unwrap().conf_ver, 6);
    }

    #[test]
    fn bad_changes_are_refused() {
        let r = region();
        let no_voter = [change(CmdChangeType::RemoveNode, peer(1, PeerRole::Voter))];
        let one = region_after(&r, &no_voter).unwrap();
        let err = region_after(
            &one,
            &[change(CmdChangeType::RemoveNode, peer(2, PeerRole::Voter))],
        );
        assert!(err.unwrap_err().to_string().contains("without a voter"));
        let missing = region_after(
            &r,
            &[change(CmdChangeType::RemoveNode, peer(9, PeerRole::Voter))],
        );
        assert!(missing.unwrap_err().to_string().contains("not a member"));
        assert!(
            region_after(&r, &[]).is_err(),
            "leaving a joint state that does not exist"
        );
        let twice = region_after(
            &r,
            &[change(CmdChangeType::AddNode, peer(1, PeerRole::Voter))],
        );
        assert!(twice.is_err());
    }

    #[test]
    fn raft_change_shape() {
        assert_eq!(to_raft(&[]).get_transition(), ConfChangeTransition::Auto);
        let two = [
            change(CmdChangeType::AddNode, peer(3, PeerRole::Voter)),
            change(CmdChangeType::AddLearnerNode, peer(1, PeerRole::Learner)),
        ];
        let cc = to_raft(&two);
        assert_eq!(cc.get_transition(), ConfChangeTransition::Explicit);
        assert_eq!(
            cc.get_changes()[1].get_change_type(),
            ConfChangeType::AddLearnerNode
        );
    }
}
