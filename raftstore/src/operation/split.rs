//! Splitting a region: proposal of `BatchSplit`, and creating the new regions' peers once it
//! is applied.

use proto::metapb::{Region, RegionEpoch};
use proto::raft_cmdpb::{
    AdminCmdType, AdminRequest, BatchSplitRequest, RaftCmdRequest, RaftRequestHeader, SplitRequest,
};
use tracing::info;

use crate::context::PollContext;
use crate::errors::{err_resp, Error};
use crate::fsm::create::build_peer;
use crate::msg::{Callback, PeerMsg, PeerTick, RaftCommand};
use crate::pd_client::SplitIds;
use crate::peer::Peer;
use crate::worker::split_check::SplitCheckTask;

impl Peer {
    /// Asks the split checker about this region (leaders only).
    pub fn on_split_check_tick(&mut self, ctx: &mut PollContext) {
        if self.is_hibernating() {
            // Resumed on wake-up; a sleeping region's data does not change.
            self.aux_ticks_paused = true;
            return;
        }
        ctx.schedule_tick(self.region_id(), PeerTick::SplitCheck);
        let (qps, _) = self.read_delegate.load_snapshot();
        if self.split_check_pending || qps > 0.0 {
            self.schedule_split_check(ctx);
        }
    }

    /// Hands the region to the split checker if this peer leads it.
    pub fn schedule_split_check(&mut self, ctx: &mut PollContext) {
        if !self.is_leader() {
            return;
        }
        self.split_check_pending = false;
        let (qps, load_keys) = self.read_delegate.load_snapshot();
        let _ = ctx.split_checker.send(SplitCheckTask::Check {
            region: self.region().clone(),
            snapshot: ctx.kv.snapshot(),
            qps,
            load_keys,
        });
    }

    /// Proposes a split decided elsewhere, if the region has not changed since.
    pub fn on_split_region(
        &mut self,
        ctx: &mut PollContext,
        region_epoch: RegionEpoch,
        split_keys: Vec<Vec<u8>>,
        ids: Vec<SplitIds>,
        callback: Callback,
    ) {
        let current = self.region().region_epoch.unwrap_or_default();
        if current != region_epoch {
            let e = Error::EpochNotMatch {
                message: format!("split for epoch {region_epoch:?}, region is at {current:?}"),
                regions: vec![self.region().clone()],
            };
            callback.invoke_with(err_resp(e, self.term()));
            return;
        }
        let requests = split_keys
            .into_iter()
            .zip(ids)
            .map(|(split_key, ids)| SplitRequest {
                split_key,
                new_region_id: ids.new_region_id,
                new_peer_ids: ids.new_peer_ids,
                right_derive: true,
            })
            .collect();
        let req = RaftCmdRequest {
            header: Some(RaftRequestHeader {
                region_id: self.region_id(),
                peer: Some(self.meta),
                region_epoch: Some(current),
                ..Default::default()
            }),
            admin_request: Some(AdminRequest {
                cmd_type: AdminCmdType::BatchSplit as i32,
                splits: Some(BatchSplitRequest {
                    requests,
                    right_derive: true,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.propose_command(ctx, RaftCommand::new(req, callback));
    }

    /// The split is applied: this region shrank and new ones exist on every replica.
    pub fn on_ready_split_region(
        &mut self,
        ctx: &mut PollContext,
        derived: Region,
        new_regions: Vec<Region>,
    ) {
        info!(
            region_id = self.region_id(),
            new = ?new_regions.iter().map(|r| r.id).collect::<Vec<_>>(),
            "region split"
        );
        let was_leader = self.is_leader();
        self.storage_mut().set_region(derived.clone());
        self.split_siblings = new_regions.clone();
        self.split_check_pending = true;
        let now = std::time::Instant::now();
        let max_age =
            ctx.cfg.raft_base_tick_interval * (2 * ctx.cfg.raft_election_timeout_ticks as u32);
        let mut waiting = Vec::new();
        let mut meta = ctx.store_meta.lock();
        meta.set_region(derived);
        for region in new_regions.iter().cloned() {
            let id = region.id;
            if meta.region(id).is_some() {
                // Already created (a restarted store replaying the split); nothing to do.
                continue;
            }
            let created = build_peer(
                &ctx.cfg,
                ctx.store_id,
                &ctx.kv,
                &ctx.raft_engine,
                region,
                &ctx.logger,
            );
            let mut created = match created {
                Ok(Some(c)) => c,
                Ok(None) => continue,
                Err(e) => {
                    // The split is applied: its data and state are on disk. Going on without a
                    // peer would leave the new region unserved here until a restart.
                    crate::invariant::violated(
                        id,
                        0,
                        format_args!(
                            "cannot create the peer of a region split off {}: {e}",
                            self.region_id()
                        ),
                    );
                }
            };
            if was_leader {
                // The old leader's store campaigns first, so the new region serves quickly.
                let _ = created.peer_mut().raft_group.campaign();
            }
            created.register(&mut meta, &ctx.router, &ctx.apply_router);
            let _ = ctx.router.force_send(id, PeerMsg::Start);
            waiting.extend(meta.pending_split.take(id, now, max_age));
        }
        drop(meta);
        // Votes and appends that arrived before this store applied the split.
        for msg in waiting {
            let _ = ctx.router.send_raft_message(msg);
        }
        // The old estimates describe the old range; the new ones are measured soon.
        self.pd_stats.approximate_size = None;
        self.pd_stats.approximate_keys = None;
        if was_leader {
            let mut all = new_regions;
            all.push(self.region().clone());
            ctx.pd.report_batch_split(&all);
            self.heartbeat_pd(ctx);
            self.schedule_split_check(ctx);
        }
    }
}
