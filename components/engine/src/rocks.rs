//! RocksDB plumbing shared by the live engine, its snapshots and SST files: error
//! translation, bounded read options and the raw iterator loop.

use std::path::Path;

use rocksdb::{DBRawIteratorWithThreadMode, ReadOptions, DB};

use crate::error::{Error, Result};
use crate::read::ScanVisitor;

/// Read options limited to `[start, end)`.
pub(crate) fn bounded(start: &[u8], end: &[u8]) -> ReadOptions {
    let mut opts = ReadOptions::default();
    opts.set_iterate_lower_bound(start.to_vec());
    if !end.is_empty() {
        opts.set_iterate_upper_bound(end.to_vec());
    }
    opts
}

pub(crate) fn rocks_error(path: &Path, e: rocksdb::Error) -> Error {
    let msg = e.into_string();
    if msg.starts_with("Corruption") {
        Error::Corruption {
            path: path.to_path_buf(),
            detail: msg,
        }
    } else {
        Error::RocksDb {
            path: path.to_path_buf(),
            msg,
        }
    }
}

/// Drives a bounded raw iterator in either direction.
pub(crate) fn scan_raw(
    mut iter: DBRawIteratorWithThreadMode<'_, DB>,
    reverse: bool,
    path: &Path,
    f: &mut ScanVisitor<'_>,
) -> Result<()> {
    if reverse {
        iter.seek_to_last();
    } else {
        iter.seek_to_first();
    }
    while iter.valid() {
        let (Some(k), Some(v)) = (iter.key(), iter.value()) else {
            break;
        };
        if !f(k, v)? {
            return Ok(());
        }
        if reverse {
            iter.prev();
        } else {
            iter.next();
        }
    }
    iter.status().map_err(|e| rocks_error(path, e))
}
