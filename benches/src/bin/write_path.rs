//! Write path of a 3-store in-process cluster on real disks: proposals/s, p50/p99 latency
//! with concurrent writers of 1 KiB values, for 1 and 64 regions; the log writer's fsyncs/s
//! and entries per fsync.
//!
//! Usage: write-path [writers=64] [seconds=10] [regions=1,64]
//!
//! Writers are async tasks on a 2-thread runtime, like a client process's requests;
//! `SHOAL_WRITERS=threads` makes each an OS thread blocking on its answer instead (whose
//! spinning waits then take about a quarter of the machine's CPU on 2 cores).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use proto::metapb::{Peer, Region};
use proto::raft_cmdpb::RaftCmdRequest;
use raftstore::{Callback, CmdResponse, Config};
use shoal_benches::{bench_raft_config, counter, percentiles};
use test_cluster::{put_request, Cluster};

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
    let stop = Arc::new(AtomicBool::new(false));
    let lat: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let fsync0 = counter("shoal_raftstore_log_writer_fsyncs_total");
    let entries0 = counter("shoal_raftstore_log_writer_entries_total");
    let start = Instant::now();
    if std::env::var("SHOAL_WRITERS").is_ok_and(|v| v == "threads") {
        thread_writers(&cluster, writers, &stop, &lat, secs);
    } else {
        async_writers(&cluster, writers, &stop, &lat, secs);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let fsyncs = counter("shoal_raftstore_log_writer_fsyncs_total") - fsync0;
    let entries = counter("shoal_raftstore_log_writer_entries_total") - entries0;
    let mut lat = lat.lock();
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

/// One writer's state: like a real client it caches each region's leader and refreshes it on
/// errors; it writes fresh keys round-robin over the regions.
struct Writer {
    id: usize,
    cluster: Arc<Cluster>,
    regions: Vec<Region>,
    leaders: Vec<Option<Peer>>,
    value: Vec<u8>,
    written: u64,
    latencies: Vec<Duration>,
}

impl Writer {
    fn new(id: usize, cluster: Arc<Cluster>) -> Writer {
        let regions = cluster.bootstrapped_regions().to_vec();
        Writer {
            id,
            leaders: vec![None; regions.len()],
            regions,
            cluster,
            value: vec![b'v'; 1024],
            written: 0,
            latencies: Vec::new(),
        }
    }

    /// The next put and the store of the leader it goes to; `None` while the region has none.
    fn next_request(&mut self) -> Option<(usize, u64, RaftCmdRequest)> {
        let r = (self.id + self.written as usize) % self.regions.len();
        let key = format!("k{r:04}-{}-{}", self.id, self.written).into_bytes();
        let leader = self.leaders[r].or_else(|| self.cluster.leader_of(self.regions[r].id))?;
        self.leaders[r] = Some(leader);
        let req = Cluster::new_request(
            &self.regions[r],
            leader,
            vec![put_request(&key, &self.value)],
        );
        Some((r, leader.store_id, req))
    }

    /// Counts an acknowledged write, or forgets the leader after a failed one.
    fn finish(&mut self, region: usize, started: Instant, answer: Option<CmdResponse>) {
        let ok = answer.is_some_and(|resp| resp.response.header.is_none_or(|h| h.error.is_none()));
        if ok {
            self.latencies.push(started.elapsed());
            self.written += 1;
        } else {
            self.leaders[region] = None;
        }
    }
}

/// Each writer an OS thread blocking on its answer.
fn thread_writers(
    cluster: &Arc<Cluster>,
    writers: usize,
    stop: &Arc<AtomicBool>,
    lat: &Arc<Mutex<Vec<Duration>>>,
    secs: u64,
) {
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let (cluster, stop, lat) = (cluster.clone(), stop.clone(), lat.clone());
            std::thread::spawn(move || {
                let mut writer = Writer::new(w, cluster.clone());
                while !stop.load(Ordering::Relaxed) {
                    let Some((r, store, req)) = writer.next_request() else {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    let t = Instant::now();
                    let answer = cluster
                        .call_on_store(store, req, Duration::from_secs(10))
                        .ok();
                    writer.finish(r, t, answer);
                }
                lat.lock().extend(writer.latencies);
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
}

/// Each writer an async task on a 2-thread runtime, as in a client process: 64 waiting
/// requests cost no OS threads.
fn async_writers(
    cluster: &Arc<Cluster>,
    writers: usize,
    stop: &Arc<AtomicBool>,
    lat: &Arc<Mutex<Vec<Duration>>>,
    secs: u64,
) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let (cluster, stop, lat) = (cluster.clone(), stop.clone(), lat.clone());
                tokio::spawn(async move {
                    let mut writer = Writer::new(w, cluster.clone());
                    while !stop.load(Ordering::Relaxed) {
                        let Some((r, store, req)) = writer.next_request() else {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        };
                        let (tx, rx) = tokio::sync::oneshot::channel();
                        let t = Instant::now();
                        let callback = Callback::new(move |resp| {
                            let _ = tx.send(resp);
                        });
                        cluster.store(store).propose(req, callback);
                        let answer = tokio::time::timeout(Duration::from_secs(10), rx).await;
                        writer.finish(r, t, answer.ok().and_then(Result::ok));
                    }
                    lat.lock().extend(writer.latencies);
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(secs)).await;
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            let _ = t.await;
        }
    });
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
