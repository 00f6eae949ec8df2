//! The region worker: builds and ingests region snapshots off the raft threads.
//!
//! raft-rs asks a leader's storage for a snapshot (`Storage::snapshot`) from inside a raft
//! poller. Building one reads the whole region and writes SST files, so the storage only
//! hands the work to this thread and answers `SnapshotTemporarilyUnavailable`; raft-rs asks
//! again on a later append to that follower (as in TiKV's region worker). When a snapshot
//! is ready the worker tells the peer, which pings its followers so the next append, and the
//! snapshot, go out at once rather than a heartbeat later.
//!
//! A received snapshot's files are checked here too (every file's size and CRC32, reading
//! the whole snapshot) before its message goes back to the peer to be stepped.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use engine::KvEngine;
use parking_lot::Mutex;
use proto::eraftpb::Snapshot;
use proto::metapb::Region;
use proto::raft_serverpb::{RaftApplyState, RaftSnapshotData};
use tracing::{info, warn};

use crate::errors::Result;
use crate::msg::router::RaftRouter;
use crate::msg::PeerMsg;

/// One requested snapshot: where the worker leaves the result for the peer's storage.
#[derive(Default)]
pub struct GenSlot {
    result: Mutex<Option<Result<BuiltSnapshot>>>,
}

impl GenSlot {
    /// The finished result, taken out; `None` while the worker is still building it.
    pub fn take(&self) -> Option<Result<BuiltSnapshot>> {
        self.result.lock().take()
    }
}

/// A snapshot the region worker built, and until when its peer may hand it out: half of
/// `snap-gc-timeout` after the build started, since the worker removes its files once they are
/// that timeout old (`worker::snap_gc`), so a send begun from it has the other half to finish.
pub struct BuiltSnapshot {
    pub snapshot: Snapshot,
    pub reuse_until: Instant,
}

enum RegionTask {
    Generate {
        region_id: u64,
        slot: Arc<GenSlot>,
    },
    /// Ingest a snapshot whose apply has begun (`region_snapshot::begin_apply`).
    Apply {
        region: Region,
        apply_state: RaftApplyState,
        data: Box<RaftSnapshotData>,
        peer_id: u64,
    },
    /// Check a received snapshot's files, then hand its message back to the peer as
    /// `PeerMsg::VerifiedSnapshot`; a damaged snapshot is dropped (the leader sends it again).
    Verify {
        message: Box<proto::raft_serverpb::RaftMessage>,
        snapshot: Box<Snapshot>,
    },
    /// Ends the worker. Peers hold generators until their FSMs drop, which can be after the
    /// store stops (the router keeps the mailboxes), so the channel closing cannot be the
    /// signal.
    Stop,
}

/// A handle peers use to have their region's snapshot built by the region worker.
#[derive(Clone)]
pub struct SnapshotGenerator {
    sender: Sender<RegionTask>,
}

impl SnapshotGenerator {
    /// A generator and the receiving end its worker (`spawn`) serves.
    pub fn new() -> (SnapshotGenerator, SnapshotRequests) {
        let (sender, receiver) = crossbeam_channel::unbounded();
        (SnapshotGenerator { sender }, SnapshotRequests { receiver })
    }

    /// Asks for a snapshot of `region_id` at its applied index. `None` if the worker has
    /// stopped (the store is shutting down).
    pub fn request(&self, region_id: u64) -> Option<Arc<GenSlot>> {
        let slot = Arc::new(GenSlot::default());
        self.sender
            .send(RegionTask::Generate {
                region_id,
                slot: slot.clone(),
            })
            .ok()?;
        Some(slot)
    }

    /// Has the worker ingest the snapshot `begin_apply` started for `region`; the peer
    /// `peer_id` hears `PeerMsg::SnapshotApplied` when it is done. `false` if the worker has
    /// stopped.
    pub fn apply(
        &self,
        region: Region,
        apply_state: RaftApplyState,
        data: RaftSnapshotData,
        peer_id: u64,
    ) -> bool {
        self.sender
            .send(RegionTask::Apply {
                region,
                apply_state,
                data: Box::new(data),
                peer_id,
            })
            .is_ok()
    }

    /// Has the worker check the files of the snapshot `message` carries (`snapshot`, already
    /// decoded); the peer gets the message back as `PeerMsg::VerifiedSnapshot` if they are
    /// intact. `false` if the worker has stopped.
    pub fn verify(&self, message: proto::raft_serverpb::RaftMessage, snapshot: Snapshot) -> bool {
        self.sender
            .send(RegionTask::Verify {
                message: Box::new(message),
                snapshot: Box::new(snapshot),
            })
            .is_ok()
    }

    /// Stops the worker after the requests already queued.
    pub fn stop_worker(&self) {
        let _ = self.sender.send(RegionTask::Stop);
    }
}

/// The requests a region worker serves.
pub struct SnapshotRequests {
    receiver: Receiver<RegionTask>,
}

/// How the region worker paces its work: snapshot reads and the removal of snapshot files.
#[derive(Clone, Copy, Debug)]
pub struct RegionWorkerConfig {
    /// Bytes per second a snapshot build reads the region at; 0: no limit.
    pub snap_io_bytes_per_sec: u64,
    /// How often the worker removes snapshot files nothing will read again.
    pub snap_gc_interval: Duration,
    /// The age past which a snapshot file that is not being applied is removed.
    pub snap_gc_timeout: Duration,
}

/// Starts the region worker thread `name`; it runs until `SnapshotGenerator::stop_worker`
/// (or every generator is dropped). Between tasks, every `snap_gc_interval`, it removes the
/// snapshot files `worker::snap_gc` condemns.
pub fn spawn(
    requests: SnapshotRequests,
    kv: KvEngine,
    router: RaftRouter,
    cfg: RegionWorkerConfig,
    name: String,
) -> std::io::Result<JoinHandle<()>> {
    let snap_io_bytes_per_sec = cfg.snap_io_bytes_per_sec;
    std::thread::Builder::new().name(name).spawn(move || {
        let dir = crate::region_snapshot::snap_dir(&kv);
        let mut next_gc = Instant::now() + cfg.snap_gc_interval;
        loop {
            // Checked before every task too, so a stream of tasks does not put it off.
            if Instant::now() >= next_gc {
                remove_unneeded_snapshot_files(&kv, &dir, cfg.snap_gc_timeout);
                next_gc = Instant::now() + cfg.snap_gc_interval;
            }
            let task = match requests.receiver.recv_deadline(next_gc) {
                Ok(task) => task,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let (region_id, slot) = match task {
                RegionTask::Generate { region_id, slot } => (region_id, slot),
                RegionTask::Apply {
                    region,
                    apply_state,
                    data,
                    peer_id,
                } => {
                    ingest(&kv, &router, &region, &apply_state, &data, peer_id);
                    continue;
                }
                RegionTask::Verify { message, snapshot } => {
                    verify(&kv, &router, message, &snapshot);
                    continue;
                }
                RegionTask::Stop => return,
            };
            let started = Instant::now();
            let result = crate::region_snapshot::generate(&kv, region_id, snap_io_bytes_per_sec)
                .map(|snapshot| BuiltSnapshot {
                    snapshot,
                    reuse_until: started + cfg.snap_gc_timeout / 2,
                });
            let elapsed = started.elapsed();
            crate::metrics::SNAPSHOT_GENERATE_DURATION.observe(elapsed.as_secs_f64());
            match &result {
                Ok(s) => info!(
                    region_id,
                    index = s.snapshot.get_metadata().index,
                    elapsed_ms = elapsed.as_millis() as u64,
                    "snapshot generated"
                ),
                Err(e) => warn!(region_id, "generating snapshot failed: {e}"),
            }
            *slot.result.lock() = Some(result);
            // The peer may be gone (removed, or the store stopping); then nobody waits.
            let _ = router.force_send(region_id, PeerMsg::SnapshotGenerated);
        }
    })
}

/// One pass of `snap_gc::collect_garbage`, with its outcome in the metrics.
fn remove_unneeded_snapshot_files(kv: &KvEngine, dir: &std::path::Path, timeout: Duration) {
    match super::snap_gc::collect_garbage(kv, dir, timeout) {
        Ok(outcome) => {
            crate::metrics::SNAPSHOT_FILES_REMOVED.inc_by(outcome.removed_files);
            crate::metrics::SNAPSHOT_DIR_BYTES.set(outcome.kept_bytes as i64);
        }
        Err(e) => warn!("removing unneeded snapshot files failed: {e}"),
    }
}

/// Checks a received snapshot's files and, if intact, hands its message back to the peer.
fn verify(
    kv: &KvEngine,
    router: &RaftRouter,
    message: Box<proto::raft_serverpb::RaftMessage>,
    snapshot: &Snapshot,
) {
    let region_id = message.region_id;
    crate::failpoint!(crate::failpoints::SNAPSHOT_VERIFY);
    match crate::region_snapshot::verify_received(kv, region_id, snapshot) {
        Ok(_) => {
            let _ = router.force_send(region_id, PeerMsg::VerifiedSnapshot(message));
        }
        Err(e) => {
            warn!(region_id, "snapshot rejected: {e}");
            crate::metrics::RAFT_DROPPED_MESSAGES.inc();
        }
    }
}

/// Ingests one snapshot and tells its peer how it went.
fn ingest(
    kv: &KvEngine,
    router: &RaftRouter,
    region: &Region,
    apply_state: &RaftApplyState,
    data: &RaftSnapshotData,
    peer_id: u64,
) {
    let started = Instant::now();
    let result = crate::region_snapshot::ingest(kv, region, apply_state, data);
    crate::metrics::SNAPSHOT_INGEST_DURATION.observe(started.elapsed().as_secs_f64());
    let _ = router.force_send(
        region.id,
        PeerMsg::SnapshotApplied {
            peer_id,
            result: result.map_err(|e| Box::new(e.to_string())),
        },
    );
}
