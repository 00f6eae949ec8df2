//! The JSON shapes of PD's HTTP API that the tool reads. Fields are lenient (defaults when
//! absent) so a newer PD with more fields, or an older one with fewer, still prints.

use serde::Deserialize;

/// `GET /stores`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StoresPage {
    pub count: u64,
    pub stores: Vec<StoreInfo>,
}

/// One store with its latest heartbeat statistics.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StoreInfo {
    pub store: StoreMeta,
    pub status: StoreStatus,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StoreMeta {
    pub id: u64,
    pub address: String,
    pub status_address: String,
    pub state_name: String,
    pub version: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StoreStatus {
    /// Bytes; `None` (JSON `null`) while PD has no heartbeat statistics from the store since
    /// PD started (always so for a tombstone store after a PD restart).
    pub capacity: Option<Quantity>,
    pub available: Option<Quantity>,
    pub used_size: Option<Quantity>,
    pub region_count: u64,
    pub leader_count: u64,
    pub last_heartbeat_ts: Quantity,
}

/// A number PD may send either as a JSON number or already formatted as a string.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Quantity {
    Number(u64),
    Text(String),
}

impl Default for Quantity {
    fn default() -> Self {
        Quantity::Number(0)
    }
}

/// `GET /regions`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RegionsPage {
    pub count: u64,
    pub regions: Vec<RegionInfo>,
}

/// `GET /regions/summary`: totals over every region.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RegionsSummary {
    pub count: u64,
    pub peers: u64,
    pub leaderless: u64,
    /// Bytes.
    pub approximate_size: u64,
    pub approximate_keys: u64,
}

/// One region as PD last heard of it. Keys are hex of memcomparable-encoded keys.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RegionInfo {
    pub id: u64,
    pub start_key: String,
    pub end_key: String,
    pub epoch: RegionEpoch,
    pub peers: Vec<PeerInfo>,
    pub leader: Option<PeerInfo>,
    pub approximate_size: u64,
    pub approximate_keys: u64,
    pub down_peers: Vec<serde_json::Value>,
    pub pending_peers: Vec<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RegionEpoch {
    pub conf_ver: u64,
    pub version: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PeerInfo {
    pub id: u64,
    pub store_id: u64,
    pub role_name: String,
}

/// `GET /operators`: running operators first, then recently finished ones.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct OperatorsPage {
    pub count: u64,
    pub operators: Vec<OperatorInfo>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct OperatorInfo {
    pub region_id: u64,
    pub kind: String,
    pub desc: String,
    pub steps: Vec<String>,
    pub current_step: Option<String>,
    pub current_step_index: u64,
    pub status: String,
    pub reason: Option<String>,
    pub created_at: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_store_and_region_shapes() {
        let stores: StoresPage = serde_json::from_str(
            r#"{"count":1,"stores":[{"store":{"id":1,"address":"127.0.0.1:20160",
            "status_address":"127.0.0.1:20180","state_name":"Up","version":"0.1.0"},
            "status":{"capacity":1000,"available":"1GiB","used_size":5,"region_count":3,
            "leader_count":1,"last_heartbeat_ts":1700000000000}}]}"#,
        )
        .unwrap();
        assert_eq!(stores.stores[0].store.state_name, "Up");
        assert_eq!(
            stores.stores[0].status.available,
            Some(Quantity::Text("1GiB".into()))
        );
        assert_eq!(
            stores.stores[0].status.capacity,
            Some(Quantity::Number(1000))
        );

        // A store PD has no statistics from (a tombstone after a PD restart).
        let unknown: StoresPage = serde_json::from_str(
            r#"{"count":1,"stores":[{"store":{"id":4,"state_name":"Tombstone"},
            "status":{"capacity":null,"available":null,"used_size":null,"region_count":0,
            "leader_count":0,"last_heartbeat_ts":0}}]}"#,
        )
        .unwrap();
        assert_eq!(unknown.stores[0].status.capacity, None);
        assert_eq!(unknown.stores[0].status.used_size, None);

        let regions: RegionsPage = serde_json::from_str(
            r#"{"count":1,"regions":[{"id":2,"start_key":"","end_key":"",
            "epoch":{"conf_ver":1,"version":1},"peers":[{"id":3,"store_id":1,"role_name":"Voter"}],
            "leader":null,"approximate_size":0,"approximate_keys":0,"down_peers":[],
            "pending_peers":[],"something_new":true}]}"#,
        )
        .unwrap();
        assert!(regions.regions[0].leader.is_none());
        assert_eq!(regions.regions[0].peers[0].role_name, "Voter");
    }
}
