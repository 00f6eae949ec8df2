//! Percolator transactions over the replicated KV store: snapshot isolation across regions,
//! the way TiKV serves the `tikv-client` transactional API.
//!
//! Layers, each using only the ones above it:
//! - `mvcc`: the storage layout (locks in CF `lock`, commit and rollback records in CF
//!   `write`, long values in CF `default`), the record codecs, a reader over a region snapshot
//!   that finds the version visible at a timestamp, and a writer that collects one multi-CF
//!   batch of changes.
//! - `actions`: prewrite, commit, rollback, check_txn_status, check_secondary_locks, resolve,
//!   heartbeat, pessimistic lock and pessimistic rollback, reads and GC as functions of a
//!   snapshot and a request, giving the changes to write and the answer (unit-tested without
//!   a cluster).
//! - `latches` (per-key latches held across read, decide, write, apply) and
//!   `concurrency_manager` (the store-wide max_ts): what the store's command runner uses to
//!   make each writing command an atomic read-modify-write.
//!
//! Timestamps are PD TSO values: physical milliseconds in the high 46 bits, a logical counter
//! in the low 18 ([`physical_ms`]).

pub mod actions;
pub mod concurrency_manager;
pub mod latches;
pub mod mvcc;

mod errors;
#[cfg(test)]
mod test_util;

pub use errors::{Error, Result, WriteConflictReason};

/// Bits of a TSO timestamp taken by the logical counter (PD's `tsoutil`).
pub const TSO_LOGICAL_BITS: u32 = 18;

/// The physical part of a TSO timestamp, in milliseconds since the Unix epoch.
pub fn physical_ms(ts: u64) -> u64 {
    ts >> TSO_LOGICAL_BITS
}

/// The TSO timestamp of `physical_ms` milliseconds and logical counter `logical` (which must
/// fit in [`TSO_LOGICAL_BITS`] bits).
pub fn compose_ts(physical_ms: u64, logical: u64) -> u64 {
    (physical_ms << TSO_LOGICAL_BITS) | logical
}
