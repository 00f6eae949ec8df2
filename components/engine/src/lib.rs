//! The two storage engines of a store behind small named types: `KvEngine` (RocksDB with
//! column families: the state machine and region metadata) and `RaftLogEngine` (raft-engine:
//! every region's raft log and raft state).

mod error;
mod io_pacer;
mod kv;
mod kv_options;
mod raft_log;
mod raft_log_file;
mod raft_log_options;
pub mod range_stats;
mod read;
mod rocks;
mod snapshot;
mod sst;
mod write_batch;
mod zero_filled_fs;

pub use error::{Error, Result};
pub use io_pacer::IoPacer;
pub use kv::KvEngine;
pub use kv_options::{KvEngineOptions, PrepopulateBlockCache, MAX_TOTAL_WAL_SIZE};
pub use raft_log::{RaftLogBatch, RaftLogEngine};
pub use raft_log_options::{
    RaftLogOptions, DEFAULT_BATCH_COMPRESSION_THRESHOLD, DEFAULT_PURGE_THRESHOLD,
    DEFAULT_TARGET_FILE_SIZE,
};
pub use range_stats::{RangeStats, SplitPieces};
pub use read::{KvRead, ScanVisitor};
pub use snapshot::KvSnapshot;
pub use sst::{file_checksum, verify_file, write_sst, SstFile};
pub use write_batch::KvWriteBatch;

/// User data.
pub const CF_DEFAULT: &str = "default";
/// Transaction locks.
pub const CF_LOCK: &str = "lock";
/// Transaction commit records.
pub const CF_WRITE: &str = "write";
/// Region metadata and apply state.
pub const CF_RAFT: &str = "raft";

pub const ALL_CFS: &[&str] = &[CF_DEFAULT, CF_LOCK, CF_WRITE, CF_RAFT];
/// Column families holding region data (moved by snapshots, deleted with a region).
pub const DATA_CFS: &[&str] = &[CF_DEFAULT, CF_LOCK, CF_WRITE];
