//! Free-space guard: stops new writes before the disk holding the store's data fills up.
//!
//! A thread checks the filesystems of the KV engine and the raft log every
//! `disk-check-interval`. Bytes an engine will write without any new request (the KV engine's
//! unflushed memtables and its next write-ahead log's preallocation, see
//! `KvEngine::pending_disk_bytes`) count as used: a flush of writes already accepted must
//! still find room. When the smaller of their available byte counts drops below
//! `disk-low-space-threshold`, the store turns *disk full*: leaders refuse commands that write
//! (`ServerIsBusy` with a "disk full" reason, see `Peer::pre_propose_check`), reads go on, and
//! the store heartbeat tells PD the store is busy. Entries already proposed still commit and
//! apply, raft logs still replicate and compactions still run: that is what the space left
//! below the threshold is for. To make sure that space exists even when something else filled
//! the disk, the store keeps a placeholder file of `disk-reserve-space` bytes next to its
//! engines and deletes it on turning full (TiKV's `reserve-space` and its
//! `space_placeholder_file`). Once space returns (available at least the threshold plus the
//! reserve plus a quarter of the threshold, so it does not flap), the placeholder is written
//! again and writes are accepted.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use tracing::{error, info, warn};

use crate::metrics::{DISK_AVAILABLE_BYTES, DISK_FULL};
use crate::worker::disk::disk_space;

/// Name of the reserved-space file in the store's data directory.
pub const PLACEHOLDER_FILE_NAME: &str = "space_placeholder_file";

/// The store's disk verdict, shared by the monitor (writer) and the raft pollers and the PD
/// statistics worker (readers).
#[derive(Debug, Default)]
pub struct DiskUsage {
    full: AtomicBool,
    /// Smallest available byte count of the data filesystems at the last check.
    available: AtomicU64,
}

impl DiskUsage {
    /// Whether writes are refused for lack of space.
    pub fn is_full(&self) -> bool {
        self.full.load(Ordering::Acquire)
    }

    /// Available bytes at the last check (0 before the first).
    pub fn available(&self) -> u64 {
        self.available.load(Ordering::Relaxed)
    }

    pub(crate) fn set(&self, full: bool, available: u64) {
        self.available.store(available, Ordering::Relaxed);
        self.full.store(full, Ordering::Release);
        DISK_FULL.set(i64::from(full));
        DISK_AVAILABLE_BYTES.set(i64::try_from(available).unwrap_or(i64::MAX));
    }
}

/// The space thresholds, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpacePolicy {
    /// Writes are refused while fewer bytes than this are available. 0 never refuses.
    pub low_space_threshold: u64,
    /// Size of the placeholder file kept while space is plentiful. 0 keeps none.
    pub reserve_space: u64,
}

impl SpacePolicy {
    /// The verdict for `available` bytes, given the previous one. A full store turns back
    /// only once the placeholder can be written again and a quarter of the threshold is left
    /// on top, so a store hovering at the threshold does not flip on every check.
    pub fn is_full(&self, was_full: bool, available: u64) -> bool {
        if was_full {
            let recovered = self
                .low_space_threshold
                .saturating_add(self.reserve_space)
                .saturating_add(self.low_space_threshold / 4);
            available < recovered
        } else {
            available < self.low_space_threshold
        }
    }
}

/// A directory holding one of the store's engines.
pub struct WatchedDir {
    pub path: PathBuf,
    /// Bytes the engine in `path` will still write without new requests, counted as used
    /// on its filesystem; `None` for an engine with nothing of the kind.
    pub pending_bytes: Option<Box<dyn Fn() -> u64 + Send>>,
}

impl WatchedDir {
    /// What `path`'s filesystem has left for the engine.
    fn space(&self) -> io::Result<DirSpace> {
        Ok(DirSpace {
            free: disk_space(&self.path)?.available,
            pending: self.pending_bytes.as_ref().map_or(0, |f| f()),
        })
    }
}

/// One watched directory's space, in bytes.
#[derive(Clone, Copy, Debug)]
struct DirSpace {
    /// Available on its filesystem (`statvfs`).
    free: u64,
    /// What its engine will still write without new requests.
    pending: u64,
}

impl DirSpace {
    /// Free bytes less pending ones: what the verdict is made on.
    fn available(&self) -> u64 {
        self.free.saturating_sub(self.pending)
    }
}

/// Watches the data filesystems of one store; see the module documentation.
pub struct DiskMonitor {
    /// Directories whose filesystems hold the store's data (KV engine, raft log).
    pub dirs: Vec<WatchedDir>,
    /// The reserved-space file (in the store's data directory).
    pub placeholder: PathBuf,
    pub policy: SpacePolicy,
    pub interval: Duration,
    pub usage: Arc<DiskUsage>,
}

impl DiskMonitor {
    /// Checks once (so the store starts with a verdict), then spawns the checking thread,
    /// which ends when `stop` receives or is dropped.
    pub fn spawn(self, stop: Receiver<()>, name: String) -> io::Result<JoinHandle<()>> {
        let mut full = self.check(false);
        std::thread::Builder::new().name(name).spawn(move || loop {
            match stop.recv_timeout(self.interval) {
                Err(RecvTimeoutError::Timeout) => full = self.check(full),
                _ => return,
            }
        })
    }

    /// One check: measures, updates the verdict, and deletes or writes the placeholder on a
    /// change. Returns the new verdict.
    fn check(&self, was_full: bool) -> bool {
        let Some((tightest, space)) = self.tightest() else {
            // Unknown space changes nothing: the last verdict stands.
            return was_full;
        };
        let available = space.available();
        let full = self.policy.is_full(was_full, available);
        if full && !was_full {
            warn!(
                dir = ?tightest,
                available,
                free = space.free,
                pending = space.pending,
                threshold = self.policy.low_space_threshold,
                "disk almost full (available = free - pending engine writes): \
                 refusing writes until space returns"
            );
            if let Err(e) = remove_placeholder(&self.placeholder) {
                error!(path = ?self.placeholder, "deleting the reserved-space file failed: {e}");
            }
        }
        if !full && self.policy.reserve_space > 0 && !self.placeholder.exists() {
            // At start, and after recovering from full.
            if let Err(e) = write_placeholder(&self.placeholder, self.policy.reserve_space) {
                // Without the reserve the store still works; the next check tries again.
                warn!(path = ?self.placeholder, "writing the reserved-space file failed: {e}");
                let _ = fs::remove_file(&self.placeholder);
            }
        }
        let available = self
            .tightest()
            .map_or(available, |(_, space)| space.available());
        if !full && was_full {
            info!(available, "disk space returned: accepting writes again");
        }
        self.usage.set(full, available);
        full
    }

    /// The data directory with the fewest bytes available (pending engine writes taken
    /// off), and its space; `None` when no filesystem could be measured.
    fn tightest(&self) -> Option<(&Path, DirSpace)> {
        let mut min: Option<(&Path, DirSpace)> = None;
        for dir in &self.dirs {
            match dir.space() {
                Ok(space) => {
                    if min.is_none_or(|(_, m)| space.available() < m.available()) {
                        min = Some((&dir.path, space));
                    }
                }
                Err(e) => warn!(dir = ?dir.path, "statvfs failed: {e}"),
            }
        }
        min
    }
}

fn remove_placeholder(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Writes `size` bytes of zeros, synced, through a temporary name, so a crash never leaves a
/// short placeholder that would be taken for a full one. Zeros are written rather than
/// `set_len`, which on most filesystems reserves nothing.
fn write_placeholder(path: &Path, size: u64) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f: File = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    let chunk = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    f.sync_all()?;
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn turns_full_below_the_threshold_and_back_with_room_for_the_reserve() {
        let p = SpacePolicy {
            low_space_threshold: 100 * MIB,
            reserve_space: 40 * MIB,
        };
        assert!(!p.is_full(false, 100 * MIB));
        assert!(p.is_full(false, 100 * MIB - 1));
        // Deleting the placeholder gave 40 MiB back, which is not recovery yet.
        assert!(p.is_full(true, 140 * MIB));
        assert!(p.is_full(true, 165 * MIB - 1));
        assert!(!p.is_full(true, 165 * MIB));
    }

    #[test]
    fn a_zero_threshold_never_refuses() {
        let p = SpacePolicy {
            low_space_threshold: 0,
            reserve_space: 0,
        };
        assert!(!p.is_full(false, 0));
        assert!(!p.is_full(true, 0));
    }

    #[test]
    fn bytes_an_engine_will_still_write_count_as_used() {
        let dir = tempfile::tempdir().unwrap();
        let free = disk_space(dir.path()).unwrap().available;
        let usage = Arc::new(DiskUsage::default());
        let monitor = |pending: u64| DiskMonitor {
            dirs: vec![WatchedDir {
                path: dir.path().to_path_buf(),
                pending_bytes: Some(Box::new(move || pending)),
            }],
            placeholder: dir.path().join(PLACEHOLDER_FILE_NAME),
            policy: SpacePolicy {
                low_space_threshold: free / 2,
                reserve_space: 0,
            },
            interval: Duration::from_secs(3600),
            usage: usage.clone(),
        };
        // Half the disk about to be written leaves less than half of it: full. (Other
        // writers on this disk move its free space a little between the readings.)
        assert!(monitor(free / 2 + free / 8).check(false));
        assert!(usage.is_full());
        assert!(usage.available() < free / 2);
        assert!(!monitor(0).check(false));
        assert!(!usage.is_full());
        // More pending than the disk has: nothing available, not an underflow.
        assert!(monitor(u64::MAX).check(false));
        assert_eq!(usage.available(), 0);
    }

    #[test]
    fn the_placeholder_is_written_at_start_and_deleted_when_full() {
        let dir = tempfile::tempdir().unwrap();
        let placeholder = dir.path().join(PLACEHOLDER_FILE_NAME);
        let available = disk_space(dir.path()).unwrap().available;
        let usage = Arc::new(DiskUsage::default());
        let monitor = |threshold: u64| DiskMonitor {
            dirs: vec![WatchedDir {
                path: dir.path().to_path_buf(),
                pending_bytes: None,
            }],
            placeholder: placeholder.clone(),
            policy: SpacePolicy {
                low_space_threshold: threshold,
                reserve_space: MIB,
            },
            interval: Duration::from_secs(3600),
            usage: usage.clone(),
        };
        assert!(!monitor(0).check(false));
        assert_eq!(fs::metadata(&placeholder).unwrap().len(), MIB);
        assert!(!usage.is_full());
        // A threshold above what the filesystem has: full, placeholder gone.
        assert!(monitor(available.saturating_mul(4)).check(false));
        assert!(usage.is_full());
        assert!(!placeholder.exists());
        // Back to a threshold the disk satisfies: the placeholder returns.
        assert!(!monitor(0).check(true));
        assert!(placeholder.exists());
        assert!(!usage.is_full());
    }
}
