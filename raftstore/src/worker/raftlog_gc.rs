//! Drops compacted raft log entries off the raft threads.

use std::thread::JoinHandle;

use crossbeam_channel::Receiver;
use engine::{KvEngine, RaftLogEngine};
use tracing::warn;

/// Remove a region's log entries below `compact_to`.
pub struct GcTask {
    pub region_id: u64,
    pub compact_to: u64,
}

pub fn spawn(
    kv: KvEngine,
    raft_engine: RaftLogEngine,
    receiver: Receiver<GcTask>,
    name: String,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name).spawn(move || {
        while let Ok(first) = receiver.recv() {
            let mut tasks = vec![first];
            tasks.extend(receiver.try_iter());
            // The truncated state that allows this compaction was applied without sync; make it
            // durable first, or a crash could leave applied entries with no log to replay.
            if let Err(e) = kv.sync_wal() {
                warn!("sync kv wal before log gc: {e}; compaction postponed");
                continue;
            }
            for t in tasks {
                raft_engine.compact_to(t.region_id, t.compact_to);
            }
        }
    })
}
