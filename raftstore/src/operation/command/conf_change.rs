//! `ChangePeerV2`: adding, removing, promoting and demoting peers, through raft's joint
//! consensus when more than one voter changes. Every phase in order:
//!
//! 1. **The rules** (pure functions both halves use): `region_after` gives the region a
//!    change produces or refuses it (removing the last voter, a learner promoted twice, ...);
//!    `to_raft` gives the raft-rs `ConfChangeV2` that carries it; `conf_state_from_region`
//!    turns a region's peer list into raft-rs's configuration.
//! 2. **Propose** (peer): `propose_conf_change` checks the change against the current region
//!    and proposes it as a `ConfChangeV2` entry whose context is the admin request.
//! 3. **Apply** (apply pool): `exec_conf_change` checks the epoch again and writes the new
//!    region (conf version bumped) in the same batch as the data.
//! 4. **Apply result** (peer): `on_ready_change_peer` hands the change to raft-rs, updates
//!    `StoreMeta` and the read delegate, and destroys this peer when it was removed.

use engine::{KvWriteBatch, CF_RAFT};
use prost::Message as _;
use proto::eraftpb::{
    ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, ConfState, Entry,
};
use proto::metapb::{self, PeerRole, Region};
use proto::raft_cmdpb::{
    AdminCmdType, AdminResponse, ChangePeerRequest, ChangePeerV2Response,
    ConfChangeType as CmdChangeType, RaftCmdRequest, RaftCmdResponse, RaftResponseHeader,
};
use proto::raft_serverpb::{PeerState, RaftMessage, RegionLocalState};
use tracing::info;

use crate::context::PollContext;
use crate::errors::{Error, Result};
use crate::msg::apply::ExecResult;
use crate::peer::Peer;
use crate::util;

// ---- The rules ----

fn role(p: &metapb::Peer) -> PeerRole {
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
            (CmdChangeType::AddNode, None) => out.peers.push(metapb::Peer {
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
            (CmdChangeType::AddLearnerNode, None) => out.peers.push(metapb::Peer {
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

/// Converts a region's peer list into raft-rs's configuration.
pub fn conf_state_from_region(region: &Region) -> ConfState {
    let mut cs = ConfState::default();
    let mut in_joint = false;
    for p in &region.peers {
        match PeerRole::try_from(p.role).unwrap_or(PeerRole::Voter) {
            PeerRole::Voter => {
                cs.mut_voters().push(p.id);
                cs.mut_voters_outgoing().push(p.id);
            }
            PeerRole::Learner => cs.mut_learners().push(p.id),
            PeerRole::IncomingVoter => {
                in_joint = true;
                cs.mut_voters().push(p.id);
            }
            PeerRole::DemotingVoter => {
                in_joint = true;
                cs.mut_voters_outgoing().push(p.id);
                cs.mut_learners_next().push(p.id);
            }
        }
    }
    if !in_joint {
        cs.mut_voters_outgoing().clear();
    }
    cs
}

// ---- Propose and apply result on the peer ----

impl Peer {
    /// Proposes a membership change after checking it would be valid now.
    pub fn propose_conf_change(&mut self, req: &RaftCmdRequest) -> Result<Option<u64>> {
        let changes = req
            .admin_request
            .as_ref()
            .and_then(|a| a.change_peer_v2.as_ref())
            .map(|c| c.changes.clone())
            .ok_or_else(|| Error::InvalidRequest("membership change without changes".into()))?;
        if self.raft_group.raft.has_pending_conf() {
            // Transient: the previous change has not been applied here yet.
            return Err(Error::ServerIsBusy(
                "another membership change is still being applied".into(),
            ));
        }
        region_after(self.region(), &changes)?;
        let expected = self.raft_group.raft.raft_log.last_index() + 1;
        self.raft_group
            .propose_conf_change(req.encode_to_vec(), to_raft(&changes))?;
        if self.raft_group.raft.raft_log.last_index() < expected {
            return Err(Error::NotLeader {
                region_id: self.region_id(),
                leader: self.leader(),
            });
        }
        Ok(Some(expected))
    }

    /// A membership change was applied: tell raft-rs, record the region, and leave if this
    /// peer was removed.
    pub fn on_ready_change_peer(
        &mut self,
        ctx: &mut PollContext,
        cc: ConfChangeV2,
        region: Region,
    ) {
        if let Err(e) = self.raft_group.apply_conf_change(&cc) {
            // The region's membership and raft's would disagree from here on.
            crate::invariant::violated(
                self.region_id(),
                self.peer_id(),
                format_args!("raft rejected an applied membership change {cc:?}: {e}"),
            );
        }
        info!(
            region_id = self.region_id(),
            peers = ?region.peers.iter().map(|p| (p.id, p.role)).collect::<Vec<_>>(),
            "membership changed"
        );
        let leader_removed = !region.peers.iter().any(|p| p.id == self.leader_id());
        let added: Vec<u64> = region
            .peers
            .iter()
            .filter(|p| !self.region().peers.iter().any(|old| old.id == p.id))
            .map(|p| p.id)
            .collect();
        let gone: Vec<metapb::Peer> = self
            .region()
            .peers
            .iter()
            .filter(|old| !region.peers.iter().any(|p| p.id == old.id))
            .copied()
            .collect();
        self.storage_mut().set_region(region.clone());
        let removed = !region.peers.iter().any(|p| p.id == self.peer_id());
        ctx.store_meta.lock().set_region(region);
        if removed {
            self.destroy(ctx);
            return;
        }
        self.refresh_own_meta();
        if leader_removed {
            // Our leader left; the clock must run so a new one is elected.
            self.wake_up(ctx);
        }
        if self.is_leader() {
            // A removed peer that has not learnt the removal's commit would never hear from
            // the leader again (a learner never campaigns, so it never asks): tell it, and it
            // destroys itself on seeing the newer configuration.
            self.tell_removed_peers(ctx, &gone);
            // New peers are pending until they hold the log as of their addition.
            let target = self.raft_group.raft.raft_log.last_index();
            let now = std::time::Instant::now();
            for id in added {
                self.pd_stats.catching_up.insert(id, target);
                self.pd_stats.heard_from(id, now);
            }
            self.heartbeat_pd(ctx);
        }
    }
}

impl Peer {
    /// Takes this peer's own record (its role above all) from the region as it now stands:
    /// a learner promoted to voter, or the other way round, reports its new role to PD as
    /// the region's leader and in the raft messages it sends.
    pub(crate) fn refresh_own_meta(&mut self) {
        let id = self.peer_id();
        if let Some(own) = self.region().peers.iter().find(|p| p.id == id) {
            self.meta = *own;
        }
    }

    /// Sends each of `gone` (peers the applied membership change removed) a tombstone
    /// message carrying the new epoch. Its store drops it if the peer is already gone: an
    /// empty raft message never creates a peer.
    fn tell_removed_peers(&self, ctx: &mut PollContext, gone: &[metapb::Peer]) {
        let epoch = self.region().region_epoch;
        for peer in gone {
            ctx.transport.send(RaftMessage {
                region_id: self.region_id(),
                from_peer: Some(self.meta),
                to_peer: Some(*peer),
                region_epoch: epoch,
                is_tombstone: true,
                ..Default::default()
            });
        }
    }
}

// ---- Apply on the apply pool ----

/// Applies a `ConfChangeV2` entry (its context is the admin request): re-checks the epoch and
/// the change against the region as applied so far, then writes the new region state
/// (`conf_ver` bumped) into the round's batch. Errors: a stale epoch, or a change
/// `region_after` refuses.
pub fn exec_conf_change(
    wb: &mut KvWriteBatch,
    region: &Region,
    entry: &Entry,
) -> Result<(RaftCmdResponse, Option<ExecResult>)> {
    crate::failpoint!(crate::failpoints::CONF_CHANGE_APPLY);
    let cc = proto::parse_raft::<ConfChangeV2>(&entry.data)?;
    let req = RaftCmdRequest::decode(&entry.context[..])?;
    util::check_region_epoch(&req, region)?;
    let changes = req
        .admin_request
        .as_ref()
        .and_then(|a| a.change_peer_v2.as_ref())
        .map(|c| c.changes.clone())
        .ok_or_else(|| Error::InvalidRequest("membership change without changes".into()))?;
    let new_region = region_after(region, &changes)?;
    wb.put_msg_cf(
        CF_RAFT,
        &keys::region_state_key(region.id),
        &RegionLocalState {
            state: PeerState::Normal as i32,
            region: Some(new_region.clone()),
            merge_state: None,
        },
    )?;
    let resp = RaftCmdResponse {
        header: Some(RaftResponseHeader::default()),
        responses: vec![],
        admin_response: Some(AdminResponse {
            cmd_type: AdminCmdType::ChangePeerV2 as i32,
            change_peer_v2: Some(ChangePeerV2Response {
                region: Some(new_region.clone()),
            }),
            ..Default::default()
        }),
    };
    Ok((
        resp,
        Some(ExecResult::ChangePeer {
            cc,
            region: new_region,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use proto::metapb::RegionEpoch;

    use super::*;

    fn peer(id: u64, role: PeerRole) -> metapb::Peer {
        metapb::Peer {
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

    fn change(ty: CmdChangeType, p: metapb::Peer) -> ChangePeerRequest {
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
