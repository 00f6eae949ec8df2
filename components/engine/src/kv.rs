//! The state-machine engine: RocksDB with the column families of `ALL_CFS`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, DBRecoveryMode, WriteOptions, DB};

use crate::error::{Error, Result};
use crate::kv_options::{KvEngineOptions, PrepopulateBlockCache};
use crate::range_stats::{self, RangeStats};
use crate::read::{KvRead, ScanVisitor};
use crate::rocks::{bounded, rocks_error, scan_raw};
use crate::snapshot::KvSnapshot;
use crate::write_batch::KvWriteBatch;
use crate::ALL_CFS;

/// A shared handle to one store's RocksDB.
#[derive(Clone)]
pub struct KvEngine {
    db: Arc<DB>,
    path: Arc<PathBuf>,
    /// Bytes RocksDB reserves at the first write to each new write-ahead log (see
    /// [`KvEngineOptions::wal_preallocation_bytes`]).
    wal_preallocation: u64,
}

impl std::fmt::Debug for KvEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KvEngine({:?})", self.path)
    }
}

/// Name of the file [`check_direct_io`] creates and removes in a data directory.
const DIRECT_IO_PROBE: &str = "direct-io-probe";

/// Opens a file in `dir` with `O_DIRECT`, as RocksDB will for its table files when
/// `direct-io-for-flush-and-compaction` is on, so that a file system without direct I/O
/// (tmpfs before Linux 6.6) is refused when the engine opens instead of failing the first
/// flush, which would stop the engine's writes.
///
/// # Errors
/// [`Error::InvalidOptions`] naming the directory and the system's answer.
fn check_direct_io(dir: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let probe = dir.join(DIRECT_IO_PROBE);
    let opened = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(&probe);
    // The probe may exist even when the O_DIRECT open failed (created, then refused).
    let _ = std::fs::remove_file(&probe);
    opened.map(drop).map_err(|e| {
        Error::InvalidOptions(format!(
            "direct-io-for-flush-and-compaction: {} does not take direct I/O: {e}",
            dir.display()
        ))
    })
}

/// Applies `prepopulate-block-cache` to every column family's table factory. The Rust binding
/// has no setter for it, so it goes through RocksDB's `SetOptions`, which changes only the
/// field named and takes effect for every table file written afterwards.
fn set_prepopulate_block_cache(db: &DB, path: &Path, mode: PrepopulateBlockCache) -> Result<()> {
    if mode == PrepopulateBlockCache::Disable {
        return Ok(());
    }
    let table = format!("{{prepopulate_block_cache={};}}", mode.rocksdb_name());
    for cf in ALL_CFS {
        let handle = db
            .cf_handle(cf)
            .ok_or_else(|| Error::UnknownCf(cf.to_string()))?;
        db.set_options_cf(handle, &[("block_based_table_factory", table.as_str())])
            .map_err(|e| rocks_error(path, e))?;
    }
    Ok(())
}

impl KvEngine {
    /// Opens (creating if needed) the engine in `path` with the default
    /// [`KvEngineOptions`]. Damaged files are reported by name.
    pub fn open(path: &Path) -> Result<KvEngine> {
        Self::open_with(path, &KvEngineOptions::default())
    }

    /// Opens (creating if needed) the engine in `path` tuned by `options`.
    ///
    /// # Errors
    /// [`Error::InvalidOptions`] for options RocksDB cannot use; [`Error::Corruption`] naming
    /// a damaged file; [`Error::RocksDb`] for anything else RocksDB refuses.
    pub fn open_with(path: &Path, options: &KvEngineOptions) -> Result<KvEngine> {
        options.validate()?;
        std::fs::create_dir_all(path).map_err(|e| Error::RocksDb {
            path: path.to_path_buf(),
            msg: format!("cannot create its directory: {e}"),
        })?;
        if options.direct_io_for_flush_and_compaction {
            check_direct_io(path)?;
        }
        let cache = options.block_cache();
        let mut opts = options.db_options(&cache);
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_paranoid_checks(true);
        // The raft log is the source of truth: recovering to the last consistent WAL point is
        // safe because unapplied entries are replayed from it, and a torn tail after a crash
        // must not keep a store down. Table files are checked against the manifest on open
        // by `check_live_files`.
        opts.set_wal_recovery_mode(DBRecoveryMode::PointInTime);
        let cfs = ALL_CFS
            .iter()
            .map(|cf| ColumnFamilyDescriptor::new(*cf, options.cf_options(cf, &cache)));
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(|e| open_error(path, e))?;
        set_prepopulate_block_cache(&db, path, options.prepopulate_block_cache)?;
        let engine = KvEngine {
            db: Arc::new(db),
            path: Arc::new(path.to_path_buf()),
            wal_preallocation: options.wal_preallocation_bytes(),
        };
        engine.check_live_files()?;
        Ok(engine)
    }

    /// Every table file the manifest lists must exist with its recorded size.
    fn check_live_files(&self) -> Result<()> {
        let files = self.db.live_files().map_err(|e| self.err(e))?;
        for f in files {
            let file = self.path.join(f.name.trim_start_matches('/'));
            let problem = match std::fs::metadata(&file) {
                Ok(m) if m.len() as usize == f.size => continue,
                Ok(m) => format!("size {} differs from the recorded {}", m.len(), f.size),
                Err(e) => format!("table file unreadable: {e}"),
            };
            // Background compaction may have replaced the file since we listed it; only a
            // file that is still live is damaged.
            let still_live = self
                .db
                .live_files()
                .map_err(|e| self.err(e))?
                .iter()
                .any(|g| g.name == f.name);
            if still_live {
                return Err(Error::Corruption {
                    path: file,
                    detail: problem,
                });
            }
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of disk this engine will take without another write: its unflushed memtables,
    /// which a flush writes out as table files before the write-ahead log that also holds
    /// them can be deleted, plus the preallocation of the next write-ahead log, which
    /// RocksDB reserves in one go when a memtable is switched. A free-space guard counts
    /// them as used, or the flush of writes it already accepted runs out of room (and a
    /// failed flush stops the engine's writes until it is reopened).
    pub fn pending_disk_bytes(&self) -> u64 {
        let memtables: u64 = ALL_CFS
            .iter()
            .filter_map(|cf| self.db.cf_handle(cf))
            .filter_map(|handle| {
                // Active and immutable memtables not yet flushed, in bytes of arena.
                self.db
                    .property_int_value_cf(handle, "rocksdb.cur-size-all-mem-tables")
                    .ok()
                    .flatten()
            })
            .sum();
        memtables.saturating_add(self.wal_preallocation)
    }

    pub(crate) fn db(&self) -> &DB {
        &self.db
    }

    pub(crate) fn err(&self, e: rocksdb::Error) -> Error {
        rocks_error(&self.path, e)
    }

    pub(crate) fn cf(&self, cf: &str) -> Result<&ColumnFamily> {
        self.db
            .cf_handle(cf)
            .ok_or_else(|| Error::UnknownCf(cf.to_string()))
    }

    /// A new, empty write batch for this engine.
    pub fn write_batch(&self) -> KvWriteBatch {
        KvWriteBatch::new()
    }

    /// Writes a batch atomically; `sync` makes it durable before returning.
    pub fn write(&self, wb: &KvWriteBatch, sync: bool) -> Result<()> {
        let handles = ALL_CFS
            .iter()
            .map(|cf| self.cf(cf))
            .collect::<Result<Vec<_>>>()?;
        let batch = wb.to_rocks(&handles);
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        self.db.write_opt(batch, &opts).map_err(|e| self.err(e))
    }

    pub fn snapshot(&self) -> KvSnapshot {
        KvSnapshot::new(self.db.clone(), self.path.clone())
    }

    /// Deletes `[start, end)` directly (outside any batch).
    pub fn delete_range_cf(&self, cf: &str, start: &[u8], end: &[u8]) -> Result<()> {
        let handle = self.cf(cf)?;
        self.db
            .delete_range_cf(handle, start, end)
            .map_err(|e| self.err(e))
    }

    /// Makes every write so far durable.
    pub fn sync_wal(&self) -> Result<()> {
        self.db.flush_wal(true).map_err(|e| self.err(e))
    }

    /// Estimated logical size (key + value bytes, keys) of `[start, end)` over `cfs`, where
    /// each entry says whether that column family's entries count as keys; read from table
    /// file indexes and properties plus the memtables, never from the range's data on disk
    /// (see [`crate::range_stats`]). An empty `end` means no end.
    pub fn approximate_stats(
        &self,
        cfs: &[(&str, bool)],
        start: &[u8],
        end: &[u8],
    ) -> Result<RangeStats> {
        range_stats::stats_by_name(&self.db, &self.path, cfs, start, end)
    }

    /// Existing keys of `cfs` cutting `[start, end)` into pieces of about `pieces.size`
    /// logical bytes, at most `pieces.limit`, sorted and strictly inside the range, the rest
    /// after the last cut at least `pieces.min_last` bytes; found from the same estimates as
    /// [`KvEngine::approximate_stats`]. Empty if the range is under one piece plus that
    /// rest or no cut can be placed.
    pub fn approximate_split_keys(
        &self,
        cfs: &[&str],
        start: &[u8],
        end: &[u8],
        pieces: range_stats::SplitPieces,
    ) -> Result<Vec<Vec<u8>>> {
        range_stats::split_keys_by_name(&self.db, &self.path, cfs, start, end, pieces)
    }

    pub fn flush(&self) -> Result<()> {
        for cf in ALL_CFS {
            let handle = self.cf(cf)?;
            self.db.flush_cf(handle).map_err(|e| self.err(e))?;
        }
        Ok(())
    }
}

impl KvRead for KvEngine {
    fn get_value_cf(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let handle = self.cf(cf)?;
        self.db.get_cf(handle, key).map_err(|e| self.err(e))
    }

    fn scan(
        &self,
        cf: &str,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        f: &mut ScanVisitor<'_>,
    ) -> Result<()> {
        let handle = self.cf(cf)?;
        let iter = self.db.raw_iterator_cf_opt(handle, bounded(start, end));
        scan_raw(iter, reverse, &self.path, f)
    }
}

/// An open failure, with the damaged file named: RocksDB's message usually carries the path;
/// when it does not, the manifest that CURRENT points at is the file that failed to load.
fn open_error(dir: &Path, e: rocksdb::Error) -> Error {
    let msg = e.into_string();
    let corrupt = msg.contains("Corruption") || msg.contains("corrupt");
    if !corrupt {
        return Error::RocksDb {
            path: dir.to_path_buf(),
            msg,
        };
    }
    let named = std::fs::read_dir(dir)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .map(|n| msg.contains(n.to_string_lossy().as_ref()))
                .unwrap_or(false)
        });
    let path = named.unwrap_or_else(|| {
        std::fs::read_to_string(dir.join("CURRENT"))
            .map(|m| dir.join(m.trim()))
            .unwrap_or_else(|_| dir.join("CURRENT"))
    });
    Error::Corruption { path, detail: msg }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KvWriteBatch, CF_DEFAULT};

    #[test]
    fn a_data_path_that_is_a_file_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let Err(err) = KvEngine::open(&file) else {
            panic!("opened a file as a database");
        };
        assert!(matches!(err, Error::RocksDb { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("not-a-dir") && text.contains("cannot create"),
            "{text}"
        );
        let Err(err) = crate::RaftLogEngine::open_with(&file, &crate::RaftLogOptions::default())
        else {
            panic!("opened a file as a raft log");
        };
        let text = err.to_string();
        assert!(
            text.contains("not-a-dir") && text.contains("cannot create"),
            "{text}"
        );
    }

    fn wal_bytes(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
            .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
            .sum()
    }

    /// What a flush will write counts as pending until the flush has written it, and the
    /// next write-ahead log's preallocation always does.
    #[test]
    fn unflushed_memtables_and_the_next_log_preallocation_are_pending() {
        let dir = tempfile::tempdir().unwrap();
        let options = KvEngineOptions {
            write_buffer_size: 8 * 1024 * 1024,
            block_cache_size: 16 * 1024 * 1024,
            ..Default::default()
        };
        assert_eq!(options.wal_preallocation_bytes(), 8 * 1024 * 1024 * 11 / 10);
        let kv = KvEngine::open_with(dir.path(), &options).unwrap();
        let empty = kv.pending_disk_bytes();
        assert!(empty >= options.wal_preallocation_bytes(), "{empty}");

        let value = vec![0x33u8; 4096];
        let mut wb = KvWriteBatch::new();
        for i in 0..1000u32 {
            wb.put_cf(CF_DEFAULT, format!("zk{i:05}").as_bytes(), &value)
                .unwrap();
        }
        kv.write(&wb, false).unwrap();
        let written = kv.pending_disk_bytes();
        assert!(
            written >= empty + 1000 * 4096,
            "4 MiB in the memtable, pending {empty} -> {written}"
        );
        kv.flush().unwrap();
        let flushed = kv.pending_disk_bytes();
        assert!(
            flushed < empty + 1024 * 1024,
            "flushed, yet still pending {flushed} (empty {empty})"
        );
    }

    /// The configured block cache is the one the engine reads through, and the point-read
    /// column families' table files carry bloom filters while CF write's do not.
    #[test]
    fn tables_use_the_configured_block_cache_and_bloom_filters() {
        const CACHE: u64 = 48 * 1024 * 1024;
        let dir = tempfile::tempdir().unwrap();
        let options = KvEngineOptions {
            block_cache_size: CACHE,
            ..Default::default()
        };
        let kv = KvEngine::open_with(dir.path(), &options).unwrap();
        let mut wb = KvWriteBatch::new();
        for i in 0..1000u32 {
            let key = format!("zk{i:05}");
            wb.put_cf(CF_DEFAULT, key.as_bytes(), b"value").unwrap();
            wb.put_cf(crate::CF_WRITE, key.as_bytes(), b"value")
                .unwrap();
        }
        kv.write(&wb, false).unwrap();
        kv.flush().unwrap();
        for cf in [CF_DEFAULT, crate::CF_WRITE] {
            let handle = kv.cf(cf).unwrap();
            let capacity = kv
                .db
                .property_int_value_cf(handle, "rocksdb.block-cache-capacity")
                .unwrap();
            assert_eq!(capacity, Some(CACHE), "CF {cf}'s block cache");
        }
        // Bytes of bloom filter in a column family's table files, from their properties.
        let filter_bytes = |cf: &str| -> u64 {
            let handle = kv.cf(cf).unwrap();
            let props = kv
                .db
                .property_value_cf(handle, "rocksdb.aggregated-table-properties")
                .unwrap()
                .unwrap_or_default();
            let size = props
                .split("; ")
                .find_map(|p| p.strip_prefix("filter block size="))
                .unwrap_or_else(|| panic!("CF {cf}: no filter size in {props}"));
            size.parse().unwrap()
        };
        assert!(
            filter_bytes(CF_DEFAULT) > 0,
            "CF default has no bloom filter"
        );
        assert_eq!(
            filter_bytes(crate::CF_WRITE),
            0,
            "CF write has a bloom filter"
        );
        // Reads go through the filter and still find what is there.
        assert_eq!(
            kv.get_value_cf(CF_DEFAULT, b"zk00042").unwrap().as_deref(),
            Some(&b"value"[..])
        );
        assert_eq!(kv.get_value_cf(CF_DEFAULT, b"zk99999").unwrap(), None);
    }

    /// A point read of a key the memtable does not hold is answered by the memtable's bloom
    /// filter, without a skip-list search, and reads still find every key the memtable
    /// holds; with `memtable-bloom-size-ratio = 0` the memtable has no filter to consult.
    #[test]
    fn point_reads_consult_the_memtable_bloom_filter() {
        use rocksdb::perf::{set_perf_stats, PerfContext, PerfMetric, PerfStatsLevel};
        // Memtable filter checks a `get` of each key made: (hits, misses), counted by
        // RocksDB's per-thread perf context.
        let bloom_checks = |ratio: f64| -> (u64, u64) {
            let dir = tempfile::tempdir().unwrap();
            let options = KvEngineOptions {
                memtable_bloom_size_ratio: ratio,
                ..Default::default()
            };
            let kv = KvEngine::open_with(dir.path(), &options).unwrap();
            let mut wb = KvWriteBatch::new();
            for i in 0..100u32 {
                wb.put_cf(CF_DEFAULT, format!("zk{i:05}").as_bytes(), b"value")
                    .unwrap();
            }
            kv.write(&wb, false).unwrap();
            set_perf_stats(PerfStatsLevel::EnableCount);
            let mut perf = PerfContext::default();
            perf.reset();
            for i in 0..100u32 {
                let present = format!("zk{i:05}");
                assert_eq!(
                    kv.get_value_cf(CF_DEFAULT, present.as_bytes())
                        .unwrap()
                        .as_deref(),
                    Some(&b"value"[..]),
                    "{present} is in the memtable"
                );
                let absent = format!("zk{:05}", 1000 + i);
                assert_eq!(
                    kv.get_value_cf(CF_DEFAULT, absent.as_bytes()).unwrap(),
                    None
                );
            }
            let checks = (
                perf.metric(PerfMetric::BloomMemtableHitCount),
                perf.metric(PerfMetric::BloomMemtableMissCount),
            );
            set_perf_stats(PerfStatsLevel::Disable);
            checks
        };
        let (hits, misses) = bloom_checks(0.02);
        assert!(
            misses >= 90,
            "most absent keys are ruled out by the filter: {misses} of 100"
        );
        assert!(hits >= 100, "present keys pass the filter: {hits}");
        assert_eq!(bloom_checks(0.0), (0, 0), "no filter, no checks");
    }

    /// Values written with a few bytes of apply state in CF raft each time (as the apply
    /// pool does): the cap makes RocksDB flush, so the WAL stays near the cap instead of
    /// holding every value written.
    #[test]
    fn the_write_ahead_log_stays_near_its_cap() {
        const CAP: u64 = 4 * 1024 * 1024;
        let dir = tempfile::tempdir().unwrap();
        let options = KvEngineOptions {
            max_total_wal_size: CAP,
            ..Default::default()
        };
        let kv = KvEngine::open_with(dir.path(), &options).unwrap();
        let value = vec![7u8; 64 * 1024];
        for i in 0..640u32 {
            let mut wb = KvWriteBatch::new();
            wb.put_cf(CF_DEFAULT, format!("zk{i:05}").as_bytes(), &value)
                .unwrap();
            wb.put_cf(crate::CF_RAFT, b"apply_state", &i.to_le_bytes())
                .unwrap();
            kv.write(&wb, false).unwrap();
        }
        // 40 MiB written; without the cap every byte stays in the WAL. Flushes run in the
        // background, so the old files may take a moment to go. RocksDB checks the cap when a
        // write comes in: when its flushes fell behind the burst (a busy disk), only later
        // writes make it flush the rest. The apply pool keeps writing its few bytes of apply
        // state, and so does this wait; those writes alone never fill a memtable.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut wal = wal_bytes(dir.path());
        let mut i = 640u32;
        while wal >= 4 * CAP && std::time::Instant::now() < deadline {
            let mut wb = KvWriteBatch::new();
            wb.put_cf(crate::CF_RAFT, b"apply_state", &i.to_le_bytes())
                .unwrap();
            kv.write(&wb, false).unwrap();
            i += 1;
            std::thread::sleep(std::time::Duration::from_millis(50));
            wal = wal_bytes(dir.path());
        }
        assert!(wal < 4 * CAP, "WAL holds {wal} bytes with a cap of {CAP}");
    }

    /// With direct I/O on, flushes write their table files through it (RocksDB records the
    /// option it runs with), and what was flushed reads back, after a reopen as well.
    #[test]
    fn flushes_write_table_files_with_direct_io_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let options = KvEngineOptions {
            block_cache_size: 16 * 1024 * 1024,
            direct_io_for_flush_and_compaction: true,
            ..Default::default()
        };
        let value = vec![7u8; 1024];
        {
            let kv = KvEngine::open_with(dir.path(), &options).unwrap();
            let mut wb = KvWriteBatch::new();
            for i in 0..2000u32 {
                wb.put_cf(CF_DEFAULT, format!("zk{i:05}").as_bytes(), &value)
                    .unwrap();
            }
            kv.write(&wb, false).unwrap();
            kv.flush().unwrap();
            let tables = kv.db.live_files().unwrap();
            assert!(!tables.is_empty(), "the flush wrote no table file");
        }
        let recorded = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("OPTIONS-"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap())
            .any(|text| text.contains("use_direct_io_for_flush_and_compaction=true"));
        assert!(recorded, "RocksDB did not run with direct I/O for flushes");
        assert!(!dir.path().join(DIRECT_IO_PROBE).exists());
        let kv = KvEngine::open_with(dir.path(), &options).unwrap();
        for i in [0u32, 999, 1999] {
            let got = kv
                .get_value_cf(CF_DEFAULT, format!("zk{i:05}").as_bytes())
                .unwrap();
            assert_eq!(got.as_deref(), Some(&value[..]), "key {i}");
        }
    }

    /// A directory in which a file cannot be opened with `O_DIRECT` is refused before
    /// RocksDB starts, with the setting named, and the probe file is not left behind.
    #[test]
    fn a_directory_without_direct_io_is_refused_naming_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        // A plain file where the probe's directory should be: the open fails (ENOTDIR) the
        // way it does (EINVAL) on a file system without direct I/O.
        let not_a_dir = dir.path().join("file");
        std::fs::write(&not_a_dir, b"x").unwrap();
        match check_direct_io(&not_a_dir) {
            Err(Error::InvalidOptions(why)) => {
                assert!(why.contains("direct-io-for-flush-and-compaction"), "{why}");
                assert!(why.contains("file"), "{why}");
            }
            other => panic!("expected InvalidOptions, got {other:?}"),
        }
        check_direct_io(dir.path()).unwrap();
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(left.len(), 1, "only the plain file remains: {left:?}");
    }

    /// With `prepopulate-block-cache = "flush-and-compaction"`, a flush puts the blocks it
    /// writes into the block cache before anything reads them; by default it does not.
    #[test]
    fn prepopulated_block_cache_holds_flushed_blocks_before_any_read() {
        let cached_after_flush = |mode: PrepopulateBlockCache| -> u64 {
            let dir = tempfile::tempdir().unwrap();
            let options = KvEngineOptions {
                block_cache_size: 64 * 1024 * 1024,
                direct_io_for_flush_and_compaction: true,
                prepopulate_block_cache: mode,
                ..Default::default()
            };
            let kv = KvEngine::open_with(dir.path(), &options).unwrap();
            let mut wb = KvWriteBatch::new();
            for i in 0..4000u32 {
                wb.put_cf(CF_DEFAULT, format!("zk{i:05}").as_bytes(), &[3u8; 1024])
                    .unwrap();
            }
            kv.write(&wb, false).unwrap();
            kv.flush().unwrap();
            let handle = kv.cf(CF_DEFAULT).unwrap();
            kv.db
                .property_int_value_cf(handle, "rocksdb.block-cache-usage")
                .unwrap()
                .unwrap()
        };
        let warmed = cached_after_flush(PrepopulateBlockCache::FlushAndCompaction);
        let cold = cached_after_flush(PrepopulateBlockCache::Disable);
        // 4,000 values of 1 KiB: about 4 MiB of data blocks.
        assert!(
            warmed >= 4_000 * 1024,
            "{warmed} bytes cached after the flush"
        );
        assert!(cold < 1024 * 1024, "{cold} bytes cached without warming");
    }
}
