//! Acquiring a pessimistic lock on one key (KvPessimisticLock): a pessimistic transaction
//! locks each key it is about to write (or reads "for update") when the statement runs, long
//! before prewrite. The lock is a `LockType::Pessimistic` lock without a value; it never
//! blocks readers, and a pessimistic prewrite later turns it into a `Put`/`Delete`/`Lock` lock.
//!
//! Rules (reference §1.3, §1.6, §2.4; TiKV `src/storage/txn/actions/acquire_pessimistic_lock.rs`
//! and `src/storage/txn/commands/acquire_pessimistic_lock.rs`), for the transaction at
//! `start_ts` locking at `for_update_ts`:
//! 1. Another transaction's lock on the key (of any type) → `KeyIsLocked` with that lock's
//!    `LockInfo` (the command layer may wait for it; client 0.4 sends `wait_timeout = 0`).
//! 2. This transaction's own lock:
//!    - a pessimistic lock → success without any conflict check (a retried or repeated
//!      request): its for_update_ts, TTL and min_commit_ts are raised to the request's when
//!      larger, and the lock is rewritten only if one of them grew (TiKV rewrites on a larger
//!      for_update_ts; it takes the request's TTL, which could undo a heartbeat, so here every
//!      field only grows);
//!    - a prewrite lock (`Put`/`Delete`/`Lock`: the key was already prewritten) →
//!      `LockTypeNotMatch` with `pessimistic: false`, as TiKV ("acquire lock on a prewritten
//!      key should fail", `test_pessimistic_lock`); the lock stays.
//! 3. No lock: the newest write record of the key, of any type, has commit_ts > for_update_ts
//!    → `WriteConflict` (reason `PessimisticRetry`, with the conflicting record's start_ts and
//!    commit_ts): the transaction must retry the statement with a newer for_update_ts.
//!    Commits at or below for_update_ts are no conflict, even above start_ts (pessimistic
//!    transactions read committed data at for_update_ts).
//! 4. The transaction is already rolled back on the key — a `Rollback` record, or a commit
//!    record flagged `has_overlapped_rollback`, at exactly start_ts, found even below newer
//!    commits → `PessimisticLockRolledBack` (`KeyError.abort`). Checked after rule 3, as TiKV.
//! 5. `should_not_exist` (a `Mutation.assertion` of `NotExist`, which client 0.4 sets for
//!    `insert`): the newest data version (`Lock` and `Rollback` records skipped) is a `Put` →
//!    `AlreadyExist` (TiKV `check_data_constraint`, shared with prewrite).
//! 6. The lock: `LockType::Pessimistic`, no value, with the request's primary, TTL,
//!    for_update_ts and min_commit_ts. Nothing is written to CF `write` or `default`.
//!
//! With `need_value` (`return_values`) the answer is the key's value visible at for_update_ts
//! (`None` when there is none); after rule 3 that is the newest committed value. Any error
//! leaves the `MvccTxn` untouched.
//!
//! Left to the command layer: raising the store's max_ts to for_update_ts before running this
//! when `should_not_exist` or `need_value` (TiKV does it at the top of the action; it keeps a
//! later async-commit/1PC commit from landing below the value returned here), making a
//! request all-or-nothing across its keys, waiting on locks, and the options client 0.4 never
//! sends (`check_existence`, `lock_only_if_exists`, `wake_up_mode`, locking with conflict).

use engine::KvRead;

use crate::actions::prewrite::check_not_exists;
use crate::errors::{Error, Result, WriteConflictReason};
use crate::mvcc::{Key, Lock, LockType, MvccReader, MvccTxn};

/// What a `kvrpcpb::PessimisticLockRequest` says about the whole transaction (the mutations
/// carry the keys and each key's `should_not_exist`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PessimisticLockParams {
    /// The transaction's primary key (raw user key), written into every lock; not empty.
    pub primary: Vec<u8>,
    /// The transaction's start timestamp; must not be 0.
    pub start_ts: u64,
    /// The timestamp the statement reads committed data at; at least `start_ts`. Commits
    /// above it conflict.
    pub for_update_ts: u64,
    /// Lock time to live in milliseconds, counted from the physical time of `start_ts`.
    pub lock_ttl: u64,
    /// `return_values`: answer each key's value visible at `for_update_ts`.
    pub need_value: bool,
    /// The smallest commit_ts the locks accept (0 from client 0.4).
    pub min_commit_ts: u64,
}

impl PessimisticLockParams {
    /// Parameters locking at `for_update_ts` without returning values, min_commit_ts 0.
    pub fn new(
        primary: Vec<u8>,
        start_ts: u64,
        for_update_ts: u64,
        lock_ttl: u64,
    ) -> PessimisticLockParams {
        PessimisticLockParams {
            primary,
            start_ts,
            for_update_ts,
            lock_ttl,
            ..PessimisticLockParams::default()
        }
    }

    /// Rejects requests no pessimistic lock can serve (`InvalidRequest`): start_ts 0, an
    /// empty primary, and for_update_ts below start_ts (0 included).
    pub fn validate(&self) -> Result<()> {
        if self.start_ts == 0 {
            return Err(Error::InvalidRequest(
                "pessimistic lock with start_ts 0".into(),
            ));
        }
        if self.primary.is_empty() {
            return Err(Error::InvalidRequest(
                "pessimistic lock with an empty primary".into(),
            ));
        }
        if self.for_update_ts < self.start_ts {
            return Err(Error::InvalidRequest(format!(
                "pessimistic lock with for_update_ts {} below start_ts {}",
                self.for_update_ts, self.start_ts
            )));
        }
        Ok(())
    }
}

/// Acquires the pessimistic lock of the transaction in `params` on `key` (a raw user key), by
/// the rules of this module, adding the lock (if it is new or grew) to `txn`.
///
/// Returns the value of `key` visible at `params.for_update_ts` when `params.need_value`
/// (`None`: no value), and always `None` otherwise.
///
/// Errors: `InvalidRequest` (bad parameters or an empty key), `KeyIsLocked` (rule 1),
/// `LockTypeNotMatch` (rule 2), `WriteConflict` with reason `PessimisticRetry` (rule 3),
/// `PessimisticLockRolledBack` (rule 4), `AlreadyExist` (rule 5), and storage / corruption
/// failures. On any error `txn` is left as it was.
pub fn acquire_pessimistic_lock<S: KvRead>(
    reader: &MvccReader<'_, S>,
    txn: &mut MvccTxn,
    params: &PessimisticLockParams,
    key: &[u8],
    should_not_exist: bool,
) -> Result<Option<Vec<u8>>> {
    params.validate()?;
    if key.is_empty() {
        return Err(Error::InvalidRequest(
            "pessimistic lock of an empty key".into(),
        ));
    }
    let k = Key::from_raw(key);
    if let Some(lock) = reader.load_lock(&k)? {
        relock(txn, &k, lock, params, key)?;
    } else {
        check_writes(reader, &k, params, key)?;
        if should_not_exist {
            check_not_exists(reader, &k, key)?;
        }
        let lock = Lock {
            for_update_ts: params.for_update_ts,
            min_commit_ts: params.min_commit_ts,
            ..Lock::new(
                LockType::Pessimistic,
                params.primary.clone(),
                params.start_ts,
                params.lock_ttl,
            )
        };
        txn.put_lock(&k, &lock);
    }
    if params.need_value {
        return reader.get(&k, params.for_update_ts);
    }
    Ok(None)
}

/// Rules 1 and 2: a lock is already on the key.
fn relock(
    txn: &mut MvccTxn,
    key: &Key,
    lock: Lock,
    params: &PessimisticLockParams,
    raw_key: &[u8],
) -> Result<()> {
    if lock.ts != params.start_ts {
        return Err(Error::KeyIsLocked(Box::new(
            lock.to_lock_info(raw_key.to_vec()),
        )));
    }
    if lock.lock_type != LockType::Pessimistic {
        return Err(Error::LockTypeNotMatch {
            start_ts: params.start_ts,
            key: raw_key.to_vec(),
            pessimistic: false,
        });
    }
    let refreshed = Lock {
        for_update_ts: lock.for_update_ts.max(params.for_update_ts),
        ttl: lock.ttl.max(params.lock_ttl),
        min_commit_ts: lock.min_commit_ts.max(params.min_commit_ts),
        ..lock.clone()
    };
    if refreshed != lock {
        txn.put_lock(key, &refreshed);
    }
    Ok(())
}

/// Rules 3 and 4: no commit after for_update_ts, and no rollback of this transaction.
fn check_writes<S: KvRead>(
    reader: &MvccReader<'_, S>,
    key: &Key,
    params: &PessimisticLockParams,
    raw_key: &[u8],
) -> Result<()> {
    let Some((commit_ts, write)) = reader.seek_write(key, u64::MAX)? else {
        return Ok(());
    };
    if commit_ts > params.for_update_ts {
        return Err(Error::WriteConflict {
            start_ts: params.start_ts,
            conflict_start_ts: write.start_ts,
            conflict_commit_ts: commit_ts,
            key: raw_key.to_vec(),
            primary: params.primary.clone(),
            reason: WriteConflictReason::PessimisticRetry,
        });
    }
    // A rollback of this transaction sits at start_ts: below every record newer than that.
    if commit_ts >= params.start_ts
        && reader
            .get_txn_commit_record(key, params.start_ts)?
            .is_rolled_back()
    {
        return Err(Error::PessimisticLockRolledBack {
            start_ts: params.start_ts,
            key: raw_key.to_vec(),
        });
    }
    Ok(())
}

/// Test helpers for the actions that need pessimistic locks in place.
#[cfg(test)]
pub(crate) mod test_support {
    use engine::KvEngine;

    use super::{acquire_pessimistic_lock, PessimisticLockParams};
    use crate::actions::prewrite::test_support::act;

    /// Acquires the pessimistic lock of (`start_ts`, `primary`) on `key` at `for_update_ts`
    /// with a TTL of 3000 ms, which must succeed, and applies it.
    pub fn must_acquire_pessimistic_lock(
        kv: &KvEngine,
        key: &[u8],
        primary: &[u8],
        start_ts: u64,
        for_update_ts: u64,
    ) {
        let params = PessimisticLockParams::new(primary.to_vec(), start_ts, for_update_ts, 3000);
        act(kv, |r, t| {
            acquire_pessimistic_lock(r, t, &params, key, false)
        })
        .expect("acquire pessimistic lock");
    }
}

#[cfg(test)]
mod tests {
    use engine::{KvEngine, CF_DEFAULT};
    use proto::kvrpcpb::Op;

    use super::test_support::must_acquire_pessimistic_lock;
    use super::*;
    use crate::actions::prewrite::test_support::*;
    use crate::mvcc::{Write, WriteType};
    use crate::test_util::{engine, put_write};

    fn params(start_ts: u64, for_update_ts: u64) -> PessimisticLockParams {
        PessimisticLockParams::new(b"p".to_vec(), start_ts, for_update_ts, 3000)
    }

    /// Runs the action on `key`; applies its changes when it succeeds.
    fn lock_key(kv: &KvEngine, p: &PessimisticLockParams, key: &[u8]) -> Result<Option<Vec<u8>>> {
        act(kv, |r, t| acquire_pessimistic_lock(r, t, p, key, false))
    }

    /// Runs the action on `key` without applying; returns the answer and whether it wrote.
    fn try_lock_key(
        kv: &KvEngine,
        p: &PessimisticLockParams,
        key: &[u8],
        should_not_exist: bool,
    ) -> (Result<Option<Vec<u8>>>, bool) {
        let (res, t) = try_act(kv, |r, t| {
            acquire_pessimistic_lock(r, t, p, key, should_not_exist)
        });
        (res, !t.is_empty())
    }

    fn value_of(kv: &KvEngine, p: &PessimisticLockParams, key: &[u8]) -> Option<Vec<u8>> {
        let p = PessimisticLockParams {
            need_value: true,
            ..p.clone()
        };
        lock_key(kv, &p, key).expect("pessimistic lock with value")
    }

    fn versions(kv: &KvEngine, key: &[u8]) -> usize {
        MvccReader::new(kv)
            .all_versions(&Key::from_raw(key))
            .unwrap()
            .len()
    }

    #[test]
    fn a_free_key_gets_a_pessimistic_lock_without_a_value() {
        let (_dir, kv) = engine();
        must_put(&kv, b"k", b"old", 2, 3);
        let p = PessimisticLockParams {
            min_commit_ts: 13,
            ..PessimisticLockParams::new(b"p".to_vec(), 10, 12, 20000)
        };
        assert_eq!(lock_key(&kv, &p, b"k").unwrap(), None, "no value asked");
        assert_eq!(
            lock_of(&kv, b"k").unwrap(),
            Lock {
                for_update_ts: 12,
                min_commit_ts: 13,
                ..Lock::new(LockType::Pessimistic, b"p".to_vec(), 10, 20000)
            }
        );
        // Only the lock: no write record, no value in CF default.
        assert_eq!(versions(&kv, b"k"), 1);
        let value_key = keys::data_key(&Key::from_raw(b"k").append_ts(10));
        assert_eq!(kv.get_value_cf(CF_DEFAULT, &value_key).unwrap(), None);
        // A key never written is locked the same way.
        lock_key(&kv, &p, b"fresh").unwrap();
        assert_eq!(
            lock_of(&kv, b"fresh").unwrap().lock_type,
            LockType::Pessimistic
        );
    }

    #[test]
    fn another_txns_lock_is_key_is_locked_and_nothing_is_written() {
        let (_dir, kv) = engine();
        must_prewrite_put(&kv, b"a", b"v", b"a", 5);
        must_acquire_pessimistic_lock(&kv, b"b", b"a", 5, 7);
        for (key, lock_type, for_update_ts) in
            [(&b"a"[..], Op::Put, 0), (&b"b"[..], Op::PessimisticLock, 7)]
        {
            // Before and after the other transaction's start_ts alike.
            for (start_ts, fu) in [(3, 4), (10, 12)] {
                let (res, wrote) = try_lock_key(&kv, &params(start_ts, fu), key, false);
                let Err(Error::KeyIsLocked(info)) = res else {
                    panic!("{key:?}: expected a lock error, got {res:?}")
                };
                assert!(!wrote);
                assert_eq!(
                    (
                        info.key.as_slice(),
                        info.lock_version,
                        info.primary_lock.as_slice()
                    ),
                    (key, 5, &b"a"[..])
                );
                assert_eq!(info.lock_type, lock_type as i32);
                assert_eq!(info.lock_for_update_ts, for_update_ts);
            }
        }
        assert_eq!(lock_of(&kv, b"a").unwrap().lock_type, LockType::Put);
        assert_eq!(lock_of(&kv, b"b").unwrap().ts, 5);
    }

    #[test]
    fn a_commit_after_for_update_ts_is_a_pessimistic_retry_conflict() {
        let (_dir, kv) = engine();
        must_put(&kv, b"k", b"theirs", 11, 13);
        let (res, wrote) = try_lock_key(&kv, &params(10, 12), b"k", false);
        assert!(!wrote);
        match res {
            Err(Error::WriteConflict {
                start_ts: 10,
                conflict_start_ts: 11,
                conflict_commit_ts: 13,
                ref key,
                ref primary,
                reason: WriteConflictReason::PessimisticRetry,
            }) => assert_eq!((key.as_slice(), primary.as_slice()), (&b"k"[..], &b"p"[..])),
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert!(lock_of(&kv, b"k").is_none());
    }

    #[test]
    fn a_newer_record_of_any_type_conflicts() {
        for write_type in [WriteType::Delete, WriteType::Lock, WriteType::Rollback] {
            let (_dir, kv) = engine();
            let start = if write_type == WriteType::Rollback {
                13
            } else {
                11
            };
            put_write(&kv, b"k", 13, &Write::new(write_type, start, None));
            let (res, wrote) = try_lock_key(&kv, &params(10, 12), b"k", false);
            assert!(
                matches!(
                    res,
                    Err(Error::WriteConflict {
                        conflict_commit_ts: 13,
                        reason: WriteConflictReason::PessimisticRetry,
                        ..
                    })
                ),
                "{write_type:?}: {res:?}"
            );
            assert!(!wrote);
        }
    }

    #[test]
    fn a_commit_at_or_below_for_update_ts_is_no_conflict() {
        // Committed after start_ts but at for_update_ts: the statement read it.
        let (_dir, kv) = engine();
        must_put(&kv, b"k", b"theirs", 11, 12);
        lock_key(&kv, &params(10, 12), b"k").unwrap();
        assert_eq!(lock_of(&kv, b"k").unwrap().for_update_ts, 12);
        // Committed between start_ts and for_update_ts.
        must_put(&kv, b"j", b"theirs", 11, 12);
        lock_key(&kv, &params(10, 15), b"j").unwrap();
        assert_eq!(lock_of(&kv, b"j").unwrap().ts, 10);
        // Committed before start_ts.
        must_put(&kv, b"i", b"old", 2, 3);
        lock_key(&kv, &params(10, 10), b"i").unwrap();
        assert_eq!(lock_of(&kv, b"i").unwrap().for_update_ts, 10);
    }

    #[test]
    fn relocking_is_idempotent_and_only_raises_for_update_ts_ttl_and_min_commit_ts() {
        let (_dir, kv) = engine();
        must_acquire_pessimistic_lock(&kv, b"k", b"p", 10, 12);
        let first = lock_of(&kv, b"k").unwrap();
        // The same request again, or one with an older for_update_ts or a shorter TTL.
        for p in [
            params(10, 12),
            params(10, 11),
            PessimisticLockParams {
                lock_ttl: 100,
                ..params(10, 12)
            },
        ] {
            let (res, wrote) = try_lock_key(&kv, &p, b"k", false);
            assert_eq!(res.unwrap(), None);
            assert!(!wrote, "{p:?} rewrote the lock");
        }
        assert_eq!(lock_of(&kv, b"k").unwrap(), first);
        // A newer for_update_ts is taken, the longer TTL kept.
        lock_key(
            &kv,
            &PessimisticLockParams {
                lock_ttl: 100,
                ..params(10, 15)
            },
            b"k",
        )
        .unwrap();
        assert_eq!(
            lock_of(&kv, b"k").unwrap(),
            Lock {
                for_update_ts: 15,
                ..first.clone()
            }
        );
        // A longer TTL (a heartbeat-sized one) and a min_commit_ts are taken.
        lock_key(
            &kv,
            &PessimisticLockParams {
                lock_ttl: 9000,
                min_commit_ts: 16,
                ..params(10, 15)
            },
            b"k",
        )
        .unwrap();
        assert_eq!(
            lock_of(&kv, b"k").unwrap(),
            Lock {
                for_update_ts: 15,
                ttl: 9000,
                min_commit_ts: 16,
                ..first
            }
        );
    }

    #[test]
    fn relocking_skips_the_conflict_and_existence_checks() {
        let (_dir, kv) = engine();
        must_acquire_pessimistic_lock(&kv, b"k", b"p", 10, 12);
        // Records no transaction could have written under the lock: a relock does not look.
        put_write(
            &kv,
            b"k",
            20,
            &Write::new(WriteType::Put, 19, Some(b"x".to_vec())),
        );
        let (res, t) = try_act(&kv, |r, t| {
            acquire_pessimistic_lock(r, t, &params(10, 12), b"k", true)
        });
        assert_eq!(res.unwrap(), None);
        assert!(t.is_empty());
    }

    #[test]
    fn own_prewrite_lock_is_a_lock_type_mismatch_and_stays() {
        let (_dir, kv) = engine();
        must_prewrite_put(&kv, b"k", b"v", b"k", 10);
        let (res, wrote) = try_lock_key(&kv, &params(10, 12), b"k", false);
        assert!(
            matches!(
                res,
                Err(Error::LockTypeNotMatch { start_ts: 10, ref key, pessimistic: false }) if key == b"k"
            ),
            "{res:?}"
        );
        assert!(!wrote);
        assert_eq!(lock_of(&kv, b"k").unwrap().lock_type, LockType::Put);
    }

    #[test]
    fn a_rollback_at_start_ts_refuses_the_lock() {
        let (_dir, kv) = engine();
        act(&kv, |r, t| {
            crate::actions::rollback::rollback(r, t, b"k", 10, false)
        })
        .unwrap();
        let (res, wrote) = try_lock_key(&kv, &params(10, 12), b"k", false);
        assert!(
            matches!(res, Err(Error::PessimisticLockRolledBack { start_ts: 10, ref key }) if key == b"k"),
            "{res:?}"
        );
        assert!(!wrote);
        // Another transaction's commit record at our start_ts, not flagged as carrying our
        // rollback, is only an older commit.
        let (_dir, kv) = engine();
        put_write(&kv, b"k", 10, &Write::new(WriteType::Lock, 8, None));
        lock_key(&kv, &params(10, 12), b"k").unwrap();
    }

    #[test]
    fn a_rollback_below_newer_commits_still_refuses_the_lock() {
        // TiKV `test_pessimistic_lock` "Rollback": 18 rolled back, 19 committed at 20.
        let (_dir, kv) = engine();
        must_acquire_pessimistic_lock(&kv, b"k", b"k", 18, 18);
        act(&kv, |r, t| {
            crate::actions::rollback::rollback(r, t, b"k", 18, false)
        })
        .unwrap();
        must_put(&kv, b"k", b"v", 19, 20);
        let (res, wrote) = try_lock_key(&kv, &params(18, 21), b"k", false);
        assert!(
            matches!(
                res,
                Err(Error::PessimisticLockRolledBack { start_ts: 18, .. })
            ),
            "{res:?}"
        );
        assert!(!wrote);
        // Below for_update_ts the newer commit is reported first, as TiKV orders the checks.
        let (res, _) = try_lock_key(&kv, &params(18, 19), b"k", false);
        assert!(matches!(res, Err(Error::WriteConflict { .. })), "{res:?}");
    }

    #[test]
    fn an_overlapped_rollback_at_start_ts_refuses_the_lock() {
        let (_dir, kv) = engine();
        // Transaction 7 committed at 10, and our rollback was recorded on its record.
        let mut w = Write::new(WriteType::Put, 7, Some(b"x".to_vec()));
        w.has_overlapped_rollback = true;
        put_write(&kv, b"k", 10, &w);
        let (res, wrote) = try_lock_key(&kv, &params(10, 12), b"k", false);
        assert!(
            matches!(
                res,
                Err(Error::PessimisticLockRolledBack { start_ts: 10, .. })
            ),
            "{res:?}"
        );
        assert!(!wrote);
        // Without the flag the same record is just a commit at or below for_update_ts.
        let (_dir, kv) = engine();
        put_write(
            &kv,
            b"k",
            10,
            &Write::new(WriteType::Put, 7, Some(b"x".to_vec())),
        );
        lock_key(&kv, &params(10, 12), b"k").unwrap();
        assert_eq!(lock_of(&kv, b"k").unwrap().ts, 10);
    }

    #[test]
    fn not_exist_fails_over_a_visible_put_skipping_lock_and_rollback_records() {
        let (_dir, kv) = engine();
        must_put(&kv, b"k", b"v", 1, 2);
        put_write(&kv, b"k", 4, &Write::new(WriteType::Lock, 3, None));
        put_write(&kv, b"k", 5, &Write::rollback(5, false));
        let (res, wrote) = try_lock_key(&kv, &params(10, 12), b"k", true);
        assert!(
            matches!(res, Err(Error::AlreadyExist { ref key }) if key == b"k"),
            "{res:?}"
        );
        assert!(!wrote);
        assert!(lock_of(&kv, b"k").is_none());
        // Without the assertion the same key locks.
        let (res, wrote) = try_lock_key(&kv, &params(10, 12), b"k", false);
        assert!(res.is_ok() && wrote);
    }

    #[test]
    fn not_exist_succeeds_over_a_deleted_or_absent_key() {
        let (_dir, kv) = engine();
        must_put(&kv, b"k", b"v", 1, 2);
        must_prewrite(&kv, &[mutation(Op::Del, b"k", b"")], b"k", 3, 3000);
        must_commit(&kv, b"k", 3, 4);
        for key in [&b"k"[..], b"absent"] {
            act(&kv, |r, t| {
                acquire_pessimistic_lock(r, t, &params(10, 12), key, true)
            })
            .unwrap();
            assert_eq!(lock_of(&kv, key).unwrap().lock_type, LockType::Pessimistic);
        }
    }

    #[test]
    fn need_value_returns_the_value_visible_at_for_update_ts() {
        let (_dir, kv) = engine();
        let long = vec![9u8; 600];
        // At start_ts 10 the key reads "old"; by for_update_ts 15 another transaction has
        // committed a long value at 12, and a Lock record at 14 changes nothing.
        must_put(&kv, b"k", b"old", 2, 3);
        must_put(&kv, b"k", &long, 11, 12);
        put_write(&kv, b"k", 14, &Write::new(WriteType::Lock, 13, None));
        assert_eq!(value_of(&kv, &params(10, 15), b"k"), Some(long));
        // A deleted key and an absent one have no value.
        must_put(&kv, b"d", b"v", 2, 3);
        must_prewrite(&kv, &[mutation(Op::Del, b"d", b"")], b"d", 4, 3000);
        must_commit(&kv, b"d", 4, 5);
        assert_eq!(value_of(&kv, &params(10, 15), b"d"), None);
        assert_eq!(value_of(&kv, &params(10, 15), b"absent"), None);
        assert_eq!(lock_of(&kv, b"absent").unwrap().ts, 10);
    }

    #[test]
    fn need_value_on_a_relock_reads_at_the_requests_for_update_ts() {
        let (_dir, kv) = engine();
        must_put(&kv, b"k", b"v1", 2, 3);
        must_put(&kv, b"k", b"v2", 5, 11);
        assert_eq!(value_of(&kv, &params(10, 12), b"k"), Some(b"v2".to_vec()));
        assert_eq!(value_of(&kv, &params(10, 12), b"k"), Some(b"v2".to_vec()));
        // A late duplicate of an earlier attempt at for_update_ts 10 (which conflicted with
        // the commit at 11) finds the lock and answers what was visible at 10.
        assert_eq!(value_of(&kv, &params(10, 10), b"k"), Some(b"v1".to_vec()));
        assert_eq!(lock_of(&kv, b"k").unwrap().for_update_ts, 12);
    }

    #[test]
    fn malformed_requests_are_rejected_before_anything_is_read() {
        let (_dir, kv) = engine();
        for (p, key) in [
            (params(0, 12), &b"k"[..]),
            (params(10, 0), b"k"),
            (params(10, 9), b"k"),
            (PessimisticLockParams::new(Vec::new(), 10, 12, 3000), b"k"),
            (params(10, 12), b""),
        ] {
            let (res, wrote) = try_lock_key(&kv, &p, key, false);
            assert!(
                matches!(res, Err(Error::InvalidRequest(_))),
                "{p:?} {key:?}: {res:?}"
            );
            assert!(!wrote);
        }
        // for_update_ts equal to start_ts is fine.
        lock_key(&kv, &params(10, 10), b"k").unwrap();
    }
}
