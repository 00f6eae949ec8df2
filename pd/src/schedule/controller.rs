//! The running operators (at most one per region) and a short history of finished ones.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proto::pdpb::RegionHeartbeatResponse;
use tracing::{debug, info};

use super::operator::{Influence, OpKind, OpStatus, Operator};
use crate::cluster::RegionInfo;
use crate::metrics::Metrics;

/// How many finished operators the HTTP API can still show.
const HISTORY_SIZE: usize = 100;

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
    /// but not another administrator's.
    pub fn add_admin(&mut self, op: Operator) -> Result<(), String> {
        if let Some(existing) = self.running.get(&op.region_id) {
            if existing.kind == OpKind::Admin {
                return Err(format!(
                    "region {} already has an operator: {}",
                    op.region_id, existing.desc
                ));
            }
            self.cancel(op.region_id, "replaced by an administrator's operator");
        }
        self.add(op);
        Ok(())
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
    /// send to the leader, unless the same step went out less than `resend` ago.
    pub fn on_region_report(
        &mut self,
        region: &RegionInfo,
        now: Instant,
        resend: Duration,
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
            .is_some_and(|at| now.saturating_duration_since(at) < resend)
        {
            return None;
        }
        let resp = op.step_response(region, cluster_id);
        if resp.is_some() {
            debug!(region_id = op.region_id, step = ?op.current_step(), "operator step sent");
            op.last_sent = Some(now);
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
        op.last_sent = Some(now);
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
