//! Cluster-unique ids (stores, regions, peers). Ids are reserved on disk a batch at a time
//! before any of them is handed out, so after a restart allocation resumes past everything that
//! may have been given away, and ids never repeat.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::storage::Storage;

struct Range {
    /// The last id handed out (0 before the first).
    last: u64,
    /// Ids up to and including `end` are reserved on disk.
    end: u64,
}

pub struct IdAllocator {
    storage: Arc<Storage>,
    batch: u64,
    range: Mutex<Range>,
}

impl IdAllocator {
    /// Resumes after the persisted reservation (starting at 1 on a fresh data dir).
    pub fn open(storage: Arc<Storage>, batch: u64) -> Result<IdAllocator> {
        let end = storage.alloc_id_end()?.unwrap_or(0);
        Ok(IdAllocator {
            storage,
            batch: batch.max(1),
            range: Mutex::new(Range { last: end, end }),
        })
    }

    /// The next id; persists a new reservation first when the current one is used up.
    pub fn alloc(&self) -> Result<u64> {
        let mut range = self.range.lock();
        if range.last >= range.end {
            let end = range
                .last
                .checked_add(self.batch)
                .ok_or_else(|| Error::InvalidArgument("id space exhausted".into()))?;
            self.storage.save_alloc_id_end(end)?;
            range.end = end;
        }
        range.last += 1;
        Ok(range.last)
    }

    /// Makes sure ids handed out later are above `id` (used when ids arrive from outside, e.g.
    /// a bootstrap request).
    pub fn ensure_above(&self, id: u64) -> Result<()> {
        let mut range = self.range.lock();
        if range.last >= id {
            return Ok(());
        }
        if id > range.end {
            self.storage.save_alloc_id_end(id)?;
            range.end = id;
        }
        range.last = id;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_and_never_repeat_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut seen = Vec::new();
        for _ in 0..3 {
            let storage = Arc::new(Storage::open(dir.path()).unwrap());
            let ids = IdAllocator::open(storage.clone(), 4).unwrap();
            for _ in 0..6 {
                seen.push(ids.alloc().unwrap());
            }
            drop(ids);
            storage.close().unwrap();
        }
        assert_eq!(seen[0], 1);
        for w in seen.windows(2) {
            assert!(w[1] > w[0], "{seen:?}");
        }
    }

    #[test]
    fn ensure_above_skips_ids_seen_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Arc::new(Storage::open(dir.path()).unwrap());
        let ids = IdAllocator::open(storage.clone(), 10).unwrap();
        assert_eq!(ids.alloc().unwrap(), 1);
        ids.ensure_above(50).unwrap();
        assert_eq!(ids.alloc().unwrap(), 51);
        ids.ensure_above(3).unwrap();
        assert_eq!(ids.alloc().unwrap(), 52);
        drop(ids);
        let again = IdAllocator::open(storage, 10).unwrap();
        assert!(again.alloc().unwrap() > 52);
    }
}
