//! Prewrite, the first phase of Percolator's two-phase commit: every key of the transaction
//! gets a lock of the transaction (pointing at its primary), after checking that no other
//! transaction locked it and nothing was committed on it since the transaction started.
//!
//! Rules (reference §2.3; TiKV `src/storage/txn/actions/prewrite.rs` and
//! `src/storage/txn/commands/prewrite.rs`), for an optimistic prewrite (`for_update_ts == 0`):
//! 1. Another transaction's lock on the key → `KeyIsLocked` with that lock's `LockInfo`.
//! 2. This transaction's own lock already there → success without writing (a retried request).
//! 3. The newest write record has commit_ts > start_ts (of any type) → `WriteConflict`
//!    (reason `Optimistic`); a `Rollback` record, or a commit record flagged
//!    `has_overlapped_rollback`, at exactly start_ts → `WriteConflict` (reason
//!    `SelfRolledBack`): a resolver already rolled the transaction back (pitfalls #5, #6).
//! 4. `Insert` and `CheckNotExists`: the newest data version (skipping `Lock` and `Rollback`
//!    records) is a `Put` → `AlreadyExist`. `CheckNotExists` then writes nothing.
//! 5. The lock: `Put`/`Insert` → `Put`, `Del` → `Delete`, `Lock` → `Lock`; a value of at most
//!    `SHORT_VALUE_MAX_LEN` bytes sits in the lock, a longer one goes to CF `default` at
//!    start_ts.
//!
//! Command level ([`prewrite_mutations`]): every mutation is tried and every key error kept; if
//! any key failed nothing is written. A key error on a key this transaction has in fact
//! committed (a prewrite retried after the commit) makes the whole request a success that
//! writes nothing (TiKV `check_committed_record_on_err`).
//!
//! Not yet here (later parts): pessimistic prewrites (`for_update_ts != 0`, rejected as
//! `InvalidRequest`), and the timestamps of async commit and 1PC, which need the store-wide
//! max_ts and the in-memory lock table (reference §2.3, §2.7). The async-commit lock fields
//! (`use_async_commit`, `secondaries` on the primary, `min_commit_ts`) are already written
//! from [`PrewriteParams`] so that layer only has to compute `min_commit_ts`.

use engine::KvRead;
use proto::kvrpcpb::{Mutation, Op};

use crate::errors::{Error, Result, WriteConflictReason};
use crate::mvcc::{
    Key, Lock, LockType, Modify, MvccReader, MvccTxn, WriteType, SHORT_VALUE_MAX_LEN,
};

/// What a prewrite request says about the whole transaction (`kvrpcpb::PrewriteRequest`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrewriteParams {
    /// The transaction's start timestamp; must not be 0.
    pub start_ts: u64,
    /// The transaction's primary key (raw user key), written into every lock.
    pub primary: Vec<u8>,
    /// Lock time to live in milliseconds, counted from the physical time of `start_ts`.
    pub lock_ttl: u64,
    /// The client's estimate of the number of keys in the transaction (kept in the locks).
    pub txn_size: u64,
    /// 0 for an optimistic transaction. Pessimistic prewrites are not supported yet.
    pub for_update_ts: u64,
    /// Async commit: every lock of the request is marked, the primary's lock lists the
    /// secondaries.
    pub use_async_commit: bool,
    /// Every key of the transaction but the primary (raw user keys); kept only on the
    /// primary's lock and only with `use_async_commit` (client 0.4 sends it for plain 2PC too,
    /// and the server must ignore it there: reference §1.2).
    pub secondaries: Vec<Vec<u8>>,
    /// The smallest commit_ts the locks accept (0 from client 0.4 for 2PC). For async commit
    /// the command layer sets it to max(max_ts, start_ts, for_update_ts) + 1 while holding
    /// the keys in the memory lock table (reference §2.3, pitfall #2).
    pub min_commit_ts: u64,
}

impl PrewriteParams {
    /// Optimistic 2PC parameters with the given start_ts, primary and TTL; the rest empty.
    pub fn new(start_ts: u64, primary: Vec<u8>, lock_ttl: u64) -> PrewriteParams {
        PrewriteParams {
            start_ts,
            primary,
            lock_ttl,
            ..PrewriteParams::default()
        }
    }

    /// Rejects requests no prewrite can serve: start_ts 0, an empty primary, and (for now)
    /// pessimistic prewrites.
    pub fn validate(&self) -> Result<()> {
        if self.start_ts == 0 {
            return Err(Error::InvalidRequest("prewrite with start_ts 0".into()));
        }
        if self.primary.is_empty() {
            return Err(Error::InvalidRequest(
                "prewrite with an empty primary".into(),
            ));
        }
        if self.for_update_ts != 0 {
            return Err(Error::InvalidRequest(
                "pessimistic prewrite (for_update_ts != 0) is not supported yet".into(),
            ));
        }
        Ok(())
    }
}

/// What one mutation asks of its key, decoded from `Mutation.op`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MutationKind {
    /// The lock to write; `None` for `CheckNotExists`, which writes nothing.
    lock_type: Option<LockType>,
    /// `Insert` / `CheckNotExists`: the key must not have a value.
    should_not_exist: bool,
}

impl MutationKind {
    /// Decodes the op; `Rollback`, `PessimisticLock` (in an optimistic prewrite) and unknown
    /// values are not prewrite operations → `InvalidRequest`.
    fn of(m: &Mutation) -> Result<MutationKind> {
        let kind = |lock_type, should_not_exist| MutationKind {
            lock_type,
            should_not_exist,
        };
        match Op::try_from(m.op) {
            Ok(Op::Put) => Ok(kind(Some(LockType::Put), false)),
            Ok(Op::Del) => Ok(kind(Some(LockType::Delete), false)),
            Ok(Op::Lock) => Ok(kind(Some(LockType::Lock), false)),
            Ok(Op::Insert) => Ok(kind(Some(LockType::Put), true)),
            Ok(Op::CheckNotExists) => Ok(kind(None, true)),
            Ok(other) => Err(Error::InvalidRequest(format!(
                "{other:?} is not an optimistic prewrite operation"
            ))),
            Err(_) => Err(Error::InvalidRequest(format!("unknown op {}", m.op))),
        }
    }
}

/// Checks one mutation's shape: a prewrite op and a non-empty key.
fn validate_mutation(m: &Mutation) -> Result<MutationKind> {
    if m.key.is_empty() {
        return Err(Error::InvalidRequest("prewrite of an empty key".into()));
    }
    MutationKind::of(m)
}

/// Prewrites one mutation (rules 1–5 of this module), adding the lock (and a long value) to
/// `txn`. An error leaves `txn` untouched.
pub fn prewrite<S: KvRead>(
    reader: &MvccReader<'_, S>,
    txn: &mut MvccTxn,
    params: &PrewriteParams,
    mutation: &Mutation,
) -> Result<()> {
    params.validate()?;
    let kind = validate_mutation(mutation)?;
    let key = Key::from_raw(&mutation.key);
    if let Some(lock) = reader.load_lock(&key)? {
        return check_existing_lock(lock, params, &mutation.key);
    }
    check_newer_writes(reader, &key, params, &mutation.key)?;
    if kind.should_not_exist {
        check_not_exists(reader, &key, &mutation.key)?;
    }
    if let Some(lock_type) = kind.lock_type {
        write_lock(txn, &key, lock_type, params, mutation);
    }
    Ok(())
}

/// A lock is already on the key. Another transaction's → `KeyIsLocked` (rule 1). Our own
/// prewrite lock → success, nothing to write (rule 2: a retry). Our own pessimistic lock in an
/// optimistic prewrite → `LockTypeNotMatch` (TiKV `check_lock`).
fn check_existing_lock(lock: Lock, params: &PrewriteParams, raw_key: &[u8]) -> Result<()> {
    if lock.ts != params.start_ts {
        return Err(Error::KeyIsLocked(Box::new(
            lock.to_lock_info(raw_key.to_vec()),
        )));
    }
    if lock.lock_type == LockType::Pessimistic {
        return Err(Error::LockTypeNotMatch {
            start_ts: params.start_ts,
            key: raw_key.to_vec(),
            pessimistic: true,
        });
    }
    Ok(())
}

/// Rule 3: only the newest write record matters. Anything committed (or rolled back by
/// another transaction) after start_ts means a concurrent writer won; a rollback at exactly
/// start_ts means this transaction was already rolled back (TiKV
/// `check_for_newer_version`).
fn check_newer_writes<S: KvRead>(
    reader: &MvccReader<'_, S>,
    key: &Key,
    params: &PrewriteParams,
    raw_key: &[u8],
) -> Result<()> {
    let Some((commit_ts, write)) = reader.seek_write(key, u64::MAX)? else {
        return Ok(());
    };
    let reason = if commit_ts > params.start_ts {
        WriteConflictReason::Optimistic
    } else if commit_ts == params.start_ts
        && (write.write_type == WriteType::Rollback || write.has_overlapped_rollback)
    {
        WriteConflictReason::SelfRolledBack
    } else {
        return Ok(());
    };
    Err(Error::WriteConflict {
        start_ts: params.start_ts,
        conflict_start_ts: write.start_ts,
        conflict_commit_ts: commit_ts,
        key: raw_key.to_vec(),
        primary: params.primary.clone(),
        reason,
    })
}

/// Rule 4: the newest data version (`Lock` and `Rollback` records skipped) must not be a
/// `Put` (TiKV `check_data_constraint`). Runs after rule 3, so that version is at or below
/// start_ts. Also the NotExist assertion of a pessimistic lock
/// (`acquire_pessimistic_lock`), after its conflict check against for_update_ts.
pub(crate) fn check_not_exists<S: KvRead>(
    reader: &MvccReader<'_, S>,
    key: &Key,
    raw_key: &[u8],
) -> Result<()> {
    match reader.get_write(key, u64::MAX)? {
        Some((_, write)) if write.write_type == WriteType::Put => Err(Error::AlreadyExist {
            key: raw_key.to_vec(),
        }),
        _ => Ok(()),
    }
}

/// Rule 5: the lock, with a short value inline or a long one in CF `default` at start_ts.
fn write_lock(
    txn: &mut MvccTxn,
    key: &Key,
    lock_type: LockType,
    params: &PrewriteParams,
    mutation: &Mutation,
) {
    let mut lock = Lock::new(
        lock_type,
        params.primary.clone(),
        params.start_ts,
        params.lock_ttl,
    );
    lock.for_update_ts = params.for_update_ts;
    lock.txn_size = params.txn_size;
    lock.min_commit_ts = params.min_commit_ts;
    if params.use_async_commit {
        lock.use_async_commit = true;
        if mutation.key == params.primary {
            lock.secondaries = params.secondaries.clone();
        }
    }
    // Only a Put carries a value: Del and Lock mutations may arrive with stray bytes.
    if lock_type == LockType::Put {
        if mutation.value.len() <= SHORT_VALUE_MAX_LEN {
            lock.short_value = Some(mutation.value.clone());
        } else {
            txn.put_value(key, params.start_ts, mutation.value.clone());
        }
    }
    txn.put_lock(key, &lock);
}

/// The result of a whole prewrite request.
#[derive(Debug, Default)]
pub struct PrewriteOutcome {
    /// The changes to write: every lock and long value, or nothing when any key failed or the
    /// transaction turned out to be committed already.
    pub modifies: Vec<Modify>,
    /// One error per failed key, in mutation order (the reply's `errors[]`).
    pub errors: Vec<Error>,
    /// Set when a failed key carries this transaction's own commit record: the request was a
    /// retry after the commit, it succeeds without writing, and this is the commit_ts.
    pub already_committed: Option<u64>,
}

/// Prewrites every mutation of a request, all or nothing (module doc, "command level").
///
/// Errors (`Err`) are for the request as a whole: malformed parameters or mutations
/// (`InvalidRequest`: start_ts 0, no mutations, an empty key, a non-prewrite op), checked
/// before anything is read, and storage failures. Key failures are in the outcome.
pub fn prewrite_mutations<S: KvRead>(
    reader: &MvccReader<'_, S>,
    params: &PrewriteParams,
    mutations: &[Mutation],
) -> Result<PrewriteOutcome> {
    params.validate()?;
    if mutations.is_empty() {
        return Err(Error::InvalidRequest("prewrite without mutations".into()));
    }
    for m in mutations {
        validate_mutation(m)?;
    }
    let mut txn = MvccTxn::new();
    let mut errors = Vec::new();
    for m in mutations {
        match prewrite(reader, &mut txn, params, m) {
            Ok(()) => {}
            Err(e) if e.to_key_error().is_some() => {
                if let Some(commit_ts) = committed_by_this_txn(reader, &e, params, &m.key)? {
                    return Ok(PrewriteOutcome {
                        already_committed: Some(commit_ts),
                        ..PrewriteOutcome::default()
                    });
                }
                errors.push(e);
            }
            Err(e) => return Err(e),
        }
    }
    let modifies = if errors.is_empty() {
        txn.into_modifies()
    } else {
        Vec::new()
    };
    Ok(PrewriteOutcome {
        modifies,
        errors,
        already_committed: None,
    })
}

/// TiKV `check_committed_record_on_err`: after a lock or a newer-write conflict on a key, the
/// transaction's own commit record there means the request is a stale retry of a committed
/// transaction. Returns that commit_ts.
fn committed_by_this_txn<S: KvRead>(
    reader: &MvccReader<'_, S>,
    error: &Error,
    params: &PrewriteParams,
    raw_key: &[u8],
) -> Result<Option<u64>> {
    let may_be_committed = match error {
        Error::KeyIsLocked(_) => true,
        Error::WriteConflict { reason, .. } => *reason == WriteConflictReason::Optimistic,
        _ => false,
    };
    if !may_be_committed {
        return Ok(None);
    }
    let record = reader.get_txn_commit_record(&Key::from_raw(raw_key), params.start_ts)?;
    Ok(record.committed_ts())
}

/// Test helpers shared by the action tests: run an action on a real engine and apply what it
/// wrote, the way the scheduler would.
#[cfg(test)]
pub(crate) mod test_support {
    use engine::KvEngine;
    use proto::kvrpcpb::{Mutation, Op};

    use super::{prewrite_mutations, PrewriteParams};
    use crate::errors::Result;
    use crate::mvcc::{Key, Lock, MvccReader, MvccTxn};
    use crate::test_util::apply;

    /// A TSO timestamp at `ms` physical milliseconds (logical 0).
    pub fn tso(ms: u64) -> u64 {
        ms << crate::TSO_LOGICAL_BITS
    }

    pub fn mutation(op: Op, key: &[u8], value: &[u8]) -> Mutation {
        Mutation {
            op: op as i32,
            key: key.to_vec(),
            value: value.to_vec(),
            ..Mutation::default()
        }
    }

    /// Runs `f` on a fresh reader and txn; applies the changes only when it succeeds.
    pub fn act<T>(
        kv: &KvEngine,
        f: impl FnOnce(&MvccReader<'_, KvEngine>, &mut MvccTxn) -> Result<T>,
    ) -> Result<T> {
        let reader = MvccReader::new(kv);
        let mut txn = MvccTxn::new();
        let out = f(&reader, &mut txn)?;
        apply(kv, txn.modifies());
        Ok(out)
    }

    /// Runs `f` without applying anything; returns the answer and the changes it made.
    pub fn try_act<T>(
        kv: &KvEngine,
        f: impl FnOnce(&MvccReader<'_, KvEngine>, &mut MvccTxn) -> Result<T>,
    ) -> (Result<T>, MvccTxn) {
        let reader = MvccReader::new(kv);
        let mut txn = MvccTxn::new();
        let out = f(&reader, &mut txn);
        (out, txn)
    }

    /// Prewrites `mutations` for the transaction (`start_ts`, `primary`, `ttl`), which must
    /// succeed on every key, and applies the locks.
    pub fn must_prewrite(
        kv: &KvEngine,
        mutations: &[Mutation],
        primary: &[u8],
        start_ts: u64,
        ttl: u64,
    ) {
        let params = PrewriteParams::new(start_ts, primary.to_vec(), ttl);
        let out = prewrite_mutations(&MvccReader::new(kv), &params, mutations).expect("prewrite");
        assert!(out.errors.is_empty(), "prewrite failed: {:?}", out.errors);
        apply(kv, &out.modifies);
    }

    /// Prewrites a put of `key` with `primary` as primary.
    pub fn must_prewrite_put(
        kv: &KvEngine,
        key: &[u8],
        value: &[u8],
        primary: &[u8],
        start_ts: u64,
    ) {
        must_prewrite(
            kv,
            &[mutation(Op::Put, key, value)],
            primary,
            start_ts,
            3000,
        );
    }

    /// Commits `key` of the transaction at `start_ts` at `commit_ts`.
    pub fn must_commit(kv: &KvEngine, key: &[u8], start_ts: u64, commit_ts: u64) {
        act(kv, |r, t| {
            crate::actions::commit::commit(r, t, key, start_ts, commit_ts)
        })
        .expect("commit");
    }

    /// Prewrites and commits a put of `key` (its own primary).
    pub fn must_put(kv: &KvEngine, key: &[u8], value: &[u8], start_ts: u64, commit_ts: u64) {
        must_prewrite_put(kv, key, value, key, start_ts);
        must_commit(kv, key, start_ts, commit_ts);
    }

    /// The lock on `key`, if any.
    pub fn lock_of(kv: &KvEngine, key: &[u8]) -> Option<Lock> {
        MvccReader::new(kv)
            .load_lock(&Key::from_raw(key))
            .expect("load lock")
    }
}

#[cfg(test)]
mod tests {
    use engine::{KvRead, CF_DEFAULT};
    use proto::kvrpcpb::{Mutation, Op};

    use super::test_support::*;
    use super::*;
    use crate::mvcc::{TxnCommitRecord, Write};
    use crate::test_util::{apply, engine};

    fn run(kv: &engine::KvEngine, params: &PrewriteParams, ms: &[Mutation]) -> PrewriteOutcome {
        prewrite_mutations(&MvccReader::new(kv), params, ms).expect("prewrite request")
    }

    #[test]
    fn ops_become_locks_with_short_values_inline_and_long_ones_in_default() {
        let (_dir, kv) = engine();
        let long = vec![7u8; SHORT_VALUE_MAX_LEN + 1];
        let edge = vec![8u8; SHORT_VALUE_MAX_LEN];
        let ms = [
            mutation(Op::Put, b"a", b"short"),
            mutation(Op::Put, b"b", &long),
            mutation(Op::Put, b"c", &edge),
            mutation(Op::Del, b"d", b""),
            mutation(Op::Lock, b"e", b""),
            mutation(Op::Insert, b"f", b"new"),
            mutation(Op::Put, b"g", b""),
        ];
        let mut params = PrewriteParams::new(10, b"a".to_vec(), 3000);
        params.txn_size = 7;
        let out = run(&kv, &params, &ms);
        assert!(out.errors.is_empty() && out.already_committed.is_none());
        apply(&kv, &out.modifies);

        let a = lock_of(&kv, b"a").unwrap();
        assert_eq!(
            (a.lock_type, a.ts, a.ttl, a.txn_size, a.primary.as_slice()),
            (LockType::Put, 10, 3000, 7, &b"a"[..])
        );
        assert_eq!(a.short_value.as_deref(), Some(&b"short"[..]));
        let b = lock_of(&kv, b"b").unwrap();
        assert_eq!(b.short_value, None);
        let stored = kv
            .get_value_cf(
                CF_DEFAULT,
                &keys::data_key(&Key::from_raw(b"b").append_ts(10)),
            )
            .unwrap();
        assert_eq!(stored, Some(long));
        assert_eq!(lock_of(&kv, b"c").unwrap().short_value, Some(edge));
        assert_eq!(lock_of(&kv, b"d").unwrap().lock_type, LockType::Delete);
        assert_eq!(lock_of(&kv, b"d").unwrap().short_value, None);
        assert_eq!(lock_of(&kv, b"e").unwrap().lock_type, LockType::Lock);
        assert_eq!(lock_of(&kv, b"f").unwrap().lock_type, LockType::Put);
        // An empty value is a real value.
        assert_eq!(lock_of(&kv, b"g").unwrap().short_value, Some(Vec::new()));
        // Without async commit no lock keeps secondaries or the flag.
        assert!(!a.use_async_commit && a.secondaries.is_empty());
    }

    #[test]
    fn another_txns_lock_fails_the_request_and_nothing_is_written() {
        let (_dir, kv) = engine();
        must_prewrite_put(&kv, b"b", b"theirs", b"b", 5);
        must_prewrite_put(&kv, b"d", b"theirs", b"b", 5);
        let ms = [
            mutation(Op::Put, b"a", b"1"),
            mutation(Op::Put, b"b", b"2"),
            mutation(Op::Put, b"c", b"3"),
            mutation(Op::Del, b"d", b""),
        ];
        let out = run(&kv, &PrewriteParams::new(10, b"a".to_vec(), 3000), &ms);
        assert!(out.modifies.is_empty());
        assert_eq!(out.errors.len(), 2);
        for (e, key) in out.errors.iter().zip([&b"b"[..], b"d"]) {
            let Error::KeyIsLocked(info) = e else {
                panic!("expected a lock error, got {e:?}")
            };
            assert_eq!(info.key, key);
            assert_eq!(info.lock_version, 5);
            assert_eq!(info.primary_lock, b"b");
            assert_eq!(info.lock_ttl, 3000);
            assert_eq!(info.lock_type, Op::Put as i32);
        }
        assert!(lock_of(&kv, b"a").is_none() && lock_of(&kv, b"c").is_none());
    }

    #[test]
    fn errors_of_every_kind_are_collected_and_nothing_is_written() {
        let (_dir, kv) = engine();
        must_put(&kv, b"x", b"old", 1, 2);
        must_put(&kv, b"y", b"newer", 3, 20);
        let ms = [
            mutation(Op::Put, b"a", b"1"),
            mutation(Op::Insert, b"x", b"dup"),
            mutation(Op::Put, b"y", b"late"),
        ];
        let out = run(&kv, &PrewriteParams::new(10, b"a".to_vec(), 3000), &ms);
        assert!(out.modifies.is_empty());
        assert!(matches!(&out.errors[0], Error::AlreadyExist { key } if key == b"x"));
        assert!(matches!(&out.errors[1], Error::WriteConflict { key, .. } if key == b"y"));
        assert!(lock_of(&kv, b"a").is_none());
    }

    #[test]
    fn own_lock_makes_a_retry_succeed_without_rewriting() {
        let (_dir, kv) = engine();
        must_prewrite_put(&kv, b"k", b"v", b"k", 10);
        let out = run(
            &kv,
            &PrewriteParams::new(10, b"k".to_vec(), 9999),
            &[mutation(Op::Put, b"k", b"other")],
        );
        assert!(out.errors.is_empty());
        assert!(out.modifies.is_empty(), "the first prewrite's lock stays");
        let lock = lock_of(&kv, b"k").unwrap();
        assert_eq!((lock.ttl, lock.short_value), (3000, Some(b"v".to_vec())));
    }

    #[test]
    fn a_newer_write_of_any_type_is_a_write_conflict() {
        for write_type in [
            WriteType::Put,
            WriteType::Delete,
            WriteType::Lock,
            WriteType::Rollback,
        ] {
            let (_dir, kv) = engine();
            let mut t = MvccTxn::new();
            let start = if write_type == WriteType::Rollback {
                12
            } else {
                11
            };
            t.put_write(
                &Key::from_raw(b"k"),
                12,
                &Write::new(write_type, start, None),
            );
            apply(&kv, t.modifies());
            let out = run(
                &kv,
                &PrewriteParams::new(10, b"p".to_vec(), 3000),
                &[mutation(Op::Put, b"k", b"v")],
            );
            assert!(out.modifies.is_empty());
            match &out.errors[..] {
                [Error::WriteConflict {
                    start_ts: 10,
                    conflict_start_ts,
                    conflict_commit_ts: 12,
                    key,
                    primary,
                    reason: WriteConflictReason::Optimistic,
                }] => {
                    assert_eq!(*conflict_start_ts, start);
                    assert_eq!((key.as_slice(), primary.as_slice()), (&b"k"[..], &b"p"[..]));
                }
                other => panic!("{write_type:?}: expected a conflict, got {other:?}"),
            }
        }
    }

    #[test]
    fn an_older_write_is_no_conflict() {
        let (_dir, kv) = engine();
        must_put(&kv, b"k", b"old", 5, 9);
        must_prewrite_put(&kv, b"k", b"new", b"k", 10);
        assert_eq!(lock_of(&kv, b"k").unwrap().ts, 10);
    }

    #[test]
    fn a_rollback_at_start_ts_means_the_txn_was_rolled_back() {
        let (_dir, kv) = engine();
        act(&kv, |r, t| {
            crate::actions::rollback::rollback(r, t, b"k", 10, false)
        })
        .unwrap();
        let out = run(
            &kv,
            &PrewriteParams::new(10, b"k".to_vec(), 3000),
            &[mutation(Op::Put, b"k", b"v")],
        );
        assert!(out.modifies.is_empty());
        assert!(matches!(
            &out.errors[..],
            [Error::WriteConflict {
                reason: WriteConflictReason::SelfRolledBack,
                conflict_commit_ts: 10,
                ..
            }]
        ));
        assert!(lock_of(&kv, b"k").is_none());
    }

    #[test]
    fn an_overlapped_rollback_at_start_ts_means_the_txn_was_rolled_back() {
        let (_dir, kv) = engine();
        // Another transaction committed at 10, and our rollback was recorded on its record.
        let mut w = Write::new(WriteType::Put, 7, Some(b"x".to_vec()));
        w.has_overlapped_rollback = true;
        let mut t = MvccTxn::new();
        t.put_write(&Key::from_raw(b"k"), 10, &w);
        apply(&kv, t.modifies());
        let out = run(
            &kv,
            &PrewriteParams::new(10, b"k".to_vec(), 3000),
            &[mutation(Op::Put, b"k", b"v")],
        );
        assert!(matches!(
            &out.errors[..],
            [Error::WriteConflict {
                reason: WriteConflictReason::SelfRolledBack,
                conflict_start_ts: 7,
                ..
            }]
        ));
        // Without the flag the same record is just an older commit: no conflict.
        let (_dir2, kv2) = engine();
        let mut t = MvccTxn::new();
        t.put_write(
            &Key::from_raw(b"k"),
            10,
            &Write::new(WriteType::Put, 7, None),
        );
        apply(&kv2, t.modifies());
        let out = run(
            &kv2,
            &PrewriteParams::new(10, b"k".to_vec(), 3000),
            &[mutation(Op::Put, b"k", b"v")],
        );
        assert!(out.errors.is_empty());
    }

    #[test]
    fn insert_fails_over_a_visible_put_skipping_lock_and_rollback_records() {
        let (_dir, kv) = engine();
        must_put(&kv, b"k", b"v", 1, 2);
        let mut t = MvccTxn::new();
        t.put_write(
            &Key::from_raw(b"k"),
            4,
            &Write::new(WriteType::Lock, 3, None),
        );
        t.put_write(&Key::from_raw(b"k"), 5, &Write::rollback(5, false));
        apply(&kv, t.modifies());
        let out = run(
            &kv,
            &PrewriteParams::new(10, b"k".to_vec(), 3000),
            &[mutation(Op::Insert, b"k", b"again")],
        );
        assert!(out.modifies.is_empty());
        assert!(matches!(&out.errors[..], [Error::AlreadyExist { key }] if key == b"k"));
    }

    #[test]
    fn insert_succeeds_over_a_deleted_or_absent_key() {
        let (_dir, kv) = engine();
        must_put(&kv, b"k", b"v", 1, 2);
        must_prewrite(&kv, &[mutation(Op::Del, b"k", b"")], b"k", 3, 3000);
        must_commit(&kv, b"k", 3, 4);
        must_prewrite(
            &kv,
            &[
                mutation(Op::Insert, b"k", b"v2"),
                mutation(Op::Insert, b"fresh", b"f"),
            ],
            b"k",
            10,
            3000,
        );
        assert_eq!(
            lock_of(&kv, b"k").unwrap().short_value,
            Some(b"v2".to_vec())
        );
        assert!(lock_of(&kv, b"fresh").is_some());
    }

    #[test]
    fn check_not_exists_checks_and_writes_nothing() {
        let (_dir, kv) = engine();
        must_put(&kv, b"there", b"v", 1, 2);
        let params = PrewriteParams::new(10, b"p".to_vec(), 3000);
        let out = run(
            &kv,
            &params,
            &[mutation(Op::CheckNotExists, b"absent", b"")],
        );
        assert!(out.errors.is_empty() && out.modifies.is_empty());
        assert!(lock_of(&kv, b"absent").is_none());
        let out = run(&kv, &params, &[mutation(Op::CheckNotExists, b"there", b"")]);
        assert!(matches!(&out.errors[..], [Error::AlreadyExist { key }] if key == b"there"));
    }

    #[test]
    fn malformed_requests_are_rejected_before_anything_is_read() {
        let (_dir, kv) = engine();
        let r = MvccReader::new(&kv);
        let ok = PrewriteParams::new(10, b"p".to_vec(), 3000);
        let put = [mutation(Op::Put, b"k", b"v")];
        let invalid = |res: Result<PrewriteOutcome>| matches!(res, Err(Error::InvalidRequest(_)));
        assert!(invalid(prewrite_mutations(
            &r,
            &PrewriteParams::new(0, b"p".to_vec(), 1),
            &put
        )));
        assert!(invalid(prewrite_mutations(&r, &ok, &[])));
        assert!(invalid(prewrite_mutations(
            &r,
            &ok,
            &[mutation(Op::Put, b"", b"v")]
        )));
        for op in [Op::Rollback, Op::PessimisticLock] {
            let ms = [mutation(Op::Put, b"a", b"v"), mutation(op, b"k", b"")];
            assert!(invalid(prewrite_mutations(&r, &ok, &ms)), "{op:?}");
        }
        let unknown = Mutation {
            op: 99,
            ..mutation(Op::Put, b"k", b"v")
        };
        assert!(invalid(prewrite_mutations(&r, &ok, &[unknown])));
        let pessimistic = PrewriteParams {
            for_update_ts: 11,
            ..ok.clone()
        };
        assert!(invalid(prewrite_mutations(&r, &pessimistic, &put)));
        // The per-mutation action checks the same.
        let mut t = MvccTxn::new();
        let res = prewrite(&r, &mut t, &ok, &mutation(Op::Rollback, b"k", b""));
        assert!(matches!(res, Err(Error::InvalidRequest(_))) && t.is_empty());
    }

    #[test]
    fn own_pessimistic_lock_in_an_optimistic_prewrite_is_a_type_mismatch() {
        let (_dir, kv) = engine();
        let mut t = MvccTxn::new();
        let mut lock = Lock::new(LockType::Pessimistic, b"k".to_vec(), 10, 3000);
        lock.for_update_ts = 10;
        t.put_lock(&Key::from_raw(b"k"), &lock);
        apply(&kv, t.modifies());
        let out = run(
            &kv,
            &PrewriteParams::new(10, b"k".to_vec(), 3000),
            &[mutation(Op::Put, b"k", b"v")],
        );
        assert!(matches!(
            &out.errors[..],
            [Error::LockTypeNotMatch { start_ts: 10, .. }]
        ));
        assert_eq!(lock_of(&kv, b"k").unwrap().lock_type, LockType::Pessimistic);
    }

    #[test]
    fn a_retried_prewrite_after_commit_is_a_success_that_writes_nothing() {
        let (_dir, kv) = engine();
        must_prewrite(
            &kv,
            &[mutation(Op::Put, b"a", b"1"), mutation(Op::Put, b"b", b"2")],
            b"a",
            10,
            3000,
        );
        must_commit(&kv, b"a", 10, 15);
        must_commit(&kv, b"b", 10, 15);
        // Another transaction has since locked `b`.
        must_prewrite_put(&kv, b"b", b"3", b"b", 20);
        let ms = [mutation(Op::Put, b"a", b"1"), mutation(Op::Put, b"b", b"2")];
        let out = run(&kv, &PrewriteParams::new(10, b"a".to_vec(), 3000), &ms);
        assert!(out.errors.is_empty() && out.modifies.is_empty());
        assert_eq!(out.already_committed, Some(15));
        assert!(lock_of(&kv, b"a").is_none());
        assert_eq!(lock_of(&kv, b"b").unwrap().ts, 20);
    }

    #[test]
    fn a_conflict_with_someone_elses_commit_stays_an_error() {
        let (_dir, kv) = engine();
        must_put(&kv, b"k", b"theirs", 11, 12);
        let out = run(
            &kv,
            &PrewriteParams::new(10, b"k".to_vec(), 3000),
            &[mutation(Op::Put, b"k", b"v")],
        );
        assert_eq!(out.already_committed, None);
        assert_eq!(out.errors.len(), 1);
        let rec = MvccReader::new(&kv)
            .get_txn_commit_record(&Key::from_raw(b"k"), 10)
            .unwrap();
        assert_eq!(rec, TxnCommitRecord::None);
    }

    #[test]
    fn async_commit_marks_every_lock_and_lists_secondaries_on_the_primary() {
        let (_dir, kv) = engine();
        let params = PrewriteParams {
            use_async_commit: true,
            secondaries: vec![b"s".to_vec()],
            min_commit_ts: 11,
            ..PrewriteParams::new(10, b"p".to_vec(), 3000)
        };
        let ms = [mutation(Op::Put, b"p", b"1"), mutation(Op::Put, b"s", b"2")];
        let out = run(&kv, &params, &ms);
        apply(&kv, &out.modifies);
        let p = lock_of(&kv, b"p").unwrap();
        let s = lock_of(&kv, b"s").unwrap();
        assert!(p.use_async_commit && s.use_async_commit);
        assert_eq!(p.secondaries, vec![b"s".to_vec()]);
        assert!(s.secondaries.is_empty());
        assert_eq!((p.min_commit_ts, s.min_commit_ts), (11, 11));
    }
}
