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

#[test]
fn a_restarted_leader_wins_its_sleeping_region_back_at_once() {
    // Nobody notices a store is gone within the test, and every store started after the
    // first election has an election timeout of 100 s: the region only gets a leader in time
    // if the restarted leader campaigns at once and its sleeping followers, which still take
    // it for their leader, weigh its vote instead of waiting out their lease.
    let mut cluster = Cluster::with_config(
        3,
        raftstore::Config {
            store_unreachable_timeout: std::time::Duration::from_secs(600),
            ..raftstore::Config::for_tests()
        },
    );
    cluster.bootstrap(&[]);
    cluster.start();
    let leader = cluster.wait_leader(1);
    cluster.must_put(b"k1", b"v1");
    cluster.cfg.raft_election_timeout_ticks = 10_000;
    for s in cluster.store_ids() {
        if s != leader.store_id {
            cluster.stop_store(s);
            cluster.start_store(s);
        }
    }
    // The followers learn their leader again from its appends, then the region sleeps.
    cluster.must_put(b"k2", b"v2");
    assert_eq!(cluster.leader_of(1), Some(leader));
    assert!(cluster.wait_region_hibernated(1));

    cluster.stop_store(leader.store_id);
    cluster.start_store(leader.store_id);
    let back = cluster.wait_leader(1);
    assert_eq!(
        back, leader,
        "the restarted leader won the election it started"
    );
    cluster.must_put(b"k3", b"v3");
    assert_eq!(cluster.must_get(b"k1"), Some(b"v1".to_vec()));
    assert_eq!(cluster.must_get(b"k3"), Some(b"v3".to_vec()));
}
