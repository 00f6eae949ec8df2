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

/// A follower that is down keeps its leader from compacting the log (it still needs the
/// entries), so without more the log would grow with every write until the count or size
/// limit, keeping every log file. Past `purge-threshold` the log engine names the region, its
/// leader compacts at once, and the files go; the follower then catches up from a snapshot.
#[test]
fn a_log_held_by_a_down_follower_is_compacted_past_the_purge_threshold() {
    const FILE: u64 = 1 << 20;
    const THRESHOLD: u64 = 4 << 20;
    let mut cluster = Cluster::new(3);
    cluster.raft_log_options = engine::RaftLogOptions {
        target_file_size: FILE,
        purge_threshold: THRESHOLD,
        ..Default::default()
    };
    cluster.bootstrap(&[]);
    cluster.start();
    let leader = cluster.wait_leader(1);
    let down = cluster.store_other_than(leader.store_id);
    cluster.must_put(b"before", b"down");
    cluster.must_engine_eq(down, b"before", Some(b"down"));
    cluster.stop_store(down);

    // 24 MiB through the log, six times the purge threshold (values LZ4 cannot shrink, so
    // the log's batch compression does not shrink them either).
    let value = incompressible(128 * 1024);
    for i in 0..192u32 {
        cluster.must_put(format!("held{i:03}").as_bytes(), &value);
    }
    let up: Vec<u64> = cluster
        .store_ids()
        .into_iter()
        .filter(|&s| s != down)
        .collect();
    let log_bytes = |s: u64| cluster.store(s).raft_engine().used_size() as u64;
    for &s in &up {
        assert!(
            wait_until(DEFAULT_TIMEOUT, || log_bytes(s) <= THRESHOLD),
            "store {s}'s raft log stayed at {} bytes, past the {THRESHOLD}-byte purge threshold",
            log_bytes(s)
        );
        assert!(
            truncated_index(&cluster, s) > 150,
            "store {s} compacted its log (first index {})",
            truncated_index(&cluster, s)
        );
    }

    // The follower lacks entries no log has any more: it catches up from a snapshot.
    cluster.start_store(down);
    cluster.must_engine_eq(down, b"held191", Some(&value));
    cluster.must_engine_eq(down, b"held000", Some(&value));
    cluster.must_engine_eq(down, b"before", Some(b"down"));
    assert_eq!(cluster.must_get(b"held100"), Some(value));
}
