//! Write path of a 3-store in-process cluster on real disks: proposals/s, p50/p99 latency
//! with concurrent writers of 1 KiB values, for 1 and 64 regions; the log writer's fsyncs/s
//! and entries per fsync.
//!
//! Usage: write-path [writers=64] [seconds=10] [regions=1,64]
//!
//! Writers are async tasks on a 2-thread runtime, like a client process's requests;
//! `SHOAL_WRITERS=threads` makes each an OS thread blocking on its answer instead (whose
//! spinning waits then take about a quarter of the machine's CPU on 2 cores).

use std::sync::Arc;
use std::time::{Duration, Instant};

use raftstore::Config;
use shoal_benches::writers::{thread_writers, AsyncWriters};
use shoal_benches::{bench_raft_config, counter, percentiles};
use test_cluster::Cluster;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn run(regions: usize, writers: usize, secs: u64) {
    let cfg = Config {
        store_pool_size: env_usize("SHOAL_STORE_POOL", 2),
        raft_write_wait_duration: Duration::from_micros(env_usize("SHOAL_WRITE_WAIT_US", 20) as u64),
        apply_pool_size: env_usize("SHOAL_APPLY_POOL", 1),
        ..bench_raft_config()
    };
    let mut cluster = Cluster::with_config(3, cfg);
    let split_keys: Vec<Vec<u8>> = (1..regions)
        .map(|i| format!("k{i:04}").into_bytes())
        .collect();
    cluster.bootstrap(&split_keys);
    cluster.start();
    for r in 1..=regions as u64 {
        cluster.wait_leader(r);
    }
    let cluster = Arc::new(cluster);
    let region_list = cluster.bootstrapped_regions().to_vec();
    let fsync0 = counter("shoal_raftstore_log_writer_fsyncs_total");
    let entries0 = counter("shoal_raftstore_log_writer_entries_total");
    let start = Instant::now();
    let samples = if std::env::var("SHOAL_WRITERS").is_ok_and(|v| v == "threads") {
        thread_writers(&cluster, &region_list, writers, secs)
    } else {
        let load = AsyncWriters::start(&cluster, &region_list, writers);
        std::thread::sleep(Duration::from_secs(secs));
        load.stop()
    };
    let elapsed = start.elapsed().as_secs_f64();
    let fsyncs = counter("shoal_raftstore_log_writer_fsyncs_total") - fsync0;
    let entries = counter("shoal_raftstore_log_writer_entries_total") - entries0;
    let mut lat: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
    let n = lat.len();
    let p = percentiles(&mut lat);
    println!(
        "regions={regions:<4} writers={writers} proposals/s={:.0} p50={:.0}us p99={:.0}us \
         fsyncs/s={:.0} entries/fsync={:.1}",
        n as f64 / elapsed,
        p.p50,
        p.p99,
        fsyncs / elapsed,
        if fsyncs > 0.0 { entries / fsyncs } else { 0.0 }
    );
}

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let writers = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(64);
    let secs = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(10);
    let regions: Vec<usize> = args
        .get(3)
        .map(|v| v.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 64]);
    for r in regions {
        run(r, writers, secs);
    }
}
