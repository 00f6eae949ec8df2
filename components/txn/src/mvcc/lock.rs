//! The lock record: what a transaction holds on a key between prewrite (or pessimistic lock)
//! and commit or rollback. Stored in CF `lock` as a protobuf record of this crate's own.

use prost::Message;
use proto::kvrpcpb::{LockInfo, Op};

use crate::errors::{Error, Result};

/// The kind of lock (TiKV's `LockType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockType {
    /// A prewritten put: commits as a `Put` write.
    Put,
    /// A prewritten delete: commits as a `Delete` write.
    Delete,
    /// A prewritten `Lock` mutation (read-set protection): commits as a `Lock` write.
    Lock,
    /// A pessimistic lock taken before prewrite: never blocks readers, never committed as is.
    Pessimistic,
}

impl LockType {
    /// The wire `Op` of `LockInfo.lock_type`.
    pub fn to_op(self) -> Op {
        match self {
            LockType::Put => Op::Put,
            LockType::Delete => Op::Del,
            LockType::Lock => Op::Lock,
            LockType::Pessimistic => Op::PessimisticLock,
        }
    }

    fn code(self) -> u32 {
        match self {
            LockType::Put => 1,
            LockType::Delete => 2,
            LockType::Lock => 3,
            LockType::Pessimistic => 4,
        }
    }

    fn from_code(code: u32) -> Result<LockType> {
        Ok(match code {
            1 => LockType::Put,
            2 => LockType::Delete,
            3 => LockType::Lock,
            4 => LockType::Pessimistic,
            other => {
                return Err(Error::Corrupt {
                    what: "lock record",
                    detail: format!("unknown lock type {other}"),
                })
            }
        })
    }
}

/// A lock on one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    pub lock_type: LockType,
    /// The transaction's primary key (raw user key): its status decides this lock's fate.
    pub primary: Vec<u8>,
    /// The transaction's start_ts.
    pub ts: u64,
    /// Time to live in milliseconds, counted from the physical time of `ts`.
    pub ttl: u64,
    /// The value of a `Put` of at most `SHORT_VALUE_MAX_LEN` bytes; longer values are in CF
    /// `default` at `ts`.
    pub short_value: Option<Vec<u8>>,
    /// For pessimistic transactions, the for_update_ts the lock was taken (or refreshed) at.
    pub for_update_ts: u64,
    /// Keys in the transaction, as the client estimated it (lock resolution sizing).
    pub txn_size: u64,
    /// The smallest commit_ts this lock accepts: async-commit locks set it, and status checks
    /// push it above readers' start_ts. 0 for plain 2PC locks from client 0.4.
    pub min_commit_ts: u64,
    pub use_async_commit: bool,
    /// On an async-commit primary: every other key of the transaction.
    pub secondaries: Vec<Vec<u8>>,
}

/// The stored form; field numbers are this crate's own.
#[derive(Clone, PartialEq, Message)]
struct LockRecord {
    #[prost(uint32, tag = "1")]
    lock_type: u32,
    #[prost(bytes = "vec", tag = "2")]
    primary: Vec<u8>,
    #[prost(uint64, tag = "3")]
    ts: u64,
    #[prost(uint64, tag = "4")]
    ttl: u64,
    #[prost(bytes = "vec", optional, tag = "5")]
    short_value: Option<Vec<u8>>,
    #[prost(uint64, tag = "6")]
    for_update_ts: u64,
    #[prost(uint64, tag = "7")]
    txn_size: u64,
    #[prost(uint64, tag = "8")]
    min_commit_ts: u64,
    #[prost(bool, tag = "9")]
    use_async_commit: bool,
    #[prost(bytes = "vec", repeated, tag = "10")]
    secondaries: Vec<Vec<u8>>,
}

impl Lock {
    /// A lock with the given type, primary, start_ts and TTL; optional fields empty.
    pub fn new(lock_type: LockType, primary: Vec<u8>, ts: u64, ttl: u64) -> Lock {
        Lock {
            lock_type,
            primary,
            ts,
            ttl,
            short_value: None,
            for_update_ts: 0,
            txn_size: 0,
            min_commit_ts: 0,
            use_async_commit: false,
            secondaries: Vec::new(),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        LockRecord {
            lock_type: self.lock_type.code(),
            primary: self.primary.clone(),
            ts: self.ts,
            ttl: self.ttl,
            short_value: self.short_value.clone(),
            for_update_ts: self.for_update_ts,
            txn_size: self.txn_size,
            min_commit_ts: self.min_commit_ts,
            use_async_commit: self.use_async_commit,
            secondaries: self.secondaries.clone(),
        }
        .encode_to_vec()
    }

    /// Decodes a stored lock. Errors with `Corrupt` on bytes that are not a lock record.
    pub fn parse(bytes: &[u8]) -> Result<Lock> {
        let r = LockRecord::decode(bytes).map_err(|e| Error::Corrupt {
            what: "lock record",
            detail: e.to_string(),
        })?;
        Ok(Lock {
            lock_type: LockType::from_code(r.lock_type)?,
            primary: r.primary,
            ts: r.ts,
            ttl: r.ttl,
            short_value: r.short_value,
            for_update_ts: r.for_update_ts,
            txn_size: r.txn_size,
            min_commit_ts: r.min_commit_ts,
            use_async_commit: r.use_async_commit,
            secondaries: r.secondaries,
        })
    }

    /// The lock as the client sees it in `KeyError.locked` and lock scans; `raw_key` is the
    /// locked user key.
    pub fn to_lock_info(&self, raw_key: Vec<u8>) -> LockInfo {
        LockInfo {
            primary_lock: self.primary.clone(),
            lock_version: self.ts,
            key: raw_key,
            lock_ttl: self.ttl,
            txn_size: self.txn_size,
            lock_type: self.lock_type.to_op() as i32,
            lock_for_update_ts: self.for_update_ts,
            use_async_commit: self.use_async_commit,
            min_commit_ts: self.min_commit_ts,
            secondaries: self.secondaries.clone(),
            is_txn_file: false,
        }
    }

    /// Whether the lock's TTL has run out by `current_ts` (both TSO timestamps): the rule of
    /// TiKV's `check_txn_status`, physical(ts) + ttl < physical(current_ts).
    pub fn is_expired(&self, current_ts: u64) -> bool {
        crate::physical_ms(self.ts).saturating_add(self.ttl) < crate::physical_ms(current_ts)
    }

    /// Whether this lock stops a snapshot read at `read_ts` (TiKV's `check_ts_conflict` for
    /// SI): only Put and Delete locks of transactions that started at or before the read, and
    /// whose min_commit_ts does not already place their commit after it.
    pub fn blocks_read_at(&self, read_ts: u64) -> bool {
        if self.ts > read_ts {
            return false;
        }
        if !matches!(self.lock_type, LockType::Put | LockType::Delete) {
            return false;
        }
        self.min_commit_ts <= read_ts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_round_trips_and_damage_is_reported() {
        let mut lock = Lock::new(LockType::Put, b"pk".to_vec(), 10, 3000);
        lock.short_value = Some(b"v".to_vec());
        lock.use_async_commit = true;
        lock.secondaries = vec![b"s1".to_vec(), b"s2".to_vec()];
        lock.min_commit_ts = 11;
        assert_eq!(Lock::parse(&lock.to_bytes()).unwrap(), lock);
        let empty_value = Lock {
            short_value: Some(Vec::new()),
            ..Lock::new(LockType::Put, b"pk".to_vec(), 1, 1)
        };
        assert_eq!(Lock::parse(&empty_value.to_bytes()).unwrap(), empty_value);
        assert!(matches!(
            Lock::parse(&[0xff, 0xff, 0xff]),
            Err(Error::Corrupt { .. })
        ));
        let mut bad_type = lock.to_bytes();
        bad_type[1] = 9; // field 1's value
        assert!(Lock::parse(&bad_type).is_err());
    }

    #[test]
    fn only_older_put_and_delete_locks_block_reads() {
        let put = Lock::new(LockType::Put, b"pk".to_vec(), 10, 3000);
        assert!(put.blocks_read_at(10) && put.blocks_read_at(11));
        assert!(!put.blocks_read_at(9));
        let pushed = Lock {
            min_commit_ts: 20,
            ..put.clone()
        };
        assert!(!pushed.blocks_read_at(15) && pushed.blocks_read_at(20));
        for t in [LockType::Lock, LockType::Pessimistic] {
            assert!(!Lock::new(t, b"pk".to_vec(), 10, 3000).blocks_read_at(11));
        }
        assert!(Lock::new(LockType::Delete, b"pk".to_vec(), 10, 0).blocks_read_at(10));
    }

    #[test]
    fn expiry_counts_the_ttl_from_the_physical_start() {
        let start = 1_000u64 << crate::TSO_LOGICAL_BITS;
        let lock = Lock::new(LockType::Put, b"pk".to_vec(), start, 100);
        assert!(!lock.is_expired(1_100u64 << crate::TSO_LOGICAL_BITS));
        assert!(lock.is_expired(1_101u64 << crate::TSO_LOGICAL_BITS));
        assert!(lock.is_expired(u64::MAX));
    }
}
