//! The MVCC storage layout, as TiKV's (`components/txn_types`, `src/storage/mvcc`):
//!
//! | CF | key | value |
//! |---|---|---|
//! | `lock` | encoded user key | [`Lock`]: at most one per key |
//! | `write` | encoded user key ++ `!commit_ts` | [`Write`]: commit records, and rollback records at `!start_ts` |
//! | `default` | encoded user key ++ `!start_ts` | the value, when longer than [`SHORT_VALUE_MAX_LEN`] |
//!
//! Keys are memcomparable-encoded ([`Key`]), so a timestamp appended as `u64::MAX - ts`
//! (big-endian) keeps every version of a key together, newest first, and never between two
//! other keys; region boundaries are whole encoded keys and compare the same way. Values of
//! [`SHORT_VALUE_MAX_LEN`] bytes or less travel inline in the lock and then the write record.

mod key;
mod lock;
mod reader;
mod txn;
mod write;

pub use key::Key;
pub use lock::{Lock, LockType};
pub use reader::{MvccReader, TxnCommitRecord};
pub use txn::{Modify, MvccTxn};
pub use write::{Write, WriteType};

/// Longest value kept inline in a lock or write record (TiKV's `SHORT_VALUE_MAX_LEN`); longer
/// values go to CF `default`.
pub const SHORT_VALUE_MAX_LEN: usize = 255;
