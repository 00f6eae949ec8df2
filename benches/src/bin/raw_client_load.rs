//! Raw put and get throughput of a running fleet, driven through the official client with the
//! default keyspace: `raw-client-load <pd> <clients> <seconds> <value-bytes>`.
//!
//! Each phase runs `clients` concurrent tasks for `seconds`: first puts of fresh keys, then
//! gets of keys the put phase wrote. Failed requests are counted and reported.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shoal_benches::percentiles;
use tikv_client::{Config, RawClient};

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

struct PhaseResult {
    latencies: Vec<Duration>,
    errors: u64,
    written: u64,
}

fn key(task: usize, seq: u64) -> Vec<u8> {
    format!("load-{task:03}-{seq:010}").into_bytes()
}

async fn run_phase(
    client: &RawClient,
    clients: usize,
    duration: Duration,
    value: Arc<Vec<u8>>,
    written: &[u64],
) -> (Vec<PhaseResult>, Duration) {
    let stop = Arc::new(AtomicBool::new(false));
    let reading = !written.is_empty();
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|task| {
            let client = client.clone();
            let stop = stop.clone();
            let value = value.clone();
            let limit = written.get(task).copied().unwrap_or(0);
            tokio::spawn(async move {
                let mut out = PhaseResult {
                    latencies: Vec::new(),
                    errors: 0,
                    written: 0,
                };
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let at = Instant::now();
                    let ok = if reading {
                        let k = key(task, seq % limit.max(1));
                        matches!(client.get(k).await, Ok(Some(_)))
                    } else {
                        client
                            .put(key(task, seq), value.as_ref().clone())
                            .await
                            .is_ok()
                    };
                    if ok {
                        out.latencies.push(at.elapsed());
                        if !reading {
                            out.written = seq + 1;
                        }
                    } else {
                        out.errors += 1;
                    }
                    seq += 1;
                }
                out
            })
        })
        .collect();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut results = Vec::new();
    for t in tasks {
        if let Ok(r) = t.await {
            results.push(r);
        }
    }
    (results, started.elapsed())
}

fn report(name: &str, results: &[PhaseResult], elapsed: Duration) -> u64 {
    let mut all: Vec<Duration> = results.iter().flat_map(|r| r.latencies.clone()).collect();
    let errors: u64 = results.iter().map(|r| r.errors).sum();
    let ops = all.len();
    let p = percentiles(&mut all);
    println!(
        "{name:>4}: {ops} ops in {:.1} s = {:.0} ops/s, p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms, errors {errors}",
        elapsed.as_secs_f64(),
        ops as f64 / elapsed.as_secs_f64(),
        p.p50 / 1000.0,
        p.p99 / 1000.0,
        p.max / 1000.0,
    );
    errors
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let pd = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:2379".into());
    let clients: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(64);
    let seconds: u64 = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(10);
    let value_len: usize = args.get(4).and_then(|v| v.parse().ok()).unwrap_or(1024);
    let config = Config::default()
        .with_default_keyspace()
        .with_timeout(Duration::from_secs(10));
    let client = match RawClient::new_with_config(vec![pd.clone()], config).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot connect to PD at {pd}: {e}");
            std::process::exit(2);
        }
    };
    println!("{clients} clients, {seconds} s per phase, {value_len}-byte values, PD {pd}");
    let value = Arc::new(vec![b'v'; value_len]);
    let duration = Duration::from_secs(seconds);
    let (puts, elapsed) = run_phase(&client, clients, duration, value.clone(), &[]).await;
    let mut errors = report("put", &puts, elapsed);
    let written: Vec<u64> = puts.iter().map(|r| r.written).collect();
    let (gets, elapsed) = run_phase(&client, clients, duration, value, &written).await;
    errors += report("get", &gets, elapsed);
    if errors > 0 {
        std::process::exit(1);
    }
}
