//! Where reports meet decisions: region heartbeats update the tree and advance operators, the
//! scheduler tick makes new operators and buries drained stores, and operator steps go out to
//! region leaders.

use proto::metapb;
use proto::pdpb::{RegionHeartbeatRequest, RegionHeartbeatResponse};
use tracing::debug;

use crate::cluster::{region_from_heartbeat, RegionUpdate};
use crate::error::{Error, Result};
use crate::schedule::admin::{self, AdminRequest};
use crate::schedule::{self, keyspace_split, Now, Operator, ScheduleView, SendPolicy};
use crate::state::PdState;
use crate::tso::unix_millis;

impl PdState {
    /// Applies one region heartbeat; returns the operator step for the region's leader, if any.
    pub fn handle_region_heartbeat(
        &self,
        req: &RegionHeartbeatRequest,
    ) -> Result<Option<RegionHeartbeatResponse>> {
        self.check_header(req.header.as_ref())?;
        let info = region_from_heartbeat(req).inspect_err(|_| {
            self.metrics
                .region_heartbeats
                .with_label_values(&["invalid"])
                .inc();
        })?;
        let region_id = info.id();
        let update = self.cluster.update_region(info)?;
        // The flow of a stale report was still served: a leader that steps down reports what
        // it served last, and the next leader's first report may reach PD before it.
        if let Some(meta) = &req.region {
            self.flow_history.lock().record(
                unix_millis(),
                region_id,
                &meta.start_key,
                &meta.end_key,
                req.bytes_written,
                req.bytes_read,
            );
        }
        if let RegionUpdate::Stale(reason) = update {
            debug!(region_id, %reason, "stale region heartbeat ignored");
            self.metrics
                .region_heartbeats
                .with_label_values(&["stale"])
                .inc();
            return Ok(None);
        }
        self.metrics
            .region_heartbeats
            .with_label_values(&["accepted"])
            .inc();
        let cfg = self.schedule_config();
        let now = Now::current();
        let state = self.cluster.read();
        let Some(region) = state.regions.get(region_id) else {
            return Ok(None);
        };
        let mut ops = self.operators.lock();
        if cfg.enable_keyspace_split && !ops.has(region_id) {
            if let Some(op) = keyspace_split::split_operator(region, state.api_version, &cfg, now) {
                ops.add(op);
            }
        }
        let resp = ops.on_region_report(
            region,
            now.instant,
            SendPolicy::from_config(&cfg),
            self.cluster_id,
        );
        if resp.is_some() {
            self.metrics.operator_steps_sent.inc();
        }
        Ok(resp)
    }

    /// One scheduling round: bury drained offline stores, drop expired operators, make new
    /// ones, and send every step that is due.
    pub fn schedule_tick(&self, rotation: usize) -> Result<()> {
        if !self.cluster.is_bootstrapped() {
            return Ok(());
        }
        let cfg = self.schedule_config();
        let now = Now::current();
        let moving = self.operators.lock().stores_with_pending_moves();
        self.cluster.bury_empty_offline_stores(&moving)?;

        let mut sends = Vec::new();
        {
            let state = self.cluster.read();
            let mut ops = self.operators.lock();
            ops.expire(now.instant);
            let blocked: Vec<(u64, String)> = ops
                .running()
                .filter_map(|op| {
                    let why = op.unreachable_target(|store| {
                        state
                            .stores
                            .get(&store)
                            .map(|s| s.status(now.unix_ms, &cfg))
                    })?;
                    Some((op.region_id, why))
                })
                .collect();
            for (region_id, why) in blocked {
                ops.cancel(region_id, &why);
            }
            // Leaders report on change only, so a region that held a fixed boundary while an
            // operator ran on it may never report again: look for such regions here too.
            if cfg.enable_keyspace_split {
                for region in keyspace_split::regions_to_split(&state.regions, state.api_version) {
                    if ops.has(region.id()) {
                        continue;
                    }
                    if let Some(op) =
                        keyspace_split::split_operator(region, state.api_version, &cfg, now)
                    {
                        ops.add(op);
                    }
                }
            }
            let mut view = ScheduleView::new(&state, &ops, &cfg, now);
            let new_ops = schedule::plan(&mut view, &ops, rotation, &mut || self.alloc_id())?;
            for op in new_ops {
                ops.add(op);
            }
            for region_id in ops.due_for_send(now.instant, cfg.operator_resend_interval) {
                let Some(region) = state.regions.get(region_id) else {
                    let merged = ops
                        .get(region_id)
                        .and_then(|o| o.merge_target())
                        .is_some_and(|target| state.regions.get(target).is_some());
                    if merged {
                        // The merged target's report replaced the source.
                        ops.complete(region_id);
                    } else {
                        ops.cancel(region_id, "the region is no longer known");
                    }
                    continue;
                };
                // Until a report of the leader's store arrives on a heartbeat stream (after a
                // PD restart, say), a step cannot reach it: that is no attempt, and leader
                // transfers count their attempts.
                if region
                    .leader_store_id()
                    .is_some_and(|store| !self.streams.is_open(store))
                {
                    continue;
                }
                let resp = ops.on_region_report(
                    region,
                    now.instant,
                    SendPolicy::from_config(&cfg),
                    self.cluster_id,
                );
                if let (Some(resp), Some(store)) = (resp, region.leader_store_id()) {
                    sends.push((store, resp));
                }
            }
        }
        for (store, resp) in sends {
            if self.streams.send(store, resp) {
                self.metrics.operator_steps_sent.inc();
            }
        }
        self.refresh_gauges();
        Ok(())
    }

    /// Starts an administrator's operator and sends its first step right away.
    pub fn create_admin_operator(&self, req: &AdminRequest) -> Result<Operator> {
        let cfg = self.schedule_config();
        let now = Now::current();
        let state = self.cluster.read();
        let region = state.regions.get(req.region_id()).ok_or_else(|| {
            Error::RegionNotFound(format!("no region with id {}", req.region_id()))
        })?;
        let op = admin::build(req, region, &state, &cfg, now, &mut || self.alloc_id())?;
        let mut ops = self.operators.lock();
        ops.add_admin(op.clone()).map_err(Error::InvalidArgument)?;
        // Without a stream to the leader's store the step waits for the patrol, which sends
        // it once the store's next report opens one.
        let reachable = region
            .leader_store_id()
            .is_some_and(|store| self.streams.is_open(store));
        let resp = if reachable {
            ops.step_to_send(region, now.instant, self.cluster_id)
        } else {
            None
        };
        drop(ops);
        if let (Some(resp), Some(store)) = (resp, region.leader_store_id()) {
            if self.streams.send(store, resp) {
                self.metrics.operator_steps_sent.inc();
            }
        }
        Ok(op)
    }

    /// Stops the region's running operator.
    pub fn cancel_operator(&self, region_id: u64) -> Result<Operator> {
        self.operators
            .lock()
            .cancel(region_id, "cancelled by an administrator")
            .ok_or_else(|| Error::EntryNotFound(format!("region {region_id} has no operator")))
    }

    /// Starts decommissioning a store, unless fewer than `max-replicas` Up stores would
    /// remain (see [`crate::cluster::Cluster::set_store_offline`]).
    pub fn set_store_offline(&self, store_id: u64) -> Result<metapb::Store> {
        let max_replicas = self.schedule_config().max_replicas;
        self.cluster.set_store_offline(store_id, max_replicas)
    }

    /// Cancels a store's decommission (Offline -> Up).
    pub fn set_store_up(&self, store_id: u64) -> Result<metapb::Store> {
        self.cluster.set_store_up(store_id)
    }
}
