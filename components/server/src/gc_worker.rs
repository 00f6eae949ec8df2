//! MVCC garbage collection on this store (TiKV's `GcManager` and `gc_worker`).
//!
//! PD keeps the cluster's GC safe point; clients move it forward (`TransactionClient::gc`)
//! after resolving every lock at or below it. This worker polls it and, each time it
//! advances, walks the transactional key space of every region this store leads, in bounded
//! batches: it keeps every version newer than the safe point and the newest one at or below
//! it (unless that is a delete), and removes the rest through raft, like any write. A region
//! that fails (leader moved, store busy) is tried again at the next poll.

use std::sync::Arc;
use std::time::Duration;

use pd_client::PdClient;
use proto::kvrpcpb::Context;
use proto::metapb::Region;
use raftstore::Store;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use txn::actions::gc::gc_range;
use txn::mvcc::{Modify, MvccReader, MvccTxn};

use crate::kv::region_cmd;
use crate::kv::{KvError, StorageApi};
use crate::metrics::{GC_KEYS_VISITED, GC_SAFE_POINT, GC_VERSIONS_DELETED};

/// Most batches one region may take in one pass, so a pass always ends.
const MAX_BATCHES_PER_REGION: usize = 100_000;

/// How the worker paces itself.
#[derive(Clone, Debug)]
pub struct GcConfig {
    /// How often PD's safe point is read.
    pub poll_interval: Duration,
    /// Keys examined per batch (one snapshot, one raft write).
    pub batch_keys: usize,
    /// How long one batch's snapshot and write may take.
    pub request_timeout: Duration,
    /// The cluster's storage API: which part of a region holds transactional keys.
    pub api: StorageApi,
}

/// Starts the worker on the current tokio runtime; abort the handle to stop it.
pub fn spawn(store: Arc<Store>, pd: PdClient, cfg: GcConfig) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut done_up_to = 0u64;
        let mut ticker = tokio::time::interval(cfg.poll_interval);
        loop {
            ticker.tick().await;
            let safe_point = match pd.get_gc_safe_point().await {
                Ok(sp) => sp,
                Err(e) => {
                    debug!(error = %e, "cannot read the gc safe point");
                    continue;
                }
            };
            GC_SAFE_POINT.set(safe_point as i64);
            if safe_point <= done_up_to {
                continue;
            }
            if gc_leader_regions(&store, safe_point, &cfg).await {
                done_up_to = safe_point;
            }
        }
    })
}

/// One pass over the regions this store leads; true when every one was collected.
async fn gc_leader_regions(store: &Store, safe_point: u64, cfg: &GcConfig) -> bool {
    let regions: Vec<Region> = {
        let meta = store.meta().lock();
        meta.leader_region_ids()
            .filter_map(|id| meta.region(id).cloned())
            .collect()
    };
    let mut all_done = true;
    for region in regions {
        if let Err(e) = gc_region(store, &region, safe_point, cfg).await {
            warn!(region_id = region.id, error = %e, "gc of the region stopped; retrying later");
            all_done = false;
        }
    }
    if all_done {
        info!(safe_point, "gc pass finished");
    }
    all_done
}

/// Collects one region's transactional keys, batch after batch.
async fn gc_region(
    store: &Store,
    region: &Region,
    safe_point: u64,
    cfg: &GcConfig,
) -> Result<(), KvError> {
    let Some(ctx) = context_of(store.store_id(), region, cfg.api) else {
        return Ok(());
    };
    let (mut cursor, end) = txn_range(cfg.api, region);
    for _ in 0..MAX_BATCHES_PER_REGION {
        if !end.is_empty() && cursor >= end {
            return Ok(());
        }
        let snap = region_cmd::snapshot(store, &ctx, cfg.request_timeout).await?;
        let reader = MvccReader::new(&snap.snapshot);
        let mut changes = MvccTxn::new();
        let (stats, next) = gc_range(
            &reader,
            &mut changes,
            &cursor,
            &end,
            safe_point,
            cfg.batch_keys,
        )?;
        GC_KEYS_VISITED.inc_by(stats.keys as u64);
        GC_VERSIONS_DELETED.inc_by(stats.deleted_versions as u64);
        let requests = changes
            .into_modifies()
            .into_iter()
            .map(|m| match m {
                Modify::Put { cf, key, value } => region_cmd::put(cf, key, value),
                Modify::Delete { cf, key } => region_cmd::delete(cf, key),
            })
            .collect();
        region_cmd::write(store, &ctx, snap.term, requests, cfg.request_timeout).await?;
        match next {
            Some(key) => cursor = key,
            None => return Ok(()),
        }
    }
    Err(KvError::Internal(format!(
        "region {} not collected after {MAX_BATCHES_PER_REGION} batches",
        region.id
    )))
}

/// The context a request to `region`'s peer on this store carries; `None` when this store
/// has no peer in it any more.
fn context_of(store_id: u64, region: &Region, api: StorageApi) -> Option<Context> {
    let peer = region.peers.iter().find(|p| p.store_id == store_id)?;
    Some(Context {
        region_id: region.id,
        region_epoch: region.region_epoch,
        peer: Some(*peer),
        api_version: api.context_version() as i32,
        ..Default::default()
    })
}

/// The region's share of the transactional key space (`['x', 'y')` encoded in API V2, all
/// of it in V1); an empty end is unbounded.
fn txn_range(api: StorageApi, region: &Region) -> (Vec<u8>, Vec<u8>) {
    let range = api.txn_range_of(region);
    (range.start, range.end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_collected_range_is_the_regions_share_of_the_txn_key_space() {
        let whole = Region::default();
        let (start, end) = txn_range(StorageApi::V2, &whole);
        assert_eq!(start, keys::encode_bytes(b"x"));
        assert_eq!(end, keys::encode_bytes(b"y"));
        let raw_only = Region {
            end_key: keys::encode_bytes(b"s"),
            ..Default::default()
        };
        let (start, end) = txn_range(StorageApi::V2, &raw_only);
        assert!(start >= end, "a raw-only region has nothing to collect");
        // In API V1 every key may be transactional.
        let (start, end) = txn_range(StorageApi::V1, &raw_only);
        assert_eq!((start, end), (vec![], keys::encode_bytes(b"s")));
        let (start, end) = txn_range(StorageApi::V1, &whole);
        assert!(start.is_empty() && end.is_empty());
    }
}
