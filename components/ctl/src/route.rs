//! Where a key is served: its region and the store of the region's leader, as PD's HTTP API
//! says. For commands that talk to a store directly (the client library has no call for
//! them), so PD's answer may be a heartbeat behind: callers retry on a region error.

use anyhow::{bail, Context, Result};
use proto::kvrpcpb::{ApiVersion, Context as RequestContext};
use proto::metapb::{Peer, RegionEpoch};

use crate::keyfmt::pd_hex_for_txn_key;
use crate::model::{RegionInfo, StoreInfo};
use crate::pd_http::PdHttp;

/// A region's leader and the address of its store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub region_id: u64,
    pub conf_ver: u64,
    pub version: u64,
    pub peer_id: u64,
    pub store_id: u64,
    /// The store's gRPC address, `host:port`.
    pub addr: String,
}

impl Route {
    /// The request context of an API V2 request to this region's leader.
    pub fn context(&self) -> RequestContext {
        RequestContext {
            region_id: self.region_id,
            region_epoch: Some(RegionEpoch {
                conf_ver: self.conf_ver,
                version: self.version,
            }),
            peer: Some(Peer {
                id: self.peer_id,
                store_id: self.store_id,
                ..Default::default()
            }),
            api_version: ApiVersion::V2 as i32,
            ..Default::default()
        }
    }
}

/// The route of transactional user key `key` of the default keyspace.
pub fn locate_txn_key(pd: &PdHttp, key: &[u8]) -> Result<Route> {
    let region: RegionInfo = pd
        .get(&format!("region/key/{}", pd_hex_for_txn_key(key)))
        .context("looking up the key's region")?;
    let (region_id, peer_id, store_id) = leader_of(&region)?;
    let store: StoreInfo = pd
        .get(&format!("store/{store_id}"))
        .with_context(|| format!("looking up store {store_id}"))?;
    if store.store.address.is_empty() {
        bail!("PD knows no address of store {store_id}");
    }
    Ok(Route {
        region_id,
        conf_ver: region.epoch.conf_ver,
        version: region.epoch.version,
        peer_id,
        store_id,
        addr: store.store.address,
    })
}

/// `(region id, leader peer id, leader store id)`; an error while the region has no leader
/// (an election, or PD has not heard from it yet).
pub fn leader_of(region: &RegionInfo) -> Result<(u64, u64, u64)> {
    // Guards against an answer without a region in it, which would parse as region 0.
    if region.id == 0 {
        bail!("PD returned no region");
    }
    match &region.leader {
        Some(leader) if leader.id != 0 && leader.store_id != 0 => {
            Ok((region.id, leader.id, leader.store_id))
        }
        _ => bail!("region {} has no leader yet", region.id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(json: &str) -> RegionInfo {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_leader_is_taken_from_the_region() {
        let r = region(
            r#"{"id":4,"epoch":{"conf_ver":2,"version":3},
            "peers":[{"id":5,"store_id":1},{"id":6,"store_id":2}],
            "leader":{"id":6,"store_id":2}}"#,
        );
        assert_eq!(leader_of(&r).unwrap(), (4, 6, 2));
        assert!(leader_of(&region(r#"{"id":4,"leader":null}"#))
            .unwrap_err()
            .to_string()
            .contains("no leader"));
        assert!(leader_of(&region("{}")).is_err());
    }

    #[test]
    fn the_context_names_region_epoch_and_peer() {
        let route = Route {
            region_id: 4,
            conf_ver: 2,
            version: 3,
            peer_id: 6,
            store_id: 2,
            addr: "h:1".into(),
        };
        let ctx = route.context();
        assert_eq!(ctx.region_id, 4);
        assert_eq!(
            ctx.region_epoch,
            Some(RegionEpoch {
                conf_ver: 2,
                version: 3
            })
        );
        assert_eq!(ctx.peer.map(|p| (p.id, p.store_id)), Some((6, 2)));
        assert_eq!(ctx.api_version, ApiVersion::V2 as i32);
    }
}
