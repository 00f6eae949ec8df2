//! Async-commit and 1PC prewrites: the checks of a 2PC prewrite (`prewrite`), then a commit
//! timestamp chosen by the store instead of by the client (reference §2.3, §2.7; TiKV
//! `src/storage/txn/actions/prewrite.rs` `async_commit_timestamps` and
//! `commands/prewrite.rs` `handle_1pc_locks`).
//!
//! - **Async commit**: every key gets a lock marked `use_async_commit`; the primary's lock lists
//!   the secondaries. The transaction is committed as soon as every prewrite succeeded, at the
//!   largest `min_commit_ts` they answered; whoever finds its locks later decides its fate
//!   from the secondaries (CheckSecondaryLocks).
//! - **1PC**: the request holds every key of the transaction; instead of locks it writes the
//!   commit records at once, at `one_pc_commit_ts`.
//! - **An async-commit request that holds every key** (the primary and all its secondaries,
//!   so one region, one request): the transaction is committed the moment its locks would be
//!   written, at the `min_commit_ts` the request answers, so the commit records are written
//!   at once instead, as 1PC does. The answer is the async-commit answer
//!   (`min_commit_ts`, `one_pc_commit_ts` 0); the client's commit that follows finds the
//!   records and succeeds without another raft write, and resolvers find them too. This
//!   saves the commit phase's write, which otherwise competes with the client's next
//!   transaction.
//!
//! Both choose the timestamp as `max(max_ts, start_ts, for_update_ts) + 1` (and at least the
//! request's and the locks' own min_commit_ts) while putting the keys in the concurrency
//! manager's memory lock table, which they stay in until the write is applied. If the
//! client's `max_commit_ts` is exceeded the request silently falls back to plain 2PC locks
//! and answers 0 (TiKV `fallback_1pc_locks` / `CommitTsTooLarge` fallback).
//!
//! Request rules, checked before anything is read (`InvalidRequest`):
//! - 1PC: the request must hold the primary and every secondary, since nothing else will
//!   ever commit the keys it leaves out (a 1PC request spanning two regions cannot).
//! - Async commit: a request holding the primary must list every other key it holds among the
//!   secondaries: a key missing from the list could never be found by whoever resolves the
//!   transaction from its secondaries.

use std::collections::HashSet;
use std::sync::Arc;

use engine::KvRead;
use proto::kvrpcpb::Mutation;

use super::commit::rollback_at;
use super::prewrite::{
    plan_mutations, validate_request, Plan, Planned, PlannedLock, PrewriteParams,
};
use crate::concurrency_manager::{ConcurrencyManager, MemoryLockGuard};
use crate::errors::{Error, Result};
use crate::mvcc::{Modify, MvccReader, MvccTxn, Write, WriteType};

/// The result of an async-commit or 1PC prewrite request.
#[derive(Debug, Default)]
pub struct AsyncPrewriteOutcome {
    /// The locks (async commit, or a fallback to 2PC) or commit records (1PC) to write;
    /// nothing when a key failed.
    pub modifies: Vec<Modify>,
    /// One error per failed key, in mutation order.
    pub errors: Vec<Error>,
    /// Async commit: the smallest commit_ts every lock of the request accepts
    /// (`PrewriteResponse.min_commit_ts`); 0 for 1PC and after a fallback to 2PC.
    pub min_commit_ts: u64,
    /// 1PC: the commit_ts the transaction committed at (`one_pc_commit_ts`); 0 otherwise.
    pub one_pc_commit_ts: u64,
    /// The memory locks of the keys written, to be dropped once `modifies` are applied.
    pub memory_locks: Option<MemoryLockGuard>,
}

/// Checks the async-commit / 1PC rules of the module doc on a request.
pub fn validate_async_request(params: &PrewriteParams, mutations: &[Mutation]) -> Result<()> {
    // The commit timestamp is chosen above both; u64::MAX leaves no room.
    if params.start_ts == u64::MAX || params.for_update_ts == u64::MAX {
        return Err(Error::InvalidRequest(
            "an async-commit or 1PC prewrite needs start_ts and for_update_ts below u64::MAX"
                .into(),
        ));
    }
    let keys: HashSet<&[u8]> = mutations.iter().map(|m| m.key.as_slice()).collect();
    let holds_primary = keys.contains(params.primary.as_slice());
    if params.try_one_pc {
        let missing = params
            .secondaries
            .iter()
            .any(|s| !keys.contains(s.as_slice()));
        if !holds_primary || missing {
            return Err(Error::InvalidRequest(
                "a 1PC prewrite must hold its primary and every secondary".into(),
            ));
        }
    }
    if params.use_async_commit && holds_primary {
        let listed: HashSet<&[u8]> = params.secondaries.iter().map(Vec::as_slice).collect();
        let unlisted = keys
            .iter()
            .any(|k| *k != params.primary.as_slice() && !listed.contains(k));
        if unlisted {
            return Err(Error::InvalidRequest(
                "an async-commit prewrite of the primary must list every other key among its \
                 secondaries"
                    .into(),
            ));
        }
    }
    Ok(())
}

/// Whether an async-commit request (not 1PC) holds its primary and every secondary: the
/// whole transaction, committed by this request alone.
fn holds_whole_async_txn(params: &PrewriteParams, mutations: &[Mutation]) -> bool {
    if !params.use_async_commit || params.try_one_pc {
        return false;
    }
    let keys: HashSet<&[u8]> = mutations.iter().map(|m| m.key.as_slice()).collect();
    keys.contains(params.primary.as_slice())
        && params
            .secondaries
            .iter()
            .all(|s| keys.contains(s.as_slice()))
}

/// Prewrites a request with `use_async_commit` or `try_one_pc` by the rules of the module
/// doc, all keys or none. The caller raises nothing itself: max_ts is read from `cm`, which
/// must have been synced from PD since this store became the region's leader.
///
/// Errors (`Err`): what [`super::prewrite::prewrite_mutations`] refuses, the request rules
/// above, storage failures. Key failures are in the outcome.
pub fn prewrite_async<S: KvRead>(
    reader: &MvccReader<'_, S>,
    params: &PrewriteParams,
    mutations: &[Mutation],
    cm: &Arc<ConcurrencyManager>,
) -> Result<AsyncPrewriteOutcome> {
    validate_request(params, mutations)?;
    validate_async_request(params, mutations)?;
    let planned = match plan_mutations(reader, params, mutations)? {
        Plan::Ready(planned) => planned,
        Plan::Failed(errors) => {
            return Ok(AsyncPrewriteOutcome {
                errors,
                ..AsyncPrewriteOutcome::default()
            })
        }
        // A retry after the commit: answer the commit_ts again (TiKV
        // `check_committed_record_on_err`).
        Plan::AlreadyCommitted(commit_ts) => {
            return Ok(AsyncPrewriteOutcome {
                min_commit_ts: if params.use_async_commit {
                    commit_ts
                } else {
                    0
                },
                one_pc_commit_ts: if params.try_one_pc { commit_ts } else { 0 },
                ..AsyncPrewriteOutcome::default()
            })
        }
    };
    let mut retried_min_commit_ts = 0;
    let mut locks = Vec::with_capacity(planned.len());
    for p in planned {
        match p {
            Planned::Lock(lock) => locks.push(lock),
            Planned::Retry(lock) => {
                retried_min_commit_ts = retried_min_commit_ts.max(lock.min_commit_ts)
            }
            Planned::Nothing => {}
        }
    }
    // Locks left by an earlier attempt of this request mean it was not committed in one
    // phase; the keys still unlocked get locks too (TiKV falls back the same way).
    let one_pc = (params.try_one_pc || holds_whole_async_txn(params, mutations))
        && retried_min_commit_ts == 0;
    if locks.is_empty() && retried_min_commit_ts != 0 {
        // Every key is already locked by an earlier attempt: the locks carry the commit
        // timestamp, and answering any other one would let the client commit at a timestamp
        // other than the one a resolver computes from the locks.
        return Ok(AsyncPrewriteOutcome {
            min_commit_ts: if params.use_async_commit {
                retried_min_commit_ts
            } else {
                0
            },
            ..AsyncPrewriteOutcome::default()
        });
    }
    let entries = locks
        .iter()
        .map(|l| (l.key.clone(), l.raw_key.clone(), l.lock.clone()))
        .collect();
    let floor = params.min_commit_ts.max(retried_min_commit_ts);
    let (guard, commit_ts) = cm.lock_for_commit(
        entries,
        params.start_ts,
        params.for_update_ts,
        floor,
        one_pc,
    );
    let mut txn = MvccTxn::new();
    if params.max_commit_ts != 0 && commit_ts > params.max_commit_ts {
        drop(guard);
        for mut l in locks {
            l.lock.use_async_commit = false;
            l.lock.secondaries.clear();
            l.write_lock(&mut txn);
        }
        return Ok(AsyncPrewriteOutcome {
            modifies: txn.into_modifies(),
            ..AsyncPrewriteOutcome::default()
        });
    }
    let mut outcome = AsyncPrewriteOutcome::default();
    if one_pc {
        for l in locks {
            commit_in_one_phase(reader, &mut txn, l, commit_ts)?;
        }
        if params.try_one_pc {
            outcome.one_pc_commit_ts = commit_ts;
        } else {
            outcome.min_commit_ts = commit_ts;
        }
    } else {
        for mut l in locks {
            l.lock.min_commit_ts = commit_ts;
            l.write_lock(&mut txn);
        }
        if params.use_async_commit {
            outcome.min_commit_ts = commit_ts;
        }
    }
    outcome.modifies = txn.into_modifies();
    outcome.memory_locks = Some(guard);
    Ok(outcome)
}

/// 1PC for one key: the commit record the lock would have become (as `commit` writes it),
/// its long value at start_ts, and the pessimistic lock it replaces removed.
fn commit_in_one_phase<S: KvRead>(
    reader: &MvccReader<'_, S>,
    txn: &mut MvccTxn,
    planned: PlannedLock,
    commit_ts: u64,
) -> Result<()> {
    let PlannedLock {
        key,
        mut lock,
        long_value,
        over_pessimistic_lock,
        ..
    } = planned;
    let write_type = WriteType::from_lock_type(lock.lock_type).ok_or_else(|| {
        Error::InvalidRequest("a pessimistic lock cannot be committed in one phase".into())
    })?;
    if let Some(value) = long_value {
        txn.put_value(&key, lock.ts, value);
    }
    let mut write = Write::new(write_type, lock.ts, lock.short_value.take());
    write.has_overlapped_rollback = rollback_at(reader, &key, commit_ts)?;
    txn.put_write(&key, commit_ts, &write);
    if over_pessimistic_lock {
        txn.unlock_key(&key);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proto::kvrpcpb::Op;

    use super::*;
    use crate::actions::acquire_pessimistic_lock::{
        acquire_pessimistic_lock, PessimisticLockParams,
    };
    use crate::actions::prewrite::test_support::{mutation, tso};
    use crate::actions::read::{check_memory_lock, point_get};
    use crate::mvcc::{Key, LockType, SHORT_VALUE_MAX_LEN};
    use crate::test_util::{apply, engine};

    fn params(start_ts: u64, secondaries: &[&[u8]]) -> PrewriteParams {
        PrewriteParams {
            secondaries: secondaries.iter().map(|s| s.to_vec()).collect(),
            ..PrewriteParams::new(start_ts, b"p".to_vec(), 3000)
        }
    }

    fn async_params(start_ts: u64, secondaries: &[&[u8]]) -> PrewriteParams {
        PrewriteParams {
            use_async_commit: true,
            ..params(start_ts, secondaries)
        }
    }

    fn one_pc_params(start_ts: u64, secondaries: &[&[u8]]) -> PrewriteParams {
        PrewriteParams {
            try_one_pc: true,
            ..params(start_ts, secondaries)
        }
    }

    fn puts(keys: &[&[u8]]) -> Vec<Mutation> {
        keys.iter().map(|k| mutation(Op::Put, k, b"v")).collect()
    }

    fn cm_at(max_ts: u64) -> Arc<ConcurrencyManager> {
        Arc::new(ConcurrencyManager::new(max_ts))
    }

    #[test]
    fn async_commit_locks_take_a_min_commit_ts_above_every_read_and_stay_in_memory() {
        let (_dir, kv) = engine();
        let cm = cm_at(tso(50));
        // A secondary in another region keeps this request from holding the whole
        // transaction, so it writes locks.
        let p = async_params(tso(10), &[b"s", b"t"]);
        let out = prewrite_async(&MvccReader::new(&kv), &p, &puts(&[b"p", b"s"]), &cm).unwrap();
        assert!(out.errors.is_empty());
        assert_eq!(out.min_commit_ts, tso(50) + 1);
        assert_eq!(out.one_pc_commit_ts, 0);
        assert_eq!(cm.memory_locks(), 2);
        apply(&kv, &out.modifies);
        let reader = MvccReader::new(&kv);
        let primary = reader.load_lock(&Key::from_raw(b"p")).unwrap().unwrap();
        assert!(primary.use_async_commit);
        assert_eq!(primary.secondaries, vec![b"s".to_vec(), b"t".to_vec()]);
        assert_eq!(primary.min_commit_ts, out.min_commit_ts);
        let secondary = reader.load_lock(&Key::from_raw(b"s")).unwrap().unwrap();
        assert!(secondary.use_async_commit && secondary.secondaries.is_empty());
        // A read at the commit_ts is stopped by the memory lock; one below it is not.
        let blocked = cm.read_key_check(&Key::from_raw(b"s"), |l| {
            check_memory_lock(l, out.min_commit_ts)
        });
        assert!(matches!(blocked, Err(Error::KeyIsLocked(_))));
        let below = cm.read_key_check(&Key::from_raw(b"s"), |l| check_memory_lock(l, tso(50)));
        assert!(below.is_ok());
        drop(out.memory_locks);
        assert_eq!(cm.memory_locks(), 0);
    }

    #[test]
    fn a_retried_async_prewrite_answers_the_same_min_commit_ts_and_writes_nothing() {
        let (_dir, kv) = engine();
        let cm = cm_at(tso(50));
        let p = async_params(tso(10), &[b"s"]);
        let m = puts(&[b"p", b"s"]);
        let first = prewrite_async(&MvccReader::new(&kv), &p, &m, &cm).unwrap();
        apply(&kv, &first.modifies);
        drop(first.memory_locks);
        cm.update_max_ts(tso(90)).unwrap();
        let again = prewrite_async(&MvccReader::new(&kv), &p, &m, &cm).unwrap();
        assert_eq!(again.min_commit_ts, first.min_commit_ts);
        assert!(again.modifies.is_empty());
    }

    #[test]
    fn an_async_request_holding_the_whole_transaction_commits_it_at_once() {
        let (_dir, kv) = engine();
        let cm = cm_at(tso(50));
        let p = async_params(tso(10), &[b"s"]);
        let out = prewrite_async(&MvccReader::new(&kv), &p, &puts(&[b"p", b"s"]), &cm).unwrap();
        assert!(out.errors.is_empty());
        let commit_ts = out.min_commit_ts;
        assert_eq!(commit_ts, tso(50) + 1);
        assert_eq!(
            out.one_pc_commit_ts, 0,
            "client 0.4 insists on 0 for async commit"
        );
        // The keys stay in memory until the records are applied, as a 1PC write's do.
        assert_eq!(cm.memory_locks(), 2);
        apply(&kv, &out.modifies);
        drop(out.memory_locks);
        let reader = MvccReader::new(&kv);
        for key in [b"p", b"s"] {
            assert!(reader.load_lock(&Key::from_raw(key)).unwrap().is_none());
            assert_eq!(
                point_get(&reader, key, commit_ts).unwrap(),
                Some(b"v".to_vec())
            );
            assert_eq!(point_get(&reader, key, commit_ts - 1).unwrap(), None);
        }
        // The client's commit at that timestamp finds the records and writes nothing.
        let mut txn = MvccTxn::new();
        for key in [b"p", b"s"] {
            crate::actions::commit::commit(&reader, &mut txn, key, tso(10), commit_ts).unwrap();
        }
        assert!(txn.into_modifies().is_empty());
    }

    #[test]
    fn one_pc_writes_commit_records_and_no_locks() {
        let (_dir, kv) = engine();
        let cm = cm_at(tso(50));
        let long = vec![7u8; SHORT_VALUE_MAX_LEN + 1];
        let mut m = puts(&[b"p"]);
        m.push(mutation(Op::Put, b"s", &long));
        let out = prewrite_async(
            &MvccReader::new(&kv),
            &one_pc_params(tso(10), &[b"s"]),
            &m,
            &cm,
        )
        .unwrap();
        let commit_ts = out.one_pc_commit_ts;
        assert_eq!(commit_ts, tso(50) + 1);
        assert_eq!(out.min_commit_ts, 0);
        apply(&kv, &out.modifies);
        let reader = MvccReader::new(&kv);
        assert!(reader.load_lock(&Key::from_raw(b"p")).unwrap().is_none());
        assert_eq!(
            point_get(&reader, b"p", commit_ts).unwrap(),
            Some(b"v".to_vec())
        );
        assert_eq!(point_get(&reader, b"s", commit_ts).unwrap(), Some(long));
        assert_eq!(point_get(&reader, b"s", commit_ts - 1).unwrap(), None);
    }

    #[test]
    fn one_pc_over_pessimistic_locks_removes_them() {
        let (_dir, kv) = engine();
        let cm = cm_at(tso(50));
        let lock_params = PessimisticLockParams::new(b"p".to_vec(), tso(10), tso(20), 3000);
        let reader = MvccReader::new(&kv);
        let mut txn = MvccTxn::new();
        acquire_pessimistic_lock(&reader, &mut txn, &lock_params, b"p", false).unwrap();
        apply(&kv, txn.modifies());
        let p = PrewriteParams {
            for_update_ts: tso(20),
            ..one_pc_params(tso(10), &[])
        };
        let out = prewrite_async(&MvccReader::new(&kv), &p, &puts(&[b"p"]), &cm).unwrap();
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        apply(&kv, &out.modifies);
        let reader = MvccReader::new(&kv);
        assert!(reader.load_lock(&Key::from_raw(b"p")).unwrap().is_none());
        assert_eq!(
            point_get(&reader, b"p", out.one_pc_commit_ts).unwrap(),
            Some(b"v".to_vec())
        );
    }

    #[test]
    fn a_commit_ts_above_max_commit_ts_falls_back_to_two_phase_locks() {
        let (_dir, kv) = engine();
        let cm = cm_at(tso(50));
        let p = PrewriteParams {
            max_commit_ts: tso(40),
            ..async_params(tso(10), &[b"s"])
        };
        let out = prewrite_async(&MvccReader::new(&kv), &p, &puts(&[b"p", b"s"]), &cm).unwrap();
        assert_eq!((out.min_commit_ts, out.one_pc_commit_ts), (0, 0));
        assert!(out.memory_locks.is_none());
        assert_eq!(cm.memory_locks(), 0);
        apply(&kv, &out.modifies);
        let lock = MvccReader::new(&kv)
            .load_lock(&Key::from_raw(b"p"))
            .unwrap()
            .unwrap();
        assert_eq!(lock.lock_type, LockType::Put);
        assert!(!lock.use_async_commit && lock.secondaries.is_empty());
    }

    #[test]
    fn requests_that_could_lose_keys_are_refused_before_anything_is_read() {
        let (_dir, kv) = engine();
        let cm = cm_at(tso(50));
        let reader = MvccReader::new(&kv);
        // 1PC whose transaction has a key elsewhere (another region's).
        let spanning = one_pc_params(tso(10), &[b"s", b"elsewhere"]);
        let err = prewrite_async(&reader, &spanning, &puts(&[b"p", b"s"]), &cm).unwrap_err();
        assert!(matches!(err, Error::InvalidRequest(_)), "{err:?}");
        // 1PC without its primary.
        let no_primary = one_pc_params(tso(10), &[b"s"]);
        let err = prewrite_async(&reader, &no_primary, &puts(&[b"s"]), &cm).unwrap_err();
        assert!(matches!(err, Error::InvalidRequest(_)), "{err:?}");
        // Async commit of the primary with a key missing from the secondaries.
        let unlisted = async_params(tso(10), &[]);
        let err = prewrite_async(&reader, &unlisted, &puts(&[b"p", b"s"]), &cm).unwrap_err();
        assert!(matches!(err, Error::InvalidRequest(_)), "{err:?}");
        assert_eq!(cm.memory_locks(), 0);
        // A secondaries-only batch needs no list (client 0.4 clears it there).
        let batch = async_params(tso(10), &[]);
        let out = prewrite_async(&reader, &batch, &puts(&[b"s"]), &cm).unwrap();
        assert!(out.errors.is_empty() && out.min_commit_ts > tso(50));
    }

    #[test]
    fn a_conflicting_key_fails_the_request_and_takes_no_memory_lock() {
        let (_dir, kv) = engine();
        let cm = cm_at(tso(50));
        let other = async_params(tso(5), &[b"elsewhere"]);
        let out = prewrite_async(&MvccReader::new(&kv), &other, &puts(&[b"p"]), &cm).unwrap();
        apply(&kv, &out.modifies);
        drop(out.memory_locks);
        let p = async_params(tso(10), &[b"s"]);
        let out = prewrite_async(&MvccReader::new(&kv), &p, &puts(&[b"p", b"s"]), &cm).unwrap();
        assert_eq!(out.errors.len(), 1);
        assert!(matches!(out.errors[0], Error::KeyIsLocked(_)));
        assert!(out.modifies.is_empty() && out.memory_locks.is_none());
        assert_eq!(cm.memory_locks(), 0);
    }

    #[test]
    fn a_request_that_only_checks_absence_still_answers_a_commit_ts_above_start_ts() {
        let (_dir, kv) = engine();
        let cm = cm_at(tso(5));
        let m = vec![mutation(Op::CheckNotExists, b"p", b"")];
        for p in [async_params(tso(10), &[]), one_pc_params(tso(10), &[])] {
            let out = prewrite_async(&MvccReader::new(&kv), &p, &m, &cm).unwrap();
            assert!(out.modifies.is_empty());
            let answered = out.min_commit_ts.max(out.one_pc_commit_ts);
            assert_eq!(answered, tso(10) + 1);
        }
    }

    #[test]
    fn timestamps_with_no_room_above_them_are_refused() {
        let (_dir, kv) = engine();
        let cm = cm_at(tso(5));
        let reader = MvccReader::new(&kv);
        let top = async_params(u64::MAX, &[]);
        let err = prewrite_async(&reader, &top, &puts(&[b"p"]), &cm).unwrap_err();
        assert!(matches!(err, Error::InvalidRequest(_)), "{err:?}");
        let top_for_update = PrewriteParams {
            for_update_ts: u64::MAX,
            ..one_pc_params(tso(10), &[])
        };
        let err = prewrite_async(&reader, &top_for_update, &puts(&[b"p"]), &cm).unwrap_err();
        assert!(matches!(err, Error::InvalidRequest(_)), "{err:?}");
    }
}
