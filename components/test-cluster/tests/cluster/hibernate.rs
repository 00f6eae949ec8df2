//! Idle regions stop ticking once every peer agrees, and wake on demand.

use test_cluster::*;

#[test]
fn idle_regions_hibernate_and_wake_on_demand() {
    // A generous liveness timeout, so a slow machine never wakes regions spuriously.
    let cfg = raftstore::Config {
        store_unreachable_timeout: std::time::Duration::from_secs(1),
        ..raftstore::Config::for_tests()
    };
    let mut cluster = Cluster::with_config(3, cfg);
    let split: Vec<Vec<u8>> = (1..10u8).map(|i| vec![b'k', b'0' + i]).collect();
    let regions = cluster.bootstrap(&split);
    cluster.start();
    for r in &regions {
        cluster.wait_leader(r.id);
        cluster.must_put(&[b'k', b'0' + (r.id - 1) as u8, b'x'], b"v");
    }
    for r in &regions {
        assert!(
            cluster.wait_region_hibernated(r.id),
            "region {} hibernates",
            r.id
        );
    }
    // A write wakes only its own region, which then goes back to sleep.
    let leader3 = cluster
        .leader_of(3)
        .expect("hibernated regions keep their leader");
    cluster.must_put(b"k2-again", b"w");
    assert_eq!(cluster.leader_of(3), Some(leader3));
    for r in regions.iter().filter(|r| r.id != 3) {
        for s in cluster.store_ids() {
            assert!(
                cluster.is_hibernating(s, r.id),
                "region {} stayed asleep",
                r.id
            );
        }
    }
    assert!(cluster.wait_region_hibernated(3));
    // Reads work on hibernated regions too.
    assert_eq!(cluster.get(b"k4x", true).unwrap(), Some(b"v".to_vec()));

    // The leader's store dies while its regions sleep: followers notice and elect a new one.
    let leader5 = cluster.leader_of(5).unwrap();
    assert!(cluster.wait_region_hibernated(5));
    cluster.stop_store(leader5.store_id);
    let new5 = cluster.wait_leader(5);
    assert_ne!(new5.store_id, leader5.store_id);
    cluster.must_put(b"k4-after", b"z");
    assert_eq!(cluster.must_get(b"k4-after"), Some(b"z".to_vec()));
    cluster.start_store(leader5.store_id);
    cluster.must_engine_eq(leader5.store_id, b"k4-after", Some(b"z"));
}
