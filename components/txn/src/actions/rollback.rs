//! Rollback of one key of a transaction (TiKV's BatchRollback / Cleanup): the lock goes away
//! and a `Rollback` record at key + start_ts makes sure a late prewrite of the same
//! transaction fails.
//!
//! Rules (reference §2.4 and pitfalls #5, #6; TiKV `src/storage/txn/actions/cleanup.rs`,
//! `rollback_lock` / `make_rollback` / `collapse_prev_rollback` in
//! `actions/check_txn_status.rs`):
//! 1. The transaction's own lock: delete its long value from CF `default` (if any), write a
//!    Rollback record at start_ts, remove the lock. The record is *protected* (kept until GC,
//!    never collapsed) when the key is the transaction's primary (`lock.primary == key`) or
//!    the caller asks for it.
//! 2. No lock of the transaction: its commit record → `Committed` error; its rollback record
//!    → success, nothing written; nothing → a Rollback record anyway, so a prewrite that is
//!    still on its way fails with `SelfRolledBack`.
//! 3. Another transaction's commit record at exactly key + start_ts (its commit_ts equals our
//!    start_ts, possible with calculated commit timestamps) is never overwritten: a protected
//!    rollback sets `has_overlapped_rollback` on it, an unprotected one is dropped
//!    (pitfall #5).
//! 4. Writing a rollback record makes an older unprotected rollback just below it redundant
//!    (a late prewrite of that older transaction already conflicts with the new record), so
//!    it is deleted ("collapsed"), as TiKV does.

use engine::KvRead;

use crate::errors::{Error, Result};
use crate::mvcc::{Key, Lock, LockType, MvccReader, MvccTxn, TxnCommitRecord, Write, WriteType};

/// Rolls back `key` (a raw user key) of the transaction at `start_ts`, by the rules of this
/// module. `protect_rollback` asks for a protected record even off the primary.
pub fn rollback<S: KvRead>(
    reader: &MvccReader<'_, S>,
    txn: &mut MvccTxn,
    key: &[u8],
    start_ts: u64,
    protect_rollback: bool,
) -> Result<()> {
    if start_ts == 0 {
        return Err(Error::InvalidRequest("rollback with start_ts 0".into()));
    }
    let k = Key::from_raw(key);
    match reader.load_lock(&k)? {
        Some(lock) if lock.ts == start_ts => {
            rollback_lock(txn, reader, &k, &lock, protect_rollback)
        }
        _ => rollback_missing_lock(reader, txn, &k, start_ts, protect_rollback),
    }
}

/// Rolls back `lock`, the lock found on `key`, of the transaction at `lock.ts` (rule 1, with
/// rules 3 and 4). Shared by status checks and lock resolution. If the transaction already
/// has a rollback record here the lock is only removed; if it has a commit record the lock is
/// inconsistent with it and nothing is done (`Committed`).
pub fn rollback_lock<S: KvRead>(
    txn: &mut MvccTxn,
    reader: &MvccReader<'_, S>,
    key: &Key,
    lock: &Lock,
    protect: bool,
) -> Result<()> {
    let record = reader.get_txn_commit_record(key, lock.ts)?;
    if let Some(commit_ts) = record.committed_ts() {
        return Err(Error::Committed {
            start_ts: lock.ts,
            commit_ts,
            key: key.to_raw()?,
        });
    }
    // The value under a lock belongs to the rolled-back transaction alone.
    if lock.lock_type == LockType::Put && lock.short_value.is_none() {
        txn.delete_value(key, lock.ts);
    }
    if !record.is_rolled_back() {
        let protected = protect || Key::from_raw(&lock.primary) == *key;
        write_rollback_record(reader, txn, key, lock.ts, protected)?;
    }
    txn.unlock_key(key);
    Ok(())
}

/// Rule 2: no lock of the transaction on `key`.
fn rollback_missing_lock<S: KvRead>(
    reader: &MvccReader<'_, S>,
    txn: &mut MvccTxn,
    key: &Key,
    start_ts: u64,
    protected: bool,
) -> Result<()> {
    match reader.get_txn_commit_record(key, start_ts)? {
        TxnCommitRecord::None => write_rollback_record(reader, txn, key, start_ts, protected),
        record => match record.committed_ts() {
            Some(commit_ts) => Err(Error::Committed {
                start_ts,
                commit_ts,
                key: key.to_raw()?,
            }),
            None => Ok(()),
        },
    }
}

/// Records that the transaction at `start_ts` is rolled back on `key`, which has neither a
/// commit nor a rollback record of it (rules 3 and 4). Also used by status checks and the
/// secondary-lock check, which always protect.
pub(crate) fn write_rollback_record<S: KvRead>(
    reader: &MvccReader<'_, S>,
    txn: &mut MvccTxn,
    key: &Key,
    start_ts: u64,
    protected: bool,
) -> Result<()> {
    match reader.seek_write(key, start_ts)? {
        Some((commit_ts, mut overlapped)) if commit_ts == start_ts => {
            // Another transaction's commit sits where the rollback would go.
            if protected {
                overlapped.has_overlapped_rollback = true;
                txn.put_write(key, start_ts, &overlapped);
            }
        }
        older => {
            if let Some((ts, w)) = older {
                if w.write_type == WriteType::Rollback && !w.protected {
                    txn.delete_write(key, ts);
                }
            }
            txn.put_write(key, start_ts, &Write::rollback(start_ts, protected));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use engine::{KvRead, CF_DEFAULT};
    use proto::kvrpcpb::Op;

    use super::*;
    use crate::actions::prewrite::test_support::*;
    use crate::test_util::{apply, engine, record};

    fn write_at(kv: &engine::KvEngine, key: &[u8], ts: u64) -> Option<Write> {
        match MvccReader::new(kv)
            .seek_write(&Key::from_raw(key), ts)
            .unwrap()
        {
            Some((at, w)) if at == ts => Some(w),
            _ => None,
        }
    }

    #[test]
    fn own_lock_is_removed_with_its_long_value_and_a_rollback_record_written() {
        let (_dir, kv) = engine();
        must_prewrite_put(&kv, b"s", &[1u8; 600], b"p", 10);
        act(&kv, |r, t| rollback(r, t, b"s", 10, false)).unwrap();
        assert!(lock_of(&kv, b"s").is_none());
        let default_key = keys::data_key(&Key::from_raw(b"s").append_ts(10));
        assert_eq!(kv.get_value_cf(CF_DEFAULT, &default_key).unwrap(), None);
        let w = write_at(&kv, b"s", 10).unwrap();
        assert_eq!(
            (w.write_type, w.start_ts, w.protected),
            (WriteType::Rollback, 10, false)
        );
    }

    #[test]
    fn the_primarys_rollback_is_protected_as_is_a_requested_one() {
        let (_dir, kv) = engine();
        must_prewrite(
            &kv,
            &[
                mutation(Op::Put, b"p", b"v"),
                mutation(Op::Del, b"s", b""),
                mutation(Op::Lock, b"t", b""),
            ],
            b"p",
            10,
            3000,
        );
        act(&kv, |r, t| rollback(r, t, b"p", 10, false)).unwrap();
        act(&kv, |r, t| rollback(r, t, b"s", 10, true)).unwrap();
        act(&kv, |r, t| rollback(r, t, b"t", 10, false)).unwrap();
        assert!(write_at(&kv, b"p", 10).unwrap().protected);
        assert!(write_at(&kv, b"s", 10).unwrap().protected);
        assert!(!write_at(&kv, b"t", 10).unwrap().protected);
        for k in [&b"p"[..], b"s", b"t"] {
            assert!(lock_of(&kv, k).is_none());
        }
    }

    #[test]
    fn rolling_back_a_committed_key_is_refused() {
        let (_dir, kv) = engine();
        must_put(&kv, b"k", b"v", 10, 15);
        let (res, t) = try_act(&kv, |r, t| rollback(r, t, b"k", 10, false));
        assert!(matches!(
            res,
            Err(Error::Committed { start_ts: 10, commit_ts: 15, ref key }) if key == b"k"
        ));
        assert!(t.is_empty());
        assert_eq!(record(&kv, b"k", 10).committed_ts(), Some(15));
    }

    #[test]
    fn a_repeated_rollback_succeeds_and_writes_nothing() {
        let (_dir, kv) = engine();
        must_prewrite_put(&kv, b"k", b"v", b"k", 10);
        act(&kv, |r, t| rollback(r, t, b"k", 10, false)).unwrap();
        let (res, t) = try_act(&kv, |r, t| rollback(r, t, b"k", 10, false));
        assert!(res.is_ok() && t.is_empty());
    }

    #[test]
    fn without_a_lock_a_rollback_record_is_still_written_and_stops_a_late_prewrite() {
        let (_dir, kv) = engine();
        act(&kv, |r, t| rollback(r, t, b"k", 10, false)).unwrap();
        assert!(record(&kv, b"k", 10).is_rolled_back());
        let params = crate::actions::prewrite::PrewriteParams::new(10, b"k".to_vec(), 3000);
        let out = crate::actions::prewrite::prewrite_mutations(
            &MvccReader::new(&kv),
            &params,
            &[mutation(Op::Put, b"k", b"late")],
        )
        .unwrap();
        assert_eq!(out.errors.len(), 1);
        assert!(out.modifies.is_empty());
    }

    #[test]
    fn another_txns_lock_is_left_alone() {
        let (_dir, kv) = engine();
        must_prewrite_put(&kv, b"k", b"v", b"k", 20);
        act(&kv, |r, t| rollback(r, t, b"k", 10, false)).unwrap();
        assert_eq!(lock_of(&kv, b"k").unwrap().ts, 20);
        assert!(record(&kv, b"k", 10).is_rolled_back());
    }

    /// Transaction 7 committed `k` at 10; transaction 10 is rolled back on `k`.
    fn commit_at_our_start_ts(kv: &engine::KvEngine) {
        let mut t = MvccTxn::new();
        t.put_write(
            &Key::from_raw(b"k"),
            10,
            &Write::new(WriteType::Put, 7, Some(b"x".to_vec())),
        );
        apply(kv, t.modifies());
    }

    #[test]
    fn a_protected_rollback_over_another_txns_commit_flags_it() {
        let (_dir, kv) = engine();
        commit_at_our_start_ts(&kv);
        act(&kv, |r, t| rollback(r, t, b"k", 10, true)).unwrap();
        let w = write_at(&kv, b"k", 10).unwrap();
        assert_eq!(
            (w.write_type, w.start_ts),
            (WriteType::Put, 7),
            "the commit survives"
        );
        assert_eq!(w.short_value, Some(b"x".to_vec()));
        assert!(w.has_overlapped_rollback);
        assert!(record(&kv, b"k", 10).is_rolled_back());
        assert_eq!(record(&kv, b"k", 7).committed_ts(), Some(10));
    }

    #[test]
    fn an_unprotected_rollback_over_another_txns_commit_is_dropped() {
        let (_dir, kv) = engine();
        commit_at_our_start_ts(&kv);
        let (res, t) = try_act(&kv, |r, t| rollback(r, t, b"k", 10, false));
        assert!(res.is_ok() && t.is_empty());
        let w = write_at(&kv, b"k", 10).unwrap();
        assert_eq!(
            (w.write_type, w.has_overlapped_rollback),
            (WriteType::Put, false)
        );
    }

    #[test]
    fn rollback_lock_over_another_txns_commit_removes_the_lock_and_flags_the_commit() {
        let (_dir, kv) = engine();
        commit_at_our_start_ts(&kv);
        let lock = Lock::new(LockType::Put, b"k".to_vec(), 10, 3000);
        let mut t = MvccTxn::new();
        t.put_lock(&Key::from_raw(b"k"), &lock);
        apply(&kv, t.modifies());
        act(&kv, |r, t| {
            rollback_lock(t, r, &Key::from_raw(b"k"), &lock, false)
        })
        .unwrap();
        assert!(lock_of(&kv, b"k").is_none());
        // `k` is the primary, so the rollback is protected and lands on the commit record.
        assert!(write_at(&kv, b"k", 10).unwrap().has_overlapped_rollback);
    }

    #[test]
    fn a_new_rollback_collapses_an_older_unprotected_one_but_not_a_protected_one() {
        let (_dir, kv) = engine();
        act(&kv, |r, t| rollback(r, t, b"k", 5, false)).unwrap();
        act(&kv, |r, t| rollback(r, t, b"k", 8, false)).unwrap();
        assert!(write_at(&kv, b"k", 5).is_none(), "5 collapsed under 8");
        // A prewrite of 5 still fails: the rollback at 8 is newer.
        let params = crate::actions::prewrite::PrewriteParams::new(5, b"k".to_vec(), 3000);
        let out = crate::actions::prewrite::prewrite_mutations(
            &MvccReader::new(&kv),
            &params,
            &[mutation(Op::Put, b"k", b"late")],
        )
        .unwrap();
        assert_eq!(out.errors.len(), 1);
        act(&kv, |r, t| rollback(r, t, b"k", 9, true)).unwrap();
        act(&kv, |r, t| rollback(r, t, b"k", 12, false)).unwrap();
        assert!(
            write_at(&kv, b"k", 9).unwrap().protected,
            "protected ones stay"
        );
        assert!(write_at(&kv, b"k", 12).is_some());
    }

    #[test]
    fn rollback_lock_on_an_already_committed_txn_does_nothing() {
        let (_dir, kv) = engine();
        must_put(&kv, b"k", b"v", 10, 15);
        let stale = Lock::new(LockType::Put, b"k".to_vec(), 10, 3000);
        let (res, t) = try_act(&kv, |r, t| {
            rollback_lock(t, r, &Key::from_raw(b"k"), &stale, true)
        });
        assert!(matches!(res, Err(Error::Committed { commit_ts: 15, .. })) && t.is_empty());
    }

    #[test]
    fn start_ts_zero_is_invalid() {
        let (_dir, kv) = engine();
        let (res, t) = try_act(&kv, |r, t| rollback(r, t, b"k", 0, false));
        assert!(matches!(res, Err(Error::InvalidRequest(_))) && t.is_empty());
    }
}
