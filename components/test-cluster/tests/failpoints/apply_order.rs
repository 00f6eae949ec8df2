//! A snapshot must not be applied while entries handed to the apply pool earlier are still in
//! flight there: they would be written on top of the snapshot's newer data.

use std::sync::atomic::Ordering;

use raftstore::testexport::failpoints::{APPLY_BEFORE_WRITE, SNAPSHOT_APPLY_DEFERRED};
use test_cluster::failpoint::{watch, Gate};
use test_cluster::*;

#[test]
fn a_snapshot_waits_for_entries_the_apply_pool_still_holds() {
    let _scenario = fail::FailScenario::setup();
    let cfg = raftstore::Config {
        raft_log_gc_count_limit: 40,
        ..raftstore::Config::for_tests()
    };
    let mut cluster = Cluster::with_config(3, cfg);
    cluster.bootstrap(&[]);
    cluster.start();
    let leader = cluster.wait_leader(1);
    let follower = cluster.store_other_than(leader.store_id);
    cluster.must_put(b"k", b"v1");
    cluster.must_engine_eq(follower, b"k", Some(b"v1"));

    // The follower commits k=v2, and its apply pool holds the write before it reaches RocksDB.
    let gate = Gate::hold(APPLY_BEFORE_WRITE, follower);
    cluster.must_put(b"k", b"v2");
    assert!(
        gate.wait_held(DEFAULT_TIMEOUT),
        "follower's apply pool never held k=v2"
    );

    // Cut off, it misses k=v3 and enough writes that the leader compacts its log past it.
    cluster.isolate(follower);
    cluster.must_put(b"k", b"v3");
    for i in 0..200u32 {
        cluster.must_put(format!("f{i:03}").as_bytes(), &i.to_le_bytes());
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

    // Healed, it is sent a snapshot. It either ingests it at once (with k=v2 still in the
    // apply pool) or holds it back until the apply pool is done.
    let deferred = watch(SNAPSHOT_APPLY_DEFERRED, follower);
    cluster.clear_filters();
    assert!(
        wait_until(DEFAULT_TIMEOUT, || deferred.load(Ordering::SeqCst)
            || cluster.engine_get(follower, b"f199").is_some()),
        "the follower never received the snapshot"
    );
    gate.open();

    // Every key holds its newest value on every store.
    for s in cluster.store_ids() {
        cluster.must_engine_eq(s, b"k", Some(b"v3"));
        cluster.must_engine_eq(s, b"f199", Some(&199u32.to_le_bytes()));
    }
    cluster.must_put(b"after", b"x");
    cluster.must_engine_eq(follower, b"after", Some(b"x"));
    let report = cluster.must_replicas_consistent();
    assert_eq!(report.regions, 1);
}
