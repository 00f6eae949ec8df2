//! Pessimistic rollback of one key (KVPessimisticRollback): a pessimistic transaction gives
//! back the pessimistic locks of a statement that failed (client 0.4: the keys that were
//! locked before another region refused the lock) or of the whole transaction on `rollback()`.
//!
//! Rule (reference §1.3, §2.4; TiKV `src/storage/txn/commands/pessimistic_rollback.rs`): the
//! lock on the key is removed only when it is a `LockType::Pessimistic` lock of this
//! transaction (lock.ts == start_ts) with lock.for_update_ts <= the request's for_update_ts.
//! Anything else stays as it is: no lock, another transaction's lock, this transaction's
//! prewrite lock (the key is already prewritten: only commit or rollback decide it), or a
//! pessimistic lock refreshed by a newer statement (lock.for_update_ts above the request's).
//! No rollback record is written (nothing was written under a pessimistic lock), so the
//! transaction may lock the key again later. The action never fails on a key it leaves alone.

use engine::KvRead;

use crate::errors::Result;
use crate::mvcc::{Key, LockType, MvccReader, MvccTxn};

/// Removes the pessimistic lock of the transaction at `start_ts` from `key` (a raw user key)
/// if the rule of this module allows it, adding the removal to `txn`. Returns whether a lock
/// was removed (its waiters could now be woken).
///
/// Errors only on storage failures or a damaged lock record: a missing or non-matching lock
/// is `Ok(false)` with nothing written, so the request is idempotent.
pub fn pessimistic_rollback<S: KvRead>(
    reader: &MvccReader<'_, S>,
    txn: &mut MvccTxn,
    key: &[u8],
    start_ts: u64,
    for_update_ts: u64,
) -> Result<bool> {
    let k = Key::from_raw(key);
    match reader.load_lock(&k)? {
        Some(lock)
            if lock.lock_type == LockType::Pessimistic
                && lock.ts == start_ts
                && lock.for_update_ts <= for_update_ts =>
        {
            txn.unlock_key(&k);
            Ok(true)
        }
        _ => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use engine::KvEngine;

    use super::*;
    use crate::actions::acquire_pessimistic_lock::test_support::must_acquire_pessimistic_lock;
    use crate::actions::prewrite::test_support::*;
    use crate::mvcc::TxnCommitRecord;
    use crate::test_util::{engine, record};

    /// Runs the action and applies it; returns whether it removed the lock.
    fn roll_back(kv: &KvEngine, key: &[u8], start_ts: u64, for_update_ts: u64) -> bool {
        act(kv, |r, t| {
            pessimistic_rollback(r, t, key, start_ts, for_update_ts)
        })
        .expect("pessimistic rollback")
    }

    /// Runs the action without applying; it must leave the key alone and write nothing.
    fn must_leave_alone(kv: &KvEngine, key: &[u8], start_ts: u64, for_update_ts: u64) {
        let (res, t) = try_act(kv, |r, t| {
            pessimistic_rollback(r, t, key, start_ts, for_update_ts)
        });
        assert!(!res.expect("pessimistic rollback"), "removed a lock");
        assert!(t.is_empty(), "wrote {:?}", t.modifies());
    }

    #[test]
    fn a_matching_pessimistic_lock_is_removed_without_a_rollback_record() {
        let (_dir, kv) = engine();
        must_acquire_pessimistic_lock(&kv, b"k", b"k", 10, 12);
        assert!(roll_back(&kv, b"k", 10, 12));
        assert!(lock_of(&kv, b"k").is_none());
        assert_eq!(record(&kv, b"k", 10), TxnCommitRecord::None);
        // A request at a newer for_update_ts removes an older lock too.
        must_acquire_pessimistic_lock(&kv, b"j", b"k", 10, 12);
        assert!(roll_back(&kv, b"j", 10, 20));
        assert!(lock_of(&kv, b"j").is_none());
        // Nothing records the rollback: the transaction can lock the key again.
        must_acquire_pessimistic_lock(&kv, b"k", b"k", 10, 13);
        assert_eq!(lock_of(&kv, b"k").unwrap().for_update_ts, 13);
    }

    #[test]
    fn a_lock_refreshed_at_a_newer_for_update_ts_stays() {
        let (_dir, kv) = engine();
        must_acquire_pessimistic_lock(&kv, b"k", b"k", 10, 12);
        must_leave_alone(&kv, b"k", 10, 11);
        assert_eq!(lock_of(&kv, b"k").unwrap().for_update_ts, 12);
    }

    #[test]
    fn another_txns_locks_stay() {
        let (_dir, kv) = engine();
        must_acquire_pessimistic_lock(&kv, b"k", b"k", 20, 22);
        must_prewrite_put(&kv, b"j", b"v", b"j", 20);
        for key in [&b"k"[..], b"j"] {
            for (start_ts, for_update_ts) in [(10, 30), (21, 22), (22, 22)] {
                must_leave_alone(&kv, key, start_ts, for_update_ts);
            }
            assert_eq!(lock_of(&kv, key).unwrap().ts, 20);
        }
    }

    #[test]
    fn the_txns_own_prewrite_lock_stays() {
        let (_dir, kv) = engine();
        must_prewrite_put(&kv, b"k", b"v", b"k", 10);
        must_leave_alone(&kv, b"k", 10, u64::MAX);
        assert_eq!(lock_of(&kv, b"k").unwrap().lock_type, LockType::Put);
    }

    #[test]
    fn an_absent_lock_is_a_no_op_and_a_repeat_is_too() {
        let (_dir, kv) = engine();
        must_leave_alone(&kv, b"never", 10, 12);
        must_put(&kv, b"done", b"v", 10, 15);
        must_leave_alone(&kv, b"done", 10, 12);
        must_acquire_pessimistic_lock(&kv, b"k", b"k", 10, 12);
        assert!(roll_back(&kv, b"k", 10, 12));
        must_leave_alone(&kv, b"k", 10, 12);
    }
}
