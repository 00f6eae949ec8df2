//! Removing a peer from this store, in two phases so no other thread of the store writes the
//! region after its range is deleted:
//! 1. `destroy` stops the peer (no proposals, no raft activity, leases and reads failed) and
//!    queues `Destroy` to the region's apply FSM behind every entry handed to it earlier.
//! 2. Once the apply FSM has written those entries and stopped (`ApplyDestroyed`) and the log
//!    writer has reported every ready of the region durable, `finish_destroy` writes the
//!    tombstone, deletes the range and the raft log, and closes the mailboxes.
//!
//! Deleting at once, as the first phase ends, would let queued applies write keys back into a
//! range the store no longer owns, and a queued log write re-create a cleaned raft log.

use engine::{KvEngine, RaftLogBatch, RaftLogEngine, CF_RAFT, DATA_CFS};
use proto::metapb::Region;
use proto::raft_serverpb::{PeerState, RegionLocalState};
use tracing::info;

use crate::context::PollContext;
use crate::errors::{err_resp, Error, Result};
use crate::msg::apply::ApplyMsg;
use crate::msg::PeerMsg;
use crate::peer::Peer;

impl Peer {
    /// Starts removing this peer (phase 1 above). Idempotent.
    pub fn destroy(&mut self, ctx: &mut PollContext) {
        if self.pending_remove {
            return;
        }
        let region_id = self.region_id();
        info!(
            region_id,
            peer_id = self.peer_id(),
            "destroying removed peer"
        );
        self.pending_remove = true;
        self.read_delegate.set_term(0);
        self.lease.expire(&self.read_delegate.lease);
        self.fail_pending_reads();
        self.fail_proposals(ctx);
        let msg = ApplyMsg::Destroy {
            peer_id: self.peer_id(),
        };
        if ctx.apply_router.send(region_id, msg).is_err() {
            // No apply FSM: nothing of the region can be in flight there.
            self.apply_destroyed = true;
        }
        self.maybe_finish_destroy(ctx);
    }

    /// What a peer being removed does with its mailbox: only the notices that let it finish
    /// count; commands are answered `RegionNotFound`; raft traffic and ticks are dropped.
    pub fn on_message_while_removing(&mut self, ctx: &mut PollContext, msg: PeerMsg) {
        match msg {
            PeerMsg::Persisted {
                peer_id,
                ready_number,
            } if peer_id == self.peer_id() => self.on_persisted(ready_number),
            PeerMsg::ApplyDestroyed { peer_id } if peer_id == self.peer_id() => {
                self.apply_destroyed = true;
            }
            // The ingest's data is deleted with the rest of the range.
            PeerMsg::SnapshotApplied { peer_id, .. } if peer_id == self.peer_id() => {
                self.ingesting_snapshot = false;
            }
            PeerMsg::RaftCommand(c) => {
                let region_id = self.region_id();
                c.callback
                    .invoke_with(err_resp(Error::RegionNotFound(region_id), self.term()));
            }
            PeerMsg::SplitRegion(split) => {
                let region_id = self.region_id();
                split
                    .callback
                    .invoke_with(err_resp(Error::RegionNotFound(region_id), self.term()));
            }
            _ => {}
        }
        self.maybe_finish_destroy(ctx);
    }

    fn fail_proposals(&mut self, ctx: &mut PollContext) {
        let (region_id, term) = (self.region_id(), self.term());
        self.flush_batch(ctx);
        for p in self.proposals.drain() {
            p.callback
                .invoke_with(err_resp(Error::RegionNotFound(region_id), term));
        }
    }

    fn maybe_finish_destroy(&mut self, ctx: &mut PollContext) {
        if self.pending_remove
            && self.apply_destroyed
            && self.unpersisted.is_empty()
            && !self.ingesting_snapshot
        {
            self.finish_destroy(ctx);
        }
    }

    /// Phase 2: nothing of the region is in flight in the apply pool or the log writer.
    fn finish_destroy(&mut self, ctx: &mut PollContext) {
        crate::failpoint!(crate::failpoints::REGION_DESTROY);
        let region = self.region().clone();
        // An uninitialized peer owns no range: there is nothing of its own to delete. A
        // merged source's range belongs to its target now.
        let owns_data = self.storage().is_initialized() && !self.keep_data_on_destroy;
        if let Err(e) = clear_removed_region(&ctx.kv, &ctx.raft_engine, &region, owns_data) {
            // Without the tombstone the peer would come back at restart as a member.
            crate::invariant::violated(
                region.id,
                self.peer_id(),
                format_args!("cannot write the tombstone of a removed peer: {e}"),
            );
        }
        info!(
            region_id = region.id,
            peer_id = self.peer_id(),
            "peer destroyed"
        );
        ctx.store_meta.lock().remove_region(region.id);
        ctx.apply_router.inner.close(region.id);
        self.stopped = true;
        ctx.router.inner.close(region.id);
    }
}

/// Writes a region's tombstone and deletes its raft log and, when `owns_data`, its key range
/// in every data column family. Synced: a removed peer must not come back after a crash.
pub fn clear_removed_region(
    kv: &KvEngine,
    raft_engine: &RaftLogEngine,
    region: &Region,
    owns_data: bool,
) -> Result<()> {
    let tombstone = RegionLocalState {
        state: PeerState::Tombstone as i32,
        region: Some(region.clone()),
        merge_state: None,
    };
    let mut wb = kv.write_batch();
    wb.put_msg_cf(CF_RAFT, &keys::region_state_key(region.id), &tombstone)?;
    if owns_data {
        let start = keys::enc_start_key(&region.start_key);
        let end = keys::enc_end_key(&region.end_key);
        for cf in DATA_CFS {
            wb.delete_range_cf(cf, &start, &end)?;
        }
    }
    kv.write(&wb, true)?;
    let mut batch = RaftLogBatch::new();
    batch.clean(region.id);
    raft_engine.write(&mut batch, true)?;
    Ok(())
}
