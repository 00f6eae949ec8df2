//! Leader transfer: hand leadership to a caught-up voter.

use proto::metapb::PeerRole;
use proto::raft_cmdpb::RaftCmdRequest;

use crate::errors::{Error, Result};
use crate::peer::Peer;

impl Peer {
    /// Starts a transfer; answered at once (the caller watches the leader change).
    pub fn propose_transfer_leader(&mut self, req: &RaftCmdRequest) -> Result<Option<u64>> {
        let target = req
            .admin_request
            .as_ref()
            .and_then(|a| a.transfer_leader.as_ref())
            .and_then(|t| t.peer.as_ref())
            .ok_or_else(|| Error::InvalidRequest("transfer leader without a target".into()))?;
        let member = self
            .region_peer(target.id)
            .ok_or_else(|| Error::InvalidRequest(format!("peer {} is not a member", target.id)))?;
        if member.role() != PeerRole::Voter {
            return Err(Error::InvalidRequest(format!(
                "peer {} is not a voter",
                target.id
            )));
        }
        if target.id == self.peer_id() {
            return Ok(None);
        }
        let last = self.raft_group.raft.raft_log.last_index();
        let caught_up = self
            .raft_group
            .raft
            .prs()
            .get(target.id)
            .is_some_and(|p| p.matched == last);
        if !caught_up {
            return Err(Error::InvalidRequest(format!(
                "peer {} has not caught up with the log",
                target.id
            )));
        }
        // The new leader may serve as soon as it wins; our lease must end now.
        self.lease.expire(&self.read_delegate);
        self.raft_group.transfer_leader(target.id);
        Ok(None)
    }
}
