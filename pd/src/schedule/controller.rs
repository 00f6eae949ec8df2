//! The running operators (at most one per region) and a short history of finished ones.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proto::pdpb::RegionHeartbeatResponse;
use tracing::{debug, info};

use super::operator::{Influence, OpKind, OpStatus, Operator};
use crate::cluster::RegionInfo;
use crate::config::ScheduleConfig;
use crate::metrics::Metrics;

/// How many finished operators the HTTP API can still show.
const HISTORY_SIZE: usize = 100;

/// When operator steps go out to region leaders.
#[derive(Clone, Copy, Debug)]
pub struct SendPolicy {
    /// A step not yet done is sent again after this long.
    pub resend: Duration,
    /// Sends of one leader transfer step before its operator is given up.
    pub max_transfer_attempts: u32,
}

impl SendPolicy {
    /// The policy `operator-resend-interval` and `leader-transfer-max-attempts` set.
    pub fn from_config(cfg: &ScheduleConfig) -> SendPolicy {
        SendPolicy {
            resend: cfg.operator_resend_interval,
            max_transfer_attempts: cfg.leader_transfer_max_attempts,
        }
    }
}

pub struct OperatorController {
    running: HashMap<u64, Operator>,
    history: VecDeque<Operator>,
    metrics: Arc<Metrics>,
}

impl OperatorController {
    pub fn new(metrics: Arc<Metrics>) -> OperatorController {
        OperatorController {
            running: HashMap::new(),
            history: VecDeque::new(),
            metrics,
        }
    }

    pub fn get(&self, region_id: u64) -> Option<&Operator> {
        self.running.get(&region_id)
    }

    pub fn has(&self, region_id: u64) -> bool {
        self.running.contains_key(&region_id)
    }

    pub fn running(&self) -> impl Iterator<Item = &Operator> {
        self.running.values()
    }

    /// Finished, timed-out and cancelled operators, newest first.
    pub fn history(&self) -> impl Iterator<Item = &Operator> {
        self.history.iter().rev()
    }

    pub fn count(&self, kind: OpKind) -> usize {
        self.running.values().filter(|o| o.kind == kind).count()
    }

    /// Starts `op` unless its region already has one.
    pub fn add(&mut self, op: Operator) -> bool {
        if self.running.contains_key(&op.region_id) {
            return false;
        }
        info!(region_id = op.region_id, kind = op.kind.name(), desc = %op.desc, "operator created");
        self.metrics
            .operators_created
            .with_label_values(&[op.kind.name()])
            .inc();
        self.running.insert(op.region_id, op);
        true
    }

    /// Starts an operator asked for by an administrator: it replaces a scheduler's operator,
    /// but not another administrator's, nor one that has begun changing the region's
    /// membership (see `Operator::is_changing_membership`). A refusal says "already has an
    /// operator", which callers such as `shoal-ctl presplit` retry on.
    pub fn add_admin(&mut self, op: Operator) -> Result<(), String> {
        if let Some(existing) = self.running.get(&op.region_id) {
            if existing.kind == OpKind::Admin {
                return Err(format!(
                    "region {} already has an operator: {}",
                    op.region_id, existing.desc
                ));
            }
            if existing.is_changing_membership() {
                return Err(format!(
                    "region {} already has an operator changing its membership: {}",
                    op.region_id, existing.desc
                ));
            }
            self.cancel(op.region_id, "replaced by an administrator's operator");
        }
        self.add(op);
        Ok(())
    }

    /// Ends the region's operator as finished: its region is gone because the operator did
    /// what it set out to (a merge whose source the merged target replaced).
    pub fn complete(&mut self, region_id: u64) -> Option<Operator> {
        let mut op = self.running.remove(&region_id)?;
        op.status = OpStatus::Finished;
        self.finish(op.clone());
        Some(op)
    }

    /// Ids of every region a running operator works on: its own, and a merge's target.
    pub fn busy_regions(&self) -> impl Iterator<Item = u64> + '_ {
        self.running
            .values()
            .flat_map(|o| std::iter::once(o.region_id).chain(o.merge_target()))
    }

    /// Stops the region's operator; returns it.
    pub fn cancel(&mut self, region_id: u64, reason: &str) -> Option<Operator> {
        let mut op = self.running.remove(&region_id)?;
        op.status = OpStatus::Cancelled(reason.to_string());
        self.finish(op.clone());
        Some(op)
    }

    fn finish(&mut self, op: Operator) {
        let status = op.status.name();
        match &op.status {
            OpStatus::Finished => {
                info!(region_id = op.region_id, desc = %op.desc, "operator finished")
            }
            OpStatus::Cancelled(why) => {
                info!(region_id = op.region_id, desc = %op.desc, reason = %why, "operator cancelled")
            }
            _ => info!(region_id = op.region_id, desc = %op.desc, status, "operator ended"),
        }
        self.metrics
            .operators_finished
            .with_label_values(&[op.kind.name(), status])
            .inc();
        if self.history.len() >= HISTORY_SIZE {
            self.history.pop_front();
        }
        self.history.push_back(op);
    }

    /// Checks the region's operator against a fresh report of the region. Returns the step to
    /// send to the leader, unless the same step went out less than `policy.resend` ago. A
    /// leader transfer still not done `policy.resend` after its last allowed attempt cancels
    /// the operator.
    pub fn on_region_report(
        &mut self,
        region: &RegionInfo,
        now: Instant,
        policy: SendPolicy,
        cluster_id: u64,
    ) -> Option<RegionHeartbeatResponse> {
        let op = self.running.get_mut(&region.id())?;
        if op.check(region, now) != &OpStatus::Running {
            if let Some(done) = self.running.remove(&region.id()) {
                self.finish(done);
            }
            return None;
        }
        if op
            .last_sent
            .is_some_and(|at| now.saturating_duration_since(at) < policy.resend)
        {
            return None;
        }
        if let Some(why) = op.out_of_attempts(policy.max_transfer_attempts) {
            self.cancel(region.id(), &why);
            return None;
        }
        let resp = op.step_response(region, cluster_id);
        if resp.is_some() {
            op.mark_sent(now);
            debug!(
                region_id = op.region_id,
                step = ?op.current_step(),
                attempt = op.sends,
                "operator step sent"
            );
        }
        resp
    }

    /// Drops operators that ran out of time, whatever the region reports.
    pub fn expire(&mut self, now: Instant) {
        let expired: Vec<u64> = self
            .running
            .values()
            .filter(|o| o.is_timed_out(now))
            .map(|o| o.region_id)
            .collect();
        for id in expired {
            if let Some(mut op) = self.running.remove(&id) {
                op.status = OpStatus::TimedOut;
                self.finish(op);
            }
        }
    }

    /// Regions whose current step has not been sent for `resend` (or never).
    pub fn due_for_send(&self, now: Instant, resend: Duration) -> Vec<u64> {
        self.running
            .values()
            .filter(|o| {
                o.last_sent
                    .is_none_or(|at| now.saturating_duration_since(at) >= resend)
            })
            .map(|o| o.region_id)
            .collect()
    }

    /// The step message for a region's operator, marked as sent.
    pub fn step_to_send(
        &mut self,
        region: &RegionInfo,
        now: Instant,
        cluster_id: u64,
    ) -> Option<RegionHeartbeatResponse> {
        let op = self.running.get_mut(&region.id())?;
        let resp = op.step_response(region, cluster_id)?;
        op.mark_sent(now);
        Some(resp)
    }

    /// Load changes every running operator will still cause.
    pub fn influences(&self) -> Vec<Influence> {
        self.running.values().flat_map(|o| o.influence()).collect()
    }

    /// Stores a running operator will still add a peer to or remove one from.
    pub fn stores_with_pending_moves(&self) -> Vec<u64> {
        self.influences()
            .into_iter()
            .filter(|i| i.regions != 0)
            .map(|i| i.store_id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use proto::metapb::{self, Peer, PeerRole, RegionEpoch};

    use super::*;
    use crate::schedule::{Now, OpStep};

    fn region(leader_store: u64) -> RegionInfo {
        let peers: Vec<Peer> = (1..=3)
            .map(|s| Peer {
                id: 10 + s,
                store_id: s,
                role: PeerRole::Voter as i32,
                is_witness: false,
            })
            .collect();
        let leader = peers.iter().find(|p| p.store_id == leader_store).copied();
        RegionInfo::new(
            metapb::Region {
                id: 1,
                start_key: vec![],
                end_key: vec![],
                region_epoch: Some(RegionEpoch {
                    conf_ver: 5,
                    version: 2,
                }),
                peers,
            },
            leader,
        )
    }

    fn controller_with(op_steps: Vec<OpStep>, kind: OpKind, now: Instant) -> OperatorController {
        let mut ops = OperatorController::new(Arc::new(Metrics::new()));
        let op = Operator::new(
            &region(1),
            kind,
            "test",
            op_steps,
            &ScheduleConfig::default(),
            Now {
                instant: now,
                unix_ms: 0,
            },
        );
        assert!(ops.add(op));
        ops
    }

    fn transfer_to(store: u64) -> Vec<OpStep> {
        vec![OpStep::TransferLeader {
            from_store: 1,
            to_store: store,
        }]
    }

    const POLICY: SendPolicy = SendPolicy {
        resend: Duration::from_secs(1),
        max_transfer_attempts: 3,
    };

    #[test]
    fn a_refused_transfer_is_sent_again_and_succeeds_on_a_later_attempt() {
        let t0 = Instant::now();
        let mut ops = controller_with(transfer_to(2), OpKind::Leader, t0);
        let still_old = region(1);
        let first = ops.on_region_report(&still_old, t0, POLICY, 7).unwrap();
        assert_eq!(first.transfer_leader.unwrap().peer.unwrap().id, 12);
        // The leader refused: the next reports within the interval send nothing...
        assert!(ops
            .on_region_report(&still_old, t0 + Duration::from_millis(500), POLICY, 7)
            .is_none());
        // ...then the step goes out again.
        let again = ops
            .on_region_report(&still_old, t0 + POLICY.resend, POLICY, 7)
            .unwrap();
        assert_eq!(again.transfer_leader.unwrap().peer.unwrap().id, 12);
        assert_eq!(ops.get(1).unwrap().sends, 2);
        // The second attempt worked.
        let moved = region(2);
        assert!(ops
            .on_region_report(&moved, t0 + POLICY.resend * 2, POLICY, 7)
            .is_none());
        assert!(!ops.has(1));
        assert_eq!(ops.history().next().unwrap().status, OpStatus::Finished);
    }

    #[test]
    fn a_transfer_never_carried_out_ends_after_the_last_attempt_not_at_the_timeout() {
        let t0 = Instant::now();
        let mut ops = controller_with(transfer_to(3), OpKind::Leader, t0);
        let still_old = region(1);
        let mut sent = 0;
        let mut at = t0;
        while ops.has(1) {
            if ops.on_region_report(&still_old, at, POLICY, 7).is_some() {
                sent += 1;
            }
            at += POLICY.resend;
        }
        assert_eq!(sent, POLICY.max_transfer_attempts);
        assert!(at - t0 < ScheduleConfig::default().leader_operator_timeout);
        let ended = ops.history().next().unwrap();
        match &ended.status {
            OpStatus::Cancelled(why) => assert!(why.contains("3 attempts"), "{why}"),
            other => panic!("unexpected {other:?}"),
        }
        // The region is free: a new operator can start at once.
        let op = Operator::new(
            &still_old,
            OpKind::Leader,
            "again",
            transfer_to(2),
            &ScheduleConfig::default(),
            Now {
                instant: at,
                unix_ms: 0,
            },
        );
        assert!(ops.add(op));
    }

    #[test]
    fn the_schedule_tick_path_counts_attempts_too() {
        let t0 = Instant::now();
        let mut ops = controller_with(transfer_to(2), OpKind::Admin, t0);
        let still_old = region(1);
        // An administrator's operator goes out at once, then on the scheduler's resends.
        assert!(ops.step_to_send(&still_old, t0, 7).is_some());
        let mut at = t0;
        for _ in 1..POLICY.max_transfer_attempts {
            at += POLICY.resend;
            assert_eq!(ops.due_for_send(at, POLICY.resend), vec![1]);
            assert!(ops.on_region_report(&still_old, at, POLICY, 7).is_some());
        }
        at += POLICY.resend;
        assert!(ops.on_region_report(&still_old, at, POLICY, 7).is_none());
        assert!(!ops.has(1));
    }

    fn admin_split(now: Instant) -> Operator {
        Operator::new(
            &region(1),
            OpKind::Admin,
            "split",
            vec![OpStep::Split {
                keys: vec![b"m".to_vec()],
            }],
            &ScheduleConfig::default(),
            Now {
                instant: now,
                unix_ms: 0,
            },
        )
    }

    #[test]
    fn an_administrator_waits_for_a_membership_change_under_way() {
        // The bug this guards against: a split replaced "add a replica" after its learner
        // was added, and 100,000 regions split from it each carried an unpromoted learner.
        let t0 = Instant::now();
        let add = crate::schedule::replica_checker::add_steps(4, 14);
        // Not yet sent: the split may replace it.
        let mut ops = controller_with(add.clone(), OpKind::Replica, t0);
        assert!(ops.add_admin(admin_split(t0)).is_ok());
        assert_eq!(ops.running().next().map(|o| o.kind), Some(OpKind::Admin));

        // Its first step sent: the split must wait, with the message presplit retries on.
        let mut ops = controller_with(add, OpKind::Replica, t0);
        assert!(ops.step_to_send(&region(1), t0, 7).is_some());
        let refused = ops.add_admin(admin_split(t0)).unwrap_err();
        assert!(refused.contains("already has an operator"), "{refused}");
        assert_eq!(ops.running().next().map(|o| o.kind), Some(OpKind::Replica));

        // A scheduler's leader transfer under way is still replaced.
        let mut ops = controller_with(transfer_to(2), OpKind::Leader, t0);
        assert!(ops.step_to_send(&region(1), t0, 7).is_some());
        assert!(ops.add_admin(admin_split(t0)).is_ok());
    }

    #[test]
    fn only_leader_transfers_are_bounded() {
        let t0 = Instant::now();
        let steps = vec![OpStep::RemovePeer {
            store_id: 3,
            peer_id: 13,
        }];
        let mut ops = controller_with(steps, OpKind::Replica, t0);
        let unchanged = region(1);
        let mut at = t0;
        for _ in 0..POLICY.max_transfer_attempts * 2 {
            assert!(ops.on_region_report(&unchanged, at, POLICY, 7).is_some());
            at += POLICY.resend;
        }
        assert!(ops.has(1));
    }
}
