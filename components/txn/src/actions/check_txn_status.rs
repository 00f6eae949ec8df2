//! CheckTxnStatus: what a transaction's primary key says about the transaction, deciding it
//! (rolling it back) when its lock has expired or was never written. Lock resolution asks this
//! before committing or rolling back a lock it met.
//!
//! The state machine of reference §2.5 (TiKV `src/storage/txn/commands/check_txn_status.rs`,
//! `check_txn_status_lock_exists` / `check_txn_status_missing_lock` in
//! `actions/check_txn_status.rs`). Expiry everywhere: physical(lock.ts) + ttl <
//! physical(current_ts) (`Lock::is_expired`).
//!
//! | primary state | condition | effect | status |
//! |---|---|---|---|
//! | lock of lock_ts, `verify_is_primary`, lock.primary ≠ key | pessimistic lock, not `resolving_pessimistic_lock` | remove it, then as "no lock" | per "no lock" |
//! | same | otherwise | — | `PrimaryMismatch` error |
//! | async-commit lock | not `force_sync_commit` | none: never rolled back or pushed here | `Uncommitted` (not pushed) |
//! | pessimistic lock, expired | `resolving_pessimistic_lock` | remove the lock only | `PessimisticRollback` |
//! | any other lock, expired | — | protected rollback (long value deleted, record, unlock) | `TtlExpire` |
//! | lock alive | min_commit_ts ≠ 0, caller_start_ts ≠ u64::MAX and ≥ min_commit_ts | min_commit_ts := max(caller_start_ts + 1, current_ts), lock rewritten | `Uncommitted` (pushed) |
//! | lock alive | otherwise | none | `Uncommitted`, pushed iff min_commit_ts > caller_start_ts ≠ 0, or caller_start_ts = u64::MAX |
//! | no lock of lock_ts | commit record | — | `Committed` |
//! | same | rollback record (or overlapped rollback) | — | `RolledBack` |
//! | same | nothing, not `rollback_if_not_exist` | — | `TxnNotFound` error |
//! | same | nothing, `resolving_pessimistic_lock` | — | `LockNotExistDoNothing` |
//! | same | nothing, otherwise | protected rollback record at lock_ts (pitfall #6) | `LockNotExistRollback` |
//!
//! Rollbacks here are always protected: the client caches a "rolled back" answer, so it must
//! stay true even if the key turns out not to be the primary (reference §1.5).
//!
//! Before calling, the command layer raises the store's max_ts to lock_ts, caller_start_ts
//! and current_ts (each ignored when u64::MAX), as every status check must (reference §2.5,
//! pitfall #2): this function has no access to the concurrency manager.

use engine::KvRead;
use proto::kvrpcpb::{Action, LockInfo};

use crate::actions::rollback::{rollback_lock, write_rollback_record};
use crate::errors::{Error, Result};
use crate::mvcc::{Key, Lock, LockType, MvccReader, MvccTxn};

/// A `kvrpcpb::CheckTxnStatusRequest`, minus the context.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckTxnStatusParams {
    /// The transaction's primary key (raw user key), as the lock met says.
    pub primary_key: Vec<u8>,
    /// The transaction's start_ts (the lock met); must not be 0.
    pub lock_ts: u64,
    /// The start_ts of the transaction that met the lock (0 for GC, u64::MAX for a point
    /// read of the latest version).
    pub caller_start_ts: u64,
    /// The resolver's clock, for TTL expiry (u64::MAX: expire regardless of TTL).
    pub current_ts: u64,
    /// Roll the transaction back when nothing of it is found, instead of `TxnNotFound`.
    pub rollback_if_not_exist: bool,
    /// Treat an async-commit lock like a 2PC one (it may be rolled back or pushed).
    pub force_sync_commit: bool,
    /// The lock met was a pessimistic lock: a pessimistic primary is only removed, and a
    /// missing one is left as is.
    pub resolving_pessimistic_lock: bool,
    /// Fail with `PrimaryMismatch` when the key's lock says another key is the primary.
    pub verify_is_primary: bool,
}

/// The transaction's status as the primary tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnStatus {
    /// A rollback record was already there.
    RolledBack,
    /// The lock had expired and was rolled back now.
    TtlExpire,
    /// Nothing of the transaction was there; a protected rollback record was written now.
    LockNotExistRollback,
    /// The transaction committed at `commit_ts`.
    Committed { commit_ts: u64 },
    /// The lock is alive (the transaction is still running, or an async-commit primary). When
    /// `min_commit_ts_pushed`, its commit cannot land at or below the caller's start_ts, so the
    /// caller may read past its locks.
    Uncommitted {
        lock: Lock,
        min_commit_ts_pushed: bool,
    },
    /// Nothing was there and the caller resolves a pessimistic lock: nothing was done.
    LockNotExistDoNothing,
    /// An expired pessimistic primary was removed (no rollback record).
    PessimisticRollback,
}

impl TxnStatus {
    /// The reply's (commit_version, lock_ttl, lock_info): (0, 0, None) rolled back,
    /// (commit_ts, 0, None) committed, (0, ttl, Some(lock)) locked — the only triples client
    /// 0.4 accepts (reference §1.4). The lock's `key` is the primary, as TiKV sends it.
    pub fn reply(&self) -> (u64, u64, Option<LockInfo>) {
        match self {
            TxnStatus::Committed { commit_ts } => (*commit_ts, 0, None),
            TxnStatus::Uncommitted { lock, .. } => {
                (0, lock.ttl, Some(lock.to_lock_info(lock.primary.clone())))
            }
            _ => (0, 0, None),
        }
    }

    /// The reply's `action` (TiKV `src/server/service/kv.rs`).
    pub fn action(&self) -> Action {
        match self {
            TxnStatus::RolledBack | TxnStatus::Committed { .. } => Action::NoAction,
            TxnStatus::TtlExpire => Action::TtlExpireRollback,
            TxnStatus::LockNotExistRollback => Action::LockNotExistRollback,
            TxnStatus::Uncommitted {
                min_commit_ts_pushed: true,
                ..
            } => Action::MinCommitTsPushed,
            TxnStatus::Uncommitted { .. } => Action::NoAction,
            TxnStatus::LockNotExistDoNothing => Action::LockNotExistDoNothing,
            TxnStatus::PessimisticRollback => Action::TtlExpirePessimisticRollback,
        }
    }
}

/// Runs the state machine of this module on the primary key.
pub fn check_txn_status<S: KvRead>(
    reader: &MvccReader<'_, S>,
    txn: &mut MvccTxn,
    params: &CheckTxnStatusParams,
) -> Result<TxnStatus> {
    if params.lock_ts == 0 {
        return Err(Error::InvalidRequest(
            "check_txn_status with lock_ts 0".into(),
        ));
    }
    let key = Key::from_raw(&params.primary_key);
    let lock = match reader.load_lock(&key)? {
        Some(lock) if lock.ts == params.lock_ts => lock,
        _ => return check_missing_lock(reader, txn, &key, params),
    };
    if params.verify_is_primary && lock.primary != params.primary_key {
        if lock.lock_type == LockType::Pessimistic && !params.resolving_pessimistic_lock {
            // A pessimistic lock on a non-primary key: nothing was written under it, so it
            // can go, and the key answers as if it had never been locked.
            txn.unlock_key(&key);
            return check_missing_lock(reader, txn, &key, params);
        }
        return Err(Error::PrimaryMismatch(Box::new(
            lock.to_lock_info(params.primary_key.clone()),
        )));
    }
    check_lock_exists(reader, txn, &key, lock, params)
}

/// The rows of the state machine where the transaction's lock is on the key.
fn check_lock_exists<S: KvRead>(
    reader: &MvccReader<'_, S>,
    txn: &mut MvccTxn,
    key: &Key,
    mut lock: Lock,
    params: &CheckTxnStatusParams,
) -> Result<TxnStatus> {
    if lock.use_async_commit && !params.force_sync_commit {
        // Its fate is decided from its secondaries (CheckSecondaryLocks), never here.
        return Ok(TxnStatus::Uncommitted {
            lock,
            min_commit_ts_pushed: false,
        });
    }
    if lock.is_expired(params.current_ts) {
        if lock.lock_type == LockType::Pessimistic && params.resolving_pessimistic_lock {
            txn.unlock_key(key);
            return Ok(TxnStatus::PessimisticRollback);
        }
        rollback_lock(txn, reader, key, &lock, true)?;
        return Ok(TxnStatus::TtlExpire);
    }
    // A plain 2PC lock (min_commit_ts 0) is never pushed: old clients commit it at any ts.
    if lock.min_commit_ts != 0
        && params.caller_start_ts != u64::MAX
        && params.caller_start_ts >= lock.min_commit_ts
    {
        lock.min_commit_ts = (params.caller_start_ts + 1).max(params.current_ts);
        txn.put_lock(key, &lock);
    }
    let min_commit_ts_pushed = (params.caller_start_ts != 0
        && lock.min_commit_ts > params.caller_start_ts)
        || params.caller_start_ts == u64::MAX;
    Ok(TxnStatus::Uncommitted {
        lock,
        min_commit_ts_pushed,
    })
}

/// The rows of the state machine where the transaction has no lock on the key.
fn check_missing_lock<S: KvRead>(
    reader: &MvccReader<'_, S>,
    txn: &mut MvccTxn,
    key: &Key,
    params: &CheckTxnStatusParams,
) -> Result<TxnStatus> {
    let record = reader.get_txn_commit_record(key, params.lock_ts)?;
    if let Some(commit_ts) = record.committed_ts() {
        return Ok(TxnStatus::Committed { commit_ts });
    }
    if record.is_rolled_back() {
        return Ok(TxnStatus::RolledBack);
    }
    if !params.rollback_if_not_exist {
        return Err(Error::TxnNotFound {
            start_ts: params.lock_ts,
            key: params.primary_key.clone(),
        });
    }
    if params.resolving_pessimistic_lock {
        return Ok(TxnStatus::LockNotExistDoNothing);
    }
    write_rollback_record(reader, txn, key, params.lock_ts, true)?;
    Ok(TxnStatus::LockNotExistRollback)
}

#[cfg(test)]
mod tests {
    use engine::{KvEngine, KvRead, CF_DEFAULT};
    use proto::kvrpcpb::Op;

    use super::*;
    use crate::actions::prewrite::test_support::*;
    use crate::actions::prewrite::{prewrite_mutations, PrewriteParams};
    use crate::mvcc::{TxnCommitRecord, Write, WriteType};
    use crate::test_util::{apply, engine, put_lock};

    /// Lock start (TSO at 1000 ms) and a TTL of 3000 ms: alive until 4000 ms inclusive.
    fn start() -> u64 {
        tso(1000)
    }
    const ALIVE_MS: u64 = 4000;
    const EXPIRED_MS: u64 = 4001;

    fn params(primary: &[u8], current_ms: u64) -> CheckTxnStatusParams {
        CheckTxnStatusParams {
            primary_key: primary.to_vec(),
            lock_ts: start(),
            caller_start_ts: 0,
            current_ts: tso(current_ms),
            rollback_if_not_exist: false,
            force_sync_commit: false,
            resolving_pessimistic_lock: false,
            verify_is_primary: true,
        }
    }

    fn check(kv: &KvEngine, p: &CheckTxnStatusParams) -> Result<TxnStatus> {
        act(kv, |r, t| check_txn_status(r, t, p))
    }

    fn pessimistic(primary: &[u8]) -> Lock {
        Lock {
            for_update_ts: start(),
            ..Lock::new(LockType::Pessimistic, primary.to_vec(), start(), 3000)
        }
    }

    fn with_min_commit_ts(kv: &KvEngine, min_commit_ts: u64) -> Lock {
        let lock = Lock {
            min_commit_ts,
            ..Lock::new(LockType::Put, b"p".to_vec(), start(), 3000)
        };
        put_lock(kv, b"p", &lock);
        lock
    }

    fn record(kv: &KvEngine, key: &[u8]) -> TxnCommitRecord {
        MvccReader::new(kv)
            .get_txn_commit_record(&Key::from_raw(key), start())
            .unwrap()
    }

    fn protected_rollback_at(kv: &KvEngine, key: &[u8]) -> bool {
        matches!(
            record(kv, key),
            TxnCommitRecord::SingleRecord { write, .. }
                if write.write_type == WriteType::Rollback && write.protected
        )
    }

    #[test]
    fn a_non_primary_lock_is_a_primary_mismatch_when_verified() {
        let (_dir, kv) = engine();
        must_prewrite_put(&kv, b"s", b"v", b"p", start());
        let (res, t) = try_act(&kv, |r, t| check_txn_status(r, t, &params(b"s", ALIVE_MS)));
        let Err(Error::PrimaryMismatch(info)) = res else {
            panic!("expected a primary mismatch, got {res:?}")
        };
        assert_eq!(
            (info.key.as_slice(), info.primary_lock.as_slice()),
            (&b"s"[..], &b"p"[..])
        );
        assert!(t.is_empty());
        // Unverified, the same lock is just reported.
        let unverified = CheckTxnStatusParams {
            verify_is_primary: false,
            ..params(b"s", ALIVE_MS)
        };
        assert!(matches!(
            check(&kv, &unverified),
            Ok(TxnStatus::Uncommitted { .. })
        ));
    }

    #[test]
    fn a_non_primary_pessimistic_lock_is_removed_and_the_key_answers_as_missing() {
        let (_dir, kv) = engine();
        put_lock(&kv, b"s", &pessimistic(b"p"));
        let p = CheckTxnStatusParams {
            rollback_if_not_exist: true,
            ..params(b"s", ALIVE_MS)
        };
        assert_eq!(check(&kv, &p).unwrap(), TxnStatus::LockNotExistRollback);
        assert!(lock_of(&kv, b"s").is_none());
        assert!(protected_rollback_at(&kv, b"s"));
        // When resolving a pessimistic lock, the mismatch is reported instead.
        let (_dir, kv) = engine();
        put_lock(&kv, b"s", &pessimistic(b"p"));
        let p = CheckTxnStatusParams {
            resolving_pessimistic_lock: true,
            ..params(b"s", ALIVE_MS)
        };
        assert!(matches!(check(&kv, &p), Err(Error::PrimaryMismatch(_))));
        assert!(lock_of(&kv, b"s").is_some());
    }

    #[test]
    fn an_async_commit_lock_is_neither_rolled_back_nor_pushed_unless_forced() {
        let (_dir, kv) = engine();
        let lock = Lock {
            use_async_commit: true,
            min_commit_ts: start() + 1,
            secondaries: vec![b"s".to_vec()],
            ..Lock::new(LockType::Put, b"p".to_vec(), start(), 3000)
        };
        put_lock(&kv, b"p", &lock);
        let p = CheckTxnStatusParams {
            caller_start_ts: tso(5000),
            rollback_if_not_exist: true,
            ..params(b"p", EXPIRED_MS)
        };
        let (res, t) = try_act(&kv, |r, t| check_txn_status(r, t, &p));
        let status = res.unwrap();
        assert_eq!(
            status,
            TxnStatus::Uncommitted {
                lock: lock.clone(),
                min_commit_ts_pushed: false
            }
        );
        assert!(t.is_empty());
        assert_eq!(status.action(), Action::NoAction);
        let forced = CheckTxnStatusParams {
            force_sync_commit: true,
            ..p
        };
        assert_eq!(check(&kv, &forced).unwrap(), TxnStatus::TtlExpire);
        assert!(lock_of(&kv, b"p").is_none());
        assert!(protected_rollback_at(&kv, b"p"));
    }

    #[test]
    fn an_expired_pessimistic_primary_is_only_unlocked_when_resolving_a_pessimistic_lock() {
        let (_dir, kv) = engine();
        put_lock(&kv, b"p", &pessimistic(b"p"));
        let p = CheckTxnStatusParams {
            resolving_pessimistic_lock: true,
            ..params(b"p", EXPIRED_MS)
        };
        assert_eq!(check(&kv, &p).unwrap(), TxnStatus::PessimisticRollback);
        assert!(lock_of(&kv, b"p").is_none());
        assert_eq!(
            record(&kv, b"p"),
            TxnCommitRecord::None,
            "no rollback record"
        );
    }

    #[test]
    fn an_expired_pessimistic_primary_is_rolled_back_otherwise() {
        let (_dir, kv) = engine();
        put_lock(&kv, b"p", &pessimistic(b"p"));
        assert_eq!(
            check(&kv, &params(b"p", EXPIRED_MS)).unwrap(),
            TxnStatus::TtlExpire
        );
        assert!(lock_of(&kv, b"p").is_none());
        assert!(protected_rollback_at(&kv, b"p"));
    }

    #[test]
    fn an_expired_prewrite_lock_is_rolled_back_with_a_protected_record() {
        let (_dir, kv) = engine();
        must_prewrite_put(&kv, b"p", &[5u8; 400], b"p", start());
        let status = check(&kv, &params(b"p", EXPIRED_MS)).unwrap();
        assert_eq!(status, TxnStatus::TtlExpire);
        assert_eq!(status.reply(), (0, 0, None));
        assert_eq!(status.action(), Action::TtlExpireRollback);
        assert!(lock_of(&kv, b"p").is_none());
        assert!(protected_rollback_at(&kv, b"p"));
        let value_key = keys::data_key(&Key::from_raw(b"p").append_ts(start()));
        assert_eq!(kv.get_value_cf(CF_DEFAULT, &value_key).unwrap(), None);
        // The answer is final: asked again, it is rolled back; a late prewrite fails.
        assert_eq!(
            check(&kv, &params(b"p", EXPIRED_MS)).unwrap(),
            TxnStatus::RolledBack
        );
        let late = prewrite_mutations(
            &MvccReader::new(&kv),
            &PrewriteParams::new(start(), b"p".to_vec(), 3000),
            &[mutation(Op::Put, b"p", b"v")],
        )
        .unwrap();
        assert_eq!(late.errors.len(), 1);
    }

    #[test]
    fn an_alive_2pc_lock_is_reported_and_never_pushed() {
        let (_dir, kv) = engine();
        must_prewrite_put(&kv, b"p", b"v", b"p", start());
        let before = lock_of(&kv, b"p").unwrap();
        let p = CheckTxnStatusParams {
            caller_start_ts: tso(3000),
            ..params(b"p", ALIVE_MS)
        };
        let (res, t) = try_act(&kv, |r, t| check_txn_status(r, t, &p));
        let status = res.unwrap();
        assert!(t.is_empty());
        assert_eq!(
            status,
            TxnStatus::Uncommitted {
                lock: before.clone(),
                min_commit_ts_pushed: false
            }
        );
        assert_eq!(status.action(), Action::NoAction);
        let (commit, ttl, info) = status.reply();
        let info = info.unwrap();
        assert_eq!((commit, ttl), (0, 3000));
        assert_eq!((info.key, info.lock_version), (b"p".to_vec(), start()));
    }

    #[test]
    fn a_caller_at_or_above_min_commit_ts_pushes_it() {
        let (_dir, kv) = engine();
        with_min_commit_ts(&kv, start() + 10);
        // caller_start_ts + 1 wins over a smaller current_ts.
        let caller = tso(3500);
        let p = CheckTxnStatusParams {
            caller_start_ts: caller,
            current_ts: tso(2000),
            ..params(b"p", 0)
        };
        let status = check(&kv, &p).unwrap();
        assert_eq!(status.action(), Action::MinCommitTsPushed);
        assert_eq!(lock_of(&kv, b"p").unwrap().min_commit_ts, caller + 1);
        // current_ts wins when larger.
        let (_dir, kv) = engine();
        with_min_commit_ts(&kv, start() + 10);
        let p = CheckTxnStatusParams {
            caller_start_ts: start() + 10,
            ..params(b"p", ALIVE_MS)
        };
        assert_eq!(check(&kv, &p).unwrap().action(), Action::MinCommitTsPushed);
        assert_eq!(lock_of(&kv, b"p").unwrap().min_commit_ts, tso(ALIVE_MS));
    }

    #[test]
    fn a_min_commit_ts_already_above_the_caller_is_reported_pushed_without_writing() {
        let (_dir, kv) = engine();
        with_min_commit_ts(&kv, start() + 10);
        let p = CheckTxnStatusParams {
            caller_start_ts: start() + 5,
            ..params(b"p", ALIVE_MS)
        };
        let (res, t) = try_act(&kv, |r, t| check_txn_status(r, t, &p));
        assert_eq!(res.unwrap().action(), Action::MinCommitTsPushed);
        assert!(t.is_empty());
        // A caller of 0 (GC) never counts as pushed.
        let p = CheckTxnStatusParams {
            caller_start_ts: 0,
            ..params(b"p", ALIVE_MS)
        };
        let (res, t) = try_act(&kv, |r, t| check_txn_status(r, t, &p));
        assert_eq!(res.unwrap().action(), Action::NoAction);
        assert!(t.is_empty());
    }

    #[test]
    fn a_max_caller_is_reported_pushed_but_never_pushes() {
        let (_dir, kv) = engine();
        let lock = with_min_commit_ts(&kv, start() + 10);
        let p = CheckTxnStatusParams {
            caller_start_ts: u64::MAX,
            ..params(b"p", ALIVE_MS)
        };
        let (res, t) = try_act(&kv, |r, t| check_txn_status(r, t, &p));
        assert_eq!(
            res.unwrap(),
            TxnStatus::Uncommitted {
                lock,
                min_commit_ts_pushed: true
            }
        );
        assert!(t.is_empty());
    }

    #[test]
    fn without_a_lock_a_commit_record_means_committed() {
        let (_dir, kv) = engine();
        must_put(&kv, b"p", b"v", start(), start() + 5);
        let status = check(&kv, &params(b"p", ALIVE_MS)).unwrap();
        assert_eq!(
            status,
            TxnStatus::Committed {
                commit_ts: start() + 5
            }
        );
        assert_eq!(status.reply(), (start() + 5, 0, None));
        assert_eq!(status.action(), Action::NoAction);
    }

    #[test]
    fn without_a_lock_a_rollback_record_means_rolled_back() {
        let (_dir, kv) = engine();
        act(&kv, |r, t| {
            crate::actions::rollback::rollback(r, t, b"p", start(), false)
        })
        .unwrap();
        assert_eq!(
            check(&kv, &params(b"p", ALIVE_MS)).unwrap(),
            TxnStatus::RolledBack
        );
        // An overlapped rollback counts too.
        let (_dir, kv) = engine();
        let mut w = Write::new(WriteType::Put, start() - 5, None);
        w.has_overlapped_rollback = true;
        let mut t = MvccTxn::new();
        t.put_write(&Key::from_raw(b"p"), start(), &w);
        apply(&kv, t.modifies());
        let (res, t) = try_act(&kv, |r, t| check_txn_status(r, t, &params(b"p", ALIVE_MS)));
        assert_eq!(res.unwrap(), TxnStatus::RolledBack);
        assert!(t.is_empty());
    }

    #[test]
    fn with_nothing_there_it_is_not_found_unless_asked_to_roll_back() {
        let (_dir, kv) = engine();
        // Another transaction's lock is not this transaction's.
        must_prewrite_put(&kv, b"p", b"v", b"p", start() + 1);
        let (res, t) = try_act(&kv, |r, t| check_txn_status(r, t, &params(b"p", ALIVE_MS)));
        assert!(
            matches!(res, Err(Error::TxnNotFound { start_ts, ref key }) if start_ts == start() && key == b"p")
        );
        assert!(t.is_empty());
        let p = CheckTxnStatusParams {
            rollback_if_not_exist: true,
            ..params(b"p", ALIVE_MS)
        };
        let status = check(&kv, &p).unwrap();
        assert_eq!(status, TxnStatus::LockNotExistRollback);
        assert_eq!(status.action(), Action::LockNotExistRollback);
        assert!(protected_rollback_at(&kv, b"p"));
        assert_eq!(
            lock_of(&kv, b"p").unwrap().ts,
            start() + 1,
            "their lock stays"
        );
    }

    #[test]
    fn with_nothing_there_a_pessimistic_resolve_does_nothing() {
        let (_dir, kv) = engine();
        let p = CheckTxnStatusParams {
            rollback_if_not_exist: true,
            resolving_pessimistic_lock: true,
            ..params(b"p", ALIVE_MS)
        };
        let (res, t) = try_act(&kv, |r, t| check_txn_status(r, t, &p));
        let status = res.unwrap();
        assert_eq!(status, TxnStatus::LockNotExistDoNothing);
        assert_eq!(status.action(), Action::LockNotExistDoNothing);
        assert!(t.is_empty());
        // Without rollback_if_not_exist it is still not found.
        let p = CheckTxnStatusParams {
            rollback_if_not_exist: false,
            ..p
        };
        assert!(matches!(check(&kv, &p), Err(Error::TxnNotFound { .. })));
    }

    #[test]
    fn the_remaining_actions_map_as_tikv_replies() {
        assert_eq!(TxnStatus::RolledBack.action(), Action::NoAction);
        assert_eq!(
            TxnStatus::PessimisticRollback.action(),
            Action::TtlExpirePessimisticRollback
        );
        for s in [
            TxnStatus::RolledBack,
            TxnStatus::LockNotExistDoNothing,
            TxnStatus::PessimisticRollback,
        ] {
            assert_eq!(s.reply(), (0, 0, None));
        }
    }

    #[test]
    fn lock_ts_zero_is_invalid() {
        let (_dir, kv) = engine();
        let p = CheckTxnStatusParams {
            lock_ts: 0,
            ..params(b"p", ALIVE_MS)
        };
        assert!(matches!(check(&kv, &p), Err(Error::InvalidRequest(_))));
    }
}
