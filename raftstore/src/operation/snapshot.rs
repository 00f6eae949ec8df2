//! Receiving and applying a region snapshot on a follower (the files are ingested on the
//! region worker), and the leader's side of a snapshot built there.

use proto::eraftpb::Snapshot;
use tracing::{error, info};

use crate::context::PollContext;
use crate::msg::apply::{AppliedSnapshot, ApplyMsg};
use crate::peer::Peer;
use crate::region_snapshot as snap;

impl Peer {
    /// The region worker finished ingesting the snapshot this peer began applying.
    pub fn on_snapshot_applied(&mut self, result: std::result::Result<(), String>) {
        let region_id = self.region_id();
        if let Err(e) = result {
            // Raft already moved to the snapshot; continuing without its data would serve
            // wrong results. The region stays Applying on disk, so a restart retries.
            error!(region_id, "ingesting an accepted snapshot failed: {e}");
            panic!("region {region_id}: ingesting an accepted snapshot failed: {e}");
        }
        self.ingesting_snapshot = false;
        info!(
            region_id,
            index = self.storage().applied_index(),
            "snapshot applied"
        );
        self.maybe_advance_snapshot_apply();
    }

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
        // The files were verified when the message was accepted; the region worker checks
        // them again as it ingests, so no file is read here.
        let data = match snap::decode(snapshot) {
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
        let apply_state = match snap::begin_apply(&ctx.kv, old.as_ref(), snapshot, &data) {
            Ok(s) => s,
            Err(e) => panic!("region {region_id}: applying snapshot failed: {e}"),
        };
        let Some(region) = data.region.clone() else {
            return;
        };
        // The files are ingested on the region worker; until then this peer handles no
        // further ready (nothing reaches the apply pool to land under the ingest) and cannot
        // be destroyed.
        self.ingesting_snapshot = true;
        if !ctx
            .snap_generator
            .apply(region.clone(), apply_state, data, self.peer_id())
        {
            // The worker is gone only while the store shuts down.
            self.stopped = true;
        }
        self.storage_mut()
            .apply_snapshot(region.clone(), apply_state);
        // The snapshot's region may hold this peer in another role than it was created with.
        self.refresh_own_meta();
        self.read_delegate
            .set_applied_term(apply_state.applied_term);
        self.pending_snapshot = Some((ready_number, apply_state.applied_index));
        self.last_sent_to_apply = apply_state.applied_index;
        ctx.store_meta.lock().set_region(region.clone());
        let _ = ctx.apply_router.send(
            region_id,
            ApplyMsg::Snapshot(Box::new(AppliedSnapshot {
                region,
                apply_state,
                peer_id: self.peer_id(),
            })),
        );
    }
}
