//! What can go wrong in a transactional command. Each variant the client must see maps to one
//! `kvrpcpb::KeyError` field (`Error::to_key_error`); the rest are server-side failures.

use proto::kvrpcpb::{self, KeyError, LockInfo};

/// A transactional command's failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("storage: {0}")]
    Engine(#[from] engine::Error),
    /// A stored record or key that does not decode: the data on disk is damaged.
    #[error("corrupt {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
    /// The request itself is malformed (zero timestamps, commit_ts <= start_ts, no keys...).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// Another transaction's lock is in the way (`KeyError.locked`).
    #[error("key is locked by the transaction at {}", .0.lock_version)]
    KeyIsLocked(Box<LockInfo>),
    /// A newer write, or this transaction's own rollback, is in the way (`KeyError.conflict`).
    #[error("write conflict on {key:?}: start_ts {start_ts}, conflicting commit at {conflict_commit_ts}")]
    WriteConflict {
        start_ts: u64,
        conflict_start_ts: u64,
        conflict_commit_ts: u64,
        key: Vec<u8>,
        primary: Vec<u8>,
        reason: WriteConflictReason,
    },
    /// Insert or CheckNotExists over a key that has a value (`KeyError.already_exist`).
    #[error("key {key:?} already exists")]
    AlreadyExist { key: Vec<u8> },
    /// Commit found neither its lock nor its commit record: the transaction was rolled back
    /// (`KeyError.retryable`, as TiKV answers `TxnLockNotFound`).
    #[error("lock of transaction {start_ts} on {key:?} not found (commit at {commit_ts})")]
    TxnLockNotFound {
        start_ts: u64,
        commit_ts: u64,
        key: Vec<u8>,
    },
    /// Status check found neither lock nor commit nor rollback record (`KeyError.txn_not_found`).
    #[error("transaction {start_ts} not found on {key:?}")]
    TxnNotFound { start_ts: u64, key: Vec<u8> },
    /// A rollback asked for a key this transaction has committed (`KeyError.abort`).
    #[error("transaction {start_ts} is already committed at {commit_ts} on {key:?}")]
    Committed {
        start_ts: u64,
        commit_ts: u64,
        key: Vec<u8>,
    },
    /// The commit timestamp is below the lock's min_commit_ts (`KeyError.commit_ts_expired`).
    #[error("commit_ts {commit_ts} of {start_ts} below min_commit_ts {min_commit_ts} on {key:?}")]
    CommitTsExpired {
        start_ts: u64,
        commit_ts: u64,
        key: Vec<u8>,
        min_commit_ts: u64,
    },
    /// The status check's key holds a lock of the transaction that is not its primary.
    #[error("{:?} is not the primary of transaction {}", .0.key, .0.lock_version)]
    PrimaryMismatch(Box<LockInfo>),
    /// A resolve with a commit timestamp not above the lock's start timestamp.
    #[error("invalid commit_ts {commit_ts} for transaction {start_ts}")]
    InvalidTxnTso { start_ts: u64, commit_ts: u64 },
    /// The transaction's own lock on the key is of the wrong kind for the request: a
    /// pessimistic lock met by an optimistic prewrite (`pessimistic`), or the reverse
    /// (`KeyError.abort`, as TiKV's `LockTypeNotMatch` in `actions/prewrite.rs` `check_lock`).
    #[error("lock type does not match for transaction {start_ts} on {key:?} (pessimistic lock: {pessimistic})")]
    LockTypeNotMatch {
        start_ts: u64,
        key: Vec<u8>,
        pessimistic: bool,
    },
    /// A pessimistic lock request of a transaction that has already been rolled back on the
    /// key: a `Rollback` record (or a commit record flagged `has_overlapped_rollback`) sits at
    /// exactly its start_ts (`KeyError.abort`, as TiKV's `PessimisticLockRolledBack` in
    /// `actions/acquire_pessimistic_lock.rs`, mapped by `extract_key_error`'s catch-all).
    #[error("pessimistic lock of transaction {start_ts} on {key:?} is already rolled back")]
    PessimisticLockRolledBack { start_ts: u64, key: Vec<u8> },
    /// A pessimistic prewrite (`DoPessimisticCheck`) did not find the transaction's
    /// pessimistic lock on the key and could not stand in for it: another transaction's lock
    /// is there, or the key was written (or this transaction rolled back) at or after
    /// start_ts, so the lock was lost and the transaction must abort (`KeyError.abort`, as
    /// TiKV's `PessimisticLockNotFound` in `actions/prewrite.rs`, mapped by
    /// `extract_key_error`'s catch-all; reference §2.3).
    #[error("pessimistic lock of transaction {start_ts} on {key:?} not found: {reason}")]
    PessimisticLockNotFound {
        start_ts: u64,
        key: Vec<u8>,
        /// Why, for logs and the abort text (TiKV's `PessimisticLockNotFoundReason`).
        reason: &'static str,
    },
    /// A read or status check at a timestamp too far ahead of PD's clock, which would push
    /// max_ts (and every later async-commit and 1PC commit) that far ahead
    /// (`KeyError.abort`, as newer TiKV's invalid max_ts update).
    #[error("timestamp {ts} is too far ahead of PD's clock: at most {limit} is accepted")]
    TimestampTooFarAhead { ts: u64, limit: u64 },
}

/// Why a write conflict happened (`kvrpcpb::WriteConflict.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteConflictReason {
    /// An optimistic prewrite found a newer commit.
    Optimistic = 1,
    /// A pessimistic lock found a commit newer than its for_update_ts.
    PessimisticRetry = 2,
    /// The transaction was rolled back before its prewrite arrived.
    SelfRolledBack = 3,
    /// A pessimistic prewrite's `DoConstraintCheck` key found a commit newer than start_ts.
    LazyUniquenessCheck = 5,
}

impl WriteConflictReason {
    /// The wire enum (`kvrpcpb::write_conflict::Reason`).
    pub fn to_pb(self) -> kvrpcpb::write_conflict::Reason {
        match self {
            WriteConflictReason::Optimistic => kvrpcpb::write_conflict::Reason::Optimistic,
            WriteConflictReason::PessimisticRetry => {
                kvrpcpb::write_conflict::Reason::PessimisticRetry
            }
            WriteConflictReason::SelfRolledBack => kvrpcpb::write_conflict::Reason::SelfRolledBack,
            WriteConflictReason::LazyUniquenessCheck => {
                kvrpcpb::write_conflict::Reason::LazyUniquenessCheck
            }
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The `KeyError` a client gets for this failure; `None` for server-side failures
    /// (storage, corruption), which travel as region or gRPC errors instead.
    pub fn to_key_error(&self) -> Option<KeyError> {
        let mut e = KeyError::default();
        match self {
            Error::Engine(_) | Error::Corrupt { .. } => return None,
            Error::KeyIsLocked(info) => e.locked = Some((**info).clone()),
            Error::WriteConflict {
                start_ts,
                conflict_start_ts,
                conflict_commit_ts,
                key,
                primary,
                reason,
            } => {
                // TiKV also fills `retryable` next to a conflict, for logs.
                e.retryable = self.to_string();
                e.conflict = Some(kvrpcpb::WriteConflict {
                    start_ts: *start_ts,
                    conflict_ts: *conflict_start_ts,
                    key: key.clone(),
                    primary: primary.clone(),
                    conflict_commit_ts: *conflict_commit_ts,
                    reason: reason.to_pb() as i32,
                });
            }
            Error::AlreadyExist { key } => {
                e.already_exist = Some(kvrpcpb::AlreadyExist { key: key.clone() })
            }
            Error::TxnLockNotFound { .. } => e.retryable = self.to_string(),
            Error::TxnNotFound { start_ts, key } => {
                e.txn_not_found = Some(kvrpcpb::TxnNotFound {
                    start_ts: *start_ts,
                    primary_key: key.clone(),
                })
            }
            Error::CommitTsExpired {
                start_ts,
                commit_ts,
                key,
                min_commit_ts,
            } => {
                e.commit_ts_expired = Some(kvrpcpb::CommitTsExpired {
                    start_ts: *start_ts,
                    attempted_commit_ts: *commit_ts,
                    key: key.clone(),
                    min_commit_ts: *min_commit_ts,
                })
            }
            Error::PrimaryMismatch(info) => {
                e.primary_mismatch = Some(kvrpcpb::PrimaryMismatch {
                    lock_info: Some((**info).clone()),
                })
            }
            Error::InvalidRequest(_) | Error::Committed { .. } | Error::InvalidTxnTso { .. } => {
                e.abort = self.to_string()
            }
            Error::LockTypeNotMatch { .. }
            | Error::TimestampTooFarAhead { .. }
            | Error::PessimisticLockRolledBack { .. }
            | Error::PessimisticLockNotFound { .. } => e.abort = self.to_string(),
        }
        Some(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_facing_failures_map_to_their_key_error_fields() {
        let conflict = Error::WriteConflict {
            start_ts: 5,
            conflict_start_ts: 6,
            conflict_commit_ts: 7,
            key: b"k".to_vec(),
            primary: b"p".to_vec(),
            reason: WriteConflictReason::SelfRolledBack,
        }
        .to_key_error()
        .unwrap();
        let c = conflict.conflict.unwrap();
        assert_eq!((c.start_ts, c.conflict_ts, c.conflict_commit_ts), (5, 6, 7));
        assert_eq!(
            c.reason,
            kvrpcpb::write_conflict::Reason::SelfRolledBack as i32
        );
        let mismatch = Error::PrimaryMismatch(Box::default())
            .to_key_error()
            .unwrap();
        assert!(mismatch.primary_mismatch.is_some() && mismatch.abort.is_empty());
        let not_found = Error::TxnNotFound {
            start_ts: 3,
            key: b"k".to_vec(),
        }
        .to_key_error()
        .unwrap();
        assert_eq!(not_found.txn_not_found.unwrap().start_ts, 3);
        let corrupt = Error::Corrupt {
            what: "lock record",
            detail: String::new(),
        };
        assert!(corrupt.to_key_error().is_none());
    }

    #[test]
    fn a_rolled_back_pessimistic_lock_is_an_abort() {
        let e = Error::PessimisticLockRolledBack {
            start_ts: 10,
            key: b"k".to_vec(),
        }
        .to_key_error()
        .unwrap();
        assert!(e.abort.contains("10") && e.abort.contains("rolled back"));
        assert!(e.conflict.is_none() && e.retryable.is_empty() && e.locked.is_none());
    }

    #[test]
    fn a_lost_pessimistic_lock_is_an_abort() {
        let e = Error::PessimisticLockNotFound {
            start_ts: 10,
            key: b"k".to_vec(),
            reason: "locked by another transaction",
        }
        .to_key_error()
        .unwrap();
        assert!(e.abort.contains("10") && e.abort.contains("pessimistic lock"));
        assert!(e.abort.contains("not found"));
        assert!(e.conflict.is_none() && e.retryable.is_empty() && e.locked.is_none());
    }
}
