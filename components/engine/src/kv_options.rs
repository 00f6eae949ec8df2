//! How the state-machine RocksDB is tuned: memtables, background work and how it is paced.
//!
//! The defaults keep flushes and compactions from taking the foreground's CPU and disk in
//! bursts. On a small machine a 64 MiB memtable flush followed by a level-0 compaction, on
//! every store at about the same moment, stalls client requests for the time it takes; so
//! flush and compaction writes are paced by an auto-tuned rate limiter and synced a little at
//! a time, and the first two levels (rewritten most often) are not compressed, as TiKV's
//! default `compression-per-level` does. Lowering the background threads' CPU priority is
//! left off by default: on a machine whose cores are all busy it starves flushes until
//! RocksDB stalls writes altogether.

use rocksdb::{BlockBasedOptions, Cache, DBCompressionType, Env, Options};

use crate::{CF_DEFAULT, CF_LOCK, CF_RAFT};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Write-ahead log bytes RocksDB keeps before it flushes the column families that hold its
/// oldest part (TiKV's `max-total-wal-size`). Without a cap, CF raft, which takes a few bytes
/// of apply state per write, fills its memtable so slowly that it pins every WAL file
/// written since its last flush: under a steady write load the WAL grows by the bytes of
/// every value until the disk is full.
pub const MAX_TOTAL_WAL_SIZE: u64 = 512 * 1024 * 1024;

/// The default ceiling of the auto-tuned rate limiter, 640 MiB/s: its floor, a twentieth,
/// is 32 MiB/s, which spreads a level-0 compaction over seconds while little background work
/// waits (on 2 cores a fixed 32 MiB/s limit took the worst second's YCSB-A p99 from 110 ms
/// to 64 ms), and it rises toward the ceiling when compactions fall behind a heavy load.
pub const DEFAULT_RATE_BYTES_PER_SEC: u64 = 640 * 1024 * 1024;

/// The block cache's share of the machine's memory when `block-cache-size` is not set:
/// a quarter, as TiKV sizes its shared block cache from system memory (45 % there, for one
/// store per machine; several stores often share a machine here).
const BLOCK_CACHE_MEMORY_FRACTION: u64 = 4;

/// The smallest block cache [`KvEngineOptions::validate`] accepts, and the default's floor.
const MIN_BLOCK_CACHE_SIZE: u64 = 16 * 1024 * 1024;

/// The memtable bloom filter's default share of the memtable (see
/// [`KvEngineOptions::memtable_bloom_size_ratio`]).
const DEFAULT_MEMTABLE_BLOOM_SIZE_RATIO: f64 = 0.02;

/// RocksDB's cap on the memtable bloom filter's share of the memtable.
const MAX_MEMTABLE_BLOOM_SIZE_RATIO: f64 = 0.25;

/// The share of the oldest blob files whose live values compactions move to new blob files
/// (RocksDB's `blob_garbage_collection_age_cutoff`, its default).
const BLOB_GC_AGE_CUTOFF: f64 = 0.25;

/// Levels of the LSM tree RocksDB keeps (its default, `num_levels`).
const NUM_LEVELS: usize = 7;

/// The tuning of one store's state-machine RocksDB; the store config's `[rocksdb]` section,
/// whose keys are these fields in kebab-case. Every size is in bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct KvEngineOptions {
    /// Memtable size per column family before it is flushed to a level-0 table file.
    pub write_buffer_size: u64,
    /// Flush and compaction threads together (RocksDB's `max_background_jobs`), at least 2.
    pub max_background_jobs: u32,
    /// Bytes written to a table file between incremental syncs (`bytes_per_sync`): a flush
    /// then never leaves a whole memtable's worth of dirty pages for one sync to push out
    /// while the raft log waits for its own fsync. 0 syncs only at the file's end.
    pub bytes_per_sync: u64,
    /// The same for the write-ahead log (`wal_bytes_per_sync`).
    pub wal_bytes_per_sync: u64,
    /// Rate limit of flush and compaction writes in bytes per second; 0 is unlimited.
    pub rate_bytes_per_sec: u64,
    /// Let RocksDB tune the rate between a twentieth of `rate_bytes_per_sec` and all of it
    /// by how much background work is waiting (RocksDB's auto-tuned rate limiter).
    pub rate_limiter_auto_tuned: bool,
    /// Run flush and compaction threads at the lowest CPU priority, so that request
    /// handling preempts them.
    pub low_priority_background: bool,
    /// Levels, from level 0, whose table files are not compressed (the rest use LZ4); at
    /// most 7.
    pub uncompressed_levels: u32,
    /// Write-ahead log cap (see [`MAX_TOTAL_WAL_SIZE`]).
    pub max_total_wal_size: u64,
    /// Bytes of the block cache all column families share (uncompressed data blocks). A
    /// point read whose block is not cached costs a file read and, below the uncompressed
    /// levels, a decompression. Defaults to a quarter of the machine's memory, at least 16 MiB.
    pub block_cache_size: u64,
    /// Bloom filter bits per key in the table files of the column families read by point
    /// lookups (default, lock and raft); 10 bits rule out about 99 % of the files that do
    /// not hold a key, so a read touches about one file instead of one per level. 0 builds
    /// no filters. CF write is read by seeks, which whole-key filters cannot help.
    pub bloom_bits_per_key: u32,
    /// Size of a whole-key bloom filter in each memtable of the point-read column families
    /// (default, lock and raft), as a fraction of `write-buffer-size` (RocksDB's
    /// `memtable_prefix_bloom_size_ratio` with `memtable_whole_key_filtering`); at most 0.25,
    /// 0 builds none. A point read of a key the memtable does not hold, the usual case once
    /// the data outgrows one memtable, then skips the memtable's skip-list search, which
    /// walks a few dozen nodes scattered over the whole memtable. The default 0.02 is
    /// 1.3 MiB per 64 MiB memtable.
    pub memtable_bloom_size_ratio: f64,
    /// Values of at least this many bytes in column family default (where values live) are
    /// written to blob files beside the LSM tree, which then holds a reference of a few bytes
    /// in their place (RocksDB's integrated BlobDB, key-value separation as in TiKV's Titan
    /// and the WiscKey design). Compactions then rewrite references instead of values: with
    /// 1 KiB values over a gibibyte per store they rewrite several times each value's bytes
    /// otherwise. Blob files are garbage-collected as compactions reach the references into
    /// the oldest quarter of them (`enable_blob_garbage_collection`, age cut-off 0.25), and
    /// blobs read by point lookups are kept in the block cache. Blob files are not compressed
    /// (their bytes count as the values' bytes in region sizes). 0 keeps every value in the
    /// tree (the default, as TiKV's Titan is off for values under 32 KiB).
    pub min_blob_size: u64,
    /// Write flushes' and compactions' table files with direct I/O (`O_DIRECT`, RocksDB's
    /// `use_direct_io_for_flush_and_compaction`), from RocksDB's own aligned buffers instead
    /// of through the page cache. Each buffered megabyte first costs the kernel a copy into
    /// freshly allocated page-cache pages and later a write-back; the files are read back
    /// through the block cache. The data directory's file system must accept `O_DIRECT`
    /// (tmpfs does only since Linux 6.6), which opening the engine checks. Off by default,
    /// as in TiKV. With it on, the page cache no longer holds what a flush or compaction just
    /// wrote, so a read that misses the block cache goes to the disk:
    /// see [`KvEngineOptions::prepopulate_block_cache`].
    pub direct_io_for_flush_and_compaction: bool,
    /// Which new table files put their blocks into the block cache as they are written
    /// (RocksDB's `prepopulate_block_cache`), so the first reads of them need no file read.
    pub prepopulate_block_cache: PrepopulateBlockCache,
}

/// Which table files fill the block cache as they are written; the store config's
/// `prepopulate-block-cache`, one of `"disable"`, `"flush-only"`, `"flush-and-compaction"`
/// (RocksDB's `PrepopulateBlockCache`; its default, and TiKV's, is `disable`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrepopulateBlockCache {
    /// Blocks enter the cache only when read.
    #[default]
    Disable,
    /// A flush's blocks enter the cache as it writes them (at low priority).
    FlushOnly,
    /// A flush's and a compaction's blocks do (a compaction's at the lowest priority, so they
    /// are evicted first). Suits data that fits the cache, and table files written with
    /// direct I/O, which the page cache does not hold.
    FlushAndCompaction,
}

impl PrepopulateBlockCache {
    /// The value RocksDB's options parser takes for this setting (`SetOptions` on the
    /// `block_based_table_factory`).
    pub(crate) fn rocksdb_name(self) -> &'static str {
        match self {
            PrepopulateBlockCache::Disable => "kDisable",
            PrepopulateBlockCache::FlushOnly => "kFlushOnly",
            PrepopulateBlockCache::FlushAndCompaction => "kFlushAndCompaction",
        }
    }
}

impl Default for KvEngineOptions {
    fn default() -> Self {
        KvEngineOptions {
            write_buffer_size: 64 * 1024 * 1024,
            max_background_jobs: 2,
            bytes_per_sync: 1024 * 1024,
            wal_bytes_per_sync: 512 * 1024,
            rate_bytes_per_sec: DEFAULT_RATE_BYTES_PER_SEC,
            rate_limiter_auto_tuned: true,
            low_priority_background: false,
            uncompressed_levels: 2,
            max_total_wal_size: MAX_TOTAL_WAL_SIZE,
            block_cache_size: default_block_cache_size(),
            bloom_bits_per_key: 10,
            memtable_bloom_size_ratio: DEFAULT_MEMTABLE_BLOOM_SIZE_RATIO,
            min_blob_size: 0,
            direct_io_for_flush_and_compaction: false,
            prepopulate_block_cache: PrepopulateBlockCache::Disable,
        }
    }
}

/// A quarter of the machine's physical memory, at least [`MIN_BLOCK_CACHE_SIZE`].
fn default_block_cache_size() -> u64 {
    // SAFETY: sysconf only reads system configuration values; no pointers are involved.
    let (pages, page_size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let memory = if pages > 0 && page_size > 0 {
        pages as u64 * page_size as u64
    } else {
        0
    };
    (memory / BLOCK_CACHE_MEMORY_FRACTION).max(MIN_BLOCK_CACHE_SIZE)
}

impl KvEngineOptions {
    /// Checks the values RocksDB would reject or misbehave with.
    ///
    /// # Errors
    /// [`Error::InvalidOptions`] naming the setting.
    pub fn validate(&self) -> Result<()> {
        let invalid = |why: &str| Err(Error::InvalidOptions(why.to_string()));
        if self.write_buffer_size < 1024 * 1024 {
            return invalid("write-buffer-size must be at least 1 MiB");
        }
        if self.max_background_jobs < 2 {
            return invalid("max-background-jobs must be at least 2 (one flush, one compaction)");
        }
        if self.uncompressed_levels as usize > NUM_LEVELS {
            return invalid("uncompressed-levels must be at most 7");
        }
        if self.rate_limiter_auto_tuned && self.rate_bytes_per_sec == 0 {
            return invalid("rate-limiter-auto-tuned needs a rate-bytes-per-sec above 0");
        }
        if self.block_cache_size < MIN_BLOCK_CACHE_SIZE {
            return invalid("block-cache-size must be at least 16 MiB");
        }
        if self.bloom_bits_per_key > 64 {
            return invalid("bloom-bits-per-key must be at most 64");
        }
        // `contains` is false for NaN too.
        if !(0.0..=MAX_MEMTABLE_BLOOM_SIZE_RATIO).contains(&self.memtable_bloom_size_ratio) {
            return invalid("memtable-bloom-size-ratio must be between 0 and 0.25");
        }
        Ok(())
    }

    /// Bytes RocksDB preallocates (fallocate) at the first write to each new write-ahead
    /// log: 1.1 x `write-buffer-size`, at most `max-total-wal-size` (RocksDB's
    /// `GetWalPreallocateBlockSize`). The space is taken at once and given back, down to what
    /// was written, only when that log is closed.
    pub fn wal_preallocation_bytes(&self) -> u64 {
        let block = self.write_buffer_size + self.write_buffer_size / 10;
        if self.max_total_wal_size > 0 {
            block.min(self.max_total_wal_size)
        } else {
            block
        }
    }

    /// The block cache the column families of one engine share.
    pub(crate) fn block_cache(&self) -> Cache {
        // Sized per entry as it fills (RocksDB's auto-sized HyperClockCache), so memory is
        // taken only as blocks are cached.
        Cache::new_hyper_clock_cache(self.block_cache_size as usize, 0)
    }

    /// The database-wide RocksDB options (those of the default column family included).
    pub(crate) fn db_options(&self, cache: &Cache) -> Options {
        let mut opts = self.cf_options(CF_DEFAULT, cache);
        opts.set_max_total_wal_size(self.max_total_wal_size);
        opts.set_max_background_jobs(self.max_background_jobs as i32);
        opts.set_bytes_per_sync(self.bytes_per_sync);
        opts.set_wal_bytes_per_sync(self.wal_bytes_per_sync);
        opts.set_use_direct_io_for_flush_and_compaction(self.direct_io_for_flush_and_compaction);
        if self.rate_bytes_per_sec > 0 {
            // 100 ms refills; fairness 10 is RocksDB's default share for low-priority I/O.
            if self.rate_limiter_auto_tuned {
                opts.set_auto_tuned_ratelimiter(self.rate_bytes_per_sec as i64, 100_000, 10);
            } else {
                opts.set_ratelimiter(self.rate_bytes_per_sec as i64, 100_000, 10);
            }
        }
        if self.low_priority_background {
            // `Env::new` hands out RocksDB's process-wide default Env, so every engine in the
            // process shares its thread pools; lowering their priority is idempotent.
            if let Ok(mut env) = Env::new() {
                env.lower_thread_pool_cpu_priority();
                env.lower_high_priority_thread_pool_cpu_priority();
                opts.set_env(&env);
            }
        }
        opts
    }

    /// The options column family `cf` is opened with; `cache` is the engine's block cache.
    pub(crate) fn cf_options(&self, cf: &str, cache: &Cache) -> Options {
        let mut opts = Options::default();
        opts.set_write_buffer_size(self.write_buffer_size as usize);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(cache);
        if self.bloom_bits_per_key > 0 && [CF_DEFAULT, CF_LOCK, CF_RAFT].contains(&cf) {
            table.set_bloom_filter(f64::from(self.bloom_bits_per_key), false);
            table.set_whole_key_filtering(true);
        }
        if self.memtable_bloom_size_ratio > 0.0 && [CF_DEFAULT, CF_LOCK, CF_RAFT].contains(&cf) {
            opts.set_memtable_prefix_bloom_ratio(self.memtable_bloom_size_ratio);
            opts.set_memtable_whole_key_filtering(true);
        }
        opts.set_block_based_table_factory(&table);
        let levels: Vec<DBCompressionType> = (0..NUM_LEVELS)
            .map(|level| {
                if level < self.uncompressed_levels as usize {
                    DBCompressionType::None
                } else {
                    DBCompressionType::Lz4
                }
            })
            .collect();
        opts.set_compression_per_level(&levels);
        if self.min_blob_size > 0 && cf == CF_DEFAULT {
            opts.set_enable_blob_files(true);
            opts.set_min_blob_size(self.min_blob_size);
            opts.set_enable_blob_gc(true);
            opts.set_blob_gc_age_cutoff(BLOB_GC_AGE_CUTOFF);
            opts.set_blob_cache(cache);
            // Uncompressed, so that the blob files' bytes are the values' own bytes (plus
            // each value's key and a record header): region sizes count them as logical
            // bytes, and RocksDB keeps no uncompressed total of a blob file to scale by.
            opts.set_blob_compression_type(DBCompressionType::None);
        }
        opts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        KvEngineOptions::default().validate().unwrap();
        let cases = [
            (
                KvEngineOptions {
                    write_buffer_size: 4096,
                    ..Default::default()
                },
                "write-buffer-size",
            ),
            (
                KvEngineOptions {
                    max_background_jobs: 1,
                    ..Default::default()
                },
                "max-background-jobs",
            ),
            (
                KvEngineOptions {
                    uncompressed_levels: 8,
                    ..Default::default()
                },
                "uncompressed-levels",
            ),
            (
                KvEngineOptions {
                    block_cache_size: 1024 * 1024,
                    ..Default::default()
                },
                "block-cache-size",
            ),
            (
                KvEngineOptions {
                    bloom_bits_per_key: 65,
                    ..Default::default()
                },
                "bloom-bits-per-key",
            ),
            (
                KvEngineOptions {
                    memtable_bloom_size_ratio: 0.5,
                    ..Default::default()
                },
                "memtable-bloom-size-ratio",
            ),
            (
                KvEngineOptions {
                    memtable_bloom_size_ratio: f64::NAN,
                    ..Default::default()
                },
                "memtable-bloom-size-ratio",
            ),
            (
                KvEngineOptions {
                    rate_limiter_auto_tuned: true,
                    rate_bytes_per_sec: 0,
                    ..Default::default()
                },
                "rate-limiter-auto-tuned",
            ),
        ];
        for (opts, name) in cases {
            let err = opts.validate().unwrap_err().to_string();
            assert!(err.contains(name), "{err} should name {name}");
        }
    }
}
