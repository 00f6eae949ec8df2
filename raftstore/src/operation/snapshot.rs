//! Receiving and applying a region snapshot on a follower.

use proto::eraftpb::Snapshot;
use tracing::{error, info};

use crate::context::PollContext;
use crate::msg::apply::ApplyMsg;
use crate::peer::Peer;
use crate::region_snapshot as snap;

impl Peer {
    /// The region worker built the snapshot raft-rs asked for: heartbeats now make the
    /// followers answer, and raft-rs, seeing them behind, asks the storage for the snapshot
    /// again and sends it.
    pub fn on_snapshot_generated(&mut self) {
        if self.is_leader() {
            self.raft_group.ping();
        }
    }

    /// Replaces this peer's data and state with a snapshot raft accepted in a ready.
    pub fn apply_snapshot(
        &mut self,
        ctx: &mut PollContext,
        snapshot: &Snapshot,
        ready_number: u64,
    ) {
        let region_id = self.region_id();
        let data = match snap::verify_received(&ctx.kv, region_id, snapshot) {
            Ok(d) => d,
            Err(e) => {
                // Raft already moved to the snapshot; continuing without its data would serve
                // wrong results.
                error!(region_id, "accepted snapshot cannot be read: {e}");
                panic!("region {region_id}: accepted snapshot cannot be read: {e}");
            }
        };
        let old = self
            .storage()
            .is_initialized()
            .then(|| self.region().clone());
        let apply_state = match snap::apply(&ctx.kv, old.as_ref(), snapshot, &data) {
            Ok(s) => s,
            Err(e) => panic!("region {region_id}: applying snapshot failed: {e}"),
        };
        let Some(region) = data.region else {
            return;
        };
        info!(
            region_id,
            index = snapshot.get_metadata().index,
            "snapshot applied"
        );
        self.storage_mut()
            .apply_snapshot(region.clone(), apply_state);
        self.read_delegate
            .set_applied_term(apply_state.applied_term);
        self.pending_snapshot = Some((ready_number, apply_state.applied_index));
        self.last_sent_to_apply = apply_state.applied_index;
        ctx.store_meta.lock().set_region(region.clone());
        let _ = ctx.apply_router.send(
            region_id,
            ApplyMsg::Snapshot {
                region,
                apply_state,
                peer_id: self.peer_id(),
            },
        );
    }
}
