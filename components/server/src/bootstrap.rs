//! Giving a store its identity and, for the first store of a cluster, the first region.
//!
//! The first region is written locally before PD is asked to bootstrap the cluster with it.
//! A marker in CF raft records the attempt, so a crash anywhere in between is resolved at
//! the next start: if PD ends up bootstrapped without our region, the local copy (which
//! never served anything) is deleted.

use std::path::Path;

use engine::{KvEngine, KvRead, RaftLogBatch, RaftLogEngine, CF_RAFT};
use pd_client::PdClient;
use proto::metapb::{Peer, Region, RegionEpoch, Store};
use proto::raft_serverpb::StoreIdent;
use raftstore::bootstrap;
use tracing::info;

use crate::errors::ServerError;

/// Where the region of an unfinished cluster bootstrap is recorded (a store-local key next
/// to the store identity, outside the region metadata range).
fn prepare_bootstrap_key() -> Vec<u8> {
    vec![keys::LOCAL_PREFIX, 0x02]
}

/// Refuses a data directory that belongs to another cluster.
pub fn check_cluster(
    ident: &StoreIdent,
    pd_cluster_id: u64,
    data_dir: &Path,
) -> Result<(), ServerError> {
    if ident.cluster_id != pd_cluster_id {
        return Err(ServerError::ClusterMismatch {
            data_dir: data_dir.to_path_buf(),
            local: ident.cluster_id,
            pd: pd_cluster_id,
        });
    }
    Ok(())
}

/// The store id of this data directory, allocating one from PD on first start.
pub async fn ensure_store_id(
    kv: &KvEngine,
    pd: &PdClient,
    data_dir: &Path,
) -> Result<u64, ServerError> {
    if let Some(ident) = bootstrap::load_store_ident(kv)? {
        check_cluster(&ident, pd.cluster_id(), data_dir)?;
        return Ok(ident.store_id);
    }
    let store_id = pd.alloc_id().await?;
    bootstrap::bootstrap_store(kv, pd.cluster_id(), store_id)?;
    info!(store_id, cluster_id = pd.cluster_id(), "store bootstrapped");
    Ok(store_id)
}

/// Bootstraps the cluster with a first region on this store if PD is not bootstrapped yet
/// (the cluster then serves `api_version`, 1 or 2), and cleans up after an earlier attempt that lost the race or crashed.
pub async fn ensure_cluster(
    kv: &KvEngine,
    raft: &RaftLogEngine,
    pd: &PdClient,
    store: &Store,
    api_version: u32,
) -> Result<(), ServerError> {
    let prepared = pending_first_region(kv)?;
    if pd.is_bootstrapped().await? {
        if let Some(region) = prepared {
            settle(kv, raft, pd, &region).await?;
        }
        return Ok(());
    }
    let region = match prepared {
        // A crash cut the last attempt short: offer the same region again.
        Some(region) => region,
        None => prepare_first_region(kv, raft, pd, store.id).await?,
    };
    match pd
        .bootstrap(store.clone(), region.clone(), api_version)
        .await
    {
        Ok(()) => {
            info!(
                region_id = region.id,
                "cluster bootstrapped with the first region"
            );
            clear_marker(kv)
        }
        Err(pd_client::Error::AlreadyBootstrapped) => settle(kv, raft, pd, &region).await,
        Err(e) => Err(e.into()),
    }
}

/// The first region of an unfinished cluster bootstrap, if one is recorded.
pub fn pending_first_region(kv: &KvEngine) -> Result<Option<Region>, ServerError> {
    Ok(kv.get_msg_cf(CF_RAFT, &prepare_bootstrap_key())?)
}

/// Writes the marker, then the first region ["", "") with one peer on this store.
pub async fn prepare_first_region(
    kv: &KvEngine,
    raft: &RaftLogEngine,
    pd: &PdClient,
    store_id: u64,
) -> Result<Region, ServerError> {
    let region_id = pd.alloc_id().await?;
    let peer_id = pd.alloc_id().await?;
    let region = Region {
        id: region_id,
        start_key: Vec::new(),
        end_key: Vec::new(),
        region_epoch: Some(RegionEpoch {
            conf_ver: 1,
            version: 1,
        }),
        peers: vec![Peer {
            id: peer_id,
            store_id,
            ..Default::default()
        }],
    };
    let mut wb = kv.write_batch();
    wb.put_msg_cf(CF_RAFT, &prepare_bootstrap_key(), &region)?;
    kv.write(&wb, true)?;
    bootstrap::bootstrap_regions(kv, raft, std::slice::from_ref(&region))?;
    Ok(region)
}

/// PD is bootstrapped: keep our region if PD has it (our bootstrap won, perhaps on a retry
/// whose answer was lost), otherwise delete it.
async fn settle(
    kv: &KvEngine,
    raft: &RaftLogEngine,
    pd: &PdClient,
    region: &Region,
) -> Result<(), ServerError> {
    if pd.get_region_by_id(region.id).await?.is_some() {
        info!(region_id = region.id, "pd holds our first region");
        return clear_marker(kv);
    }
    info!(
        region_id = region.id,
        "another store bootstrapped the cluster; removing the unused local region"
    );
    let mut batch = RaftLogBatch::new();
    batch.clean(region.id);
    raft.write(&mut batch, true)?;
    let mut wb = kv.write_batch();
    wb.delete_cf(CF_RAFT, &keys::region_state_key(region.id))?;
    wb.delete_cf(CF_RAFT, &keys::apply_state_key(region.id))?;
    wb.delete_cf(CF_RAFT, &prepare_bootstrap_key())?;
    kv.write(&wb, true)?;
    Ok(())
}

fn clear_marker(kv: &KvEngine) -> Result<(), ServerError> {
    let mut wb = kv.write_batch();
    wb.delete_cf(CF_RAFT, &prepare_bootstrap_key())?;
    kv.write(&wb, true)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_dir_of_another_cluster_is_refused_with_both_ids() {
        let ident = StoreIdent {
            cluster_id: 7,
            store_id: 3,
        };
        check_cluster(&ident, 7, Path::new("/data")).unwrap();
        let err = check_cluster(&ident, 8, Path::new("/data")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("belongs to cluster 7"), "{msg}");
        assert!(msg.contains("PD serves cluster 8"), "{msg}");
    }

    #[test]
    fn the_marker_key_is_outside_the_region_metadata_range() {
        let (start, end) = keys::region_meta_range();
        let k = prepare_bootstrap_key();
        assert!(k < start || k >= end);
        assert_ne!(k, keys::store_ident_key());
    }
}
