//! Tuning of the raft log engine: the store config's `[raft-engine]` section.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// raft-engine's default batch compression threshold, kept as Shoal's: 8 KiB.
pub const DEFAULT_BATCH_COMPRESSION_THRESHOLD: u64 = 8 * 1024;

/// Default size a raft log file grows to before the next one is started: 128 MiB (TiKV's
/// `raft-engine.target-file-size`).
pub const DEFAULT_TARGET_FILE_SIZE: u64 = 128 * 1024 * 1024;

/// Default log size past which old files are reclaimed: 10 GiB (TiKV's
/// `raft-engine.purge-threshold`).
pub const DEFAULT_PURGE_THRESHOLD: u64 = 10 * 1024 * 1024 * 1024;

/// The smallest `target-file-size` accepted: 1 MiB. Smaller files only multiply the files
/// to open, scan and delete.
const MIN_TARGET_FILE_SIZE: u64 = 1024 * 1024;

/// How the raft log engine (raft-engine) writes its batches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct RaftLogOptions {
    /// Log batches of at least this many bytes are LZ4-compressed before they are written
    /// (raft-engine's and TiKV's `batch-compression-threshold`, default 8192); 0 writes
    /// every batch as it is.
    ///
    /// Compression runs on the write path of every replica: the raft poller compresses its
    /// round's batch before the fsync the round's writes wait for. For values LZ4 cannot
    /// shrink (random bytes, encrypted or already compressed data) that is pure cost: on the
    /// 2-core bench machine, YCSB-A with 1 KiB random values used 8-13 % less store CPU per
    /// operation with 0, at 100,000 and at 1,000,000 records. For values that do shrink it
    /// keeps the raft log, and the disk space the log holds until it is purged, smaller.
    /// Changing it needs no migration: each batch records whether it is compressed, so logs
    /// written either way stay readable.
    pub batch_compression_threshold: u64,
    /// Bytes a log file grows to before the next one is started (default 128 MiB, at least
    /// 1 MiB). Space comes back a whole file at a time: a file is deleted once no region
    /// needs any entry in it.
    pub target_file_size: u64,
    /// Bytes of log files past which the log reclaims space from old files (default 10 GiB,
    /// as TiKV's; at least `target-file-size`). raft-engine deletes no file until the log
    /// is this large; past it, each purge (every `raftstore.raft-engine-purge-interval`)
    /// copies forward the few entries idle regions still keep in the oldest files, and has
    /// the leaders of regions that keep many there compact their logs at once, even if a
    /// follower still lacks those entries (it then catches up from a snapshot). The log
    /// directory thus stays near this size (plus the entries copied forward), and a
    /// restart, which reads every log file, reads about this much.
    pub purge_threshold: u64,
}

impl Default for RaftLogOptions {
    fn default() -> Self {
        RaftLogOptions {
            batch_compression_threshold: DEFAULT_BATCH_COMPRESSION_THRESHOLD,
            target_file_size: DEFAULT_TARGET_FILE_SIZE,
            purge_threshold: DEFAULT_PURGE_THRESHOLD,
        }
    }
}

impl RaftLogOptions {
    /// Checks the settings together; [`Error::InvalidOptions`] names the bad one.
    pub fn validate(&self) -> Result<()> {
        if self.target_file_size < MIN_TARGET_FILE_SIZE {
            return Err(Error::InvalidOptions(format!(
                "target-file-size ({} bytes) must be at least 1 MiB",
                self.target_file_size
            )));
        }
        if self.purge_threshold < self.target_file_size {
            return Err(Error::InvalidOptions(format!(
                "purge-threshold ({} bytes) must be at least target-file-size ({} bytes)",
                self.purge_threshold, self.target_file_size
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_a_threshold_below_a_file_is_refused() {
        RaftLogOptions::default().validate().unwrap();
        let tiny_files = RaftLogOptions {
            target_file_size: 4096,
            ..Default::default()
        };
        let err = tiny_files.validate().unwrap_err().to_string();
        assert!(err.contains("target-file-size"), "{err}");
        let threshold_below_a_file = RaftLogOptions {
            target_file_size: 8 << 20,
            purge_threshold: 4 << 20,
            ..Default::default()
        };
        let err = threshold_below_a_file.validate().unwrap_err().to_string();
        assert!(err.contains("purge-threshold"), "{err}");
    }
}
