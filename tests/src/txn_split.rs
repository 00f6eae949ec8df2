//! Splitting the transactional key space of the default keyspace at chosen user keys through
//! PD's operator API, for tests that need data spread over many regions.

use std::time::Duration;

use anyhow::{bail, Result};
use serde_json::json;

use crate::fleet::Fleet;
use crate::keyspace::txn_pd_key;
use crate::pd_api::region_json;
use crate::wait::wait_until_async;

/// Whether a region starts at transactional user key `key`, as PD sees it.
pub fn region_starts_at(fleet: &Fleet, key: &[u8]) -> bool {
    let encoded = txn_pd_key(key);
    fleet
        .pd_get(&format!("region/key/{}", hex::encode(&encoded)))
        .is_ok_and(|region| region_json::start_key(&region) == encoded)
}

/// Asks PD once to split the region holding `key` at it; PD refuses while the region runs
/// another operator, so callers try again until `region_starts_at` holds.
pub fn request_split_at(fleet: &Fleet, key: &[u8]) {
    let encoded = txn_pd_key(key);
    let Ok(region) = fleet.pd_get(&format!("region/key/{}", hex::encode(&encoded))) else {
        return;
    };
    if region_json::start_key(&region) == encoded {
        return;
    }
    let body = json!({"name": "split-region", "region_id": region_json::id(&region),
        "keys": [hex::encode(&encoded)]});
    let _ = fleet.pd_post("operators", &body);
}

/// Splits at every key of `keys` in turn, each within `per_split`; errors when one does not
/// happen in time.
pub async fn split_at_each(fleet: &Fleet, keys: &[Vec<u8>], per_split: Duration) -> Result<()> {
    for key in keys {
        let split = tokio::time::timeout(
            per_split,
            wait_until_async(per_split * 2, "a split", || async move {
                request_split_at(fleet, key);
                region_starts_at(fleet, key)
            }),
        )
        .await;
        if split.is_err() {
            bail!("no region starts at {key:?} after {per_split:?}");
        }
    }
    Ok(())
}

/// How many distinct regions hold the transactional user keys `keys`, as PD sees them.
pub fn regions_holding(fleet: &Fleet, keys: &[Vec<u8>]) -> usize {
    let mut ids: Vec<u64> = keys
        .iter()
        .filter_map(|key| {
            let encoded = txn_pd_key(key);
            let region = fleet
                .pd_get(&format!("region/key/{}", hex::encode(encoded)))
                .ok()?;
            Some(region_json::id(&region))
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids.len()
}
