//! The JSON shapes of the HTTP API. Keys are hex of the encoded (memcomparable) keys.

use proto::metapb::{Peer, PeerRole};
use serde_json::{json, Value};

use crate::cluster::{role, RegionInfo, StoreInfo, StoreLoad, StoreStatus};
use crate::hex;
use crate::schedule::{OpStatus, Operator};

pub fn role_name(p: &Peer) -> &'static str {
    match role(p) {
        PeerRole::Voter => "Voter",
        PeerRole::Learner => "Learner",
        PeerRole::IncomingVoter => "IncomingVoter",
        PeerRole::DemotingVoter => "DemotingVoter",
    }
}

pub fn peer(p: &Peer) -> Value {
    json!({"id": p.id, "store_id": p.store_id, "role_name": role_name(p)})
}

pub fn region(r: &RegionInfo) -> Value {
    let epoch = r.epoch();
    json!({
        "id": r.id(),
        "start_key": hex::encode(r.start_key()),
        "end_key": hex::encode(r.end_key()),
        "epoch": {"conf_ver": epoch.conf_ver, "version": epoch.version},
        "peers": r.meta.peers.iter().map(peer).collect::<Vec<_>>(),
        "leader": r.leader.as_ref().map(peer),
        "approximate_size": r.approximate_size,
        "approximate_keys": r.approximate_keys,
        "down_peers": r.down_peers.iter().map(|d| json!({
            "peer": d.peer.as_ref().map(peer),
            "down_seconds": d.down_seconds,
        })).collect::<Vec<_>>(),
        "pending_peers": r.pending_peers.iter().map(peer).collect::<Vec<_>>(),
        "written_bytes": r.bytes_written,
        "written_keys": r.keys_written,
        "read_bytes": r.bytes_read,
        "read_keys": r.keys_read,
    })
}

pub fn regions<'a>(list: impl Iterator<Item = &'a RegionInfo>) -> Value {
    let regions: Vec<Value> = list.map(region).collect();
    json!({"count": regions.len(), "regions": regions})
}

pub fn store(s: &StoreInfo, status: StoreStatus, load: StoreLoad) -> Value {
    let stats = s.stats.unwrap_or_default();
    json!({
        "store": {
            "id": s.id(),
            "address": s.meta.address,
            "peer_address": s.meta.peer_address,
            "status_address": s.meta.status_address,
            "state_name": status.name(),
            "version": s.meta.version,
            "labels": s.meta.labels.iter()
                .map(|l| json!({"key": l.key, "value": l.value}))
                .collect::<Vec<_>>(),
        },
        "status": {
            "capacity": stats.capacity,
            "available": stats.available,
            "used_size": stats.used_size,
            "region_count": load.regions,
            "leader_count": load.leaders,
            "is_busy": stats.is_busy,
            "start_ts": stats.start_time,
            "last_heartbeat_ts": s.last_heartbeat_ms / 1000,
        },
    })
}

pub fn operator(op: &Operator) -> Value {
    let reason = match &op.status {
        OpStatus::Cancelled(why) => Some(why.clone()),
        _ => None,
    };
    json!({
        "region_id": op.region_id,
        "kind": op.kind.name(),
        "desc": op.desc,
        "steps": op.steps.iter().map(|s| s.describe()).collect::<Vec<_>>(),
        "current_step": op.current_step().map(|s| s.describe()),
        "current_step_index": op.current,
        "current_step_sends": op.sends,
        "created_at": op.created_unix_ms / 1000,
        "status": op.status.name(),
        "reason": reason,
    })
}

#[cfg(test)]
mod tests {
    use proto::metapb::{self, RegionEpoch};

    use super::*;

    #[test]
    fn region_json_has_hex_keys_roles_and_a_null_leader() {
        let r = RegionInfo::new(
            metapb::Region {
                id: 3,
                start_key: vec![0x72, 0],
                end_key: vec![],
                region_epoch: Some(RegionEpoch {
                    conf_ver: 2,
                    version: 5,
                }),
                peers: vec![Peer {
                    id: 4,
                    store_id: 1,
                    role: PeerRole::Learner as i32,
                    is_witness: false,
                }],
            },
            None,
        );
        let v = region(&r);
        assert_eq!(v["start_key"], "7200");
        assert_eq!(v["end_key"], "");
        assert_eq!(v["epoch"]["version"], 5);
        assert_eq!(v["peers"][0]["role_name"], "Learner");
        assert!(v["leader"].is_null());
        assert_eq!(regions(std::iter::once(&r))["count"], 1);
    }
}
