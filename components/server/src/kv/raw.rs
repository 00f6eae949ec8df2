//! The raw API's shared state and the helpers its RPCs have in common. The RPCs themselves
//! live in `raw_read`, `raw_scan`, `raw_write` and `cas`.

use std::sync::Arc;

use engine::{KvRead, KvSnapshot};
use proto::kvrpcpb::{Context, KvPair};
use proto::metapb::Region;
use proto::raft_cmdpb::Request;
use raftstore::RegionSnapshot;
use raftstore::Store;

use super::errors::KvError;
use super::latched::LatchedRunner;
use super::request::show_key;
use super::{region_cmd, value, KvConfig};

/// Serves raw requests on one store.
pub struct RawKv {
    pub(super) store: Arc<Store>,
    pub(super) cfg: KvConfig,
    pub(super) latched: LatchedRunner,
}

/// A stored value that has not expired.
#[derive(Debug, PartialEq, Eq)]
pub struct LiveValue {
    pub value: Vec<u8>,
    pub expire_at: Option<u64>,
}

impl RawKv {
    /// `latched` is shared with the transactional API: one latch table per store.
    pub fn new(store: Arc<Store>, cfg: KvConfig, latched: LatchedRunner) -> RawKv {
        RawKv {
            store,
            cfg,
            latched,
        }
    }

    /// A linearizable snapshot of the context's region.
    pub(super) async fn snapshot(&self, ctx: &Context) -> Result<RegionSnapshot, KvError> {
        region_cmd::snapshot(&self.store, ctx, self.cfg.read_timeout).await
    }

    /// Applies `requests` to the context's region as one raft entry.
    pub(super) async fn write(&self, ctx: &Context, requests: Vec<Request>) -> Result<(), KvError> {
        region_cmd::write(&self.store, ctx, 0, requests, self.cfg.write_timeout).await
    }

    /// Like `write`; with `atomic`, the write holds the latches of `encoded_keys` so it never
    /// interleaves with a compare-and-swap on them.
    pub(super) async fn write_keys(
        &self,
        ctx: &Context,
        atomic: bool,
        encoded_keys: Vec<Vec<u8>>,
        requests: Vec<Request>,
    ) -> Result<(), KvError> {
        if !atomic {
            return self.write(ctx, requests).await;
        }
        let ctx = *ctx;
        self.latched
            .run(ctx.region_id, encoded_keys, move |store| async move {
                region_cmd::write_until_answered(&store, &ctx, 0, requests).await
            })
            .await
    }
}

/// Counts the pairs a read returns (key + value bytes) as the region's read flow, which its
/// leader reports to PD.
pub fn record_pairs_read(snap: &RegionSnapshot, pairs: &[KvPair]) {
    let bytes: usize = pairs.iter().map(|p| p.key.len() + p.value.len()).sum();
    snap.record_read(bytes as u64, pairs.len() as u64);
}

/// Counts one key read (with its value, when found) as the region's read flow.
pub fn record_key_read(snap: &RegionSnapshot, key: &[u8], value: Option<&[u8]>) {
    if let Some(value) = value {
        snap.record_read((key.len() + value.len()) as u64, 1);
    }
}

/// Refuses an encoded key outside the region the snapshot was taken of.
pub fn ensure_in_region(encoded_key: &[u8], region: &Region) -> Result<(), KvError> {
    raftstore::check_key_in_region(encoded_key, region).map_err(KvError::from)
}

/// Reads `raw_key` (stored under `encoded_key`) from `snap`; expired values read as absent.
pub fn read_live(
    snap: &KvSnapshot,
    cf: &str,
    raw_key: &[u8],
    encoded_key: &[u8],
    now: u64,
) -> Result<Option<LiveValue>, KvError> {
    let Some(stored) = snap.get_value_cf(cf, &keys::data_key(encoded_key))? else {
        return Ok(None);
    };
    let decoded = value::decode(&stored).map_err(|e| {
        KvError::Corrupt(format!(
            "value of key {} in cf {cf}: {e}",
            show_key(raw_key)
        ))
    })?;
    if decoded.is_expired(now) {
        return Ok(None);
    }
    Ok(Some(LiveValue {
        value: decoded.user_value.to_vec(),
        expire_at: decoded.expire_at,
    }))
}
