//! Snapshots are built and ingested on the region worker: while one is, the raft threads of
//! the store go on serving its regions.

use raftstore::testexport::failpoints::{
    SNAPSHOT_BEFORE_INGEST, SNAPSHOT_GENERATE, SNAPSHOT_VERIFY,
};
use test_cluster::failpoint::Gate;
use test_cluster::*;

/// A three-store cluster whose raft logs are compacted after 40 entries.
fn cluster_with_short_logs() -> Cluster {
    let cfg = raftstore::Config {
        raft_log_gc_count_limit: 40,
        ..raftstore::Config::for_tests()
    };
    let mut cluster = Cluster::with_config(3, cfg);
    cluster.bootstrap(&[]);
    cluster.start();
    cluster
}

/// Cuts `follower` off and writes `a000`..`a199` (values: the index, little-endian) until
/// the leader of `region_id` has compacted its log past the follower, which will then need a
/// snapshot. The follower stays isolated.
fn leave_behind(cluster: &Cluster, follower: u64, region_id: u64) {
    cluster.isolate(follower);
    for i in 0..200u32 {
        cluster.must_put(format!("a{i:03}").as_bytes(), &i.to_le_bytes());
    }
    let leader = cluster.wait_leader(region_id).store_id;
    let follower_last = cluster
        .store(follower)
        .raft_engine()
        .last_index(region_id)
        .unwrap_or(0);
    assert!(
        wait_until(DEFAULT_TIMEOUT, || {
            cluster
                .store(leader)
                .raft_engine()
                .first_index(region_id)
                .unwrap_or(0)
                > follower_last + 1
        }),
        "the leader never compacted past the follower's last index {follower_last}"
    );
}

/// Every thread `gate` held is the region worker's.
fn assert_held_on_region_worker(gate: &Gate, what: &str) {
    let threads = gate.held_threads();
    assert!(
        threads.iter().all(|t| t.starts_with("region-")),
        "snapshots must be {what} on the region worker, not on {threads:?}"
    );
}

#[test]
fn the_leader_serves_writes_while_a_snapshot_is_being_built() {
    let _scenario = fail::FailScenario::setup();
    let cluster = cluster_with_short_logs();
    let leader = cluster.wait_leader(1);
    let follower = cluster
        .store_ids()
        .into_iter()
        .find(|s| *s != leader.store_id)
        .unwrap();
    cluster.must_put(b"before", b"v");
    cluster.must_engine_eq(follower, b"before", Some(b"v"));
    leave_behind(&cluster, follower, 1);

    // The leader's snapshot generation is held mid-way once the follower is back.
    let gate = Gate::hold(SNAPSHOT_GENERATE, leader.store_id);
    cluster.clear_filters();
    assert!(
        gate.wait_held(DEFAULT_TIMEOUT),
        "the leader never started building a snapshot"
    );
    assert_held_on_region_worker(&gate, "built");
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

/// Holds `follower`'s snapshot work for the left region at `point` and checks the work is
/// done on the region worker (`what` it does there): meanwhile the follower's raft threads go
/// on replicating and applying the right region, and once released the left region catches
/// up.
fn other_regions_go_on_while_a_snapshot_is_held(point: &'static str, what: &str) {
    let _scenario = fail::FailScenario::setup();
    let cluster = cluster_with_short_logs();
    let leader = cluster.wait_leader(1);
    cluster.must_split(&[b"m"]);
    let follower = cluster
        .store_ids()
        .into_iter()
        .find(|s| *s != leader.store_id)
        .unwrap();
    cluster.must_put(b"a-before", b"v");
    cluster.must_put(b"n-before", b"v");
    cluster.must_engine_eq(follower, b"a-before", Some(b"v"));
    cluster.must_engine_eq(follower, b"n-before", Some(b"v"));
    // The left region (keys before "m") moves on without the follower.
    let left = cluster.region_for_key(b"a000").expect("left region");
    leave_behind(&cluster, follower, left.id);

    let gate = Gate::hold(point, follower);
    cluster.clear_filters();
    assert!(
        gate.wait_held(DEFAULT_TIMEOUT),
        "the follower never reached {point}"
    );
    assert_held_on_region_worker(&gate, what);
    // The other region keeps replicating to and applying on the follower meanwhile.
    for i in 0..20u32 {
        cluster.must_put(format!("n{i:03}").as_bytes(), b"during");
    }
    cluster.must_engine_eq(follower, b"n019", Some(b"during"));

    gate.open();
    cluster.must_engine_eq(follower, b"a199", Some(&199u32.to_le_bytes()));
    cluster.must_replicas_consistent();
}

/// A follower ingests a snapshot on its region worker, not on a raft thread.
#[test]
fn a_follower_keeps_serving_other_regions_while_it_ingests_a_snapshot() {
    other_regions_go_on_while_a_snapshot_is_held(SNAPSHOT_BEFORE_INGEST, "ingested");
}

/// A follower checks a received snapshot's files (reading all of them for their CRC32) on
/// its region worker, and steps the snapshot once the check passes.
#[test]
fn a_follower_checks_a_received_snapshot_off_its_raft_threads() {
    other_regions_go_on_while_a_snapshot_is_held(SNAPSHOT_VERIFY, "checked");
}
