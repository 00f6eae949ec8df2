//! A consistent, owned point-in-time view of the KV engine.

use std::path::PathBuf;
use std::sync::Arc;

use rocksdb::{SnapshotWithThreadMode, DB};

use crate::error::{Error, Result};
use crate::range_stats::{self, RangeStats};
use crate::read::{KvRead, ScanVisitor};
use crate::rocks::{bounded, rocks_error, scan_raw};

struct Inner {
    // Declared before `db` so it is dropped first: the snapshot borrows the database.
    snap: SnapshotWithThreadMode<'static, DB>,
    db: Arc<DB>,
    path: Arc<PathBuf>,
}

/// Reads at one point in time; cheap to clone and safe to move across threads.
#[derive(Clone)]
pub struct KvSnapshot {
    inner: Arc<Inner>,
}

impl KvSnapshot {
    pub(crate) fn new(db: Arc<DB>, path: Arc<PathBuf>) -> KvSnapshot {
        let snap = db.snapshot();
        // SAFETY: the snapshot borrows the `DB` inside `db`'s allocation, which `Inner` keeps
        // alive (and unmoved, behind the Arc) for at least as long as the snapshot: `snap` is
        // declared first and so is dropped before `db`.
        let snap: SnapshotWithThreadMode<'static, DB> = unsafe { std::mem::transmute(snap) };
        KvSnapshot {
            inner: Arc::new(Inner { snap, db, path }),
        }
    }

    /// `KvEngine::approximate_stats` on the engine this snapshot was taken from:
    /// the estimate describes the engine now, not the snapshot's point in time.
    pub fn approximate_stats(
        &self,
        cfs: &[(&str, bool)],
        start: &[u8],
        end: &[u8],
    ) -> Result<RangeStats> {
        range_stats::stats_by_name(&self.inner.db, &self.inner.path, cfs, start, end)
    }

    /// `KvEngine::approximate_split_keys` on the engine this snapshot was taken
    /// from (the engine now, not the snapshot's point in time).
    pub fn approximate_split_keys(
        &self,
        cfs: &[&str],
        start: &[u8],
        end: &[u8],
        pieces: range_stats::SplitPieces,
    ) -> Result<Vec<Vec<u8>>> {
        let (db, path) = (&self.inner.db, &self.inner.path);
        range_stats::split_keys_by_name(db, path, cfs, start, end, pieces)
    }

    fn cf(&self, cf: &str) -> Result<&rocksdb::ColumnFamily> {
        self.inner
            .db
            .cf_handle(cf)
            .ok_or_else(|| Error::UnknownCf(cf.to_string()))
    }
}

impl KvRead for KvSnapshot {
    fn get_value_cf(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let handle = self.cf(cf)?;
        self.inner
            .snap
            .get_cf(handle, key)
            .map_err(|e| rocks_error(&self.inner.path, e))
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
        let iter = self
            .inner
            .snap
            .raw_iterator_cf_opt(handle, bounded(start, end));
        scan_raw(iter, reverse, &self.inner.path, f)
    }
}
