//! `BatchSplit`: one region becomes several, every phase in order.
//!
//! 1. **Check** (split-check worker, `worker::split_check`): on `on_split_check_tick` a leader
//!    asks the store's `SplitPolicy` for split keys off the raft threads; PD allocates the
//!    new regions' and peers' ids.
//! 2. **Propose** (peer): `on_split_region` builds the `BatchSplit` admin command under the
//!    current epoch; `check_split` refuses keys that are not strictly inside the region, in
//!    order.
//! 3. **Apply** (apply pool): `exec_batch_split` keeps the rightmost range in the region and
//!    gives the ranges on its left to new regions, bumping the epoch's version; every new
//!    region's state is written in the same batch as the data.
//! 4. **Apply result** (peer): `on_ready_split_region` updates `StoreMeta`, creates the new
//!    regions' peers (raft messages that arrived for them early wait in `pending_split`),
//!    and a new region's leader campaigns at once.

use engine::{KvWriteBatch, CF_RAFT};
use proto::metapb::{self, Region, RegionEpoch};
use proto::raft_cmdpb::{
    AdminCmdType, AdminRequest, AdminResponse, BatchSplitRequest, BatchSplitResponse,
    RaftCmdRequest, RaftCmdResponse, RaftRequestHeader, RaftResponseHeader, SplitRequest,
};
use proto::raft_serverpb::{PeerState, RegionLocalState};
use tracing::info;

use crate::context::PollContext;
use crate::errors::{err_resp, Error, Result};
use crate::fsm::create::build_peer;
use crate::msg::apply::ExecResult;
use crate::msg::{Callback, PeerMsg, PeerTick, RaftCommand};
use crate::pd_client::SplitIds;
use crate::peer::storage::initial_apply_state;
use crate::peer::Peer;
use crate::split_policy::validate_split_keys;
use crate::worker::split_check::SplitCheckTask;

// ---- Propose ----

impl Peer {
    /// Refuses a `BatchSplit` whose keys are not strictly inside the region, in order.
    pub(crate) fn check_split(&self, req: &RaftCmdRequest) -> Result<()> {
        checked_splits(self.region(), req.admin_request.as_ref()).map(|_| ())
    }
}

// ---- Check, propose and apply result on the peer ----

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
        if self.split_check_due(ctx) || ctx.split_check_trigger.is_due_for_load(qps) {
            self.schedule_split_check(ctx);
        }
    }

    /// Whether the region changed enough since its last check for another one.
    pub(crate) fn split_check_due(&self, ctx: &PollContext) -> bool {
        let written = self.written_since_split_check;
        self.split_check_pending || ctx.split_check_trigger.is_due(written.bytes, written.keys)
    }

    /// Hands the region to the split checker if this peer leads it.
    pub fn schedule_split_check(&mut self, ctx: &mut PollContext) {
        if !self.is_leader() {
            return;
        }
        self.split_check_pending = false;
        self.written_since_split_check = Default::default();
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
                &ctx.snap_generator,
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

// ---- Apply on the apply pool ----

/// Applies a `BatchSplit`: re-checks the split keys against the region as applied so far, then
/// writes each new region's state (with its initial apply state) and the shrunk region into
/// the round's batch. Errors: missing or out-of-range split keys, a wrong number of new ids.
pub fn exec_batch_split(
    wb: &mut KvWriteBatch,
    region: &Region,
    admin: &AdminRequest,
) -> Result<(RaftCmdResponse, Option<ExecResult>)> {
    crate::failpoint!(crate::failpoints::SPLIT_APPLY);
    let splits = checked_splits(region, Some(admin))?;
    for r in &splits.requests {
        if r.new_peer_ids.len() != region.peers.len() {
            return Err(Error::InvalidRequest(format!(
                "split needs {} peer ids, got {}",
                region.peers.len(),
                r.new_peer_ids.len()
            )));
        }
    }
    let mut derived = region.clone();
    let mut epoch = derived.region_epoch.unwrap_or_default();
    epoch.version += splits.requests.len() as u64;
    derived.region_epoch = Some(epoch);

    let mut regions = Vec::with_capacity(splits.requests.len());
    let mut start = region.start_key.clone();
    for r in &splits.requests {
        let peers = region
            .peers
            .iter()
            .zip(&r.new_peer_ids)
            .map(|(p, id)| metapb::Peer {
                id: *id,
                store_id: p.store_id,
                role: p.role,
                is_witness: p.is_witness,
            })
            .collect();
        regions.push(Region {
            id: r.new_region_id,
            start_key: start,
            end_key: r.split_key.clone(),
            region_epoch: Some(epoch),
            peers,
        });
        start = r.split_key.clone();
    }
    derived.start_key = start;

    let state = |r: &Region| RegionLocalState {
        state: PeerState::Normal as i32,
        region: Some(r.clone()),
        merge_state: None,
    };
    wb.put_msg_cf(
        CF_RAFT,
        &keys::region_state_key(derived.id),
        &state(&derived),
    )?;
    for r in &regions {
        wb.put_msg_cf(CF_RAFT, &keys::region_state_key(r.id), &state(r))?;
        wb.put_msg_cf(
            CF_RAFT,
            &keys::apply_state_key(r.id),
            &initial_apply_state(),
        )?;
    }
    let mut all = regions.clone();
    all.push(derived.clone());
    let resp = RaftCmdResponse {
        header: Some(RaftResponseHeader::default()),
        responses: vec![],
        admin_response: Some(AdminResponse {
            cmd_type: AdminCmdType::BatchSplit as i32,
            splits: Some(BatchSplitResponse { regions: all }),
            ..Default::default()
        }),
    };
    Ok((resp, Some(ExecResult::SplitRegion { derived, regions })))
}

/// The splits of a `BatchSplit` admin request, their keys checked to lie strictly inside
/// `region` and in increasing order; both the proposer and the apply pool check them.
fn checked_splits<'a>(
    region: &Region,
    admin: Option<&'a AdminRequest>,
) -> Result<&'a BatchSplitRequest> {
    let splits = admin
        .and_then(|a| a.splits.as_ref())
        .ok_or_else(|| Error::InvalidRequest("batch split without requests".into()))?;
    let keys: Vec<Vec<u8>> = splits
        .requests
        .iter()
        .map(|r| r.split_key.clone())
        .collect();
    validate_split_keys(region, &keys).map_err(Error::InvalidRequest)?;
    Ok(splits)
}
