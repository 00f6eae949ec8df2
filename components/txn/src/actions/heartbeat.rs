//! Transaction heartbeat: a running transaction keeps its primary lock alive by raising its
//! TTL, so status checks do not find it expired and roll it back.
//!
//! Rules (reference §2.4; TiKV `src/storage/txn/commands/txn_heart_beat.rs`): the lock on the
//! primary with this start_ts (of any type, pessimistic included) gets ttl = max(ttl,
//! advise_ttl), rewritten only when it grows, and the answer is the resulting TTL. No such lock
//! (committed, rolled back, never written, or another transaction's lock) → `TxnNotFound`
//! naming the request's start_ts and key, and nothing is written.
//!
//! The key is not checked to be the lock's primary: like TiKV, a heartbeat naming a secondary
//! key that holds the transaction's lock raises that lock's TTL. This is harmless, since a
//! transaction's fate is decided on its primary only (CheckTxnStatus reads the primary's
//! lock, whatever the TTLs of the secondaries say).

use engine::KvRead;

use crate::errors::{Error, Result};
use crate::mvcc::{Key, MvccReader, MvccTxn};

/// Raises the TTL of the transaction's lock on `primary_key` (a raw user key) to
/// `advise_ttl` if that is higher; returns the lock's TTL afterwards.
pub fn txn_heart_beat<S: KvRead>(
    reader: &MvccReader<'_, S>,
    txn: &mut MvccTxn,
    primary_key: &[u8],
    start_ts: u64,
    advise_ttl: u64,
) -> Result<u64> {
    let key = Key::from_raw(primary_key);
    let mut lock = match reader.load_lock(&key)? {
        Some(lock) if lock.ts == start_ts => lock,
        _ => {
            return Err(Error::TxnNotFound {
                start_ts,
                key: primary_key.to_vec(),
            })
        }
    };
    if lock.ttl < advise_ttl {
        lock.ttl = advise_ttl;
        txn.put_lock(&key, &lock);
    }
    Ok(lock.ttl)
}

#[cfg(test)]
mod tests {
    use proto::kvrpcpb::Op;

    use super::*;
    use crate::actions::check_txn_status::{check_txn_status, CheckTxnStatusParams, TxnStatus};
    use crate::actions::prewrite::test_support::*;
    use crate::actions::rollback;
    use crate::mvcc::{Lock, LockType};
    use crate::test_util::{apply, engine};

    #[test]
    fn a_higher_advice_raises_the_ttl_and_keeps_the_rest_of_the_lock() {
        let (_dir, kv) = engine();
        must_prewrite_put(&kv, b"p", b"v", b"p", 10);
        let before = lock_of(&kv, b"p").unwrap();
        assert_eq!(
            act(&kv, |r, t| txn_heart_beat(r, t, b"p", 10, 8000)).unwrap(),
            8000
        );
        let after = lock_of(&kv, b"p").unwrap();
        assert_eq!(
            after,
            Lock {
                ttl: 8000,
                ..before
            }
        );
    }

    #[test]
    fn a_lower_advice_changes_nothing() {
        let (_dir, kv) = engine();
        must_prewrite_put(&kv, b"p", b"v", b"p", 10);
        let (res, t) = try_act(&kv, |r, t| txn_heart_beat(r, t, b"p", 10, 100));
        assert_eq!(res.unwrap(), 3000);
        assert!(t.is_empty());
        assert_eq!(lock_of(&kv, b"p").unwrap().ttl, 3000);
    }

    #[test]
    fn a_pessimistic_primary_is_kept_alive_too() {
        let (_dir, kv) = engine();
        let mut t = MvccTxn::new();
        let mut lock = Lock::new(LockType::Pessimistic, b"p".to_vec(), 10, 20000);
        lock.for_update_ts = 11;
        t.put_lock(&Key::from_raw(b"p"), &lock);
        apply(&kv, t.modifies());
        assert_eq!(
            act(&kv, |r, t| txn_heart_beat(r, t, b"p", 10, 30000)).unwrap(),
            30000
        );
        assert_eq!(lock_of(&kv, b"p").unwrap().ttl, 30000);
    }

    #[test]
    fn without_the_transactions_lock_it_is_not_found() {
        let (_dir, kv) = engine();
        must_put(&kv, b"done", b"v", 10, 15);
        must_prewrite_put(&kv, b"other", b"v", b"other", 20);
        for key in [&b"done"[..], b"other", b"never"] {
            let (res, t) = try_act(&kv, |r, t| txn_heart_beat(r, t, key, 10, 8000));
            assert!(
                matches!(res, Err(Error::TxnNotFound { start_ts: 10, key: ref k }) if k == key),
                "{key:?}"
            );
            assert!(t.is_empty());
        }
        assert_eq!(lock_of(&kv, b"other").unwrap().ttl, 3000);
    }

    #[test]
    fn the_ttl_only_grows_and_other_start_ts_never_touch_it() {
        let (_dir, kv) = engine();
        must_prewrite_put(&kv, b"p", b"v", b"p", 10);
        for (advise, expected) in [(100, 3000), (5000, 5000), (4000, 5000), (0, 5000)] {
            assert_eq!(
                act(&kv, |r, t| txn_heart_beat(r, t, b"p", 10, advise)).unwrap(),
                expected,
                "advise {advise}"
            );
            assert_eq!(lock_of(&kv, b"p").unwrap().ttl, expected);
        }
        // The same key under a neighbouring start_ts is another transaction.
        for ts in [9, 11] {
            let (res, t) = try_act(&kv, |r, t| txn_heart_beat(r, t, b"p", ts, 9000));
            assert!(
                matches!(res, Err(Error::TxnNotFound { start_ts, .. }) if start_ts == ts),
                "{res:?}"
            );
            assert!(t.is_empty());
        }
        assert_eq!(lock_of(&kv, b"p").unwrap().ttl, 5000);
    }

    #[test]
    fn a_committed_or_rolled_back_transaction_is_not_found_and_nothing_is_written() {
        let (_dir, kv) = engine();
        // Committed: the lock became a commit record.
        must_prewrite_put(&kv, b"c", b"v", b"c", 10);
        must_commit(&kv, b"c", 10, 15);
        // Rolled back: the lock became a rollback record.
        must_prewrite_put(&kv, b"r", b"v", b"r", 20);
        act(&kv, |r, t| rollback::rollback(r, t, b"r", 20, false)).unwrap();
        for (key, ts) in [(&b"c"[..], 10), (b"r", 20)] {
            let (res, t) = try_act(&kv, |r, t| txn_heart_beat(r, t, key, ts, 8000));
            assert!(
                matches!(res, Err(Error::TxnNotFound { start_ts, key: ref k }) if start_ts == ts && k == key),
                "{key:?}: {res:?}"
            );
            assert!(t.is_empty(), "{key:?}");
            assert!(lock_of(&kv, key).is_none());
        }
    }

    #[test]
    fn a_secondary_holding_the_transactions_lock_is_raised_as_tikv_does() {
        let (_dir, kv) = engine();
        must_prewrite(
            &kv,
            &[mutation(Op::Put, b"p", b"1"), mutation(Op::Put, b"s", b"2")],
            b"p",
            10,
            3000,
        );
        let before = lock_of(&kv, b"s").unwrap();
        assert_eq!(before.primary, b"p");
        assert_eq!(
            act(&kv, |r, t| txn_heart_beat(r, t, b"s", 10, 8000)).unwrap(),
            8000
        );
        assert_eq!(
            lock_of(&kv, b"s").unwrap(),
            Lock {
                ttl: 8000,
                ..before
            }
        );
        // The primary, which decides the transaction, is left alone.
        assert_eq!(lock_of(&kv, b"p").unwrap().ttl, 3000);
    }

    #[test]
    fn a_raised_ttl_keeps_the_status_check_from_rolling_the_primary_back() {
        let (_dir, kv) = engine();
        let start = tso(1_000);
        must_prewrite_put(&kv, b"p", b"v", b"p", start);
        let check_at = |ms: u64| CheckTxnStatusParams {
            primary_key: b"p".to_vec(),
            lock_ts: start,
            caller_start_ts: tso(ms),
            current_ts: tso(ms),
            ..CheckTxnStatusParams::default()
        };
        // Past the prewrite TTL (3000 ms), within the heartbeat's.
        act(&kv, |r, t| txn_heart_beat(r, t, b"p", start, 20_000)).unwrap();
        let status = act(&kv, |r, t| check_txn_status(r, t, &check_at(1_000 + 3_001))).unwrap();
        assert!(
            matches!(status, TxnStatus::Uncommitted { ref lock, .. } if lock.ttl == 20_000),
            "{status:?}"
        );
        assert!(lock_of(&kv, b"p").is_some());
        // Past the heartbeat's TTL too: expired and rolled back, and a late heartbeat then
        // finds nothing.
        let status = act(&kv, |r, t| {
            check_txn_status(r, t, &check_at(1_000 + 20_001))
        })
        .unwrap();
        assert_eq!(status, TxnStatus::TtlExpire);
        let (res, t) = try_act(&kv, |r, t| txn_heart_beat(r, t, b"p", start, 40_000));
        assert!(matches!(res, Err(Error::TxnNotFound { .. })), "{res:?}");
        assert!(t.is_empty());
    }
}
