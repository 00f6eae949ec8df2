//! The PD statistics worker: assembles the store heartbeat (disk space, bytes used, flow,
//! pressure) off the raft threads, since walking the data directory touches the disk.

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Receiver;
use proto::pdpb::{StoreStats, TimeInterval};
use tracing::{debug, warn};

use crate::pd_client::PdClient;
use crate::stats::{unix_secs, StoreFlow};
use crate::worker::disk::{dir_size, disk_space};
use crate::worker::disk_monitor::DiskUsage;

pub enum PdTask {
    /// Report the store's statistics; the raft side knows the region count.
    StoreHeartbeat { region_count: u32 },
}

/// Where a store keeps its files and whom it reports to.
pub struct PdStatsWorker {
    pub store_id: u64,
    pub pd: Arc<dyn PdClient>,
    /// The directory whose filesystem gives capacity and free space (the KV engine's).
    pub kv_dir: PathBuf,
    pub raft_dir: PathBuf,
    pub snap_dir: PathBuf,
    pub flow: Arc<StoreFlow>,
    /// A store refusing writes for lack of space reports itself busy.
    pub disk: Arc<DiskUsage>,
    /// Unix seconds when the store started.
    pub start_time: u64,
}

impl PdStatsWorker {
    pub fn spawn(
        self,
        receiver: Receiver<PdTask>,
        name: String,
    ) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name(name)
            .spawn(move || self.run(receiver))
    }

    fn run(self, receiver: Receiver<PdTask>) {
        let mut last_report = self.start_time;
        while let Ok(first) = receiver.recv() {
            // Heartbeats that queued up while the disk was slow collapse into the newest one.
            let task = receiver.try_iter().last().unwrap_or(first);
            match task {
                PdTask::StoreHeartbeat { region_count } => {
                    let stats = self.collect(region_count, last_report);
                    last_report = stats.interval.map_or(last_report, |i| i.end_timestamp);
                    self.pd.store_heartbeat(stats);
                }
            }
        }
    }

    /// The store's statistics since `last_report` (unix seconds).
    pub fn collect(&self, region_count: u32, last_report: u64) -> StoreStats {
        let (capacity, available) = match disk_space(&self.kv_dir) {
            Ok(s) => (s.capacity, s.available),
            Err(e) => {
                warn!(dir = ?self.kv_dir, "statvfs of the data directory failed: {e}");
                (0, 0)
            }
        };
        let mut used_size = 0u64;
        for dir in [&self.kv_dir, &self.raft_dir, &self.snap_dir] {
            match dir_size(dir) {
                Ok(n) => used_size += n,
                Err(e) => warn!(?dir, "measuring directory failed: {e}"),
            }
        }
        let written = self.flow.written.take();
        let read = self.flow.read.take();
        let end = unix_secs();
        debug!(
            store_id = self.store_id,
            region_count, used_size, "store heartbeat"
        );
        StoreStats {
            store_id: self.store_id,
            capacity,
            available,
            region_count,
            sending_snap_count: 0,
            receiving_snap_count: 0,
            start_time: u32::try_from(self.start_time).unwrap_or(u32::MAX),
            applying_snap_count: 0,
            // Both are read every time: `take_busy` also resets the flow's flag.
            is_busy: self.flow.take_busy() | self.disk.is_full(),
            used_size,
            bytes_written: written.bytes,
            keys_written: written.keys,
            bytes_read: read.bytes,
            keys_read: read.keys,
            interval: Some(TimeInterval {
                start_timestamp: last_report.min(end),
                end_timestamp: end,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pd_client::SplitIds;
    use proto::metapb::Region;

    struct NoPd;
    impl PdClient for NoPd {
        fn ask_batch_split(&self, _: &Region, _: usize) -> crate::Result<Vec<SplitIds>> {
            Ok(vec![])
        }
    }

    #[test]
    fn collects_disk_and_flow() {
        let dir = tempfile::tempdir().unwrap();
        let kv_dir = dir.path().join("db");
        std::fs::create_dir(&kv_dir).unwrap();
        std::fs::write(kv_dir.join("000001.sst"), vec![1u8; 4096]).unwrap();
        let flow = Arc::new(StoreFlow::default());
        flow.written.add(100, 2);
        flow.mark_busy();
        let disk = Arc::new(DiskUsage::default());
        let worker = PdStatsWorker {
            store_id: 7,
            pd: Arc::new(NoPd),
            kv_dir,
            raft_dir: dir.path().join("raft"),
            snap_dir: dir.path().join("snap"),
            flow: flow.clone(),
            disk: disk.clone(),
            start_time: 1000,
        };
        let stats = worker.collect(3, 1000);
        assert_eq!(stats.store_id, 7);
        assert_eq!(stats.region_count, 3);
        assert!(stats.capacity >= stats.available && stats.available > 0);
        assert_eq!(stats.used_size, 4096);
        assert_eq!((stats.bytes_written, stats.keys_written), (100, 2));
        assert!(stats.is_busy);
        assert_eq!(stats.start_time, 1000);
        let interval = stats.interval.unwrap();
        assert_eq!(interval.start_timestamp, 1000);
        assert!(interval.end_timestamp >= 1000);
        // Flow and pressure are reported once.
        let again = worker.collect(3, interval.end_timestamp);
        assert_eq!(again.bytes_written, 0);
        assert!(!again.is_busy);
        // A full disk is reported on every heartbeat until it is over.
        disk.set(true, 0);
        assert!(worker.collect(3, 0).is_busy);
        assert!(worker.collect(3, 0).is_busy);
        disk.set(false, 1 << 30);
        assert!(!worker.collect(3, 0).is_busy);
    }
}
