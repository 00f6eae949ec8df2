//! Raft log GC: replicated, applied entries leave the log on every store, and the data
//! survives a restart after compaction.

use test_cluster::*;

fn truncated_index(cluster: &Cluster, store_id: u64) -> u64 {
    cluster
        .store(store_id)
        .raft_engine()
        .first_index(1)
        .unwrap_or(0)
}

#[test]
fn logs_are_compacted_everywhere_and_restart_still_recovers() {
    let mut cluster = Cluster::run(3);
    cluster.wait_leader(1);
    for i in 0..300u32 {
        cluster.must_put(format!("g{i:04}").as_bytes(), &i.to_be_bytes());
    }
    for s in cluster.store_ids() {
        assert!(
            wait_until(DEFAULT_TIMEOUT, || truncated_index(&cluster, s) > 100),
            "store {s} compacted its log (first index {})",
            truncated_index(&cluster, s)
        );
    }
    for s in cluster.store_ids() {
        cluster.stop_store(s);
    }
    for s in cluster.store_ids() {
        cluster.start_store(s);
    }
    for i in (0..300u32).step_by(7) {
        assert_eq!(
            cluster.must_get(format!("g{i:04}").as_bytes()),
            Some(i.to_be_bytes().to_vec())
        );
    }
    cluster.must_put(b"after-gc", b"ok");
    for s in cluster.store_ids() {
        cluster.must_engine_eq(s, b"after-gc", Some(b"ok"));
    }
}

#[test]
fn size_limit_triggers_compaction_of_few_large_entries() {
    let cfg = raftstore::Config {
        // Entry count alone would never compact here.
        raft_log_gc_threshold: 10_000,
        raft_log_gc_size_limit: 256 * 1024,
        ..raftstore::Config::for_tests()
    };
    let mut cluster = Cluster::with_config(3, cfg);
    cluster.bootstrap(&[]);
    cluster.start();
    cluster.wait_leader(1);
    let value = vec![9u8; 32 * 1024];
    for i in 0..40u32 {
        cluster.must_put(format!("big{i}").as_bytes(), &value);
    }
    for s in cluster.store_ids() {
        assert!(
            wait_until(DEFAULT_TIMEOUT, || truncated_index(&cluster, s) > 10),
            "store {s} compacted by size"
        );
    }
    assert_eq!(cluster.must_get(b"big0"), Some(value));
}
