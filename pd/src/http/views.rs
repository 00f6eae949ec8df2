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
        // Per second over the region's last measured window (absent until one filled).
        "flow_rate": r.flow.rate.map(|f| json!({
            "written_bytes": f.written_bytes,
            "written_keys": f.written_keys,
            "read_bytes": f.read_bytes,
            "read_keys": f.read_keys,
        })),
    })
}

pub fn regions<'a>(list: impl Iterator<Item = &'a RegionInfo>) -> Value {
    let regions: Vec<Value> = list.map(region).collect();
    json!({"count": regions.len(), "regions": regions})
}

/// Totals over `list` (the shape of `/regions/summary`).
pub fn regions_summary<'a>(list: impl Iterator<Item = &'a RegionInfo>) -> Value {
    let (mut count, mut peers, mut learners) = (0u64, 0u64, 0u64);
    let (mut leaderless, mut size, mut keys) = (0u64, 0u64, 0u64);
    for r in list {
        count += 1;
        peers += r.meta.peers.len() as u64;
        learners += r.learners().count() as u64;
        leaderless += u64::from(r.leader.is_none());
        size = size.saturating_add(r.approximate_size);
        keys = keys.saturating_add(r.approximate_keys);
    }
    json!({
        "count": count,
        "peers": peers,
        "learners": learners,
        "leaderless": leaderless,
        "approximate_size": size,
        "approximate_keys": keys,
    })
}

/// Which flow a hot-region view ranks by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Write,
    Read,
}

/// How many of a store's regions the hot-region view lists.
const HOT_REGIONS_PER_STORE: usize = 10;

/// The hot regions of each store as their leader, the shape of PD's
/// `/hotspot/regions/{write,read}` (`as_leader`: store id → totals and the regions with the
/// most flow, at most `HOT_REGIONS_PER_STORE`). Flow is the bytes and keys of the region's
/// last heartbeat interval; regions with none are left out.
pub fn hot_regions<'a>(list: impl Iterator<Item = &'a RegionInfo>, flow: Flow) -> Value {
    let mut by_store: std::collections::BTreeMap<u64, Vec<(u64, u64, u64)>> = Default::default();
    for r in list {
        let Some(leader) = r.leader.as_ref() else {
            continue;
        };
        let (bytes, keys) = match flow {
            Flow::Write => (r.bytes_written, r.keys_written),
            Flow::Read => (r.bytes_read, r.keys_read),
        };
        if bytes == 0 && keys == 0 {
            continue;
        }
        by_store
            .entry(leader.store_id)
            .or_default()
            .push((r.id(), bytes, keys));
    }
    let as_leader: serde_json::Map<String, Value> = by_store
        .into_iter()
        .map(|(store_id, mut regions)| {
            regions.sort_by(|a, b| b.1.cmp(&a.1).then(b.2.cmp(&a.2)));
            let total_bytes: u64 = regions.iter().map(|r| r.1).sum();
            let total_keys: u64 = regions.iter().map(|r| r.2).sum();
            let count = regions.len();
            let statistics: Vec<Value> = regions
                .into_iter()
                .take(HOT_REGIONS_PER_STORE)
                .map(|(region_id, bytes, keys)| {
                    json!({"region_id": region_id, "store_id": store_id,
                        "flow_bytes": bytes, "flow_keys": keys})
                })
                .collect();
            let view = json!({"total_flow_bytes": total_bytes, "total_flow_keys": total_keys,
                "regions_count": count, "statistics": statistics});
            (store_id.to_string(), view)
        })
        .collect();
    json!({ "as_leader": as_leader })
}

/// One store for `GET /stores` and `GET /store/{id}`. `capacity`, `available`, `used_size`
/// (bytes) and `start_ts` are `null` until the store has sent a heartbeat to this PD process:
/// PD keeps no statistics across its restarts, and a tombstone store never reports again, so
/// a zero there would read as an empty disk.
pub fn store(s: &StoreInfo, status: StoreStatus, load: StoreLoad) -> Value {
    let stats = s.stats.as_ref();
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
            "capacity": stats.map(|st| st.capacity),
            "available": stats.map(|st| st.available),
            "used_size": stats.map(|st| st.used_size),
            "region_count": load.regions,
            "leader_count": load.leaders,
            "is_busy": stats.is_some_and(|st| st.is_busy),
            "start_ts": stats.map(|st| st.start_time),
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
        let led = led_by(9, 2, 0, 0);
        let summary = regions_summary([&r, &led].into_iter());
        assert_eq!(
            (
                &summary["count"],
                &summary["peers"],
                &summary["learners"],
                &summary["leaderless"]
            ),
            (&json!(2), &json!(2), &json!(1), &json!(1))
        );
    }

    fn led_by(id: u64, store_id: u64, written: u64, read: u64) -> RegionInfo {
        let leader = Peer {
            id: id * 10,
            store_id,
            ..Default::default()
        };
        let mut r = RegionInfo::new(
            metapb::Region {
                id,
                peers: vec![leader],
                ..Default::default()
            },
            Some(leader),
        );
        r.bytes_written = written;
        r.keys_written = written / 100;
        r.bytes_read = read;
        r.keys_read = read / 100;
        r
    }

    #[test]
    fn hot_regions_rank_each_leaders_regions_by_flow_and_skip_idle_ones() {
        let list = [
            led_by(1, 7, 500, 0),
            led_by(2, 7, 9_000, 100),
            led_by(3, 8, 200, 0),
            led_by(4, 8, 0, 0),
        ];
        let v = hot_regions(list.iter(), Flow::Write);
        let s7 = &v["as_leader"]["7"];
        assert_eq!(s7["regions_count"], 2);
        assert_eq!(s7["total_flow_bytes"], 9_500);
        assert_eq!(s7["statistics"][0]["region_id"], 2);
        assert_eq!(s7["statistics"][1]["region_id"], 1);
        assert_eq!(v["as_leader"]["8"]["regions_count"], 1);
        let read = hot_regions(list.iter(), Flow::Read);
        assert_eq!(read["as_leader"].as_object().unwrap().len(), 1);
        assert_eq!(read["as_leader"]["7"]["statistics"][0]["flow_bytes"], 100);
    }

    #[test]
    fn a_store_without_statistics_has_null_sizes_not_zero() {
        let meta = metapb::Store {
            id: 4,
            state: metapb::StoreState::Tombstone as i32,
            ..Default::default()
        };
        let mut info = StoreInfo::new(meta, 1_000);
        let load = StoreLoad {
            regions: 0,
            leaders: 0,
        };
        let unknown = store(&info, StoreStatus::Tombstone, load);
        for field in ["capacity", "available", "used_size", "start_ts"] {
            assert!(unknown["status"][field].is_null(), "{field}: {unknown}");
        }
        assert_eq!(unknown["status"]["is_busy"], false);

        info.stats = Some(proto::pdpb::StoreStats {
            store_id: 4,
            capacity: 100,
            available: 60,
            used_size: 30,
            ..Default::default()
        });
        let known = store(&info, StoreStatus::Tombstone, load);
        assert_eq!(known["status"]["capacity"], 100);
        assert_eq!(known["status"]["available"], 60);
        assert_eq!(known["status"]["used_size"], 30);
    }
}
