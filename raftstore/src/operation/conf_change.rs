//! Membership changes on the peer side: proposing `ChangePeerV2`, applying the result to
//! raft-rs, and destroying this peer when it is removed.

use prost::Message as _;
use proto::eraftpb::ConfChangeV2;
use proto::metapb::Region;
use proto::raft_cmdpb::RaftCmdRequest;
use tracing::info;

use crate::conf_change::{region_after, to_raft};
use crate::context::PollContext;
use crate::errors::{Error, Result};
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
}
