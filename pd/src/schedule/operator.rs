//! An operator: the steps PD wants one region to take (add a learner, promote it, transfer the
//! leader, remove a peer, split, merge into a neighbour), checked against each report of the
//! region and sent to its leader one step at a time.

use std::time::{Duration, Instant};

use proto::metapb::{self, Peer, PeerRole, RegionEpoch};
use proto::pdpb::{
    ChangePeer, ChangePeerV2, CheckPolicy, ConfChangeType, Merge, RegionHeartbeatResponse,
    ResponseHeader, SplitRegion, TransferLeader,
};

use crate::cluster::{role, RegionInfo, StoreStatus};
use crate::config::ScheduleConfig;

/// Who made an operator, which also sets its concurrency limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// Asked for through the HTTP API.
    Admin,
    /// Repairs the replica count or moves peers off unhealthy stores.
    Replica,
    /// Evens out leaders.
    Leader,
    /// Evens out regions.
    Region,
    /// Splits a region.
    Split,
    /// Merges a small region into a neighbour.
    Merge,
    /// Moves a hot region's leader to a cooler store.
    HotRegion,
}

impl OpKind {
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Admin => "admin",
            OpKind::Replica => "replica",
            OpKind::Leader => "leader",
            OpKind::Region => "region",
            OpKind::Split => "split",
            OpKind::Merge => "merge",
            OpKind::HotRegion => "hot-region",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum OpStep {
    AddLearner {
        store_id: u64,
        peer_id: u64,
    },
    PromoteLearner {
        store_id: u64,
        peer_id: u64,
    },
    RemovePeer {
        store_id: u64,
        peer_id: u64,
    },
    TransferLeader {
        from_store: u64,
        to_store: u64,
    },
    Split {
        keys: Vec<Vec<u8>>,
    },
    /// Merge the region into `target` (as PD saw it when it decided). Done when PD no longer
    /// knows the region: the merged target's report replaced it.
    MergeRegion {
        target: metapb::Region,
    },
}

impl OpStep {
    /// Whether the region shows this step done. A new learner counts only once it caught up.
    fn is_done(&self, region: &RegionInfo, start: &RegionEpoch) -> bool {
        match self {
            OpStep::AddLearner { peer_id, .. } => {
                region.peer(*peer_id).is_some() && !region.is_pending(*peer_id)
            }
            OpStep::PromoteLearner { peer_id, .. } => region
                .peer(*peer_id)
                .is_some_and(|p| role(p) == PeerRole::Voter),
            OpStep::RemovePeer { peer_id, .. } => region.peer(*peer_id).is_none(),
            OpStep::TransferLeader { to_store, .. } => region.leader_store_id() == Some(*to_store),
            OpStep::Split { .. } => region.epoch().version > start.version,
            OpStep::MergeRegion { .. } => false,
        }
    }

    /// How many membership changes of this step the region already shows.
    fn applied_conf_changes(&self, region: &RegionInfo) -> u64 {
        let applied = match self {
            OpStep::AddLearner { peer_id, .. } => region.peer(*peer_id).is_some(),
            OpStep::PromoteLearner { peer_id, .. } => region
                .peer(*peer_id)
                .is_some_and(|p| role(p) == PeerRole::Voter),
            OpStep::RemovePeer { peer_id, .. } => region.peer(*peer_id).is_none(),
            OpStep::TransferLeader { .. } | OpStep::Split { .. } | OpStep::MergeRegion { .. } => {
                false
            }
        };
        u64::from(applied)
    }

    /// Why the step can no longer happen, if it cannot.
    fn obstacle(&self, region: &RegionInfo) -> Option<String> {
        match self {
            OpStep::AddLearner { store_id, peer_id } => region
                .peer_on_store(*store_id)
                .filter(|p| p.id != *peer_id)
                .map(|p| format!("store {store_id} already holds peer {}", p.id)),
            OpStep::PromoteLearner { peer_id, .. } => region
                .peer(*peer_id)
                .is_none()
                .then(|| format!("learner {peer_id} is gone")),
            OpStep::TransferLeader { to_store, .. } => region
                .peer_on_store(*to_store)
                .filter(|p| role(p) == PeerRole::Voter)
                .is_none()
                .then(|| format!("store {to_store} holds no voter of the region")),
            OpStep::RemovePeer { .. } | OpStep::Split { .. } | OpStep::MergeRegion { .. } => None,
        }
    }

    fn is_conf_change(&self) -> bool {
        matches!(
            self,
            OpStep::AddLearner { .. } | OpStep::PromoteLearner { .. } | OpStep::RemovePeer { .. }
        )
    }

    pub fn describe(&self) -> String {
        match self {
            OpStep::AddLearner { store_id, peer_id } => {
                format!("add learner peer {peer_id} on store {store_id}")
            }
            OpStep::PromoteLearner { store_id, peer_id } => {
                format!("promote learner peer {peer_id} on store {store_id}")
            }
            OpStep::RemovePeer { store_id, peer_id } => {
                format!("remove peer {peer_id} on store {store_id}")
            }
            OpStep::TransferLeader {
                from_store,
                to_store,
            } => format!("transfer leader from store {from_store} to store {to_store}"),
            OpStep::Split { keys } => {
                let hex: Vec<String> = keys.iter().map(|k| crate::hex::encode(k)).collect();
                format!("split at {}", hex.join(", "))
            }
            OpStep::MergeRegion { target } => format!("merge into region {}", target.id),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpStatus {
    Running,
    Finished,
    TimedOut,
    Cancelled(String),
}

impl OpStatus {
    pub fn name(&self) -> &'static str {
        match self {
            OpStatus::Running => "running",
            OpStatus::Finished => "finished",
            OpStatus::TimedOut => "timeout",
            OpStatus::Cancelled(_) => "cancelled",
        }
    }
}

/// How a new operator changes store loads until it finishes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Influence {
    pub store_id: u64,
    pub regions: i64,
    pub leaders: i64,
}

#[derive(Clone, Debug)]
pub struct Operator {
    pub region_id: u64,
    pub kind: OpKind,
    pub desc: String,
    pub steps: Vec<OpStep>,
    /// Index of the step being worked on.
    pub current: usize,
    /// The region's epoch when the operator was made.
    pub start_epoch: RegionEpoch,
    pub created_at: Instant,
    pub created_unix_ms: u64,
    pub timeout: Duration,
    /// When the current step was last sent to the leader.
    pub last_sent: Option<Instant>,
    /// How many times the current step was sent to the leader.
    pub sends: u32,
    pub status: OpStatus,
}

/// The wall and monotonic time of one scheduling decision.
#[derive(Clone, Copy, Debug)]
pub struct Now {
    pub instant: Instant,
    pub unix_ms: u64,
}

impl Now {
    pub fn current() -> Now {
        Now {
            instant: Instant::now(),
            unix_ms: crate::tso::unix_millis(),
        }
    }
}

impl Operator {
    pub fn new(
        region: &RegionInfo,
        kind: OpKind,
        desc: impl Into<String>,
        steps: Vec<OpStep>,
        cfg: &ScheduleConfig,
        now: Now,
    ) -> Operator {
        let timeout = if steps.iter().any(OpStep::is_conf_change) {
            cfg.peer_operator_timeout
        } else if steps.iter().any(|s| matches!(s, OpStep::Split { .. })) {
            cfg.split_operator_timeout
        } else if steps
            .iter()
            .any(|s| matches!(s, OpStep::MergeRegion { .. }))
        {
            cfg.merge_operator_timeout
        } else {
            cfg.leader_operator_timeout
        };
        Operator {
            region_id: region.id(),
            kind,
            desc: desc.into(),
            steps,
            current: 0,
            start_epoch: region.epoch(),
            created_at: now.instant,
            created_unix_ms: now.unix_ms,
            timeout,
            last_sent: None,
            sends: 0,
            status: OpStatus::Running,
        }
    }

    pub fn current_step(&self) -> Option<&OpStep> {
        self.steps.get(self.current)
    }

    pub fn is_running(&self) -> bool {
        self.status == OpStatus::Running
    }

    fn is_split(&self) -> bool {
        self.steps.iter().any(|s| matches!(s, OpStep::Split { .. }))
    }

    /// Whether the operator has begun changing the region's membership: a membership step is
    /// done or has been sent. Stopping it now can leave the region halfway, for example with
    /// a learner that was never promoted, which every region split from it would inherit.
    pub fn is_changing_membership(&self) -> bool {
        self.steps.iter().enumerate().any(|(i, step)| {
            step.is_conf_change()
                && (i < self.current || (i == self.current && self.last_sent.is_some()))
        })
    }

    /// The store the last leader transfer among the steps still to do moves the leader to.
    pub fn pending_leader_store(&self) -> Option<u64> {
        self.steps
            .get(self.current..)?
            .iter()
            .rev()
            .find_map(|s| match s {
                OpStep::TransferLeader { to_store, .. } => Some(*to_store),
                _ => None,
            })
    }

    /// The region a merge operator merges into, if this is one.
    pub fn merge_target(&self) -> Option<u64> {
        self.steps.iter().find_map(|s| match s {
            OpStep::MergeRegion { target } => Some(target.id),
            _ => None,
        })
    }

    /// Why a step still to come can no longer happen because of the store it goes to: a
    /// learner added to, promoted on, or the leadership moved to a store that is Offline
    /// (being decommissioned), Down or Tombstone, or that PD no longer knows (`status`
    /// answers None). PD cancels such an operator at once instead of letting it run to its
    /// timeout, as PD's operator checker does, so a decommission or a repair is not held
    /// back by moves onto a store that will not take them. Steps that remove a peer from
    /// such a store are what repairs do, and never stop an operator.
    pub fn unreachable_target(
        &self,
        status: impl Fn(u64) -> Option<StoreStatus>,
    ) -> Option<String> {
        let steps = self.steps.get(self.current..)?;
        steps.iter().find_map(|step| {
            let store = match step {
                OpStep::AddLearner { store_id, .. } | OpStep::PromoteLearner { store_id, .. } => {
                    *store_id
                }
                OpStep::TransferLeader { to_store, .. } => *to_store,
                OpStep::RemovePeer { .. } | OpStep::Split { .. } | OpStep::MergeRegion { .. } => {
                    return None
                }
            };
            match status(store) {
                None => Some(format!("store {store} is not part of the cluster")),
                Some(s @ (StoreStatus::Offline | StoreStatus::Down | StoreStatus::Tombstone)) => {
                    Some(format!("store {store} is {}", s.name()))
                }
                Some(StoreStatus::Up | StoreStatus::Disconnected) => None,
            }
        })
    }

    pub fn is_timed_out(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.created_at) >= self.timeout
    }

    /// Advances past every step the region shows done and updates the status: finished,
    /// cancelled (the region changed in a way the operator did not cause), timed out, or
    /// still running.
    pub fn check(&mut self, region: &RegionInfo, now: Instant) -> &OpStatus {
        if !self.is_running() {
            return &self.status;
        }
        while let Some(step) = self.steps.get(self.current) {
            if !step.is_done(region, &self.start_epoch) {
                break;
            }
            self.current += 1;
            self.last_sent = None;
            self.sends = 0;
        }
        self.status = self.status_after_advance(region, now);
        &self.status
    }

    fn status_after_advance(&self, region: &RegionInfo, now: Instant) -> OpStatus {
        let Some(step) = self.current_step() else {
            return OpStatus::Finished;
        };
        let epoch = region.epoch();
        if self.merge_target().is_some() {
            // PrepareMerge moves version and conf_ver on by one; a rollback moves version on
            // once more.
            if epoch.version > self.start_epoch.version + 1
                || epoch.conf_ver > self.start_epoch.conf_ver + 1
            {
                return OpStatus::Cancelled("the merge was rolled back".into());
            }
            if self.is_timed_out(now) {
                return OpStatus::TimedOut;
            }
            return OpStatus::Running;
        }
        if !self.is_split() && epoch.version != self.start_epoch.version {
            return OpStatus::Cancelled("the region split or merged meanwhile".into());
        }
        let expected_conf_ver = self.start_epoch.conf_ver
            + self.steps[..=self.current]
                .iter()
                .map(|s| s.applied_conf_changes(region))
                .sum::<u64>();
        if epoch.conf_ver > expected_conf_ver {
            return OpStatus::Cancelled("the region's membership changed meanwhile".into());
        }
        if let Some(why) = step.obstacle(region) {
            return OpStatus::Cancelled(why);
        }
        if self.is_timed_out(now) {
            return OpStatus::TimedOut;
        }
        OpStatus::Running
    }

    /// Why the operator should give up now instead of sending its current step again: a leader
    /// transfer the leader did not carry out after `max_transfer_attempts` sends (it refused,
    /// e.g. because the target lags far behind, or raft gave the transfer up).
    pub fn out_of_attempts(&self, max_transfer_attempts: u32) -> Option<String> {
        match self.current_step()? {
            OpStep::TransferLeader { to_store, .. } if self.sends >= max_transfer_attempts => {
                Some(format!(
                    "leader transfer to store {to_store} not done after {} attempts",
                    self.sends
                ))
            }
            _ => None,
        }
    }

    /// Notes that the current step went out to the leader at `now`.
    pub fn mark_sent(&mut self, now: Instant) {
        self.last_sent = Some(now);
        self.sends = self.sends.saturating_add(1);
    }

    /// Store load changes of the steps still to come.
    pub fn influence(&self) -> Vec<Influence> {
        let mut out = Vec::new();
        for step in &self.steps[self.current.min(self.steps.len())..] {
            match step {
                OpStep::AddLearner { store_id, .. } => out.push(Influence {
                    store_id: *store_id,
                    regions: 1,
                    leaders: 0,
                }),
                OpStep::RemovePeer { store_id, .. } => out.push(Influence {
                    store_id: *store_id,
                    regions: -1,
                    leaders: 0,
                }),
                OpStep::TransferLeader {
                    from_store,
                    to_store,
                } => {
                    out.push(Influence {
                        store_id: *from_store,
                        regions: 0,
                        leaders: -1,
                    });
                    out.push(Influence {
                        store_id: *to_store,
                        regions: 0,
                        leaders: 1,
                    });
                }
                OpStep::PromoteLearner { .. } | OpStep::Split { .. } => {}
                // The source's peers go; the target's stay where they are.
                OpStep::MergeRegion { target } => {
                    for p in &target.peers {
                        out.push(Influence {
                            store_id: p.store_id,
                            regions: -1,
                            leaders: 0,
                        });
                    }
                }
            }
        }
        out
    }

    /// The message that makes the region's leader take the current step. A peer to remove
    /// that leads the region first hands leadership to another healthy voter.
    pub fn step_response(
        &self,
        region: &RegionInfo,
        cluster_id: u64,
    ) -> Option<RegionHeartbeatResponse> {
        let leader = region.leader?;
        let mut resp = RegionHeartbeatResponse {
            header: Some(ResponseHeader {
                cluster_id,
                error: None,
            }),
            region_id: region.id(),
            region_epoch: Some(region.epoch()),
            target_peer: Some(leader),
            ..Default::default()
        };
        match self.current_step()? {
            OpStep::AddLearner { store_id, peer_id } => {
                if region.peer(*peer_id).is_some() {
                    // Added; waiting for it to catch up.
                    return None;
                }
                let peer = Peer {
                    id: *peer_id,
                    store_id: *store_id,
                    role: PeerRole::Learner as i32,
                    is_witness: false,
                };
                resp.change_peer_v2 = Some(single_change(peer, ConfChangeType::AddLearnerNode));
            }
            OpStep::PromoteLearner { peer_id, .. } => {
                let peer = *region.peer(*peer_id)?;
                resp.change_peer_v2 = Some(single_change(peer, ConfChangeType::AddNode));
            }
            OpStep::RemovePeer { peer_id, .. } => {
                let peer = *region.peer(*peer_id)?;
                if leader.id == peer.id {
                    let to = region
                        .voters()
                        .find(|v| v.id != peer.id && !region.is_pending(v.id))?;
                    resp.transfer_leader = Some(transfer_to(*to));
                } else {
                    resp.change_peer_v2 = Some(single_change(peer, ConfChangeType::RemoveNode));
                }
            }
            OpStep::TransferLeader { to_store, .. } => {
                let to = region.peer_on_store(*to_store)?;
                resp.transfer_leader = Some(transfer_to(*to));
            }
            OpStep::Split { keys } => {
                resp.split_region = Some(SplitRegion {
                    policy: CheckPolicy::Usekey as i32,
                    keys: keys.clone(),
                });
            }
            OpStep::MergeRegion { target } => {
                resp.merge = Some(Merge {
                    target: Some(target.clone()),
                });
            }
        }
        Some(resp)
    }
}

fn single_change(peer: Peer, change_type: ConfChangeType) -> ChangePeerV2 {
    ChangePeerV2 {
        changes: vec![ChangePeer {
            peer: Some(peer),
            change_type: change_type as i32,
        }],
    }
}

fn transfer_to(peer: Peer) -> TransferLeader {
    TransferLeader {
        peer: Some(peer),
        peers: vec![peer],
    }
}

#[cfg(test)]
#[path = "operator_tests.rs"]
mod tests;
