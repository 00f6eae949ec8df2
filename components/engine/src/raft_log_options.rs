//! Tuning of the raft log engine: the store config's `[raft-engine]` section.

use serde::{Deserialize, Serialize};

/// How the raft log engine (raft-engine) writes its batches.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct RaftLogOptions {
    /// Log batches of at least this many bytes are LZ4-compressed before they are written
    /// (raft-engine's `batch-compression-threshold`); 0, the default, writes every batch as
    /// it is.
    ///
    /// Off by default because the compression runs on the write path of every replica (the
    /// raft poller compresses its round's batch before the fsync the write waits for), while
    /// what it saves is short-lived: raft log bytes are read back only for a follower that
    /// fell behind, and are purged once applied; the applied data is compressed at rest by
    /// RocksDB's lower levels. With values LZ4 cannot shrink (random bytes, YCSB's random
    /// characters, encrypted or already compressed data) it is pure cost: on the 2-core
    /// bench machine, YCSB-A used 8-13 % less store CPU per operation without it, at
    /// 100,000 and at 1,000,000 records of 1 KiB. A store with highly compressible values and a disk short of write
    /// bandwidth may set TiKV's default, 8192. Changing it needs no migration: each batch
    /// records whether it is compressed, so logs written either way stay readable.
    pub batch_compression_threshold: u64,
}
