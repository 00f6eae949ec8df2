//! Membership changes on the peer side: proposing `ChangePeerV2`, applying the result to
//! raft-rs, and destroying this peer when it is removed.

use engine::{RaftLogBatch, CF_RAFT, DATA_CFS};
use prost::Message as _;
use proto::eraftpb::ConfChangeV2;
use proto::metapb::Region;
use proto::raft_cmdpb::RaftCmdRequest;
use proto::raft_serverpb::{PeerState, RegionLocalState};
use tracing::{error, info};

use crate::apply::ApplyMsg;
use crate::conf_change::{region_after, to_raft};
use crate::context::PollContext;
use crate::errors::{err_resp, Error, Result};
use crate::peer::Peer;

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
            error!(
                region_id = self.region_id(),
                "raft rejected an applied membership change: {e}"
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
        self.storage_mut().set_region(region.clone());
        let removed = !region.peers.iter().any(|p| p.id == self.peer_id());
        ctx.store_meta.lock().set_region(region);
        if removed {
            self.destroy(ctx);
            return;
        }
        if leader_removed {
            // Our leader left; the clock must run so a new one is elected.
            self.wake_up(ctx);
        }
        if self.is_leader() {
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

    /// Removes this peer: tombstone record, data and log deleted, mailboxes closed.
    pub fn destroy(&mut self, ctx: &mut PollContext) {
        let region = self.region().clone();
        info!(
            region_id = region.id,
            peer_id = self.peer_id(),
            "destroying removed peer"
        );
        let tombstone = RegionLocalState {
            state: PeerState::Tombstone as i32,
            region: Some(region.clone()),
        };
        let mut wb = ctx.kv.write_batch();
        let start = keys::enc_start_key(&region.start_key);
        let end = keys::enc_end_key(&region.end_key);
        // An uninitialized peer owns no range: there is nothing of its own to delete.
        let owns_data = self.storage().is_initialized();
        let written = wb
            .put_msg_cf(CF_RAFT, &keys::region_state_key(region.id), &tombstone)
            .and_then(|_| {
                DATA_CFS
                    .iter()
                    .filter(|_| owns_data)
                    .try_for_each(|cf| wb.delete_range_cf(cf, &start, &end))
            })
            .and_then(|_| ctx.kv.write(&wb, true));
        if let Err(e) = written {
            // Without the tombstone the peer would come back on restart; stay alive instead.
            error!(region_id = region.id, "cannot destroy peer: {e}");
            return;
        }
        let mut batch = RaftLogBatch::new();
        batch.clean(region.id);
        if let Err(e) = ctx.raft_engine.write(&mut batch, true) {
            error!(
                region_id = region.id,
                "cannot drop the raft log of a destroyed peer: {e}"
            );
        }
        ctx.store_meta.lock().remove_region(region.id);
        let _ = ctx.apply_router.send(region.id, ApplyMsg::Destroy);
        ctx.apply_router.inner.close(region.id);
        let term = self.term();
        for p in self.proposals.drain() {
            p.callback
                .invoke_with(err_resp(Error::RegionNotFound(region.id), term));
        }
        self.fail_pending_reads();
        self.stopped = true;
        ctx.router.inner.close(region.id);
    }
}
