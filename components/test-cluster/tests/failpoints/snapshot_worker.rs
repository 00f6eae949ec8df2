//! Snapshots are built on the region worker: while one is being built, the raft threads of
//! the leader's store go on serving the region.

use raftstore::testexport::failpoints::SNAPSHOT_GENERATE;
use test_cluster::failpoint::Gate;
use test_cluster::*;

#[test]
fn the_leader_serves_writes_while_a_snapshot_is_being_built() {
    let _scenario = fail::FailScenario::setup();
    let cfg = raftstore::Config {
        raft_log_gc_count_limit: 40,
        ..raftstore::Config::for_tests()
    };
    let mut cluster = Cluster::with_config(3, cfg);
    cluster.bootstrap(&[]);
    cluster.start();
    let leader = cluster.wait_leader(1);
    let follower = cluster
        .store_ids()
        .into_iter()
        .find(|s| *s != leader.store_id)
        .unwrap();
    cluster.must_put(b"before", b"v");
    cluster.must_engine_eq(follower, b"before", Some(b"v"));

    // Cut off long enough that the leader compacts its log past the follower: it will need
    // a snapshot.
    cluster.isolate(follower);
    for i in 0..200u32 {
        cluster.must_put(format!("a{i:03}").as_bytes(), &i.to_le_bytes());
    }
    let follower_last = cluster
        .store(follower)
        .raft_engine()
        .last_index(1)
        .unwrap_or(0);
    assert!(
        wait_until(DEFAULT_TIMEOUT, || {
            cluster
                .store(leader.store_id)
                .raft_engine()
                .first_index(1)
                .unwrap_or(0)
                > follower_last + 1
        }),
        "the leader never compacted past the follower's last index {follower_last}"
    );

    // The leader's snapshot generation is held mid-way once the follower is back.
    let gate = Gate::hold(SNAPSHOT_GENERATE, leader.store_id);
    cluster.clear_filters();
    assert!(
        gate.wait_held(DEFAULT_TIMEOUT),
        "the leader never started building a snapshot"
    );
    let builders = gate.held_threads();
    assert!(
        builders.iter().all(|t| t.starts_with("region-")),
        "snapshots must be built on the region worker, not on {builders:?}"
    );
    // Meanwhile the region takes writes (committed by the leader and the third store).
    for i in 0..50u32 {
        cluster.must_put(format!("b{i:03}").as_bytes(), b"during");
    }
    assert_eq!(cluster.must_get(b"b049").as_deref(), Some(&b"during"[..]));

    // Released, the snapshot goes out and the follower catches up with everything.
    gate.open();
    cluster.must_engine_eq(follower, b"a199", Some(&199u32.to_le_bytes()));
    cluster.must_engine_eq(follower, b"b049", Some(b"during"));
    cluster.must_replicas_consistent();
}
