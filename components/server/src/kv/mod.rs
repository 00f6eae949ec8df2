//! The client-facing key-value API (`tikvpb.Tikv`): the raw API (API V1 or V2, see `api`) served through raftstore, plus the store-to-store streams handed to the transport.
//!
//! Module map: `api` is what differs between API versions, `request` checks requests, `range` clips key ranges to regions, `value` is the
//! stored value format (TTL), `latched` runs read-modify-writes under key latches, `region_cmd` talks
//! to raftstore (`answer_relay` carries its answers back to the gRPC runtime in batches), `raw*` and `cas` implement the raw RPCs, `txn*` the transactional ones
//! (`txn_debug`: MVCC inspection for `shoal-ctl mvcc`), `lock_wait` queues pessimistic lock
//! requests waiting for a lock and `deadlock_client` reports their waits to the deadlock
//! detector on PD, `service` is the gRPC surface.

mod answer_relay;
mod api;
mod cas;
mod deadlock_client;
mod errors;
mod latched;
mod lock_wait;
mod max_ts_sync;
pub mod metrics;
mod range;
mod raw;
mod raw_read;
mod raw_scan;
mod raw_write;
pub(crate) mod region_cmd;
mod request;
mod service;
mod txn;
mod txn_debug;
mod txn_pessimistic;
mod txn_read;
mod txn_write;
pub mod value;
mod wait_for;

use std::time::Duration;

pub use api::StorageApi;
pub use deadlock_client::DetectorUrl;
pub use errors::KvError;
pub use max_ts_sync::TimestampSource;
pub use service::KvService;

/// Limits and timeouts of the raw API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvConfig {
    /// Longest key accepted (with its keyspace prefix); longer keys get a key error.
    pub max_key_size: usize,
    /// Largest `limit` / `each_limit` a scan may ask for.
    pub max_scan_limit: u32,
    /// How long a read waits for the region's leader to serve it.
    pub read_timeout: Duration,
    /// How long a write waits for its entry to be committed and applied.
    pub write_timeout: Duration,
    /// Longest a pessimistic lock request waits for another transaction's lock to be
    /// released (TiKV's `wait-for-lock-timeout`, 1 s): the wait of a request that sends
    /// `wait_timeout` 0 (client 0.4 does), and the cap on a longer one.
    pub lock_wait_timeout: Duration,
    /// How far past PD's clock (as of a timestamp fetched at most a twelfth of this ago) a
    /// read's timestamp may raise max_ts; a read further ahead gets a key error (`abort`).
    pub max_ts_drift_allowance: Duration,
    /// The cluster's storage API (V1, V1TTL or V2): which requests and keys are accepted and
    /// where raw keys live in the region key space.
    pub api: StorageApi,
}

impl KvConfig {
    /// Both bounds of a raw range: empty (unbounded) or a raw key of the cluster's API.
    pub(crate) fn check_raw_range(&self, start: &[u8], end: &[u8]) -> Result<(), KvError> {
        self.api.check_raw_bound(start, self.max_key_size)?;
        self.api.check_raw_bound(end, self.max_key_size)
    }

    /// Both bounds of a transactional range: empty (unbounded) or a transactional key.
    pub(crate) fn check_txn_range(&self, start: &[u8], end: &[u8]) -> Result<(), KvError> {
        self.api.check_txn_bound(start, self.max_key_size)?;
        self.api.check_txn_bound(end, self.max_key_size)
    }
}

impl Default for KvConfig {
    fn default() -> Self {
        KvConfig {
            max_key_size: 8 * 1024,
            max_scan_limit: 10240,
            read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            lock_wait_timeout: Duration::from_secs(1),
            max_ts_drift_allowance: Duration::from_secs(60),
            api: StorageApi::V2,
        }
    }
}
