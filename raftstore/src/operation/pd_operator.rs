//! Executing the operator steps PD sends back on the region heartbeat stream: membership
//! changes, leader transfers and splits. A step that no longer fits the region (stale epoch,
//! not the leader any more) is dropped; PD sends it again with the next heartbeat.

use proto::metapb::{self, Region};
use proto::pdpb::{self, CheckPolicy, RegionHeartbeatResponse};
use proto::raft_cmdpb::{
    AdminCmdType, AdminRequest, ChangePeerRequest, ChangePeerV2Request,
    ConfChangeType as CmdChangeType, RaftCmdRequest, RaftRequestHeader, TransferLeaderRequest,
};
use tracing::{debug, info, warn};

use crate::context::PollContext;
use crate::errors::{Error, Result};
use crate::metrics::PD_OPERATOR_STEPS;
use crate::msg::{Callback, RaftCommand};
use crate::peer::Peer;
use crate::worker::split_check::SplitCheckTask;

impl Peer {
    /// Runs one operator step for this region if it still applies.
    pub fn on_pd_operator(&mut self, ctx: &mut PollContext, op: RegionHeartbeatResponse) {
        let region_id = self.region_id();
        if !self.is_leader() {
            debug!(region_id, "operator step ignored: not the leader");
            PD_OPERATOR_STEPS.with_label_values(&["ignored"]).inc();
            return;
        }
        let current = self.region().region_epoch.unwrap_or_default();
        if op.region_epoch.is_some_and(|e| e != current) {
            debug!(
                region_id,
                step = ?op.region_epoch,
                ?current,
                "operator step ignored: stale epoch"
            );
            PD_OPERATOR_STEPS.with_label_values(&["ignored"]).inc();
            return;
        }
        if op
            .target_peer
            .is_some_and(|t| t.id != 0 && t.id != self.peer_id())
        {
            debug!(region_id, "operator step ignored: meant for another peer");
            PD_OPERATOR_STEPS.with_label_values(&["ignored"]).inc();
            return;
        }
        PD_OPERATOR_STEPS.with_label_values(&["executed"]).inc();
        match conf_changes(&op) {
            Ok(Some(changes)) => {
                let admin = AdminRequest {
                    cmd_type: AdminCmdType::ChangePeerV2 as i32,
                    change_peer_v2: Some(ChangePeerV2Request { changes }),
                    ..Default::default()
                };
                self.propose_operator(ctx, admin, "change peers");
            }
            Ok(None) => {}
            Err(e) => warn!(region_id, "operator step ignored: {e}"),
        }
        if let Some(tl) = &op.transfer_leader {
            match tl.peer.or_else(|| tl.peers.first().copied()) {
                Some(target) => {
                    let admin = AdminRequest {
                        cmd_type: AdminCmdType::TransferLeader as i32,
                        transfer_leader: Some(TransferLeaderRequest {
                            peer: Some(target),
                            peers: tl.peers.clone(),
                        }),
                        ..Default::default()
                    };
                    self.propose_operator(ctx, admin, "transfer leader");
                }
                None => warn!(region_id, "transfer leader step without a target ignored"),
            }
        }
        if let Some(split) = &op.split_region {
            self.on_split_step(ctx, split);
        }
        if let Some(target) = op.merge.as_ref().and_then(|m| m.target.clone()) {
            self.on_merge_step(ctx, target);
        }
    }

    fn on_split_step(&mut self, ctx: &mut PollContext, split: &pdpb::SplitRegion) {
        let region_id = self.region_id();
        match CheckPolicy::try_from(split.policy) {
            Ok(CheckPolicy::Usekey) => {
                let split_keys = keys_inside(self.region(), &split.keys);
                if split_keys.is_empty() {
                    debug!(region_id, "split step: no key inside the region");
                    return;
                }
                // Split ids come from PD, which may block: the split checker asks.
                let _ = ctx.split_checker.send(SplitCheckTask::SplitAt {
                    region: self.region().clone(),
                    split_keys,
                });
            }
            Ok(CheckPolicy::Scan) | Ok(CheckPolicy::Approximate) => self.schedule_split_check(ctx),
            Err(_) => warn!(
                region_id,
                policy = split.policy,
                "split step with an unknown policy ignored"
            ),
        }
    }

    /// Proposes an admin command on PD's behalf; a refusal is only logged (PD retries).
    fn propose_operator(&mut self, ctx: &mut PollContext, admin: AdminRequest, what: &'static str) {
        let region_id = self.region_id();
        let req = RaftCmdRequest {
            header: Some(RaftRequestHeader {
                region_id,
                peer: Some(self.meta),
                region_epoch: self.region().region_epoch,
                ..Default::default()
            }),
            requests: vec![],
            admin_request: Some(admin),
        };
        info!(region_id, what, "executing operator step");
        let callback = Callback::new(move |resp| {
            if let Some(e) = resp.response.header.and_then(|h| h.error) {
                info!(region_id, what, "operator step refused: {}", e.message);
            }
        });
        self.propose_command(ctx, RaftCommand::new(req, callback));
    }
}

/// The membership changes of a step: `change_peer_v2` (an empty list leaves a joint state) or
/// a single `change_peer`; `None` if the step changes no membership.
pub fn conf_changes(op: &RegionHeartbeatResponse) -> Result<Option<Vec<ChangePeerRequest>>> {
    if let Some(v2) = &op.change_peer_v2 {
        return v2
            .changes
            .iter()
            .map(to_cmd_change)
            .collect::<Result<Vec<_>>>()
            .map(Some);
    }
    match &op.change_peer {
        Some(cp) => Ok(Some(vec![to_cmd_change(cp)?])),
        None => Ok(None),
    }
}

fn to_cmd_change(cp: &pdpb::ChangePeer) -> Result<ChangePeerRequest> {
    let change_type = match pdpb::ConfChangeType::try_from(cp.change_type) {
        Ok(pdpb::ConfChangeType::AddNode) => CmdChangeType::AddNode,
        Ok(pdpb::ConfChangeType::RemoveNode) => CmdChangeType::RemoveNode,
        Ok(pdpb::ConfChangeType::AddLearnerNode) => CmdChangeType::AddLearnerNode,
        Err(_) => {
            return Err(Error::InvalidRequest(format!(
                "unknown change type {}",
                cp.change_type
            )))
        }
    };
    let peer: metapb::Peer = cp
        .peer
        .ok_or_else(|| Error::InvalidRequest("membership change without a peer".into()))?;
    Ok(ChangePeerRequest {
        change_type: change_type as i32,
        peer: Some(peer),
    })
}

/// The keys strictly inside the region, sorted and unique.
pub fn keys_inside(region: &Region, keys: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut inside: Vec<Vec<u8>> = keys
        .iter()
        .filter(|k| {
            k.as_slice() > region.start_key.as_slice()
                && (region.end_key.is_empty() || k.as_slice() < region.end_key.as_slice())
        })
        .cloned()
        .collect();
    inside.sort();
    inside.dedup();
    inside
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(id: u64) -> metapb::Peer {
        metapb::Peer {
            id,
            store_id: id,
            ..Default::default()
        }
    }

    #[test]
    fn pd_change_types_map_to_commands() {
        let op = RegionHeartbeatResponse {
            change_peer_v2: Some(pdpb::ChangePeerV2 {
                changes: vec![
                    pdpb::ChangePeer {
                        peer: Some(peer(4)),
                        change_type: pdpb::ConfChangeType::AddLearnerNode as i32,
                    },
                    pdpb::ChangePeer {
                        peer: Some(peer(3)),
                        change_type: pdpb::ConfChangeType::RemoveNode as i32,
                    },
                ],
            }),
            ..Default::default()
        };
        let changes = conf_changes(&op).unwrap().unwrap();
        assert_eq!(changes[0].change_type(), CmdChangeType::AddLearnerNode);
        assert_eq!(changes[0].peer, Some(peer(4)));
        assert_eq!(changes[1].change_type(), CmdChangeType::RemoveNode);

        let single = RegionHeartbeatResponse {
            change_peer: Some(pdpb::ChangePeer {
                peer: Some(peer(4)),
                change_type: pdpb::ConfChangeType::AddNode as i32,
            }),
            ..Default::default()
        };
        let changes = conf_changes(&single).unwrap().unwrap();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].change_type(), CmdChangeType::AddNode);

        assert!(conf_changes(&RegionHeartbeatResponse::default())
            .unwrap()
            .is_none());
        // An empty v2 list leaves a joint state.
        let leave = RegionHeartbeatResponse {
            change_peer_v2: Some(pdpb::ChangePeerV2::default()),
            ..Default::default()
        };
        assert_eq!(conf_changes(&leave).unwrap(), Some(vec![]));
    }

    #[test]
    fn malformed_changes_are_errors() {
        let bad_type = RegionHeartbeatResponse {
            change_peer: Some(pdpb::ChangePeer {
                peer: Some(peer(4)),
                change_type: 42,
            }),
            ..Default::default()
        };
        assert!(matches!(
            conf_changes(&bad_type),
            Err(Error::InvalidRequest(_))
        ));
        let no_peer = RegionHeartbeatResponse {
            change_peer: Some(pdpb::ChangePeer {
                peer: None,
                change_type: 0,
            }),
            ..Default::default()
        };
        assert!(conf_changes(&no_peer).is_err());
    }

    #[test]
    fn only_keys_strictly_inside_are_kept() {
        let region = Region {
            start_key: b"b".to_vec(),
            end_key: b"m".to_vec(),
            ..Default::default()
        };
        let keys = vec![
            b"a".to_vec(),
            b"b".to_vec(),
            b"d".to_vec(),
            b"c".to_vec(),
            b"d".to_vec(),
            b"m".to_vec(),
            b"z".to_vec(),
        ];
        assert_eq!(
            keys_inside(&region, &keys),
            vec![b"c".to_vec(), b"d".to_vec()]
        );
        let everything = Region::default();
        assert_eq!(
            keys_inside(&everything, &[b"".to_vec(), b"x".to_vec()]),
            vec![b"x".to_vec()]
        );
    }
}
