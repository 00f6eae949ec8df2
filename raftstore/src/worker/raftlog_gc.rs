//! Raft log space, off the raft threads: drops compacted entries from the raft log engine
//! and purges its old files.

use std::thread::JoinHandle;

use crossbeam_channel::Receiver;
use engine::{KvEngine, RaftLogEngine};
use tracing::{info, warn};

use crate::msg::router::RaftRouter;
use crate::msg::PeerMsg;

/// Work for the raft log GC worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GcTask {
    /// Remove a region's log entries below `compact_to`.
    Compact { region_id: u64, compact_to: u64 },
    /// Let the log engine reclaim old files (the store's `PurgeRaftLog` tick), and have the
    /// leaders of the regions it names compact their logs.
    Purge,
}

/// Starts the worker thread; it ends when every sender of `receiver` is gone.
pub fn spawn(
    kv: KvEngine,
    raft_engine: RaftLogEngine,
    router: RaftRouter,
    receiver: Receiver<GcTask>,
    name: String,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name).spawn(move || {
        while let Ok(first) = receiver.recv() {
            let mut tasks = vec![first];
            tasks.extend(receiver.try_iter());
            // Compactions first, so a purge in the same batch can delete what they freed.
            let purge = tasks.contains(&GcTask::Purge);
            tasks.retain(|t| *t != GcTask::Purge);
            if !tasks.is_empty() {
                compact(&kv, &raft_engine, &tasks);
            }
            if purge {
                purge_files(&raft_engine, &router);
            }
        }
    })
}

fn compact(kv: &KvEngine, raft_engine: &RaftLogEngine, tasks: &[GcTask]) {
    // The truncated state that allows this compaction was applied without sync; make it
    // durable first, or a crash could leave applied entries with no log to replay.
    if let Err(e) = kv.sync_wal() {
        warn!("sync kv wal before log gc: {e}; compaction postponed");
        return;
    }
    for t in tasks {
        if let GcTask::Compact {
            region_id,
            compact_to,
        } = *t
        {
            raft_engine.compact_to(region_id, compact_to);
        }
    }
}

fn purge_files(raft_engine: &RaftLogEngine, router: &RaftRouter) {
    let regions = match raft_engine.purge_expired_files() {
        Ok(regions) => regions,
        Err(e) => {
            warn!("purge raft log files: {e}");
            return;
        }
    };
    if !regions.is_empty() {
        info!(
            regions = regions.len(),
            log_bytes = raft_engine.used_size(),
            "raft log past its purge threshold: regions holding its oldest files compact their logs"
        );
    }
    for region_id in regions {
        // A region removed meanwhile has no mailbox; nothing is left to compact.
        let _ = router.force_send(region_id, PeerMsg::ForceCompactLog);
    }
}
