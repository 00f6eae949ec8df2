//! CheckSecondaryLocks: how lock cleanup decides an async-commit transaction, whose primary
//! alone cannot say whether it committed — by looking at its secondaries.
//!
//! Rules (reference §2.6, pitfalls #5, #6; TiKV
//! `src/storage/txn/commands/check_secondary_locks.rs`), key by key in request order:
//! 1. The transaction's own lock, not pessimistic → reported (its `LockInfo`); go on.
//! 2. Its own pessimistic lock (never prewritten, so the transaction cannot have committed)
//!    → removed, a protected rollback record written → `RolledBack`; stop.
//! 3. No lock of the transaction: its commit record → `Committed(commit_ts)`; stop. Its
//!    rollback record → `RolledBack`; stop. Nothing → a protected rollback record, so the
//!    prewrite still on its way fails → `RolledBack`; stop.
//!
//! A `RolledBack` or `Committed` answer replaces any locks reported before it (only the first
//! decided key counts, as in TiKV). With no keys the answer is `Locked([])`.
//!
//! The command layer raises the store's max_ts to start_ts before calling (pitfall #2).

use engine::KvRead;
use proto::kvrpcpb::LockInfo;

use crate::actions::rollback::write_rollback_record;
use crate::errors::Result;
use crate::mvcc::{Key, LockType, MvccReader, MvccTxn};

/// What the secondaries say about the transaction (`CheckSecondaryLocksResponse`).
#[derive(Debug, Clone, PartialEq)]
pub enum SecondaryLocksStatus {
    /// Every key still holds the transaction's lock: these (reply `locks`).
    Locked(Vec<LockInfo>),
    /// A key was committed at this commit_ts (reply `commit_ts`).
    Committed(u64),
    /// A key was, or now is, rolled back (reply with neither locks nor commit_ts).
    RolledBack,
}

/// What one key says.
enum KeyStatus {
    Locked(LockInfo),
    Committed(u64),
    RolledBack,
}

/// Checks `keys` (raw user keys) of the transaction at `start_ts` by the rules of this module.
pub fn check_secondary_locks<S: KvRead>(
    reader: &MvccReader<'_, S>,
    txn: &mut MvccTxn,
    keys: &[Vec<u8>],
    start_ts: u64,
) -> Result<SecondaryLocksStatus> {
    let mut locks = Vec::new();
    for raw in keys {
        match check_key(reader, txn, raw, start_ts)? {
            KeyStatus::Locked(info) => locks.push(info),
            KeyStatus::Committed(ts) => return Ok(SecondaryLocksStatus::Committed(ts)),
            KeyStatus::RolledBack => return Ok(SecondaryLocksStatus::RolledBack),
        }
    }
    Ok(SecondaryLocksStatus::Locked(locks))
}

/// Rules 1–3 for one key.
fn check_key<S: KvRead>(
    reader: &MvccReader<'_, S>,
    txn: &mut MvccTxn,
    raw: &[u8],
    start_ts: u64,
) -> Result<KeyStatus> {
    let key = Key::from_raw(raw);
    if let Some(lock) = reader.load_lock(&key)? {
        if lock.ts == start_ts {
            if lock.lock_type != LockType::Pessimistic {
                return Ok(KeyStatus::Locked(lock.to_lock_info(raw.to_vec())));
            }
            txn.unlock_key(&key);
            return rolled_back_now(reader, txn, &key, start_ts);
        }
    }
    let record = reader.get_txn_commit_record(&key, start_ts)?;
    if let Some(commit_ts) = record.committed_ts() {
        return Ok(KeyStatus::Committed(commit_ts));
    }
    if record.is_rolled_back() {
        return Ok(KeyStatus::RolledBack);
    }
    rolled_back_now(reader, txn, &key, start_ts)
}

/// Protected, so no later rollback collapses it and a stale prewrite of this transaction
/// always fails (TiKV's comment on `make_rollback` here).
fn rolled_back_now<S: KvRead>(
    reader: &MvccReader<'_, S>,
    txn: &mut MvccTxn,
    key: &Key,
    start_ts: u64,
) -> Result<KeyStatus> {
    write_rollback_record(reader, txn, key, start_ts, true)?;
    Ok(KeyStatus::RolledBack)
}

#[cfg(test)]
mod tests {
    use engine::KvEngine;
    use proto::kvrpcpb::Op;

    use super::*;
    use crate::actions::prewrite::test_support::*;
    use crate::mvcc::{Lock, TxnCommitRecord, WriteType};
    use crate::test_util::{apply, engine};

    fn keys(names: &[&[u8]]) -> Vec<Vec<u8>> {
        names.iter().map(|k| k.to_vec()).collect()
    }

    fn protected_rollback_at(kv: &KvEngine, key: &[u8], start_ts: u64) -> bool {
        let rec = MvccReader::new(kv)
            .get_txn_commit_record(&Key::from_raw(key), start_ts)
            .unwrap();
        matches!(rec, TxnCommitRecord::SingleRecord { write, .. }
            if write.write_type == WriteType::Rollback && write.protected)
    }

    #[test]
    fn own_prewrite_locks_are_reported_and_left_in_place() {
        let (_dir, kv) = engine();
        must_prewrite(
            &kv,
            &[
                mutation(Op::Put, b"p", b"1"),
                mutation(Op::Put, b"s1", b"2"),
                mutation(Op::Del, b"s2", b""),
            ],
            b"p",
            10,
            3000,
        );
        let (res, t) = try_act(&kv, |r, t| {
            check_secondary_locks(r, t, &keys(&[b"s1", b"s2"]), 10)
        });
        let SecondaryLocksStatus::Locked(infos) = res.unwrap() else {
            panic!("expected locks")
        };
        assert!(t.is_empty());
        let got: Vec<_> = infos
            .iter()
            .map(|i| (i.key.clone(), i.lock_version, i.primary_lock.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (b"s1".to_vec(), 10, b"p".to_vec()),
                (b"s2".to_vec(), 10, b"p".to_vec())
            ]
        );
        assert_eq!(infos[1].lock_type, Op::Del as i32);
    }

    #[test]
    fn own_pessimistic_lock_is_removed_and_rolled_back_protected() {
        let (_dir, kv) = engine();
        must_prewrite_put(&kv, b"s1", b"v", b"p", 10);
        let mut t = MvccTxn::new();
        let lock = Lock {
            for_update_ts: 10,
            ..Lock::new(LockType::Pessimistic, b"p".to_vec(), 10, 3000)
        };
        t.put_lock(&Key::from_raw(b"s2"), &lock);
        apply(&kv, t.modifies());
        let status = act(&kv, |r, t| {
            check_secondary_locks(r, t, &keys(&[b"s1", b"s2"]), 10)
        })
        .unwrap();
        assert_eq!(
            status,
            SecondaryLocksStatus::RolledBack,
            "replaces the lock reported for s1"
        );
        assert!(lock_of(&kv, b"s2").is_none());
        assert!(protected_rollback_at(&kv, b"s2", 10));
        assert_eq!(
            lock_of(&kv, b"s1").unwrap().ts,
            10,
            "s1 is left for resolution"
        );
    }

    #[test]
    fn a_committed_key_answers_committed_and_stops() {
        let (_dir, kv) = engine();
        must_put(&kv, b"s1", b"v", 10, 15);
        let (res, t) = try_act(&kv, |r, t| {
            check_secondary_locks(r, t, &keys(&[b"s1", b"absent"]), 10)
        });
        assert_eq!(res.unwrap(), SecondaryLocksStatus::Committed(15));
        assert!(t.is_empty(), "keys after the decided one are not touched");
    }

    #[test]
    fn a_rolled_back_key_answers_rolled_back_and_stops() {
        let (_dir, kv) = engine();
        act(&kv, |r, t| {
            crate::actions::rollback::rollback(r, t, b"s1", 10, false)
        })
        .unwrap();
        let (res, t) = try_act(&kv, |r, t| {
            check_secondary_locks(r, t, &keys(&[b"s1", b"absent"]), 10)
        });
        assert_eq!(res.unwrap(), SecondaryLocksStatus::RolledBack);
        assert!(t.is_empty());
    }

    #[test]
    fn a_key_with_nothing_gets_a_protected_rollback_that_stops_a_late_prewrite() {
        let (_dir, kv) = engine();
        must_prewrite_put(&kv, b"s1", b"v", b"p", 10);
        let status = act(&kv, |r, t| {
            check_secondary_locks(r, t, &keys(&[b"s1", b"s2"]), 10)
        })
        .unwrap();
        assert_eq!(status, SecondaryLocksStatus::RolledBack);
        assert!(protected_rollback_at(&kv, b"s2", 10));
        // Our prewrite of s2 arriving now fails as rolled back.
        let out = crate::actions::prewrite::prewrite_mutations(
            &MvccReader::new(&kv),
            &crate::actions::prewrite::PrewriteParams::new(10, b"p".to_vec(), 3000),
            &[mutation(Op::Put, b"s2", b"late")],
        )
        .unwrap();
        assert!(matches!(
            &out.errors[..],
            [crate::Error::WriteConflict {
                reason: crate::errors::WriteConflictReason::SelfRolledBack,
                ..
            }]
        ));
    }

    #[test]
    fn another_txns_lock_counts_as_no_lock() {
        let (_dir, kv) = engine();
        must_prewrite_put(&kv, b"s", b"v", b"s", 20);
        let status = act(&kv, |r, t| check_secondary_locks(r, t, &keys(&[b"s"]), 10)).unwrap();
        assert_eq!(status, SecondaryLocksStatus::RolledBack);
        assert!(protected_rollback_at(&kv, b"s", 10));
        assert_eq!(lock_of(&kv, b"s").unwrap().ts, 20, "their lock stays");
    }

    #[test]
    fn no_keys_means_no_locks() {
        let (_dir, kv) = engine();
        let (res, t) = try_act(&kv, |r, t| check_secondary_locks(r, t, &[], 10));
        assert_eq!(res.unwrap(), SecondaryLocksStatus::Locked(Vec::new()));
        assert!(t.is_empty());
    }
}
