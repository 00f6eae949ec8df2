//! The store-wide state that keeps async commit and 1PC snapshot-safe (TiKV's
//! `components/concurrency_manager`):
//!
//! - `max_ts`, the highest timestamp any read or status check has used on this store.
//!   Async-commit and 1PC prewrites take their commit timestamps above it, so a commit never
//!   lands at or below a read that has already happened (reference pitfall #2).
//! - `max_ts_limit`, how far max_ts may be raised: a recent PD timestamp plus an allowance.
//!   A read at a timestamp far ahead of PD's clock would otherwise push every later
//!   async-commit and 1PC commit that far ahead, out of sight of fresh snapshots until PD's
//!   clock catches up (reference pitfall #4); such a read is refused instead (newer TiKV
//!   bounds max_ts the same way).
//! - The in-memory lock table: the locks of async-commit and 1PC prewrites from the moment
//!   their min_commit_ts is chosen until their write is applied. Reads take no latches, so a
//!   read could otherwise miss a lock that is decided but not yet applied, and a 1PC write
//!   has no persisted lock at all.
//!
//! The ordering rule (reference §2.7): a reader raises max_ts *before* it checks the table;
//! a prewrite chooses min_commit_ts from max_ts *while* putting its locks in the table, both
//! under the table's mutex. So either the reader finds the lock, or the prewrite saw the
//! reader's timestamp and commits above it.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::mvcc::{Key, Lock};

/// A lock in the table: the lock as it will be (or, for 1PC, would have been) written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryLock {
    /// The raw user key, for the `LockInfo` a blocked reader gets.
    pub raw_key: Vec<u8>,
    pub lock: Lock,
    /// A 1PC write: it commits without a persisted lock, so like an async-commit lock it may
    /// be committed while this entry is visible (no "read of the latest skips a primary's
    /// lock" shortcut applies).
    pub one_pc: bool,
}

/// Shared by every command of a store.
#[derive(Debug, Default)]
pub struct ConcurrencyManager {
    max_ts: AtomicU64,
    /// The highest value max_ts may take (0: no bound known yet, as before the first PD
    /// timestamp arrives). Only grows.
    max_ts_limit: AtomicU64,
    /// Encoded key → (owning guard's id, its memory lock). A key's latch is held from before
    /// its entry goes in until its write is applied, but the guard may be dropped after the
    /// latch is released, when the key's next writer has already put its own entry there:
    /// a guard removes only the entries it owns.
    lock_table: Mutex<BTreeMap<Vec<u8>, (u64, MemoryLock)>>,
    next_guard: AtomicU64,
}

/// The memory locks of one prewrite; dropping it (once the write is applied, or when it
/// failed) takes them out of the table, unless a later prewrite of the key replaced them.
#[derive(Debug)]
pub struct MemoryLockGuard {
    cm: Arc<ConcurrencyManager>,
    id: u64,
    keys: Vec<Vec<u8>>,
}

impl ConcurrencyManager {
    /// A manager whose max_ts starts at `initial` (a fresh PD timestamp at start-up).
    pub fn new(initial: u64) -> ConcurrencyManager {
        ConcurrencyManager {
            max_ts: AtomicU64::new(initial),
            max_ts_limit: AtomicU64::new(0),
            lock_table: Mutex::default(),
            next_guard: AtomicU64::new(0),
        }
    }

    /// The highest timestamp seen so far.
    pub fn max_ts(&self) -> u64 {
        self.max_ts.load(Ordering::SeqCst)
    }

    /// Raises max_ts to `ts`; it never goes down. `u64::MAX` (a read of "the latest"
    /// version, not a real timestamp) is ignored, as TiKV does, so it cannot push every later
    /// commit timestamp out of reach. Errors: `TimestampTooFarAhead` when `ts` is above the
    /// limit (`set_max_ts_limit`); max_ts is then left as it was.
    pub fn update_max_ts(&self, ts: u64) -> crate::Result<()> {
        if ts == u64::MAX {
            return Ok(());
        }
        let limit = self.max_ts_limit();
        if limit != 0 && ts > limit {
            return Err(crate::Error::TimestampTooFarAhead { ts, limit });
        }
        self.max_ts.fetch_max(ts, Ordering::SeqCst);
        Ok(())
    }

    /// The highest timestamp max_ts may be raised to; 0 while no bound is known.
    pub fn max_ts_limit(&self) -> u64 {
        self.max_ts_limit.load(Ordering::SeqCst)
    }

    /// Allows max_ts up to `limit` (a composed timestamp: a recent PD timestamp plus the
    /// allowed drift). The limit never goes down.
    pub fn set_max_ts_limit(&self, limit: u64) {
        self.max_ts_limit.fetch_max(limit, Ordering::SeqCst);
    }

    /// Puts `locks` (encoded key, raw key, lock) of the transaction at `start_ts` in the
    /// table and chooses their commit timestamp, atomically with respect to readers:
    /// `max(max_ts, start_ts, for_update_ts) + 1`, and at least `floor` (the request's
    /// min_commit_ts) and the locks' own min_commit_ts. Every lock put in the table carries
    /// the chosen value as its min_commit_ts. Returns the guard that keeps them there and the
    /// timestamp (TiKV `async_commit_timestamps`). The caller refuses a start_ts or
    /// for_update_ts of `u64::MAX`; the sum saturates rather than wrap.
    pub fn lock_for_commit(
        self: &Arc<Self>,
        locks: Vec<(Key, Vec<u8>, Lock)>,
        start_ts: u64,
        for_update_ts: u64,
        floor: u64,
        one_pc: bool,
    ) -> (MemoryLockGuard, u64) {
        let id = self.next_guard.fetch_add(1, Ordering::Relaxed);
        let mut table = self.lock_table.lock();
        let above = self
            .max_ts()
            .max(start_ts)
            .max(for_update_ts)
            .saturating_add(1);
        let min_commit_ts = locks
            .iter()
            .map(|(_, _, lock)| lock.min_commit_ts)
            .fold(floor.max(above), u64::max);
        let mut keys = Vec::with_capacity(locks.len());
        for (key, raw_key, mut lock) in locks {
            lock.min_commit_ts = min_commit_ts;
            let encoded = key.into_encoded();
            let entry = MemoryLock {
                raw_key,
                lock,
                one_pc,
            };
            table.insert(encoded.clone(), (id, entry));
            keys.push(encoded);
        }
        let guard = MemoryLockGuard {
            cm: self.clone(),
            id,
            keys,
        };
        (guard, min_commit_ts)
    }

    /// Runs `check` on the memory lock of `key`, if any. Raise max_ts first.
    pub fn read_key_check<E>(
        &self,
        key: &Key,
        check: impl FnOnce(&MemoryLock) -> Result<(), E>,
    ) -> Result<(), E> {
        match self.lock_table.lock().get(key.as_encoded()) {
            Some((_, lock)) => check(lock),
            None => Ok(()),
        }
    }

    /// Runs `check` on every memory lock with an encoded key in `[start, end)` (an empty
    /// `end` is unbounded), in key order, stopping at the first error. Raise max_ts first.
    pub fn read_range_check<E>(
        &self,
        start: &[u8],
        end: &[u8],
        mut check: impl FnMut(&MemoryLock) -> Result<(), E>,
    ) -> Result<(), E> {
        let upper = if end.is_empty() {
            Bound::Unbounded
        } else {
            Bound::Excluded(end)
        };
        let table = self.lock_table.lock();
        for (_, (_, lock)) in table.range::<[u8], _>((Bound::Included(start), upper)) {
            check(lock)?;
        }
        Ok(())
    }

    /// Memory locks held right now.
    pub fn memory_locks(&self) -> usize {
        self.lock_table.lock().len()
    }
}

impl Drop for MemoryLockGuard {
    fn drop(&mut self) {
        let mut table = self.cm.lock_table.lock();
        for key in &self.keys {
            if table.get(key).is_some_and(|(owner, _)| *owner == self.id) {
                table.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::LockType;

    fn lock(start_ts: u64) -> Lock {
        Lock::new(LockType::Put, b"p".to_vec(), start_ts, 3000)
    }

    fn entry(raw: &[u8], start_ts: u64) -> (Key, Vec<u8>, Lock) {
        (Key::from_raw(raw), raw.to_vec(), lock(start_ts))
    }

    #[test]
    fn max_ts_only_grows_and_ignores_the_latest_marker() {
        let cm = ConcurrencyManager::new(10);
        cm.update_max_ts(5).unwrap();
        assert_eq!(cm.max_ts(), 10);
        cm.update_max_ts(20).unwrap();
        assert_eq!(cm.max_ts(), 20);
        cm.update_max_ts(u64::MAX).unwrap();
        assert_eq!(cm.max_ts(), 20);
    }

    #[test]
    fn max_ts_is_not_raised_past_its_limit() {
        let cm = ConcurrencyManager::new(10);
        cm.update_max_ts(1_000_000).unwrap();
        cm.set_max_ts_limit(100);
        cm.set_max_ts_limit(50);
        assert_eq!(cm.max_ts_limit(), 100, "the limit never goes down");
        cm.update_max_ts(100).unwrap();
        let err = cm.update_max_ts(101).unwrap_err();
        assert!(
            matches!(
                err,
                crate::Error::TimestampTooFarAhead {
                    ts: 101,
                    limit: 100
                }
            ),
            "{err:?}"
        );
        assert!(err.to_key_error().is_some_and(|e| !e.abort.is_empty()));
        assert_eq!(cm.max_ts(), 1_000_000, "a refused update changes nothing");
        cm.update_max_ts(u64::MAX).unwrap();
    }

    #[test]
    fn the_commit_ts_is_above_every_read_seen_and_every_bound() {
        let cm = Arc::new(ConcurrencyManager::new(0));
        cm.update_max_ts(50).unwrap();
        let (_guard, ts) = cm.lock_for_commit(vec![entry(b"a", 10)], 10, 0, 0, false);
        assert_eq!(ts, 51);
        let (_guard, ts) = cm.lock_for_commit(vec![entry(b"b", 10)], 10, 60, 0, false);
        assert_eq!(ts, 61, "above for_update_ts");
        let (_guard, ts) = cm.lock_for_commit(vec![entry(b"c", 10)], 10, 0, 70, false);
        assert_eq!(ts, 70, "at least the floor");
        let (_guard, ts) = cm.lock_for_commit(vec![entry(b"d", 80)], 80, 0, 0, false);
        assert_eq!(ts, 81, "above start_ts");
    }

    #[test]
    fn readers_see_the_locks_until_the_guard_is_dropped() {
        let cm = Arc::new(ConcurrencyManager::new(0));
        let (guard, ts) =
            cm.lock_for_commit(vec![entry(b"a", 10), entry(b"c", 10)], 10, 0, 0, true);
        let mut seen = Vec::new();
        cm.read_range_check(
            Key::from_raw(b"a").as_encoded(),
            Key::from_raw(b"b").as_encoded(),
            |l| {
                seen.push((l.raw_key.clone(), l.lock.min_commit_ts, l.one_pc));
                Ok::<(), ()>(())
            },
        )
        .unwrap();
        assert_eq!(seen, vec![(b"a".to_vec(), ts, true)]);
        let blocked = cm.read_key_check(&Key::from_raw(b"c"), |_| Err("locked"));
        assert_eq!(blocked, Err("locked"));
        assert_eq!(cm.read_range_check(b"", b"", |_| Err(())), Err(()));
        drop(guard);
        assert_eq!(cm.memory_locks(), 0);
        assert_eq!(
            cm.read_key_check(&Key::from_raw(b"c"), |_| Err("locked")),
            Ok(())
        );
    }

    #[test]
    fn a_late_guard_leaves_the_next_writers_lock_in_place() {
        // The first writer's guard outlives its latch; the key's next writer has already put
        // its own lock there, which must stay until that writer's own guard goes.
        let cm = Arc::new(ConcurrencyManager::new(0));
        let (first, _) = cm.lock_for_commit(vec![entry(b"k", 10)], 10, 0, 0, true);
        let (second, _) = cm.lock_for_commit(vec![entry(b"k", 20)], 20, 0, 0, true);
        drop(first);
        let seen = cm.read_key_check(&Key::from_raw(b"k"), |l| Err(l.lock.ts));
        assert_eq!(seen, Err(20));
        drop(second);
        assert_eq!(cm.memory_locks(), 0);
    }

    #[test]
    fn timestamps_at_the_top_of_the_range_do_not_overflow() {
        let cm = Arc::new(ConcurrencyManager::new(0));
        let (_guard, ts) = cm.lock_for_commit(vec![], u64::MAX, 0, 0, false);
        assert_eq!(ts, u64::MAX);
    }
}
