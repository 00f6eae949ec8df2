//! Prewrite, the first phase of Percolator's two-phase commit: every key of the transaction
//! gets a lock of the transaction (pointing at its primary), after checking that no other
//! transaction locked it and nothing was committed on it since the transaction started.
//!
//! Rules (reference §2.3; TiKV `src/storage/txn/actions/prewrite.rs` and
//! `src/storage/txn/commands/prewrite.rs`), for an optimistic prewrite (`for_update_ts == 0`):
//! 1. Another transaction's lock on the key → `KeyIsLocked` with that lock's `LockInfo`.
//! 2. This transaction's own lock already there → success without writing (a retried request).
//!    Its own *pessimistic* lock → `LockTypeNotMatch` (TiKV `check_lock`).
//! 3. The newest write record has commit_ts > start_ts (of any type) → `WriteConflict`
//!    (reason `Optimistic`); a `Rollback` record, or a commit record flagged
//!    `has_overlapped_rollback`, at exactly start_ts → `WriteConflict` (reason
//!    `SelfRolledBack`): a resolver already rolled the transaction back (pitfalls #5, #6).
//! 4. `Insert` and `CheckNotExists`: the newest data version (skipping `Lock` and `Rollback`
//!    records) is a `Put` → `AlreadyExist`. `CheckNotExists` then writes nothing.
//! 5. The lock: `Put`/`Insert` → `Put`, `Del` → `Delete`, `Lock` → `Lock`; a value of at most
//!    `SHORT_VALUE_MAX_LEN` bytes sits in the lock, a longer one goes to CF `default` at
//!    start_ts. The lock keeps the request's for_update_ts (0 here).
//!
//! A pessimistic prewrite (`for_update_ts != 0`, at least start_ts) carries one
//! [`PessimisticAction`] per mutation (`PrewriteRequest.pessimistic_actions`; an empty list
//! means `SkipPessimisticCheck` for every mutation). Client 0.4 sends `DoPessimisticCheck` for
//! every key (reference §1.3). `CheckNotExists` is not allowed (TiKV: "cannot handle
//! checkNotExists in pessimistic prewrite"). Per key (TiKV `check_lock`, `lock_info`,
//! `amend_pessimistic_lock`, `skip_constraint_check`):
//! - P1. Another transaction's lock: with `DoPessimisticCheck` → `PessimisticLockNotFound`
//!   (the pessimistic lock this key should hold is gone); otherwise `KeyIsLocked` with the
//!   reported `lock_ttl` forced to 0, so the client resolves the lock at once.
//! - P2. This transaction's own pessimistic lock → converted into the mutation's lock
//!   (rule 5) with TTL, min_commit_ts and for_update_ts each the larger of the lock's and the
//!   request's. No conflict or existence check: they were done when the lock was taken, and
//!   nobody could commit on the key since (except with `DoConstraintCheck`, P5).
//! - P3. This transaction's own prewrite lock → success without writing (rule 2).
//! - P4. No lock and `DoPessimisticCheck` → "amend" (the lock was lost, or never written): the
//!   key is prewritten as an optimistic key would be (rule 4, then rule 5) only if it has no
//!   write record at all with commit_ts >= start_ts; a newer one — a commit, another
//!   transaction's rollback, or this transaction's own `Rollback` / overlapped rollback at
//!   start_ts (TiKV answers a rolled-back transaction here with this error, not
//!   `SelfRolledBack`) — → `PessimisticLockNotFound`. Rule 4 here is Shoal's: TiKV only
//!   checks assertions when amending.
//! - P5. No lock and `SkipPessimisticCheck` (a key the transaction did not lock) → rules 3
//!   and 4 against start_ts as in an optimistic prewrite (reason `Optimistic`, or
//!   `SelfRolledBack`). `DoConstraintCheck`, with or without its own pessimistic lock → the
//!   same with reason `LazyUniquenessCheck` for a newer commit (as TiKV). TiKV checks a
//!   `SkipPessimisticCheck` key only on a retried request (`is_retry_request`, which Shoal
//!   does not have) and then only against for_update_ts (a newer non-rollback record →
//!   `PessimisticLockNotFound`), relying on TiDB's row-key locks; Shoal cannot assume such a
//!   lock, so it keeps the stricter optimistic check: a commit between start_ts and
//!   for_update_ts on such a key fails the prewrite.
//!
//! Command level ([`prewrite_mutations`]): every mutation is tried and every key error kept; if
//! any key failed nothing is written. A key error on a key this transaction has in fact
//! committed (a prewrite retried after the commit) makes the whole request a success that
//! writes nothing (TiKV `check_committed_record_on_err`, after `KeyIsLocked`,
//! `PessimisticLockNotFound`, or a `WriteConflict` with a commit above start_ts).
//!
//! Async commit and 1PC run the same per-key checks, then choose their commit timestamp
//! against the store's max_ts (`async_commit`). Not here: the request fields client 0.4
//! never sends (`for_update_ts_constraints`, `assertion_level`, `is_retry_request`,
//! `skip_constraint_check`).

use engine::KvRead;
use proto::kvrpcpb::{Mutation, Op};

use crate::errors::{Error, Result, WriteConflictReason};
use crate::mvcc::{
    Key, Lock, LockType, Modify, MvccReader, MvccTxn, WriteType, SHORT_VALUE_MAX_LEN,
};

/// What a pessimistic prewrite does about one key's pessimistic lock
/// (`kvrpcpb::PrewriteRequest.PessimisticAction`; the wire enum itself).
pub use proto::kvrpcpb::prewrite_request::PessimisticAction;

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
    /// 0 for an optimistic transaction; for a pessimistic one the largest for_update_ts its
    /// pessimistic locks were taken at (at least `start_ts`), kept in every lock written.
    pub for_update_ts: u64,
    /// A pessimistic prewrite's action for each mutation, in mutation order; empty means
    /// `SkipPessimisticCheck` for all. Actions past the last mutation are ignored (client 0.4
    /// sends the whole transaction's list with each region's share of the mutations; TiKV
    /// zips the two lists); a non-empty list shorter than the mutations is rejected. An optimistic prewrite ignores the actions (as TiKV). Decode the wire list
    /// with [`PrewriteParams::pessimistic_actions_from_pb`].
    pub pessimistic_actions: Vec<PessimisticAction>,
    /// Async commit: every lock of the request is marked, the primary's lock lists the
    /// secondaries.
    pub use_async_commit: bool,
    /// Every key of the transaction but the primary (raw user keys); kept only on the
    /// primary's lock and only with `use_async_commit` (client 0.4 sends it for plain 2PC too,
    /// and the server must ignore it there: reference §1.2).
    pub secondaries: Vec<Vec<u8>>,
    /// The smallest commit_ts the locks accept (0 from client 0.4). For async commit and 1PC
    /// [`super::async_commit::prewrite_async`] raises it above the store's max_ts while
    /// holding the keys in the memory lock table (reference §2.3, pitfall #2).
    pub min_commit_ts: u64,
    /// 1PC: the request holds every key of the transaction, which commits at once without
    /// locks (`PrewriteRequest.try_one_pc`).
    pub try_one_pc: bool,
    /// Async commit / 1PC: the largest commit_ts the client accepts (0: no limit); a larger
    /// one falls back to 2PC (`PrewriteRequest.max_commit_ts`).
    pub max_commit_ts: u64,
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

    /// Whether this is a pessimistic prewrite (`for_update_ts != 0`).
    pub fn is_pessimistic(&self) -> bool {
        self.for_update_ts != 0
    }

    /// Decodes `PrewriteRequest.pessimistic_actions`; a value outside the enum →
    /// `InvalidRequest`.
    pub fn pessimistic_actions_from_pb(raw: &[i32]) -> Result<Vec<PessimisticAction>> {
        raw.iter()
            .map(|&a| {
                PessimisticAction::try_from(a)
                    .map_err(|_| Error::InvalidRequest(format!("unknown pessimistic action {a}")))
            })
            .collect()
    }

    /// The pessimistic action of the mutation at `index` (`SkipPessimisticCheck` when the
    /// list is empty).
    pub fn pessimistic_action(&self, index: usize) -> PessimisticAction {
        self.pessimistic_actions
            .get(index)
            .copied()
            .unwrap_or(PessimisticAction::SkipPessimisticCheck)
    }

    /// Rejects requests no prewrite can serve (`InvalidRequest`): start_ts 0, an empty
    /// primary, and a for_update_ts other than 0 below start_ts.
    pub fn validate(&self) -> Result<()> {
        if self.start_ts == 0 {
            return Err(Error::InvalidRequest("prewrite with start_ts 0".into()));
        }
        if self.primary.is_empty() {
            return Err(Error::InvalidRequest(
                "prewrite with an empty primary".into(),
            ));
        }
        if self.is_pessimistic() && self.for_update_ts < self.start_ts {
            return Err(Error::InvalidRequest(format!(
                "pessimistic prewrite with for_update_ts {} below start_ts {}",
                self.for_update_ts, self.start_ts
            )));
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
    /// Decodes the op; `Rollback`, `PessimisticLock`, unknown values, and `CheckNotExists` in
    /// a pessimistic prewrite are not prewrite operations → `InvalidRequest`.
    fn of(m: &Mutation, pessimistic: bool) -> Result<MutationKind> {
        let kind = |lock_type, should_not_exist| MutationKind {
            lock_type,
            should_not_exist,
        };
        match Op::try_from(m.op) {
            Ok(Op::Put) => Ok(kind(Some(LockType::Put), false)),
            Ok(Op::Del) => Ok(kind(Some(LockType::Delete), false)),
            Ok(Op::Lock) => Ok(kind(Some(LockType::Lock), false)),
            Ok(Op::Insert) => Ok(kind(Some(LockType::Put), true)),
            Ok(Op::CheckNotExists) if pessimistic => Err(Error::InvalidRequest(
                "CheckNotExists in a pessimistic prewrite".into(),
            )),
            Ok(Op::CheckNotExists) => Ok(kind(None, true)),
            Ok(other) => Err(Error::InvalidRequest(format!(
                "{other:?} is not a prewrite operation"
            ))),
            Err(_) => Err(Error::InvalidRequest(format!("unknown op {}", m.op))),
        }
    }
}

/// Checks one mutation's shape: a prewrite op and a non-empty key.
fn validate_mutation(m: &Mutation, params: &PrewriteParams) -> Result<MutationKind> {
    if m.key.is_empty() {
        return Err(Error::InvalidRequest("prewrite of an empty key".into()));
    }
    MutationKind::of(m, params.is_pessimistic())
}

/// Prewrites one mutation by the rules of this module, adding the lock (and a long value) to
/// `txn`. `action` is the mutation's pessimistic action; an optimistic prewrite
/// (`params.for_update_ts == 0`) ignores it.
///
/// Errors: `InvalidRequest` (bad parameters or mutation), `KeyIsLocked` (rule 1, P1),
/// `LockTypeNotMatch` (rule 2), `WriteConflict` (rule 3, P5), `AlreadyExist` (rule 4),
/// `PessimisticLockNotFound` (P1, P4), and storage / corruption failures. An error leaves
/// `txn` untouched.
pub fn prewrite<S: KvRead>(
    reader: &MvccReader<'_, S>,
    txn: &mut MvccTxn,
    params: &PrewriteParams,
    mutation: &Mutation,
    action: PessimisticAction,
) -> Result<()> {
    if let Planned::Lock(planned) = plan_prewrite(reader, params, mutation, action)? {
        planned.write_lock(txn);
    }
    Ok(())
}

/// What prewriting one key comes to, before anything is written.
#[derive(Debug)]
pub(crate) enum Planned {
    /// Nothing to write: a `CheckNotExists` that passed.
    Nothing,
    /// This transaction's own prewrite lock is already there: a retried request.
    Retry(Lock),
    /// A lock to write.
    Lock(PlannedLock),
}

/// A lock a prewrite will write (or, for 1PC, commit directly).
#[derive(Debug)]
pub(crate) struct PlannedLock {
    pub key: Key,
    pub raw_key: Vec<u8>,
    pub lock: Lock,
    /// A value too long for the lock, for CF `default` at start_ts.
    pub long_value: Option<Vec<u8>>,
    /// The key holds this transaction's pessimistic lock, which the new lock replaces.
    pub over_pessimistic_lock: bool,
}

impl PlannedLock {
    /// Writes the lock and its long value.
    pub fn write_lock(self, txn: &mut MvccTxn) {
        if let Some(value) = self.long_value {
            txn.put_value(&self.key, self.lock.ts, value);
        }
        txn.put_lock(&self.key, &self.lock);
    }
}

/// [`prewrite`]'s checks for one mutation, giving what to write instead of writing it.
pub(crate) fn plan_prewrite<S: KvRead>(
    reader: &MvccReader<'_, S>,
    params: &PrewriteParams,
    mutation: &Mutation,
    action: PessimisticAction,
) -> Result<Planned> {
    use PessimisticAction::{DoConstraintCheck, DoPessimisticCheck, SkipPessimisticCheck};

    params.validate()?;
    let kind = validate_mutation(mutation, params)?;
    let action = params.is_pessimistic().then_some(action);
    let key = Key::from_raw(&mutation.key);
    let raw_key = mutation.key.as_slice();
    // This transaction's own pessimistic lock, which the new lock replaces (P2).
    let pessimistic_lock = match reader.load_lock(&key)? {
        Some(lock) => match check_existing_lock(lock, params, action, raw_key)? {
            ExistingLock::OwnPessimistic(lock) => Some(lock),
            ExistingLock::OwnPrewrite(lock) => return Ok(Planned::Retry(lock)),
        },
        None => None,
    };
    match (action, &pessimistic_lock) {
        // P2: the lock already guards the key.
        (Some(DoPessimisticCheck | SkipPessimisticCheck), Some(_)) => {}
        // P4.
        (Some(DoPessimisticCheck), None) => {
            amend_pessimistic_lock(reader, &key, params, raw_key)?;
            if kind.should_not_exist {
                check_not_exists(reader, &key, raw_key)?;
            }
        }
        // P5 with DoConstraintCheck.
        (Some(DoConstraintCheck), _) => {
            check_newer_writes(
                reader,
                &key,
                params,
                raw_key,
                WriteConflictReason::LazyUniquenessCheck,
            )?;
            if kind.should_not_exist {
                check_not_exists(reader, &key, raw_key)?;
            }
        }
        // Rules 3 and 4 (optimistic; P5 with SkipPessimisticCheck). An optimistic prewrite
        // never gets here with a pessimistic lock (`LockTypeNotMatch`).
        (None | Some(SkipPessimisticCheck), _) => {
            check_newer_writes(
                reader,
                &key,
                params,
                raw_key,
                WriteConflictReason::Optimistic,
            )?;
            if kind.should_not_exist {
                check_not_exists(reader, &key, raw_key)?;
            }
        }
    }
    Ok(match kind.lock_type {
        Some(lock_type) => Planned::Lock(build_lock(
            key,
            lock_type,
            params,
            mutation,
            pessimistic_lock.as_ref(),
        )),
        None => Planned::Nothing,
    })
}

/// This transaction's own lock found on a key being prewritten.
enum ExistingLock {
    /// Its pessimistic lock, to be converted (P2).
    OwnPessimistic(Lock),
    /// Its prewrite lock: a retry, nothing to write (rule 2, P3).
    OwnPrewrite(Lock),
}

/// A lock is already on the key (rules 1, 2; P1–P3; `action` is `None` in an optimistic
/// prewrite). Another transaction's lock is an error; this transaction's own is returned.
fn check_existing_lock(
    lock: Lock,
    params: &PrewriteParams,
    action: Option<PessimisticAction>,
    raw_key: &[u8],
) -> Result<ExistingLock> {
    if lock.ts != params.start_ts {
        return Err(match action {
            None => Error::KeyIsLocked(Box::new(lock.to_lock_info(raw_key.to_vec()))),
            Some(PessimisticAction::DoPessimisticCheck) => Error::PessimisticLockNotFound {
                start_ts: params.start_ts,
                key: raw_key.to_vec(),
                reason: "the key is locked by another transaction",
            },
            // TiKV `lock_info`: keys a pessimistic transaction did not lock are protected by
            // the locks it did take, so the client may resolve this lock at once.
            Some(_) => {
                let mut info = lock.to_lock_info(raw_key.to_vec());
                info.lock_ttl = 0;
                Error::KeyIsLocked(Box::new(info))
            }
        });
    }
    if lock.lock_type != LockType::Pessimistic {
        return Ok(ExistingLock::OwnPrewrite(lock));
    }
    if action.is_none() {
        return Err(Error::LockTypeNotMatch {
            start_ts: params.start_ts,
            key: raw_key.to_vec(),
            pessimistic: true,
        });
    }
    Ok(ExistingLock::OwnPessimistic(lock))
}

/// P4 (TiKV `amend_pessimistic_lock`): without its pessimistic lock a `DoPessimisticCheck`
/// key may still be prewritten if nothing was written on it since the transaction started.
/// A pessimistic lock's for_update_ts is at least the key's newest commit_ts and at least
/// start_ts, so a newest record below start_ts is below the lost lock's for_update_ts too.
fn amend_pessimistic_lock<S: KvRead>(
    reader: &MvccReader<'_, S>,
    key: &Key,
    params: &PrewriteParams,
    raw_key: &[u8],
) -> Result<()> {
    match reader.seek_write(key, u64::MAX)? {
        Some((commit_ts, _)) if commit_ts >= params.start_ts => {
            Err(Error::PessimisticLockNotFound {
                start_ts: params.start_ts,
                key: raw_key.to_vec(),
                reason: "no lock, and the key was written at or after start_ts",
            })
        }
        _ => Ok(()),
    }
}

/// Rule 3: only the newest write record matters. Anything committed (or rolled back by
/// another transaction) after start_ts means a concurrent writer won (reported with
/// `reason`); a rollback at exactly start_ts means this transaction was already rolled back
/// (TiKV `check_for_newer_version`).
fn check_newer_writes<S: KvRead>(
    reader: &MvccReader<'_, S>,
    key: &Key,
    params: &PrewriteParams,
    raw_key: &[u8],
    reason: WriteConflictReason,
) -> Result<()> {
    let Some((commit_ts, write)) = reader.seek_write(key, u64::MAX)? else {
        return Ok(());
    };
    let reason = if commit_ts > params.start_ts {
        reason
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
/// Over this transaction's own pessimistic lock (P2) the TTL, min_commit_ts and
/// for_update_ts are the larger of the lock's and the request's.
fn build_lock(
    key: Key,
    lock_type: LockType,
    params: &PrewriteParams,
    mutation: &Mutation,
    pessimistic_lock: Option<&Lock>,
) -> PlannedLock {
    let mut lock = Lock::new(
        lock_type,
        params.primary.clone(),
        params.start_ts,
        params.lock_ttl,
    );
    lock.for_update_ts = params.for_update_ts;
    lock.txn_size = params.txn_size;
    lock.min_commit_ts = params.min_commit_ts;
    if let Some(old) = pessimistic_lock {
        lock.ttl = lock.ttl.max(old.ttl);
        lock.for_update_ts = lock.for_update_ts.max(old.for_update_ts);
        lock.min_commit_ts = lock.min_commit_ts.max(old.min_commit_ts);
    }
    if params.use_async_commit {
        lock.use_async_commit = true;
        if mutation.key == params.primary {
            lock.secondaries = params.secondaries.clone();
        }
    }
    // Only a Put carries a value: Del and Lock mutations may arrive with stray bytes.
    let mut long_value = None;
    if lock_type == LockType::Put {
        if mutation.value.len() <= SHORT_VALUE_MAX_LEN {
            lock.short_value = Some(mutation.value.clone());
        } else {
            long_value = Some(mutation.value.clone());
        }
    }
    PlannedLock {
        key,
        raw_key: mutation.key.clone(),
        lock,
        long_value,
        over_pessimistic_lock: pessimistic_lock.is_some(),
    }
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

/// Prewrites every mutation of a request, all or nothing (module doc, "command level"); the
/// mutation at index `i` runs with `params.pessimistic_action(i)`.
///
/// Errors (`Err`) are for the request as a whole: malformed parameters or mutations
/// (`InvalidRequest`: start_ts 0, an empty primary, for_update_ts below start_ts, no
/// mutations, a non-empty `pessimistic_actions` list shorter than the mutations, an empty key, a non-prewrite op, `CheckNotExists` in a pessimistic prewrite),
/// checked before anything is read, and storage failures. Key failures are in the outcome.
pub fn prewrite_mutations<S: KvRead>(
    reader: &MvccReader<'_, S>,
    params: &PrewriteParams,
    mutations: &[Mutation],
) -> Result<PrewriteOutcome> {
    validate_request(params, mutations)?;
    match plan_mutations(reader, params, mutations)? {
        Plan::Ready(planned) => {
            let mut txn = MvccTxn::new();
            for p in planned {
                if let Planned::Lock(lock) = p {
                    lock.write_lock(&mut txn);
                }
            }
            Ok(PrewriteOutcome {
                modifies: txn.into_modifies(),
                ..PrewriteOutcome::default()
            })
        }
        Plan::Failed(errors) => Ok(PrewriteOutcome {
            errors,
            ..PrewriteOutcome::default()
        }),
        Plan::AlreadyCommitted(commit_ts) => Ok(PrewriteOutcome {
            already_committed: Some(commit_ts),
            ..PrewriteOutcome::default()
        }),
    }
}

/// The request-wide checks of [`prewrite_mutations`], before anything is read.
pub(crate) fn validate_request(params: &PrewriteParams, mutations: &[Mutation]) -> Result<()> {
    params.validate()?;
    if mutations.is_empty() {
        return Err(Error::InvalidRequest("prewrite without mutations".into()));
    }
    let actions = params.pessimistic_actions.len();
    if actions != 0 && actions < mutations.len() {
        return Err(Error::InvalidRequest(format!(
            "{actions} pessimistic actions for {} mutations",
            mutations.len()
        )));
    }
    for m in mutations {
        validate_mutation(m, params)?;
    }
    Ok(())
}

/// The checks of a whole request, all keys planned or none.
pub(crate) enum Plan {
    /// Every key passed: what to write, in mutation order.
    Ready(Vec<Planned>),
    /// Some keys failed: their errors, in mutation order.
    Failed(Vec<Error>),
    /// A failed key carries this transaction's own commit record at this commit_ts.
    AlreadyCommitted(u64),
}

/// Plans every mutation (the request was validated); key errors are collected, other
/// errors end the request.
pub(crate) fn plan_mutations<S: KvRead>(
    reader: &MvccReader<'_, S>,
    params: &PrewriteParams,
    mutations: &[Mutation],
) -> Result<Plan> {
    let mut planned = Vec::with_capacity(mutations.len());
    let mut errors = Vec::new();
    for (i, m) in mutations.iter().enumerate() {
        match plan_prewrite(reader, params, m, params.pessimistic_action(i)) {
            Ok(p) => planned.push(p),
            Err(e) if e.to_key_error().is_some() => {
                if let Some(commit_ts) = committed_by_this_txn(reader, &e, params, &m.key)? {
                    return Ok(Plan::AlreadyCommitted(commit_ts));
                }
                errors.push(e);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(if errors.is_empty() {
        Plan::Ready(planned)
    } else {
        Plan::Failed(errors)
    })
}

/// TiKV `check_committed_record_on_err`: after a lock error, a lost pessimistic lock, or a
/// conflict with a record above start_ts on a key, the transaction's own commit record there
/// means the request is a stale retry of a committed transaction. Returns that commit_ts.
fn committed_by_this_txn<S: KvRead>(
    reader: &MvccReader<'_, S>,
    error: &Error,
    params: &PrewriteParams,
    raw_key: &[u8],
) -> Result<Option<u64>> {
    let may_be_committed = match error {
        Error::KeyIsLocked(_) | Error::PessimisticLockNotFound { .. } => true,
        Error::WriteConflict {
            conflict_commit_ts, ..
        } => *conflict_commit_ts > params.start_ts,
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

    use super::{prewrite_mutations, PessimisticAction, PrewriteParams};
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

    /// Pessimistic prewrite parameters (primary `p`, TTL 3000) with these actions.
    pub fn pess(
        start_ts: u64,
        for_update_ts: u64,
        actions: Vec<PessimisticAction>,
    ) -> PrewriteParams {
        PrewriteParams {
            for_update_ts,
            pessimistic_actions: actions,
            ..PrewriteParams::new(start_ts, b"p".to_vec(), 3000)
        }
    }

    /// Pessimistic prewrite of `mutations` with `DoPessimisticCheck` on every key (what
    /// client 0.4 sends), which must succeed on every key; applies the locks.
    pub fn must_pessimistic_prewrite(
        kv: &KvEngine,
        mutations: &[Mutation],
        primary: &[u8],
        start_ts: u64,
        for_update_ts: u64,
    ) {
        let params = PrewriteParams {
            for_update_ts,
            pessimistic_actions: vec![PessimisticAction::DoPessimisticCheck; mutations.len()],
            ..PrewriteParams::new(start_ts, primary.to_vec(), 3000)
        };
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
        // The per-mutation action checks the same.
        let mut t = MvccTxn::new();
        let skip = PessimisticAction::SkipPessimisticCheck;
        let res = prewrite(&r, &mut t, &ok, &mutation(Op::Rollback, b"k", b""), skip);
        assert!(matches!(res, Err(Error::InvalidRequest(_))) && t.is_empty());
    }

    #[test]
    fn malformed_pessimistic_requests_are_rejected_before_anything_is_read() {
        let (_dir, kv) = engine();
        let r = MvccReader::new(&kv);
        let invalid = |res: Result<PrewriteOutcome>| matches!(res, Err(Error::InvalidRequest(_)));
        let put = [mutation(Op::Put, b"k", b"v")];
        let two = [mutation(Op::Put, b"k", b"v"), mutation(Op::Put, b"l", b"w")];
        let do_check = PessimisticAction::DoPessimisticCheck;
        // for_update_ts below start_ts; equal is fine.
        assert!(invalid(prewrite_mutations(&r, &pess(10, 9, vec![]), &put)));
        assert!(prewrite_mutations(&r, &pess(10, 10, vec![]), &put).is_ok());
        // The action list is empty or has one entry per mutation, optimistic or not.
        assert!(invalid(prewrite_mutations(
            &r,
            &pess(10, 12, vec![do_check]),
            &two
        )));
        // Longer lists are what client 0.4 sends with each region's share of the mutations.
        assert!(prewrite_mutations(&r, &pess(10, 12, vec![do_check; 3]), &two).is_ok());
        let optimistic = PrewriteParams {
            pessimistic_actions: vec![do_check],
            ..PrewriteParams::new(10, b"p".to_vec(), 3000)
        };
        assert!(invalid(prewrite_mutations(&r, &optimistic, &two)));
        assert!(prewrite_mutations(&r, &pess(10, 12, vec![do_check; 2]), &two).is_ok());
        assert!(prewrite_mutations(&r, &pess(10, 12, vec![]), &two).is_ok());
        // CheckNotExists has no pessimistic form (TiKV refuses it too).
        let check = [mutation(Op::CheckNotExists, b"k", b"")];
        assert!(invalid(prewrite_mutations(
            &r,
            &pess(10, 12, vec![]),
            &check
        )));
        // Wire actions outside the enum.
        assert_eq!(
            PrewriteParams::pessimistic_actions_from_pb(&[0, 1, 2]).unwrap(),
            vec![
                PessimisticAction::SkipPessimisticCheck,
                PessimisticAction::DoPessimisticCheck,
                PessimisticAction::DoConstraintCheck
            ]
        );
        assert!(matches!(
            PrewriteParams::pessimistic_actions_from_pb(&[1, 3]),
            Err(Error::InvalidRequest(_))
        ));
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

    // ---- pessimistic prewrites (P1–P5) ----

    use crate::actions::acquire_pessimistic_lock::test_support::must_acquire_pessimistic_lock;
    use crate::test_util::{put_lock, put_write};

    const DO: PessimisticAction = PessimisticAction::DoPessimisticCheck;
    const SKIP: PessimisticAction = PessimisticAction::SkipPessimisticCheck;
    const CONSTRAINT: PessimisticAction = PessimisticAction::DoConstraintCheck;

    fn pessimistic_lock(start_ts: u64, for_update_ts: u64, ttl: u64) -> Lock {
        Lock {
            for_update_ts,
            ..Lock::new(LockType::Pessimistic, b"p".to_vec(), start_ts, ttl)
        }
    }

    #[test]
    fn own_pessimistic_lock_is_converted_without_a_conflict_check() {
        for action in [DO, SKIP] {
            let (_dir, kv) = engine();
            // Committed after start_ts 10 but before the lock's for_update_ts 15: the lock
            // was taken over it, so it is no conflict.
            must_put(&kv, b"k", b"theirs", 11, 12);
            must_acquire_pessimistic_lock(&kv, b"k", b"p", 10, 15);
            let out = run(
                &kv,
                &pess(10, 15, vec![action]),
                &[mutation(Op::Put, b"k", b"v")],
            );
            assert!(out.errors.is_empty(), "{action:?}: {:?}", out.errors);
            apply(&kv, &out.modifies);
            let lock = lock_of(&kv, b"k").unwrap();
            assert_eq!(
                (lock.lock_type, lock.ts, lock.for_update_ts),
                (LockType::Put, 10, 15),
                "{action:?}"
            );
            assert_eq!(lock.short_value.as_deref(), Some(&b"v"[..]));
        }
    }

    #[test]
    fn converted_locks_carry_the_value_and_the_larger_ttl_for_update_ts_min_commit_ts() {
        let (_dir, kv) = engine();
        let long = vec![9u8; SHORT_VALUE_MAX_LEN + 1];
        // `a`: the old lock has the larger fields; `b`..`d`: the request has.
        put_lock(
            &kv,
            b"a",
            &Lock {
                min_commit_ts: 25,
                ..pessimistic_lock(10, 20, 20000)
            },
        );
        for key in [&b"b"[..], b"c", b"d"] {
            put_lock(&kv, key, &pessimistic_lock(10, 12, 1000));
        }
        let params = PrewriteParams {
            txn_size: 4,
            ..pess(10, 18, vec![DO; 4])
        };
        let ms = [
            mutation(Op::Put, b"a", b"short"),
            mutation(Op::Put, b"b", &long),
            mutation(Op::Del, b"c", b"stray"),
            mutation(Op::Lock, b"d", b""),
        ];
        let out = run(&kv, &params, &ms);
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        apply(&kv, &out.modifies);
        let a = lock_of(&kv, b"a").unwrap();
        assert_eq!(
            (
                a.lock_type,
                a.ttl,
                a.for_update_ts,
                a.min_commit_ts,
                a.txn_size
            ),
            (LockType::Put, 20000, 20, 25, 4)
        );
        assert_eq!(a.short_value.as_deref(), Some(&b"short"[..]));
        assert_eq!(a.primary, b"p");
        let b = lock_of(&kv, b"b").unwrap();
        assert_eq!(
            (b.lock_type, b.ttl, b.for_update_ts, b.min_commit_ts),
            (LockType::Put, 3000, 18, 0)
        );
        assert_eq!(b.short_value, None);
        let stored = kv
            .get_value_cf(
                CF_DEFAULT,
                &keys::data_key(&Key::from_raw(b"b").append_ts(10)),
            )
            .unwrap();
        assert_eq!(stored, Some(long));
        let c = lock_of(&kv, b"c").unwrap();
        assert_eq!((c.lock_type, c.short_value), (LockType::Delete, None));
        assert_eq!(lock_of(&kv, b"d").unwrap().lock_type, LockType::Lock);
    }

    #[test]
    fn own_prewrite_lock_makes_a_pessimistic_retry_succeed_without_rewriting() {
        let (_dir, kv) = engine();
        must_acquire_pessimistic_lock(&kv, b"k", b"p", 10, 12);
        must_pessimistic_prewrite(&kv, &[mutation(Op::Put, b"k", b"v")], b"p", 10, 12);
        // Someone commits after start_ts: a retry must not re-check anything.
        put_write(&kv, b"k", 11, &Write::new(WriteType::Rollback, 11, None));
        let out = run(
            &kv,
            &pess(10, 14, vec![DO]),
            &[mutation(Op::Put, b"k", b"w")],
        );
        assert!(out.errors.is_empty() && out.modifies.is_empty());
        let lock = lock_of(&kv, b"k").unwrap();
        assert_eq!(
            (lock.short_value, lock.for_update_ts),
            (Some(b"v".to_vec()), 12)
        );
    }

    #[test]
    fn another_txns_lock_is_lock_not_found_with_the_check_and_a_ttl_0_lock_error_without() {
        let (_dir, kv) = engine();
        must_prewrite_put(&kv, b"b", b"theirs", b"b", 5);
        must_acquire_pessimistic_lock(&kv, b"c", b"b", 5, 7);
        must_acquire_pessimistic_lock(&kv, b"d", b"b", 5, 7);
        let ms = [
            mutation(Op::Put, b"a", b"1"),
            mutation(Op::Put, b"b", b"2"),
            mutation(Op::Put, b"c", b"3"),
            mutation(Op::Put, b"d", b"4"),
        ];
        let out = run(&kv, &pess(10, 12, vec![SKIP, DO, SKIP, CONSTRAINT]), &ms);
        assert!(out.modifies.is_empty(), "nothing written when a key fails");
        assert_eq!(out.errors.len(), 3, "{:?}", out.errors);
        assert!(matches!(
            &out.errors[0],
            Error::PessimisticLockNotFound { start_ts: 10, key, .. } if key == b"b"
        ));
        for (e, key, lock_type) in [
            (&out.errors[1], &b"c"[..], Op::PessimisticLock),
            (&out.errors[2], b"d", Op::PessimisticLock),
        ] {
            let Error::KeyIsLocked(info) = e else {
                panic!("expected a lock error, got {e:?}")
            };
            assert_eq!((info.key.as_slice(), info.lock_version), (key, 5));
            assert_eq!(info.lock_type, lock_type as i32);
            assert_eq!(info.lock_ttl, 0, "the client must resolve it at once");
        }
        assert!(lock_of(&kv, b"a").is_none());
        // An optimistic prewrite ignores the actions and reports the lock's real TTL.
        let optimistic = PrewriteParams {
            pessimistic_actions: vec![DO],
            ..PrewriteParams::new(10, b"p".to_vec(), 3000)
        };
        let out = run(&kv, &optimistic, &[mutation(Op::Put, b"b", b"2")]);
        assert!(matches!(&out.errors[..], [Error::KeyIsLocked(i)] if i.lock_ttl == 3000));
    }

    #[test]
    fn a_missing_pessimistic_lock_is_amended_when_nothing_was_written_since_start_ts() {
        let (_dir, kv) = engine();
        must_put(&kv, b"k", b"old", 2, 9);
        let out = run(
            &kv,
            &pess(10, 12, vec![DO]),
            &[mutation(Op::Put, b"k", b"v")],
        );
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        apply(&kv, &out.modifies);
        let lock = lock_of(&kv, b"k").unwrap();
        assert_eq!(
            (lock.lock_type, lock.for_update_ts, lock.short_value),
            (LockType::Put, 12, Some(b"v".to_vec()))
        );
    }

    #[test]
    fn amend_is_refused_when_the_key_was_written_at_or_after_start_ts() {
        for (commit_ts, write_type) in [
            // A commit between start_ts and for_update_ts, one at exactly start_ts, one
            // after for_update_ts, and another transaction's rollback.
            (11, WriteType::Put),
            (10, WriteType::Put),
            (13, WriteType::Delete),
            (11, WriteType::Rollback),
        ] {
            let (_dir, kv) = engine();
            let start = if write_type == WriteType::Rollback {
                commit_ts
            } else {
                8
            };
            put_write(&kv, b"k", commit_ts, &Write::new(write_type, start, None));
            let out = run(
                &kv,
                &pess(10, 12, vec![DO]),
                &[mutation(Op::Put, b"k", b"v")],
            );
            assert!(
                matches!(
                    &out.errors[..],
                    [Error::PessimisticLockNotFound { start_ts: 10, key, .. }] if key == b"k"
                ),
                "{commit_ts} {write_type:?}: {:?}",
                out.errors
            );
            assert!(out.modifies.is_empty());
            assert_eq!(out.already_committed, None);
        }
    }

    #[test]
    fn amend_of_an_insert_checks_that_the_key_does_not_exist() {
        let (_dir, kv) = engine();
        must_put(&kv, b"k", b"old", 2, 5);
        let out = run(
            &kv,
            &pess(10, 12, vec![DO]),
            &[mutation(Op::Insert, b"k", b"v")],
        );
        assert!(matches!(&out.errors[..], [Error::AlreadyExist { key }] if key == b"k"));
        assert!(out.modifies.is_empty());
    }

    #[test]
    fn a_rolled_back_txn_fails_its_pessimistic_prewrite() {
        // Rolled back by a resolver: a Rollback record at start_ts ...
        let rolled_back = |kv: &engine::KvEngine| {
            act(kv, |r, t| {
                crate::actions::rollback::rollback(r, t, b"k", 10, false)
            })
            .unwrap()
        };
        // ... or another transaction's commit at start_ts, flagged.
        let overlapped = |kv: &engine::KvEngine| {
            let mut w = Write::new(WriteType::Put, 7, Some(b"x".to_vec()));
            w.has_overlapped_rollback = true;
            put_write(kv, b"k", 10, &w);
        };
        for setup in [&rolled_back as &dyn Fn(&engine::KvEngine), &overlapped] {
            let (_dir, kv) = engine();
            setup(&kv);
            let put = [mutation(Op::Put, b"k", b"v")];
            // TiKV amend_pessimistic_lock: a record at start_ts → PessimisticLockNotFound.
            let out = run(&kv, &pess(10, 12, vec![DO]), &put);
            assert!(
                matches!(&out.errors[..], [Error::PessimisticLockNotFound { .. }]),
                "{:?}",
                out.errors
            );
            // TiKV check_for_newer_version: SelfRolledBack.
            for action in [SKIP, CONSTRAINT] {
                let out = run(&kv, &pess(10, 12, vec![action]), &put);
                assert!(
                    matches!(
                        &out.errors[..],
                        [Error::WriteConflict {
                            reason: WriteConflictReason::SelfRolledBack,
                            conflict_commit_ts: 10,
                            ..
                        }]
                    ),
                    "{action:?}: {:?}",
                    out.errors
                );
                assert!(out.modifies.is_empty());
            }
            assert!(lock_of(&kv, b"k").is_none());
        }
    }

    #[test]
    fn an_unlocked_key_without_the_check_gets_the_optimistic_conflict_check() {
        let (_dir, kv) = engine();
        must_put(&kv, b"old", b"x", 2, 9);
        must_put(&kv, b"new", b"x", 8, 11);
        let out = run(
            &kv,
            &pess(10, 12, vec![SKIP]),
            &[mutation(Op::Put, b"new", b"v")],
        );
        assert!(
            matches!(
                &out.errors[..],
                [Error::WriteConflict {
                    conflict_commit_ts: 11,
                    reason: WriteConflictReason::Optimistic,
                    ..
                }]
            ),
            "{:?}",
            out.errors
        );
        // Insert over a visible value fails too; an older commit is fine.
        let out = run(
            &kv,
            &pess(10, 12, vec![SKIP]),
            &[mutation(Op::Insert, b"old", b"v")],
        );
        assert!(matches!(&out.errors[..], [Error::AlreadyExist { .. }]));
        let out = run(
            &kv,
            &pess(10, 12, vec![]),
            &[mutation(Op::Put, b"old", b"v")],
        );
        assert!(out.errors.is_empty());
        apply(&kv, &out.modifies);
        assert_eq!(lock_of(&kv, b"old").unwrap().for_update_ts, 12);
    }

    #[test]
    fn a_constraint_check_key_is_a_lazy_uniqueness_check() {
        let (_dir, kv) = engine();
        must_put(&kv, b"k", b"theirs", 8, 11);
        // Even over its own pessimistic lock (TiKV skip_constraint_check is false).
        must_acquire_pessimistic_lock(&kv, b"k", b"p", 10, 12);
        let out = run(
            &kv,
            &pess(10, 12, vec![CONSTRAINT]),
            &[mutation(Op::Put, b"k", b"v")],
        );
        assert!(
            matches!(
                &out.errors[..],
                [Error::WriteConflict {
                    conflict_commit_ts: 11,
                    reason: WriteConflictReason::LazyUniquenessCheck,
                    ..
                }]
            ),
            "{:?}",
            out.errors
        );
        let (_dir, kv) = engine();
        must_put(&kv, b"k", b"there", 2, 5);
        let out = run(
            &kv,
            &pess(10, 12, vec![CONSTRAINT]),
            &[mutation(Op::Insert, b"k", b"v")],
        );
        assert!(matches!(&out.errors[..], [Error::AlreadyExist { .. }]));
    }

    #[test]
    fn a_pessimistic_prewrite_retried_after_commit_succeeds_without_writing() {
        let (_dir, kv) = engine();
        must_acquire_pessimistic_lock(&kv, b"p", b"p", 10, 12);
        must_pessimistic_prewrite(&kv, &[mutation(Op::Put, b"p", b"v")], b"p", 10, 12);
        must_commit(&kv, b"p", 10, 15);
        // The lock is gone and a record above start_ts is there: amend fails, but the
        // record is this transaction's own commit.
        let out = run(
            &kv,
            &pess(10, 12, vec![DO]),
            &[mutation(Op::Put, b"p", b"v")],
        );
        assert!(out.errors.is_empty() && out.modifies.is_empty());
        assert_eq!(out.already_committed, Some(15));
    }

    #[test]
    fn a_full_pessimistic_transaction_commits_what_it_prewrote() {
        let (_dir, kv) = engine();
        let long = vec![5u8; SHORT_VALUE_MAX_LEN + 10];
        must_put(&kv, b"s", b"old", 2, 3);
        // Committed after start_ts 10 but before the statement's for_update_ts 14.
        must_put(&kv, b"p", b"theirs", 11, 13);
        for key in [&b"p"[..], b"s", b"locked-only"] {
            must_acquire_pessimistic_lock(&kv, key, b"p", 10, 14);
        }
        must_pessimistic_prewrite(
            &kv,
            &[
                mutation(Op::Put, b"p", b"mine"),
                mutation(Op::Put, b"s", &long),
            ],
            b"p",
            10,
            14,
        );
        for key in [&b"p"[..], b"s", b"locked-only"] {
            must_commit(&kv, key, 10, 20);
        }
        let r = MvccReader::new(&kv);
        assert_eq!(
            r.get(&Key::from_raw(b"p"), 25).unwrap(),
            Some(b"mine".to_vec())
        );
        assert_eq!(r.get(&Key::from_raw(b"s"), 25).unwrap(), Some(long));
        assert_eq!(
            r.get(&Key::from_raw(b"p"), 19).unwrap(),
            Some(b"theirs".to_vec())
        );
        // The key locked but never prewritten: its lock is gone, nothing was written.
        assert_eq!(r.get(&Key::from_raw(b"locked-only"), 25).unwrap(), None);
        assert!(r
            .all_versions(&Key::from_raw(b"locked-only"))
            .unwrap()
            .is_empty());
        for key in [&b"p"[..], b"s", b"locked-only"] {
            assert!(lock_of(&kv, key).is_none());
        }
    }
}
