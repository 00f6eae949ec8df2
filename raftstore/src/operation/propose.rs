//! Client commands into raft: checks, then a read, a normal write or an admin proposal.

use std::time::Instant;

use prost::Message as _;
use proto::raft_cmdpb::{AdminCmdType, RaftCmdRequest};

use crate::context::PollContext;
use crate::errors::{err_resp, Error, Result};
use crate::metrics::PROPOSALS;
use crate::msg::RaftCommand;
use crate::operation::commit_broadcast::BcastEvent;
use crate::peer::proposal::Proposal;
use crate::peer::Peer;
use crate::util;

impl Peer {
    /// Entry point for a client or internal command.
    pub fn propose_command(&mut self, ctx: &mut PollContext, cmd: RaftCommand) {
        let RaftCommand {
            request, callback, ..
        } = cmd;
        if self.pending_remove {
            // Commands batched before the removal began end up here.
            let region_id = self.region_id();
            callback.invoke_with(err_resp(Error::RegionNotFound(region_id), self.term()));
            return;
        }
        self.wake_up(ctx);
        if let Err(e) = self.pre_propose_check(ctx, &request) {
            callback.invoke_with(err_resp(e, self.term()));
            return;
        }
        if let Some(key) = first_key(&request) {
            self.read_delegate.record_access(key);
        }
        if util::is_read_only(&request) {
            self.propose_read(ctx, request, callback);
            return;
        }
        let admin = request.admin_request.as_ref().map(|a| a.cmd_type());
        if admin != Some(AdminCmdType::TransferLeader) {
            // Raft drops proposals while it holds a leader transfer.
            if let Some(e) = self.transfer_in_progress_error() {
                callback.invoke_with(err_resp(e, self.term()));
                return;
            }
        }
        let result = match admin {
            Some(AdminCmdType::TransferLeader) => self.propose_transfer_leader(ctx, &request),
            Some(AdminCmdType::ChangePeerV2) => self.propose_conf_change(&request),
            Some(AdminCmdType::BatchSplit) => self
                .check_split(&request)
                .and_then(|_| self.propose_normal(ctx, &request)),
            Some(AdminCmdType::CompactLog) | None => self.propose_normal(ctx, &request),
            Some(AdminCmdType::PrepareMerge) => self.propose_normal(ctx, &request).inspect(|i| {
                if let Some(index) = i {
                    self.on_prepare_merge_proposed(*index);
                }
            }),
            Some(AdminCmdType::CommitMerge) => self
                .check_commit_merge(&request)
                .and_then(|_| self.propose_normal(ctx, &request)),
            Some(AdminCmdType::RollbackMerge) => self.propose_normal(ctx, &request),
            Some(other) => Err(Error::InvalidRequest(format!(
                "admin command {other:?} is not supported"
            ))),
        };
        match result {
            Ok(Some(index)) => {
                PROPOSALS.inc();
                self.on_commit_broadcast_event(BcastEvent::Proposed { index, admin });
                self.proposals.push(Proposal {
                    index,
                    term: self.term(),
                    callback,
                    propose_time: Instant::now(),
                });
            }
            Ok(None) => callback.invoke_with(Default::default()),
            // Raft dropped it (a transfer began, or this peer left the group): retryable.
            Err(Error::Raft(raft::Error::ProposalDropped)) => callback.invoke_with(err_resp(
                Error::NotLeader {
                    region_id: self.region_id(),
                    leader: None,
                },
                self.term(),
            )),
            Err(e) => callback.invoke_with(err_resp(e, self.term())),
        }
    }

    /// Everything that can be refused before touching raft.
    pub(crate) fn pre_propose_check(&self, ctx: &PollContext, req: &RaftCmdRequest) -> Result<()> {
        let header = req
            .header
            .as_ref()
            .ok_or_else(|| Error::InvalidRequest("missing header".into()))?;
        if let Some(peer) = &header.peer {
            if peer.store_id != ctx.store_id {
                return Err(Error::StoreNotMatch {
                    request: peer.store_id,
                    actual: ctx.store_id,
                });
            }
            if peer.id != self.peer_id() {
                return Err(Error::InvalidRequest(format!(
                    "request for peer {}, this is peer {}",
                    peer.id,
                    self.peer_id()
                )));
            }
        }
        if !self.is_leader() {
            return Err(Error::NotLeader {
                region_id: self.region_id(),
                leader: self.leader(),
            });
        }
        self.check_merging(req)?;
        util::check_region_epoch(req, self.region()).map_err(|e| match e {
            // Tell the client about the regions split off too, so it can refresh at once.
            Error::EpochNotMatch {
                message,
                mut regions,
            } => {
                regions.extend(self.split_siblings.iter().cloned());
                Error::EpochNotMatch { message, regions }
            }
            other => other,
        })?;
        util::check_keys_in_region(req, self.region())?;
        for r in &req.requests {
            let cf = [
                r.get.as_ref().map(|x| x.cf.as_str()),
                r.put.as_ref().map(|x| x.cf.as_str()),
                r.delete.as_ref().map(|x| x.cf.as_str()),
                r.delete_range.as_ref().map(|x| x.cf.as_str()),
            ];
            for cf in cf.into_iter().flatten() {
                util::cf_or_default(cf)?;
            }
        }
        if header.term > 0 && header.term + 1 < self.term() {
            return Err(Error::StaleCommand);
        }
        if ctx.disk.is_full() && adds_data(req) {
            return Err(Error::ServerIsBusy(format!(
                "disk full: store {} has {} bytes available, below its low-space threshold of \
                 {} bytes; writes resume when space returns",
                ctx.store_id,
                ctx.disk.available(),
                ctx.cfg.disk_low_space_threshold
            )));
        }
        Ok(())
    }

    /// A merging region takes only what moves the merge on: `RollbackMerge` once PrepareMerge
    /// applied, and reads (by ReadIndex, refused later if the merge applies first) while it
    /// is only proposed.
    fn check_merging(&self, req: &RaftCmdRequest) -> Result<()> {
        let admin = req.admin_request.as_ref().map(|a| a.cmd_type());
        let allowed = if self.pending_merge_state.is_some() {
            admin == Some(AdminCmdType::RollbackMerge)
        } else if self.prepare_merge_fence != 0 {
            util::is_read_only(req)
        } else {
            return Ok(());
        };
        if allowed {
            Ok(())
        } else {
            Err(Error::ProposalInMergingMode(self.region_id()))
        }
    }

    /// Appends a command to the log; returns the index it will commit at.
    fn propose_normal(&mut self, ctx: &PollContext, req: &RaftCmdRequest) -> Result<Option<u64>> {
        let data = req.encode_to_vec();
        if data.len() as u64 > ctx.cfg.raft_entry_max_size {
            return Err(Error::RaftEntryTooLarge {
                region_id: self.region_id(),
                entry_size: data.len() as u64,
            });
        }
        let expected = self.raft_group.raft.raft_log.last_index() + 1;
        self.raft_group.propose(vec![], data)?;
        if self.raft_group.raft.raft_log.last_index() < expected {
            // raft dropped it (e.g. a leader transfer is in progress).
            return Err(Error::NotLeader {
                region_id: self.region_id(),
                leader: None,
            });
        }
        Ok(Some(expected))
    }
}

/// The first key a command touches, for load statistics.
pub fn first_key(req: &RaftCmdRequest) -> Option<&[u8]> {
    let r = req.requests.first()?;
    r.get
        .as_ref()
        .map(|g| g.key.as_slice())
        .or_else(|| r.put.as_ref().map(|p| p.key.as_slice()))
        .or_else(|| r.delete.as_ref().map(|d| d.key.as_slice()))
}

/// Whether a command writes data, and so is refused while the disk is full. Log compaction,
/// leader transfers and membership changes still go through: they free space or let PD move
/// regions off the store.
fn adds_data(req: &RaftCmdRequest) -> bool {
    if util::is_read_only(req) {
        return false;
    }
    match req.admin_request.as_ref().map(|a| a.cmd_type()) {
        None | Some(AdminCmdType::BatchSplit) => true,
        Some(_) => false,
    }
}
