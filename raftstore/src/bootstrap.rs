//! Giving a fresh data directory its identity and first regions.

use engine::KvRead;
use engine::{KvEngine, RaftLogBatch, RaftLogEngine, CF_RAFT};
use proto::metapb::Region;
use proto::raft_serverpb::{PeerState, RegionLocalState, StoreIdent};

use crate::errors::{Error, Result};
use crate::peer::storage::{initial_apply_state, initial_raft_state};

/// The store identity written at bootstrap, if any.
pub fn load_store_ident(kv: &KvEngine) -> Result<Option<StoreIdent>> {
    Ok(kv.get_msg_cf(CF_RAFT, &keys::store_ident_key())?)
}

/// Marks the data directory as store `store_id` of cluster `cluster_id`. Idempotent; a
/// directory that belongs to another cluster or store is refused.
pub fn bootstrap_store(kv: &KvEngine, cluster_id: u64, store_id: u64) -> Result<()> {
    if let Some(ident) = load_store_ident(kv)? {
        if ident.cluster_id != cluster_id || ident.store_id != store_id {
            return Err(Error::InvalidConfig(format!(
                "data directory {:?} belongs to cluster {} store {}, not cluster {} store {}",
                kv.path(),
                ident.cluster_id,
                ident.store_id,
                cluster_id,
                store_id
            )));
        }
        return Ok(());
    }
    let mut wb = kv.write_batch();
    wb.put_msg_cf(
        CF_RAFT,
        &keys::store_ident_key(),
        &StoreIdent {
            cluster_id,
            store_id,
        },
    )?;
    kv.write(&wb, true)?;
    Ok(())
}

/// Writes new regions' initial raft and apply state on this store, in one synced batch per
/// engine. The raft state goes first, so a region record never exists without one.
pub fn bootstrap_regions(
    kv: &KvEngine,
    raft_engine: &RaftLogEngine,
    regions: &[Region],
) -> Result<()> {
    let mut batch = RaftLogBatch::new();
    for region in regions {
        batch.put_raft_state(region.id, &initial_raft_state())?;
    }
    raft_engine.write(&mut batch, true)?;
    let mut wb = kv.write_batch();
    for region in regions {
        wb.put_msg_cf(
            CF_RAFT,
            &keys::region_state_key(region.id),
            &RegionLocalState {
                state: PeerState::Normal as i32,
                region: Some(region.clone()),
                merge_state: None,
            },
        )?;
        wb.put_msg_cf(
            CF_RAFT,
            &keys::apply_state_key(region.id),
            &initial_apply_state(),
        )?;
    }
    kv.write(&wb, true)?;
    Ok(())
}

/// Every region record on this store, in region-id order.
pub fn load_region_states(kv: &KvEngine) -> Result<Vec<RegionLocalState>> {
    use prost::Message as _;
    let (start, end) = keys::region_meta_range();
    let mut states = Vec::new();
    let mut decode_err = None;
    kv.scan_cf(CF_RAFT, &start, &end, |key, value| {
        match keys::decode_region_meta_key(key) {
            Ok((_, suffix)) if suffix == keys::REGION_STATE_SUFFIX => {
                match RegionLocalState::decode(value) {
                    Ok(s) => states.push(s),
                    Err(e) => {
                        decode_err = Some(Error::Codec(format!("region state {key:?}: {e}")));
                        return Ok(false);
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                decode_err = Some(Error::Codec(format!("region meta key {key:?}: {e}")));
                return Ok(false);
            }
        }
        Ok(true)
    })?;
    match decode_err {
        Some(e) => Err(e),
        None => Ok(states),
    }
}
