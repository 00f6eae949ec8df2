//! The physical limit of the write path: raw raft-engine synced group commit, with the same
//! number of concurrent writers and 1 KiB entries, on the same disk.
//!
//! With `engines` > 1, that many engines (in separate directories, like the stores of an
//! in-process cluster) share the writers: the ceiling for replicated writes on one disk.
//!
//! Usage: raft-engine-raw [writers=64] [seconds=10] [engines=1]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::{RaftLogBatch, RaftLogEngine};
use proto::eraftpb::Entry;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let writers: u64 = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(64);
    let secs = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(10);
    let engines_n: u64 = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(1);
    let dir = tempfile::tempdir().expect("temp dir");
    let engines: Vec<RaftLogEngine> = (0..engines_n)
        .map(|i| RaftLogEngine::open(&dir.path().join(i.to_string())).expect("open raft engine"))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let engine = engines[(w % engines_n) as usize].clone();
            let (stop, writes) = (stop.clone(), writes.clone());
            std::thread::spawn(move || {
                let mut index = 1;
                while !stop.load(Ordering::Relaxed) {
                    let e = Entry {
                        index,
                        term: 1,
                        data: vec![b'v'; 1024].into(),
                        ..Default::default()
                    };
                    let mut batch = RaftLogBatch::new();
                    batch.append(w + 1, vec![e]).expect("encode");
                    engine.write(&mut batch, true).expect("write");
                    writes.fetch_add(1, Ordering::Relaxed);
                    index += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "raw raft-engine: engines={engines_n} writers={writers} synced writes/s={:.0}",
        writes.load(Ordering::Relaxed) as f64 / elapsed
    );
}
