//! 10,000 idle regions on 3 in-process stores: CPU used per second once they hibernate, and
//! resident memory per region.
//!
//! Usage: idle-regions [regions=10000] [measure_seconds=10]

use std::time::{Duration, Instant};

use raftstore::Config;
use shoal_benches::{cpu_time, rss_bytes};
use test_cluster::Cluster;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let regions: usize = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let secs: u64 = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(10);
    let rss0 = rss_bytes();
    let cfg = Config {
        // Production timings.
        ..Config::default()
    };
    let mut cluster = Cluster::with_config(3, cfg);
    let split_keys: Vec<Vec<u8>> = (1..regions)
        .map(|i| format!("k{i:06}").into_bytes())
        .collect();
    let t = Instant::now();
    cluster.bootstrap(&split_keys);
    println!(
        "bootstrapped {regions} regions in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    cluster.start();
    println!("started in {:.1}s", t.elapsed().as_secs_f64());
    // Wait until every region has a leader, then until the groups go quiet.
    let t = Instant::now();
    for r in 1..=regions as u64 {
        cluster.wait_leader(r);
    }
    println!("all leaders elected in {:.1}s", t.elapsed().as_secs_f64());
    std::thread::sleep(Duration::from_secs(15));
    let cpu0 = cpu_time();
    let wall0 = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let cpu = (cpu_time() - cpu0).as_secs_f64();
    let wall = wall0.elapsed().as_secs_f64();
    let rss = rss_bytes().saturating_sub(rss0);
    println!(
        "idle regions={regions} cpu={:.2}% of one core  rss/region={:.1} KiB (rss {:.0} MiB)",
        100.0 * cpu / wall,
        rss as f64 / regions as f64 / 1024.0,
        rss as f64 / (1024.0 * 1024.0)
    );
}
