//! The log writer group-committing many peers' readies (1 KiB entry + raft state each, fsync
//! per batch) against its physical limit: raw raft-engine synced write batches of the same
//! data from the same number of concurrent writers, on the same disk. `log_writer_no_wait`
//! is the same writer with `raft-write-wait-duration` = 0.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use crossbeam_channel::{Receiver, Sender};
use engine::{RaftLogBatch, RaftLogEngine};
use proto::eraftpb::Entry;
use proto::raft_serverpb::{RaftLocalState, RaftMessage};
use raftstore::testexport::PeerFsm;
use raftstore::testexport::StoreFsm;
use raftstore::testexport::{LogBatchWriter, LogWriter, WriteMsg, WriteTask};
use raftstore::RaftRouter;
use raftstore::{Config, Transport};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const VALUE_SIZE: usize = 1024;
const WRITERS: [u64; 3] = [1, 16, 64];

fn entry(index: u64) -> Entry {
    Entry {
        index,
        term: 1,
        data: vec![b'v'; VALUE_SIZE].into(),
        ..Default::default()
    }
}

fn raft_state(index: u64) -> RaftLocalState {
    RaftLocalState {
        term: 1,
        vote: 1,
        commit: index.saturating_sub(1),
        last_index: index,
        led_term: 1,
    }
}

/// Stands in for the network: the writer hands over a task's messages only once it is durable,
/// so each one tells its peer (region) that its append is persisted.
struct AckTransport {
    acks: Vec<Sender<()>>,
}

impl Transport for AckTransport {
    fn send(&self, msg: RaftMessage) {
        let _ = self.acks[msg.region_id as usize].send(());
    }
}

/// Runs `writers` threads (ids 1..=writers), each calling `write(id)` `rounds` times.
fn run_writers(writers: u64, rounds: u64, write: impl Fn(u64) + Sync) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for w in 1..=writers {
            let write = &write;
            s.spawn(move || {
                for _ in 0..rounds {
                    write(w);
                }
            });
        }
    });
    start.elapsed()
}

struct WriterSetup {
    tx: Sender<WriteMsg>,
    acks: Vec<Receiver<()>>,
    handle: Option<std::thread::JoinHandle<()>>,
    /// Holds the router's batch system; no peers are registered, so `Persisted` goes nowhere.
    _system: batch_system::BatchSystem<PeerFsm, StoreFsm>,
}

impl WriterSetup {
    fn start(raft_engine: RaftLogEngine, writers: u64, batch_wait: Duration) -> WriterSetup {
        let cfg = Config::default();
        let (store_tx, store_rx) = crossbeam_channel::unbounded();
        let (router, system) = batch_system::create_system(
            &batch_system::Config::default(),
            store_tx,
            Box::new(StoreFsm::new(store_rx)),
        );
        let (ack_txs, acks): (Vec<_>, Vec<_>) = (0..=writers)
            .map(|_| crossbeam_channel::unbounded())
            .unzip();
        let (tx, rx) = crossbeam_channel::unbounded();
        let handle = LogWriter {
            batch_writer: LogBatchWriter {
                raft_engine,
                router: RaftRouter::new(router),
                transport: Arc::new(AckTransport { acks: ack_txs }),
            },
            size_limit: cfg.raft_write_size_limit,
            batch_wait,
        }
        .spawn(rx, "bench-log-writer".into())
        .unwrap();
        WriterSetup {
            tx,
            acks,
            handle: Some(handle),
            _system: system,
        }
    }
}

impl Drop for WriterSetup {
    fn drop(&mut self) {
        let _ = self.tx.send(WriteMsg::Shutdown);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("log_writer");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));
    let dir = tempfile::tempdir().unwrap();
    for writers in WRITERS {
        group.throughput(Throughput::Elements(writers));

        let path = dir.path().join(format!("raw-{writers}"));
        let raw = RaftLogEngine::open(&path).unwrap();
        let next = (0..=writers)
            .map(|_| AtomicIndex::default())
            .collect::<Vec<_>>();
        group.bench_with_input(
            BenchmarkId::new("raw_raft_engine", writers),
            &writers,
            |b, &writers| {
                b.iter_custom(|rounds| {
                    run_writers(writers, rounds, |w| {
                        let index = next[w as usize].next();
                        let mut batch = RaftLogBatch::new();
                        batch.append(w, vec![entry(index)]).unwrap();
                        batch.put_raft_state(w, &raft_state(index)).unwrap();
                        raw.write(&mut batch, true).unwrap();
                    })
                })
            },
        );
        drop(raw);
        std::fs::remove_dir_all(&path).unwrap();

        // The default wait for company, and none: the knob's cost with few writers.
        let default_wait = Config::default().raft_write_wait_duration;
        for (name, wait) in [
            ("log_writer", default_wait),
            ("log_writer_no_wait", Duration::ZERO),
        ] {
            let path = dir.path().join(format!("{name}-{writers}"));
            let setup = WriterSetup::start(RaftLogEngine::open(&path).unwrap(), writers, wait);
            let next = (0..=writers)
                .map(|_| AtomicIndex::default())
                .collect::<Vec<_>>();
            group.bench_with_input(BenchmarkId::new(name, writers), &writers, |b, &writers| {
                b.iter_custom(|rounds| {
                    run_writers(writers, rounds, |w| {
                        let index = next[w as usize].next();
                        let task = WriteTask {
                            region_id: w,
                            peer_id: w,
                            ready_number: index,
                            entries: vec![entry(index)],
                            raft_state: Some(raft_state(index)),
                            messages: vec![RaftMessage {
                                region_id: w,
                                ..Default::default()
                            }],
                            clean_log: false,
                        };
                        setup.tx.send(WriteMsg::Task(task)).unwrap();
                        setup.acks[w as usize].recv().unwrap();
                    })
                })
            });
            drop(setup);
            std::fs::remove_dir_all(&path).unwrap();
        }
    }
    group.finish();
}

/// The next log index of one writer; each writer thread owns its slot.
#[derive(Default)]
struct AtomicIndex(std::sync::atomic::AtomicU64);

impl AtomicIndex {
    fn next(&self) -> u64 {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
