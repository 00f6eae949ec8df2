//! A large region's snapshot while other regions serve writes: does building, sending and
//! ingesting it slow the write path of its neighbours?
//!
//! Four in-process stores on real disks. Stores 1-3 hold one large region (its data written
//! straight into each store's engine before start, identically, as a bulk load would) and
//! `regions` small ones; `writers` async writers put 1 KiB values round-robin over the small
//! regions. After a baseline, a learner of the large region is added on store 4: its leader
//! builds the snapshot on its region worker, store 4 receives, checks and ingests it on its
//! own, and the writers go on. Prints the writers' p50/p99 during the baseline and while the
//! snapshot is in flight, and how long the snapshot took.
//!
//! Usage: snapshot-under-load [snapshot_mib=1024] [regions=64] [writers=64] [baseline_secs=20]

use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::{KvEngine, CF_DEFAULT};
use proto::metapb::{Peer, PeerRole};
use proto::raft_cmdpb::ConfChangeType;
use raftstore::{LoadSplitConfig, SplitPolicyConfig};
use shoal_benches::writers::{AsyncWriters, Sample};
use shoal_benches::{bench_raft_config, percentiles};
use test_cluster::Cluster;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Keys of the large region sort before every small region's ("b" < "r").
fn big_key(i: usize) -> Vec<u8> {
    format!("b{i:09}").into_bytes()
}

/// Writes `count` incompressible 1 KiB values into `kv` directly, in 4 MiB batches.
fn bulk_load(kv: &KvEngine, count: usize) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut value = vec![0u8; 1024];
    let mut wb = kv.write_batch();
    for i in 0..count {
        for b in value.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        wb.put_cf(CF_DEFAULT, &keys::data_key(&big_key(i)), &value)
            .expect("put");
        if wb.count() >= 4096 {
            kv.write(&wb, false).expect("write");
            wb.clear();
        }
    }
    kv.write(&wb, true).expect("write");
    kv.flush().expect("flush");
}

/// The latencies of the writes acknowledged in `[from, to)`.
fn latencies_between(samples: &[Sample], from: Instant, to: Instant) -> Vec<Duration> {
    samples
        .iter()
        .filter(|s| s.acked_at >= from && s.acked_at < to)
        .map(|s| s.latency)
        .collect()
}

fn report(phase: &str, mut lat: Vec<Duration>, secs: f64) {
    let n = lat.len();
    let p = percentiles(&mut lat);
    println!(
        "{phase:<22} {:>8.0} writes/s  p50 {:>7.0} us  p99 {:>7.0} us  max {:>7.0} us  ({n} writes in {secs:.1} s)",
        n as f64 / secs,
        p.p50,
        p.p99,
        p.max
    );
}

fn arg(args: &[String], i: usize, default: usize) -> usize {
    args.get(i).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mib = arg(&args, 1, 1024);
    let small = arg(&args, 2, 64);
    let writers = arg(&args, 3, 64);
    let baseline = Duration::from_secs(arg(&args, 4, 20) as u64);

    // The large region stays whole: no size or load split while it is measured.
    let cfg = raftstore::Config {
        split_policy: SplitPolicyConfig::Size {
            max_size: 1 << 40,
            split_size: 1 << 40,
        },
        load_split: LoadSplitConfig {
            enabled: false,
            ..Default::default()
        },
        ..bench_raft_config()
    };
    let mut cluster = Cluster::with_config(4, cfg);
    let split_keys: Vec<Vec<u8>> = (0..small)
        .map(|i| format!("r{i:04}").into_bytes())
        .collect();
    cluster.bootstrap_on(&split_keys, &[1, 2, 3]);
    let keys = mib * 1024;
    let t = Instant::now();
    for store in 1..=3 {
        let kv = KvEngine::open(&cluster.kv_dir(store)).expect("open engine");
        bulk_load(&kv, keys);
    }
    println!(
        "loaded {mib} MiB into the large region on stores 1-3 in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    cluster.start();
    let regions = cluster.bootstrapped_regions().to_vec();
    for r in &regions {
        cluster.wait_leader(r.id);
    }
    let big = regions[0].clone();
    let small_regions = regions[1..].to_vec();
    let cluster = Arc::new(cluster);

    let load = AsyncWriters::start(&cluster, &small_regions, writers);
    // A few seconds of warm-up (leader caches, memtables) before the baseline starts.
    std::thread::sleep(Duration::from_secs(3));
    let baseline_from = Instant::now();
    std::thread::sleep(baseline);
    let snapshot_from = Instant::now();
    let learner = Peer {
        id: 4001,
        store_id: 4,
        role: PeerRole::Learner as i32,
        is_witness: false,
    };
    cluster.must_change_peers(big.id, vec![(ConfChangeType::AddLearnerNode, learner)]);
    let last_key = big_key(keys - 1);
    let deadline = snapshot_from + Duration::from_secs(1800);
    while cluster.engine_get(4, &last_key).is_none() {
        assert!(
            Instant::now() < deadline,
            "the snapshot did not arrive in 30 min"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let snapshot_to = Instant::now();
    let samples = load.stop();

    let snapshot_secs = (snapshot_to - snapshot_from).as_secs_f64();
    println!(
        "snapshot of the {mib} MiB region: added, built, sent and ingested in {snapshot_secs:.1} s ({:.0} MiB/s)",
        mib as f64 / snapshot_secs
    );
    report(
        "baseline",
        latencies_between(&samples, baseline_from, snapshot_from),
        baseline.as_secs_f64(),
    );
    report(
        "during the snapshot",
        latencies_between(&samples, snapshot_from, snapshot_to),
        snapshot_secs,
    );
}
