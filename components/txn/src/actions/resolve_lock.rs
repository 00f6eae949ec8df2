//! ResolveLock: once a transaction's fate is known (from its primary, or its secondaries),
//! its remaining locks in a region are committed or rolled back accordingly.
//!
//! Rules (reference §2.6; TiKV `src/storage/txn/commands/resolve_lock.rs`):
//! 1. commit_ts = 0: the transaction was rolled back → roll the lock back (`rollback_lock`,
//!    unprotected unless the key is the primary, as BatchRollback does).
//! 2. commit_ts > lock.ts: the transaction committed → commit the lock at commit_ts. A
//!    pessimistic lock whose commit finds nothing to do is tolerated (TiKV: such locks can be
//!    left behind by a committed transaction that retried its pessimistic locking).
//! 3. Otherwise (0 < commit_ts <= lock.ts) → `InvalidTxnTso`.
//!
//! The region-wide form scans the region's locks whose start_ts is in the request's map
//! (`start_version → commit_version`, or `txn_infos`), in key order, a bounded batch at a
//! time; the command layer calls it again from the returned key until it returns `None`.

use std::collections::HashMap;

use engine::KvRead;

use crate::actions::commit::commit_key;
use crate::actions::rollback::rollback_lock;
use crate::errors::{Error, Result};
use crate::mvcc::{Key, Lock, LockType, MvccReader, MvccTxn};

/// Resolves `lock`, found on `key`, knowing its transaction committed at `commit_ts` (or was
/// rolled back, `commit_ts == 0`), by the rules of this module.
pub fn resolve_lock<S: KvRead>(
    reader: &MvccReader<'_, S>,
    txn: &mut MvccTxn,
    key: &Key,
    lock: &Lock,
    commit_ts: u64,
) -> Result<()> {
    if commit_ts == 0 {
        return rollback_lock(txn, reader, key, lock, false);
    }
    if commit_ts <= lock.ts {
        return Err(Error::InvalidTxnTso {
            start_ts: lock.ts,
            commit_ts,
        });
    }
    match commit_key(reader, txn, key, lock.ts, commit_ts) {
        Err(Error::TxnLockNotFound { .. }) if lock.lock_type == LockType::Pessimistic => Ok(()),
        other => other,
    }
}

/// Resolves the locks in `[start, end)` (encoded keys, the region's bounds; empty `end` =
/// unbounded) whose start_ts is a key of `txn_status` (start_ts → commit_ts, 0 = rolled
/// back), in key order, at most `limit` of them (0 = no limit).
///
/// Returns how many locks were resolved and, if more such locks remain, the encoded key of
/// the next one: the (inclusive) `start` of the next call. Stops at the first error; the
/// changes made so far are then to be discarded with the command.
pub fn resolve_locks_in_range<S: KvRead>(
    reader: &MvccReader<'_, S>,
    txn: &mut MvccTxn,
    start: &[u8],
    end: &[u8],
    txn_status: &HashMap<u64, u64>,
    limit: usize,
) -> Result<(usize, Option<Vec<u8>>)> {
    // One lock past the limit tells whether there is more to do.
    let scan_limit = if limit == 0 { 0 } else { limit + 1 };
    let mut locks =
        reader.scan_locks(start, end, |l| txn_status.contains_key(&l.ts), scan_limit)?;
    let next = if limit != 0 && locks.len() > limit {
        locks.pop().map(|(key, _)| key.into_encoded())
    } else {
        None
    };
    for (key, lock) in &locks {
        // The scan's filter guarantees an entry; never guess a status without one.
        if let Some(&commit_ts) = txn_status.get(&lock.ts) {
            resolve_lock(reader, txn, key, lock, commit_ts)?;
        }
    }
    Ok((locks.len(), next))
}

#[cfg(test)]
mod tests {
    use engine::KvEngine;
    use proto::kvrpcpb::Op;

    use super::*;
    use crate::actions::prewrite::test_support::*;
    use crate::mvcc::{TxnCommitRecord, WriteType};
    use crate::test_util::{apply, engine, record};

    fn resolve_one(kv: &KvEngine, key: &[u8], commit_ts: u64) -> Result<()> {
        let lock = lock_of(kv, key).expect("a lock to resolve");
        act(kv, |r, t| {
            resolve_lock(r, t, &Key::from_raw(key), &lock, commit_ts)
        })
    }

    #[test]
    fn commit_ts_zero_rolls_the_lock_back() {
        let (_dir, kv) = engine();
        must_prewrite(
            &kv,
            &[mutation(Op::Put, b"p", b"1"), mutation(Op::Put, b"s", b"2")],
            b"p",
            10,
            3000,
        );
        resolve_one(&kv, b"s", 0).unwrap();
        resolve_one(&kv, b"p", 0).unwrap();
        for (key, protected) in [(&b"s"[..], false), (b"p", true)] {
            assert!(lock_of(&kv, key).is_none());
            match record(&kv, key, 10) {
                TxnCommitRecord::SingleRecord { write, .. } => {
                    assert_eq!(write.write_type, WriteType::Rollback);
                    assert_eq!(write.protected, protected, "{key:?}");
                }
                other => panic!("expected a rollback, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_later_commit_ts_commits_the_lock() {
        let (_dir, kv) = engine();
        must_prewrite_put(&kv, b"s", b"v", b"p", 10);
        resolve_one(&kv, b"s", 15).unwrap();
        assert!(lock_of(&kv, b"s").is_none());
        assert_eq!(record(&kv, b"s", 10).committed_ts(), Some(15));
        let got = MvccReader::new(&kv).get(&Key::from_raw(b"s"), 15).unwrap();
        assert_eq!(got, Some(b"v".to_vec()));
    }

    #[test]
    fn a_commit_ts_not_above_the_lock_is_invalid() {
        let (_dir, kv) = engine();
        must_prewrite_put(&kv, b"s", b"v", b"p", 10);
        let lock = lock_of(&kv, b"s").unwrap();
        for commit_ts in [5, 10] {
            let (res, t) = try_act(&kv, |r, t| {
                resolve_lock(r, t, &Key::from_raw(b"s"), &lock, commit_ts)
            });
            assert!(
                matches!(res, Err(Error::InvalidTxnTso { start_ts: 10, commit_ts: c }) if c == commit_ts)
            );
            assert!(t.is_empty());
        }
    }

    #[test]
    fn a_committed_pessimistic_lock_is_just_removed() {
        let (_dir, kv) = engine();
        let lock = Lock {
            for_update_ts: 10,
            ..Lock::new(LockType::Pessimistic, b"p".to_vec(), 10, 3000)
        };
        let mut t = MvccTxn::new();
        t.put_lock(&Key::from_raw(b"s"), &lock);
        apply(&kv, t.modifies());
        resolve_one(&kv, b"s", 15).unwrap();
        assert!(lock_of(&kv, b"s").is_none());
        assert_eq!(record(&kv, b"s", 10), TxnCommitRecord::None);
        // A stale pessimistic lock whose key is already gone is tolerated too.
        let (res, t) = try_act(&kv, |r, t| {
            resolve_lock(r, t, &Key::from_raw(b"s"), &lock, 15)
        });
        assert!(res.is_ok() && t.is_empty());
        // A stale prewrite lock is not.
        let stale = Lock::new(LockType::Put, b"p".to_vec(), 10, 3000);
        let (res, _) = try_act(&kv, |r, t| {
            resolve_lock(r, t, &Key::from_raw(b"s"), &stale, 15)
        });
        assert!(matches!(res, Err(Error::TxnLockNotFound { .. })));
    }

    /// Transaction 10 (committed at 15) locks a, c, e; transaction 20 (rolled back) locks b,
    /// d; transaction 30 (not in the map) locks f.
    fn three_transactions(kv: &KvEngine) -> HashMap<u64, u64> {
        let puts = |names: &[&[u8]]| -> Vec<_> {
            names.iter().map(|k| mutation(Op::Put, k, b"v")).collect()
        };
        must_prewrite(kv, &puts(&[b"a", b"c", b"e"]), b"a", 10, 3000);
        must_prewrite(kv, &puts(&[b"b", b"d"]), b"b", 20, 3000);
        must_prewrite(kv, &puts(&[b"f"]), b"f", 30, 3000);
        HashMap::from([(10, 15), (20, 0)])
    }

    #[test]
    fn a_range_is_resolved_by_each_transactions_status() {
        let (_dir, kv) = engine();
        let status = three_transactions(&kv);
        let (n, next) = act(&kv, |r, t| {
            resolve_locks_in_range(r, t, b"", b"", &status, 0)
        })
        .unwrap();
        assert_eq!((n, next), (5, None));
        for k in [&b"a"[..], b"c", b"e"] {
            assert_eq!(record(&kv, k, 10).committed_ts(), Some(15));
            assert!(lock_of(&kv, k).is_none());
        }
        for k in [&b"b"[..], b"d"] {
            assert!(record(&kv, k, 20).is_rolled_back());
            assert!(lock_of(&kv, k).is_none());
        }
        assert_eq!(lock_of(&kv, b"f").unwrap().ts, 30, "not in the map");
    }

    #[test]
    fn a_range_is_resolved_in_batches_within_its_bounds() {
        let (_dir, kv) = engine();
        let status = three_transactions(&kv);
        let start = Key::from_raw(b"b").into_encoded();
        let end = Key::from_raw(b"f").into_encoded();
        let (n, next) = act(&kv, |r, t| {
            resolve_locks_in_range(r, t, &start, &end, &status, 2)
        })
        .unwrap();
        assert_eq!(n, 2);
        assert_eq!(next, Some(Key::from_raw(b"d").into_encoded()));
        assert!(lock_of(&kv, b"b").is_none() && lock_of(&kv, b"c").is_none());
        assert!(lock_of(&kv, b"d").is_some());
        let from = next.unwrap();
        let (n, next) = act(&kv, |r, t| {
            resolve_locks_in_range(r, t, &from, &end, &status, 2)
        })
        .unwrap();
        assert_eq!((n, next), (2, None));
        assert!(lock_of(&kv, b"d").is_none() && lock_of(&kv, b"e").is_none());
        // Outside the bounds nothing moved.
        assert!(lock_of(&kv, b"a").is_some() && lock_of(&kv, b"f").is_some());
        // Exactly `limit` left: no continuation.
        let (n, next) = act(&kv, |r, t| {
            resolve_locks_in_range(r, t, b"", &end, &status, 1)
        })
        .unwrap();
        assert_eq!((n, next), (1, None));
    }

    #[test]
    fn an_invalid_status_fails_the_range() {
        let (_dir, kv) = engine();
        must_prewrite_put(&kv, b"a", b"v", b"a", 10);
        let status = HashMap::from([(10, 5)]);
        let (res, _) = try_act(&kv, |r, t| {
            resolve_locks_in_range(r, t, b"", b"", &status, 0)
        });
        assert!(matches!(res, Err(Error::InvalidTxnTso { .. })));
    }
}
