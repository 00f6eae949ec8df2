//! Leader transfers under a YCSB-A-like load: an in-process 3-store cluster, writer threads
//! doing 50/50 reads and updates on zipfian keys, and a series of single transfer requests to
//! alternating followers. A transfer succeeds when the target leads within an election timeout
//! of the request. Runs once per `--lags` value of `leader_transfer_max_log_lag` (0 accepts
//! only a target that already has every entry).
//!
//! Usage: transfer-under-load [--lags 0,128] [--transfers 40] [--writers 8] [--records 1000]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shoal_benches::ycsb::generator::{Distribution, KeyChooser};
use shoal_benches::{bench_raft_config, counter, percentiles};
use test_cluster::{Cluster, RequestError};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser, Debug)]
#[command(about = "Success rate of leader transfers under a YCSB-A-like load")]
struct Args {
    /// Values of leader_transfer_max_log_lag (entries) to compare, one cluster each.
    #[arg(long, value_delimiter = ',', default_value = "0,128")]
    lags: Vec<u64>,
    /// Transfer requests per run.
    #[arg(long, default_value_t = 40)]
    transfers: usize,
    /// Client threads, each doing 50 % reads and 50 % updates.
    #[arg(long, default_value_t = 8)]
    writers: usize,
    /// Records loaded before the run; requests pick among them by a scrambled zipfian.
    #[arg(long, default_value_t = 1000)]
    records: u64,
    /// Value size of updates, in bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Pause after each transfer attempt before the next, in ms, so the (new) leader has
    /// replicated to its followers again.
    #[arg(long, default_value_t = 300)]
    settle_ms: u64,
}

fn key(n: u64) -> Vec<u8> {
    format!("user{n:010}").into_bytes()
}

#[derive(Default)]
struct Load {
    ops: AtomicU64,
    failed: AtomicU64,
    latencies: Mutex<Vec<Duration>>,
}

/// Client threads running until `stop`.
fn start_load(
    cluster: &Arc<Cluster>,
    args: &Args,
    stop: &Arc<AtomicBool>,
    load: &Arc<Load>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..args.writers)
        .map(|w| {
            let (cluster, stop, load) = (cluster.clone(), stop.clone(), load.clone());
            let (records, value_size) = (args.records, args.value_size);
            std::thread::spawn(move || {
                let mut rng = StdRng::seed_from_u64(w as u64 + 1);
                let mut chooser = KeyChooser::new(Distribution::Zipfian, records);
                let value = vec![b'x'; value_size];
                let mut samples = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let k = key(chooser.next(&mut rng, records));
                    let t = Instant::now();
                    let ok = if rng.gen_bool(0.5) {
                        cluster.get(&k, false).is_ok()
                    } else {
                        cluster.put(&k, &value).is_ok()
                    };
                    samples.push(t.elapsed());
                    load.ops.fetch_add(1, Ordering::Relaxed);
                    if !ok {
                        load.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                load.latencies.lock().extend(samples);
            })
        })
        .collect()
}

#[derive(Default)]
struct Outcomes {
    moved: usize,
    refused: usize,
    accepted_not_moved: usize,
    other_errors: usize,
    move_times: Vec<Duration>,
    refusals: Vec<String>,
}

fn run(args: &Args, lag: u64) {
    let cfg = raftstore::Config {
        leader_transfer_max_log_lag: lag,
        ..bench_raft_config()
    };
    let election = cfg.election_timeout();
    let mut cluster = Cluster::with_config(3, cfg);
    cluster.bootstrap(&[]);
    cluster.start();
    let cluster = Arc::new(cluster);
    cluster.wait_leader(1);
    let value = vec![b'x'; args.value_size];
    for n in 0..args.records {
        cluster.must_put(&key(n), &value);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let load = Arc::new(Load::default());
    let handles = start_load(&cluster, args, &stop, &load);
    std::thread::sleep(Duration::from_millis(args.settle_ms));
    let dropped_before = counter("shoal_raftstore_proposals_refused_in_transfer_total");
    let started = Instant::now();
    let mut out = Outcomes::default();
    for i in 0..args.transfers {
        let leader = cluster.wait_leader(1);
        let region = cluster.region(1).expect("region 1");
        let followers: Vec<_> = region.peers.iter().filter(|p| p.id != leader.id).collect();
        let target = *followers[i % followers.len()];
        let t = Instant::now();
        match cluster.transfer_leader(1, target) {
            Ok(()) => {
                let deadline = t + election;
                loop {
                    if cluster.leader_of(1).is_some_and(|l| l.id == target.id) {
                        out.moved += 1;
                        out.move_times.push(t.elapsed());
                        break;
                    }
                    if Instant::now() >= deadline {
                        out.accepted_not_moved += 1;
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            Err(RequestError::Region(e)) => {
                out.refused += 1;
                if out.refusals.len() < 3 {
                    out.refusals.push(e.message.clone());
                }
            }
            Err(_) => out.other_errors += 1,
        }
        std::thread::sleep(Duration::from_millis(args.settle_ms));
    }
    let elapsed = started.elapsed();
    let dropped = counter("shoal_raftstore_proposals_refused_in_transfer_total") - dropped_before;
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().expect("load thread");
    }
    let ops = load.ops.load(Ordering::Relaxed);
    let mut lat = std::mem::take(&mut *load.latencies.lock());
    let p = percentiles(&mut lat);
    let mv = percentiles(&mut out.move_times);
    println!(
        "lag {lag:>4}: {}/{} transfers moved within an election timeout ({:.0} %), {} refused, \
         {} accepted but not done, {} other errors; time to move p50 {:.0} ms, max {:.0} ms",
        out.moved,
        args.transfers,
        100.0 * out.moved as f64 / args.transfers as f64,
        out.refused,
        out.accepted_not_moved,
        out.other_errors,
        mv.p50 / 1000.0,
        mv.max / 1000.0,
    );
    println!(
        "          load: {:.0} ops/s over the whole run, {} failed, latency p50 {:.1} ms p99 {:.1} \
         ms max {:.0} ms; {} proposals answered NotLeader during held transfers",
        ops as f64 / elapsed.as_secs_f64(),
        load.failed.load(Ordering::Relaxed),
        p.p50 / 1000.0,
        p.p99 / 1000.0,
        p.max / 1000.0,
        dropped,
    );
    for r in &out.refusals {
        println!("          e.g. refused: {r}");
    }
}

fn main() {
    let args = Args::parse();
    println!(
        "{} writers (YCSB-A: 50 % reads, 50 % updates, zipfian over {} records), {} transfers \
         per run, election timeout {:?}",
        args.writers,
        args.records,
        args.transfers,
        bench_raft_config().election_timeout()
    );
    for lag in &args.lags {
        run(&args, *lag);
    }
}
