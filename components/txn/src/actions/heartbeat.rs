//! Transaction heartbeat: a running transaction keeps its primary lock alive by raising its
//! TTL, so status checks do not find it expired and roll it back.
//!
//! Rules (reference §2.4; TiKV `src/storage/txn/commands/txn_heart_beat.rs`): the lock on the
//! primary with this start_ts (of any type, pessimistic included) gets ttl = max(ttl,
//! advise_ttl), rewritten only when it grows, and the answer is the resulting TTL. No such lock
//! (committed, rolled back, never written, or another transaction's lock) → `TxnNotFound`.

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
    use super::*;
    use crate::actions::prewrite::test_support::*;
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
}
