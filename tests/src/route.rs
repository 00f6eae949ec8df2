//! Where a user key lives right now, for tests that talk to stores directly over gRPC.

use anyhow::{Context, Result};
use proto::{kvrpcpb, metapb};
use serde_json::Value;

use crate::keyspace::{pd_key, txn_pd_key};
use crate::pd_api::PdApi;

/// The region holding a key, its epoch and its leader, as PD reports them.
#[derive(Clone, Debug)]
pub struct Route {
    pub region_id: u64,
    pub epoch: metapb::RegionEpoch,
    pub leader: metapb::Peer,
}

impl Route {
    /// Asks PD for the region of user key `key` (default keyspace).
    pub fn of_user_key(pd: &PdApi, key: &[u8]) -> Result<Route> {
        let path = format!("region/key/{}", hex::encode(pd_key(key)));
        Route::from_json(&pd.get(&path)?)
    }

    /// Asks PD for the region of transactional user key `key` (default keyspace).
    pub fn of_txn_key(pd: &PdApi, key: &[u8]) -> Result<Route> {
        let path = format!("region/key/{}", hex::encode(txn_pd_key(key)));
        Route::from_json(&pd.get(&path)?)
    }

    pub fn from_json(region: &Value) -> Result<Route> {
        let region_id = region["id"]
            .as_u64()
            .filter(|id| *id != 0)
            .context("no region id")?;
        let epoch = metapb::RegionEpoch {
            conf_ver: region["epoch"]["conf_ver"]
                .as_u64()
                .context("no conf_ver")?,
            version: region["epoch"]["version"].as_u64().context("no version")?,
        };
        let leader = &region["leader"];
        let leader = metapb::Peer {
            id: leader["id"].as_u64().context("no leader")?,
            store_id: leader["store_id"].as_u64().context("no leader store")?,
            ..Default::default()
        };
        Ok(Route {
            region_id,
            epoch,
            leader,
        })
    }

    /// A V2 request context aimed at the leader.
    pub fn context(&self) -> kvrpcpb::Context {
        kvrpcpb::Context {
            region_id: self.region_id,
            region_epoch: Some(self.epoch),
            peer: Some(self.leader),
            api_version: kvrpcpb::ApiVersion::V2 as i32,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn route_reads_pd_region_json() {
        let route = Route::from_json(&json!({"id": 8, "epoch": {"conf_ver": 3, "version": 4},
            "leader": {"id": 9, "store_id": 2, "role_name": "Voter"}}))
        .unwrap();
        let ctx = route.context();
        assert_eq!(ctx.region_id, 8);
        assert_eq!(ctx.region_epoch.unwrap().version, 4);
        assert_eq!(ctx.peer.unwrap().store_id, 2);
        assert_eq!(ctx.api_version, 2);
        assert!(
            Route::from_json(&json!({"id": 8, "epoch": {"conf_ver": 3, "version": 4},
            "leader": null}))
            .is_err()
        );
    }
}
