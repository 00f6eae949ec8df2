//! The cluster's rules for bootstrap, stores and region reports, and what survives a reload.

use std::sync::Arc;

use proto::metapb::{self, Peer, RegionEpoch, StoreState};
use proto::pdpb::StoreStats;

use super::*;
use crate::storage::Storage;

fn store(id: u64) -> metapb::Store {
    metapb::Store {
        id,
        address: format!("127.0.0.1:{}", 20000 + id),
        ..Default::default()
    }
}

fn region(id: u64, start: &[u8], end: &[u8], version: u64, peers: &[(u64, u64)]) -> metapb::Region {
    metapb::Region {
        id,
        start_key: start.to_vec(),
        end_key: end.to_vec(),
        region_epoch: Some(RegionEpoch {
            conf_ver: 1,
            version,
        }),
        peers: peers
            .iter()
            .map(|(id, store_id)| Peer {
                id: *id,
                store_id: *store_id,
                ..Default::default()
            })
            .collect(),
    }
}

fn open(dir: &std::path::Path) -> (Arc<Storage>, Cluster) {
    let storage = Arc::new(Storage::open(dir).unwrap());
    let cluster = Cluster::load(storage.clone(), 1_000).unwrap();
    (storage, cluster)
}

fn bootstrapped(dir: &std::path::Path) -> (Arc<Storage>, Cluster) {
    let (storage, cluster) = open(dir);
    cluster
        .bootstrap(
            Some(store(1)),
            Some(region(2, b"", b"", 1, &[(3, 1)])),
            2,
            1_000,
        )
        .unwrap();
    (storage, cluster)
}

#[test]
fn bootstrap_checks_its_input_and_happens_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cluster) = open(dir.path());
    assert!(matches!(cluster.get_store(1), Err(Error::NotBootstrapped)));
    let bad = [
        (None, Some(region(2, b"", b"", 1, &[(3, 1)]))),
        (Some(store(1)), None),
        (Some(store(1)), Some(region(2, b"a", b"", 1, &[(3, 1)]))),
        (Some(store(1)), Some(region(2, b"", b"", 1, &[(3, 9)]))),
        (Some(store(1)), Some(region(2, b"", b"", 1, &[]))),
    ];
    for (s, r) in bad {
        assert!(matches!(
            cluster.bootstrap(s, r, 2, 0),
            Err(Error::InvalidArgument(_))
        ));
    }
    cluster
        .bootstrap(
            Some(store(1)),
            Some(region(2, b"", b"", 1, &[(3, 1)])),
            2,
            0,
        )
        .unwrap();
    assert!(matches!(
        cluster.bootstrap(
            Some(store(1)),
            Some(region(2, b"", b"", 1, &[(3, 1)])),
            2,
            0
        ),
        Err(Error::AlreadyBootstrapped)
    ));
    let r = cluster.region_by_key(b"anything").unwrap();
    assert_eq!(r.leader.unwrap().id, 3);
}

#[test]
fn stores_register_decommission_and_stay_tombstone() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cluster) = bootstrapped(dir.path());
    cluster.put_store(Some(store(4)), 0, 2_000).unwrap();
    let mut clash = store(5);
    clash.address = store(4).address;
    assert!(matches!(
        cluster.put_store(Some(clash), 0, 2_000),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        cluster.store_heartbeat(
            Some(StoreStats {
                store_id: 77,
                ..Default::default()
            }),
            0
        ),
        Err(Error::StoreNotFound(77))
    ));
    assert_eq!(
        cluster.set_store_offline(4, 1).unwrap().state,
        StoreState::Offline as i32
    );
    // A restarting store re-registers; it stays offline.
    cluster.put_store(Some(store(4)), 0, 3_000).unwrap();
    assert_eq!(
        cluster.get_store(4).unwrap().state,
        StoreState::Offline as i32
    );
    assert_eq!(
        cluster.bury_empty_offline_stores(&[4]).unwrap(),
        Vec::<u64>::new()
    );
    assert_eq!(cluster.bury_empty_offline_stores(&[]).unwrap(), vec![4]);
    assert!(matches!(
        cluster.put_store(Some(store(4)), 0, 0),
        Err(Error::StoreTombstone(4))
    ));
    assert_eq!(cluster.all_stores(true).unwrap().len(), 1);
    assert_eq!(cluster.all_stores(false).unwrap().len(), 2);
    assert!(matches!(
        cluster.set_store_offline(4, 1),
        Err(Error::StoreTombstone(4))
    ));
    assert!(matches!(
        cluster.set_store_up(4),
        Err(Error::StoreTombstone(4))
    ));
    // Store 1 holds the bootstrap region: offline, but not empty.
    cluster.put_store(Some(store(6)), 0, 3_000).unwrap();
    cluster.set_store_offline(1, 1).unwrap();
    assert!(cluster.bury_empty_offline_stores(&[]).unwrap().is_empty());
}

#[test]
fn a_decommission_needs_max_replicas_up_stores_left_and_can_be_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cluster) = bootstrapped(dir.path());
    cluster.put_store(Some(store(4)), 0, 2_000).unwrap();
    cluster.put_store(Some(store(5)), 0, 2_000).unwrap();
    // Three Up stores, three replicas: no store could take store 4's peers.
    assert!(matches!(
        cluster.set_store_offline(4, 3),
        Err(Error::StoresNotEnough {
            store_id: 4,
            up_after: 2,
            max_replicas: 3
        })
    ));
    assert_eq!(cluster.get_store(4).unwrap().state, StoreState::Up as i32);
    // With two replicas it may go; a second one may not, as store 4 no longer counts.
    cluster.set_store_offline(4, 2).unwrap();
    assert!(matches!(
        cluster.set_store_offline(5, 2),
        Err(Error::StoresNotEnough { up_after: 1, .. })
    ));
    // Repeating the first is harmless.
    cluster.set_store_offline(4, 2).unwrap();
    // Cancelled: Up again, and it counts again; the state survives a reload.
    assert_eq!(
        cluster.set_store_up(4).unwrap().state,
        StoreState::Up as i32
    );
    assert_eq!(
        cluster.set_store_up(4).unwrap().state,
        StoreState::Up as i32
    );
    cluster.set_store_offline(5, 2).unwrap();
    drop(cluster);
    let (_, reloaded) = open(dir.path());
    assert_eq!(reloaded.get_store(4).unwrap().state, StoreState::Up as i32);
    assert_eq!(
        reloaded.get_store(5).unwrap().state,
        StoreState::Offline as i32
    );
    assert!(matches!(
        reloaded.set_store_offline(77, 1),
        Err(Error::StoreNotFound(77))
    ));
}

#[test]
fn region_reports_replace_older_ones_and_survive_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (storage, cluster) = bootstrapped(dir.path());
        // Split of region 2 into [, m) (region 2) and [m, ) (region 5).
        cluster
            .report_split(vec![
                region(2, b"", b"m", 2, &[(3, 1)]),
                region(5, b"m", b"", 2, &[(6, 1)]),
            ])
            .unwrap();
        let right = cluster.region_by_key(b"x").unwrap();
        assert_eq!(right.id(), 5);
        assert_eq!(
            right.leader.unwrap().id,
            6,
            "the new region is led on the parent's store"
        );
        // The old whole-range report comes late: ignored.
        let stale = RegionInfo::new(region(2, b"", b"", 1, &[(3, 1)]), None);
        assert!(matches!(
            cluster.update_region(stale).unwrap(),
            RegionUpdate::Stale(_)
        ));
        // A report from an older leader term with the same epoch is ignored too.
        let mut fresh = RegionInfo::new(region(5, b"m", b"", 2, &[(6, 1)]), None);
        fresh.term = 9;
        fresh.leader = Some(fresh.meta.peers[0]);
        assert_eq!(
            cluster.update_region(fresh.clone()).unwrap(),
            RegionUpdate::Accepted {
                meta_changed: false
            }
        );
        fresh.term = 8;
        assert!(matches!(
            cluster.update_region(fresh).unwrap(),
            RegionUpdate::Stale(_)
        ));
        // A merge back replaces region 5 everywhere, including on disk.
        cluster
            .update_region(RegionInfo::new(region(2, b"", b"", 3, &[(3, 1)]), None))
            .unwrap();
        assert!(cluster.region_by_id(5).is_err());
        storage.close().unwrap();
    }
    let (_, cluster) = open(dir.path());
    assert!(cluster.is_bootstrapped());
    assert_eq!(cluster.read().regions.len(), 1);
    let r = cluster.region_by_key(b"zzz").unwrap();
    assert_eq!(r.id(), 2);
    assert_eq!(r.epoch().version, 3);
    assert_eq!(r.leader.unwrap().id, 3);
    assert_eq!(cluster.get_store(1).unwrap().address, store(1).address);
}

/// Bootstraps with store 1 and one region, the cluster serving `api_version`.
fn bootstrap_serving(cluster: &Cluster, api_version: u32) -> Result<()> {
    let first_region = region(2, b"", b"", 1, &[(3, 1)]);
    cluster.bootstrap(Some(store(1)), Some(first_region), api_version, 0)
}

#[test]
fn the_api_version_is_fixed_at_bootstrap_and_survives_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_, cluster) = open(dir.path());
        assert!(matches!(
            bootstrap_serving(&cluster, 3),
            Err(Error::InvalidArgument(_))
        ));
        bootstrap_serving(&cluster, 1).unwrap();
        assert_eq!(cluster.api_version(), 1);
    }
    let (_, cluster) = open(dir.path());
    assert_eq!(cluster.api_version(), 1);
    let refused = cluster.put_store(Some(store(4)), 2, 0).unwrap_err();
    assert!(
        matches!(
            refused,
            Error::ApiVersionMismatch {
                store_id: 4,
                store: 2,
                cluster: 1
            }
        ),
        "{refused:?}"
    );
    assert_eq!(
        refused.error_type(),
        proto::pdpb::ErrorType::IncompatibleVersion
    );
    assert!(
        cluster.get_store(4).is_err(),
        "a refused store is not registered"
    );
    cluster.put_store(Some(store(4)), 1, 0).unwrap();
    // A store that does not say (older binaries) is not checked.
    cluster.put_store(Some(store(5)), 0, 0).unwrap();
}

#[test]
fn a_cluster_bootstrapped_without_a_version_serves_api_v2() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cluster) = open(dir.path());
    bootstrap_serving(&cluster, 0).unwrap();
    assert_eq!(cluster.api_version(), DEFAULT_API_VERSION);
    assert!(cluster.put_store(Some(store(4)), 1, 0).is_err());
}

/// The version of the region PD answers for `key`.
fn routed_to(cluster: &Cluster, key: &[u8]) -> (u64, u64) {
    let info = cluster
        .region_by_key(key)
        .unwrap_or_else(|e| panic!("no region for {key:?}: {e}"));
    (info.id(), info.epoch().version)
}

#[test]
fn every_key_stays_routable_while_a_splits_reports_arrive_in_either_order() {
    // Region 2 covers everything and splits at "m": region 10 takes ["m", "").
    let parent_after = || region(2, b"", b"m", 2, &[(3, 1)]);
    let child = || region(10, b"m", b"", 2, &[(11, 1)]);

    // The new region's heartbeat first: the parent's old extent still answers "b".
    let dir = tempfile::tempdir().unwrap();
    let (_, cluster) = bootstrapped(dir.path());
    cluster
        .update_region(RegionInfo::new(child(), None))
        .unwrap();
    assert_eq!(
        routed_to(&cluster, b"b"),
        (2, 1),
        "the parent before the split"
    );
    assert_eq!(routed_to(&cluster, b"x"), (10, 2));
    cluster
        .update_region(RegionInfo::new(parent_after(), None))
        .unwrap();
    assert_eq!(routed_to(&cluster, b"b"), (2, 2));
    assert_eq!(routed_to(&cluster, b"x"), (10, 2));

    // The parent's shrunk range first: its old extent still answers "x".
    let dir = tempfile::tempdir().unwrap();
    let (_, cluster) = bootstrapped(dir.path());
    cluster
        .update_region(RegionInfo::new(parent_after(), None))
        .unwrap();
    assert_eq!(routed_to(&cluster, b"b"), (2, 2));
    assert_eq!(
        routed_to(&cluster, b"x"),
        (2, 1),
        "the parent before the split"
    );
    cluster
        .update_region(RegionInfo::new(child(), None))
        .unwrap();
    assert_eq!(routed_to(&cluster, b"x"), (10, 2));
    assert_eq!(routed_to(&cluster, b"b"), (2, 2));

    // Region 10 splits at "t" and only the new region 12 has reported: "p" gets 10 as it
    // was, the most recently superseded region holding it (the old parent holds it too).
    cluster
        .update_region(RegionInfo::new(region(12, b"t", b"", 3, &[(13, 1)]), None))
        .unwrap();
    assert_eq!(routed_to(&cluster, b"p"), (10, 2));
    assert_eq!(routed_to(&cluster, b"u"), (12, 3));
    cluster
        .update_region(RegionInfo::new(region(10, b"m", b"t", 3, &[(11, 1)]), None))
        .unwrap();
    assert_eq!(routed_to(&cluster, b"p"), (10, 3));
    // A merge of 10 into 12 leaves no hole: every superseded region is forgotten.
    cluster
        .update_region(RegionInfo::new(region(12, b"m", b"", 5, &[(13, 1)]), None))
        .unwrap();
    assert_eq!(routed_to(&cluster, b"p"), (12, 5));
    assert_eq!(cluster.state.read().superseded.len(), 0);
}

#[test]
fn a_superseded_region_answers_only_for_a_while() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cluster) = bootstrapped(dir.path());
    // Region 2 shrinks to ["", "m") with no report of a split (as a store restored from an
    // old backup might claim): past the memory window, "x" has no region.
    cluster
        .update_region(RegionInfo::new(region(2, b"", b"m", 2, &[(3, 1)]), None))
        .unwrap();
    let superseded_at = crate::tso::unix_millis();
    let state = cluster.state.read();
    assert!(state.superseded.find(b"x", superseded_at).is_some());
    assert!(state
        .superseded
        .find(b"x", superseded_at + superseded::SUPERSEDED_MEMORY_MS + 1)
        .is_none());
}

/// A heartbeat of `meta` led by its first peer, with `keys_read` over `[start, end]` (unix s).
fn flow_report(meta: metapb::Region, start: u64, end: u64, keys_read: u64) -> RegionInfo {
    let leader = meta.peers.first().copied();
    region_from_heartbeat(&proto::pdpb::RegionHeartbeatRequest {
        region: Some(meta),
        leader,
        keys_read,
        interval: Some(proto::pdpb::TimeInterval {
            start_timestamp: start,
            end_timestamp: end,
        }),
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn a_regions_flow_rate_is_measured_across_reports_and_starts_over_when_its_range_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cluster) = bootstrapped(dir.path());
    let whole = || region(2, b"", b"", 1, &[(3, 1)]);
    let rate = |id| cluster.region_by_id(id).unwrap().flow.leader_key_rate();
    let flowing = |c: &Cluster| {
        let mut ids: Vec<u64> = c.read().regions.with_flow().map(|r| r.id()).collect();
        ids.sort();
        ids
    };
    // Two 3-second reports: 6 s of 600 keys read each.
    cluster
        .update_region(flow_report(whole(), 100, 103, 600))
        .unwrap();
    assert_eq!(rate(2), 0, "3 s is too short to measure");
    assert!(flowing(&cluster).is_empty());
    cluster
        .update_region(flow_report(whole(), 103, 106, 600))
        .unwrap();
    assert_eq!(rate(2), 200);
    assert_eq!(flowing(&cluster), vec![2]);
    // A stale report (an older leader term) adds nothing.
    let mut late = flow_report(whole(), 106, 160, 1_000_000);
    late.term = 1;
    let mut newer = flow_report(whole(), 106, 106, 0);
    newer.term = 2;
    cluster.update_region(newer).unwrap();
    assert!(matches!(
        cluster.update_region(late).unwrap(),
        RegionUpdate::Stale(_)
    ));
    assert_eq!(rate(2), 200);
    // A split: the shrunk region's old rate no longer says anything about it.
    cluster
        .report_split(vec![
            region(2, b"", b"m", 2, &[(3, 1)]),
            region(5, b"m", b"", 2, &[(6, 1)]),
        ])
        .unwrap();
    assert_eq!(rate(2), 0);
    assert!(cluster.region_by_id(2).unwrap().flow.rate.is_none());
    assert!(flowing(&cluster).is_empty());
}
