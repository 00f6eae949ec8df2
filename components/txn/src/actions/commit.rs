//! Commit, the second phase of Percolator's two-phase commit: a key's lock becomes a commit
//! record in CF `write` at commit_ts.
//!
//! Rules (reference §2.4 and pitfalls #5, #9; TiKV `src/storage/txn/actions/commit.rs`):
//! 1. commit_ts <= start_ts → `InvalidRequest` (TiKV's command rejects it the same way).
//! 2. The transaction's lock is on the key:
//!    - commit_ts < lock.min_commit_ts → `CommitTsExpired` (a reader pushed the lock; the
//!      client retries the primary with a new timestamp);
//!    - a pessimistic lock (never prewritten: the key was locked but not written) is just
//!      removed;
//!    - otherwise (a prewrite lock: a pessimistic prewrite has already turned the key's
//!      pessimistic lock into one) a record of the lock's type (`Put`/`Delete`/`Lock`) at
//!      commit_ts, carrying the short value, and the lock is removed. If another
//!      transaction's rollback record already sits at key + commit_ts, the commit record
//!      takes its place with `has_overlapped_rollback` set, so that rollback is not lost
//!      (pitfall #5; TiKV keeps the same information in `lock.rollback_ts`).
//! 3. No lock of the transaction: its commit record on the key → success (a retried commit);
//!    a rollback record or nothing → `TxnLockNotFound` (a resolver rolled it back).

use engine::KvRead;

use crate::errors::{Error, Result};
use crate::mvcc::{Key, LockType, MvccReader, MvccTxn, Write, WriteType};

/// Commits `key` (a raw user key) of the transaction at `start_ts` at `commit_ts`, by the
/// rules of this module.
pub fn commit<S: KvRead>(
    reader: &MvccReader<'_, S>,
    txn: &mut MvccTxn,
    key: &[u8],
    start_ts: u64,
    commit_ts: u64,
) -> Result<()> {
    if commit_ts <= start_ts {
        return Err(Error::InvalidRequest(format!(
            "commit_ts {commit_ts} is not above start_ts {start_ts}"
        )));
    }
    commit_key(reader, txn, &Key::from_raw(key), start_ts, commit_ts)
}

/// [`commit`] on an MVCC key (as lock scans return them); used by lock resolution. The caller
/// has checked commit_ts > start_ts.
pub(crate) fn commit_key<S: KvRead>(
    reader: &MvccReader<'_, S>,
    txn: &mut MvccTxn,
    key: &Key,
    start_ts: u64,
    commit_ts: u64,
) -> Result<()> {
    let mut lock = match reader.load_lock(key)? {
        Some(lock) if lock.ts == start_ts => lock,
        _ => return check_committed(reader, key, start_ts, commit_ts),
    };
    if commit_ts < lock.min_commit_ts {
        return Err(Error::CommitTsExpired {
            start_ts,
            commit_ts,
            key: key.to_raw()?,
            min_commit_ts: lock.min_commit_ts,
        });
    }
    let Some(write_type) = WriteType::from_lock_type(lock.lock_type) else {
        // A pessimistic lock: nothing was written under it.
        debug_assert_eq!(lock.lock_type, LockType::Pessimistic);
        txn.unlock_key(key);
        return Ok(());
    };
    let mut write = Write::new(write_type, start_ts, lock.short_value.take());
    write.has_overlapped_rollback = rollback_at(reader, key, commit_ts)?;
    txn.put_write(key, commit_ts, &write);
    txn.unlock_key(key);
    Ok(())
}

/// Rule 3: without the lock, the commit stands only if it already happened.
fn check_committed<S: KvRead>(
    reader: &MvccReader<'_, S>,
    key: &Key,
    start_ts: u64,
    commit_ts: u64,
) -> Result<()> {
    if reader
        .get_txn_commit_record(key, start_ts)?
        .committed_ts()
        .is_some()
    {
        return Ok(());
    }
    Err(Error::TxnLockNotFound {
        start_ts,
        commit_ts,
        key: key.to_raw()?,
    })
}

/// Whether a rollback record (of another transaction, whose start_ts equals our commit_ts)
/// sits exactly at key + `commit_ts`.
pub(crate) fn rollback_at<S: KvRead>(
    reader: &MvccReader<'_, S>,
    key: &Key,
    commit_ts: u64,
) -> Result<bool> {
    Ok(matches!(
        reader.seek_write(key, commit_ts)?,
        Some((ts, w)) if ts == commit_ts && w.write_type == WriteType::Rollback
    ))
}

#[cfg(test)]
mod tests {
    use proto::kvrpcpb::Op;

    use super::*;
    use crate::actions::prewrite::test_support::*;
    use crate::mvcc::{Lock, TxnCommitRecord};
    use crate::test_util::{apply, engine};

    fn newest_write(kv: &engine::KvEngine, key: &[u8]) -> Option<(u64, Write)> {
        MvccReader::new(kv)
            .seek_write(&Key::from_raw(key), u64::MAX)
            .unwrap()
    }

    #[test]
    fn a_put_commits_as_a_put_record_with_its_short_value() {
        let (_dir, kv) = engine();
        must_prewrite_put(&kv, b"k", b"v", b"k", 10);
        act(&kv, |r, t| commit(r, t, b"k", 10, 15)).unwrap();
        assert!(lock_of(&kv, b"k").is_none());
        let (ts, w) = newest_write(&kv, b"k").unwrap();
        assert_eq!((ts, w.write_type, w.start_ts), (15, WriteType::Put, 10));
        assert_eq!(w.short_value, Some(b"v".to_vec()));
        assert!(!w.has_overlapped_rollback);
        let r = MvccReader::new(&kv);
        let k = Key::from_raw(b"k");
        assert_eq!(r.get(&k, 14).unwrap(), None);
        assert_eq!(r.get(&k, 15).unwrap(), Some(b"v".to_vec()));
    }

    #[test]
    fn a_long_value_stays_in_default_and_reads_back() {
        let (_dir, kv) = engine();
        let long = vec![3u8; 1000];
        must_prewrite_put(&kv, b"k", &long, b"k", 10);
        must_commit(&kv, b"k", 10, 15);
        let (_, w) = newest_write(&kv, b"k").unwrap();
        assert_eq!(w.short_value, None);
        let got = MvccReader::new(&kv).get(&Key::from_raw(b"k"), 20).unwrap();
        assert_eq!(got, Some(long));
    }

    #[test]
    fn delete_and_lock_locks_commit_as_their_types() {
        let (_dir, kv) = engine();
        must_prewrite(
            &kv,
            &[mutation(Op::Del, b"d", b""), mutation(Op::Lock, b"l", b"")],
            b"d",
            10,
            3000,
        );
        must_commit(&kv, b"d", 10, 15);
        must_commit(&kv, b"l", 10, 15);
        assert_eq!(
            newest_write(&kv, b"d").unwrap().1.write_type,
            WriteType::Delete
        );
        assert_eq!(
            newest_write(&kv, b"l").unwrap().1.write_type,
            WriteType::Lock
        );
    }

    #[test]
    fn commit_below_min_commit_ts_is_expired_and_keeps_the_lock() {
        let (_dir, kv) = engine();
        let mut lock = Lock::new(LockType::Put, b"k".to_vec(), 10, 3000);
        lock.min_commit_ts = 20;
        let mut t = MvccTxn::new();
        t.put_lock(&Key::from_raw(b"k"), &lock);
        apply(&kv, t.modifies());
        let (res, t) = try_act(&kv, |r, t| commit(r, t, b"k", 10, 19));
        assert!(matches!(
            res,
            Err(Error::CommitTsExpired { start_ts: 10, commit_ts: 19, min_commit_ts: 20, ref key }) if key == b"k"
        ));
        assert!(t.is_empty());
        // At min_commit_ts itself the commit goes through.
        act(&kv, |r, t| commit(r, t, b"k", 10, 20)).unwrap();
        assert_eq!(newest_write(&kv, b"k").unwrap().0, 20);
    }

    #[test]
    fn a_pessimistic_lock_is_just_removed() {
        let (_dir, kv) = engine();
        let mut lock = Lock::new(LockType::Pessimistic, b"k".to_vec(), 10, 3000);
        lock.for_update_ts = 12;
        let mut t = MvccTxn::new();
        t.put_lock(&Key::from_raw(b"k"), &lock);
        apply(&kv, t.modifies());
        act(&kv, |r, t| commit(r, t, b"k", 10, 15)).unwrap();
        assert!(lock_of(&kv, b"k").is_none());
        assert!(newest_write(&kv, b"k").is_none());
    }

    #[test]
    fn a_retried_commit_succeeds_and_writes_nothing() {
        let (_dir, kv) = engine();
        must_prewrite_put(&kv, b"k", b"v", b"k", 10);
        must_commit(&kv, b"k", 10, 15);
        let (res, t) = try_act(&kv, |r, t| commit(r, t, b"k", 10, 15));
        assert!(res.is_ok() && t.is_empty());
    }

    #[test]
    fn commit_after_rollback_or_without_prewrite_is_lock_not_found() {
        let (_dir, kv) = engine();
        must_prewrite_put(&kv, b"k", b"v", b"k", 10);
        act(&kv, |r, t| {
            crate::actions::rollback::rollback(r, t, b"k", 10, false)
        })
        .unwrap();
        let (res, t) = try_act(&kv, |r, t| commit(r, t, b"k", 10, 15));
        assert!(matches!(
            res,
            Err(Error::TxnLockNotFound { start_ts: 10, commit_ts: 15, ref key }) if key == b"k"
        ));
        assert!(t.is_empty());
        let (res, _) = try_act(&kv, |r, t| commit(r, t, b"never", 10, 15));
        assert!(matches!(res, Err(Error::TxnLockNotFound { .. })));
        // Another transaction's lock is not ours to commit.
        must_prewrite_put(&kv, b"other", b"v", b"other", 30);
        let (res, _) = try_act(&kv, |r, t| commit(r, t, b"other", 10, 15));
        assert!(matches!(res, Err(Error::TxnLockNotFound { .. })));
        assert_eq!(lock_of(&kv, b"other").unwrap().ts, 30);
    }

    #[test]
    fn commit_ts_not_above_start_ts_is_invalid() {
        let (_dir, kv) = engine();
        must_prewrite_put(&kv, b"k", b"v", b"k", 10);
        for commit_ts in [0, 9, 10] {
            let (res, t) = try_act(&kv, |r, t| commit(r, t, b"k", 10, commit_ts));
            assert!(matches!(res, Err(Error::InvalidRequest(_))) && t.is_empty());
        }
        assert!(lock_of(&kv, b"k").is_some());
    }

    #[test]
    fn a_commit_over_another_txns_rollback_keeps_the_rollback() {
        let (_dir, kv) = engine();
        must_prewrite_put(&kv, b"k", b"v", b"k", 10);
        // Transaction 15 was rolled back on `k` (protected) while ours was locked.
        let mut t = MvccTxn::new();
        t.put_write(&Key::from_raw(b"k"), 15, &Write::rollback(15, true));
        apply(&kv, t.modifies());
        act(&kv, |r, t| commit(r, t, b"k", 10, 15)).unwrap();
        let (ts, w) = newest_write(&kv, b"k").unwrap();
        assert_eq!((ts, w.write_type, w.start_ts), (15, WriteType::Put, 10));
        assert!(w.has_overlapped_rollback);
        let r = MvccReader::new(&kv);
        let k = Key::from_raw(b"k");
        // Both facts survive: 10 committed at 15, and 15 is rolled back.
        assert_eq!(
            r.get_txn_commit_record(&k, 10).unwrap().committed_ts(),
            Some(15)
        );
        assert_eq!(
            r.get_txn_commit_record(&k, 15).unwrap(),
            TxnCommitRecord::OverlappedRollback { commit_ts: 15 }
        );
        assert_eq!(r.get(&k, 15).unwrap(), Some(b"v".to_vec()));
    }
}
