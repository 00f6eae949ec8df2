//! The apply pool applying committed Put entries (1 KiB values, 64 entries per batch, each with
//! its proposer's callback) against its physical limit: raw RocksDB write batches of the same
//! key/values into the same column family of the same `KvEngine`.
//!
//! Committed entries are fed straight into the apply FSMs' mailboxes, as a peer does after a
//! ready, so no Raft group runs.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use batch_system::{create_system, mailbox_channel, BasicMailbox, BatchSystem};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use crossbeam_channel::{Receiver, Sender};
use engine::{KvEngine, KvRead, CF_DEFAULT};
use prost::Message as _;
use proto::eraftpb::Entry;
use proto::metapb::{Peer, Region, RegionEpoch};
use proto::raft_cmdpb::{RaftCmdRequest, RaftRequestHeader};
use proto::raft_serverpb::RaftApplyState;
use raftstore::testexport::PeerFsm;
use raftstore::testexport::StoreFlow;
use raftstore::testexport::StoreFsm;
use raftstore::testexport::{Apply, ApplyMsg, PendingCmd};
use raftstore::testexport::{ApplyControlFsm, ApplyFsm, ApplyPollerBuilder};
use raftstore::RaftRouter;
use raftstore::{Callback, Config};
use test_cluster::put_request;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const BATCH: u64 = 64;
const VALUE_SIZE: usize = 1024;
/// Regions fed at once in the pipelined case.
const REGIONS: u64 = 4;
/// Batches sent before waiting, in the pipelined case (16 MiB of values).
const CHUNK: u64 = 256;
const EPOCH: RegionEpoch = RegionEpoch {
    conf_ver: 1,
    version: 1,
};

/// Distinct incompressible values, so RocksDB does the work real data makes it do.
fn values() -> Vec<Vec<u8>> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..1024)
        .map(|_| {
            (0..VALUE_SIZE)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        })
        .collect()
}

fn key(region_id: u64, seq: u64) -> Vec<u8> {
    format!("r{region_id:02}k{seq:012}").into_bytes()
}

fn region(id: u64) -> Region {
    Region {
        id,
        start_key: format!("r{id:02}").into_bytes(),
        end_key: format!("r{:02}", id + 1).into_bytes(),
        region_epoch: Some(EPOCH),
        peers: vec![Peer {
            id,
            store_id: 1,
            ..Default::default()
        }],
    }
}

/// An apply pool on its own RocksDB, with one apply FSM per region.
struct ApplyPool {
    router: batch_system::Router<ApplyFsm, ApplyControlFsm>,
    /// The next log index per region (index 0 unused).
    next_index: Vec<u64>,
    seq: u64,
    values: Arc<Vec<Vec<u8>>>,
    done_tx: Sender<()>,
    done: Receiver<()>,
    /// Commands answered with an error: must stay 0, or the error path is what got measured.
    errors: Arc<AtomicU64>,
    kv: KvEngine,
    last_key: Vec<u8>,
    _apply: BatchSystem<ApplyFsm, ApplyControlFsm>,
    /// Holds the raft router's batch system; no peers are registered, so apply results go
    /// nowhere.
    _raft: BatchSystem<PeerFsm, StoreFsm>,
}

impl ApplyPool {
    fn start(kv: KvEngine, regions: u64, values: Arc<Vec<Vec<u8>>>) -> ApplyPool {
        let cfg = Config::default();
        let (store_tx, store_rx) = crossbeam_channel::unbounded();
        let (raft_router, raft) = create_system(
            &batch_system::Config::default(),
            store_tx,
            Box::new(StoreFsm::new(store_rx)),
        );
        let raft_router = RaftRouter::new(raft_router);
        let batch_cfg = batch_system::Config {
            pool_size: cfg.apply_pool_size,
            max_batch_size: cfg.max_batch_size,
            mailbox_capacity: cfg.notify_capacity,
            ..Default::default()
        };
        let (ctl_tx, ctl_rx) = crossbeam_channel::unbounded();
        let (router, mut apply) = create_system(
            &batch_cfg,
            ctl_tx,
            Box::new(ApplyControlFsm { receiver: ctl_rx }),
        );
        apply.spawn(
            "bench-apply".into(),
            ApplyPollerBuilder {
                kv: kv.clone(),
                raft_router,
                messages_per_tick: cfg.messages_per_tick,
                flow: Arc::new(StoreFlow::default()),
            },
        );
        for id in 1..=regions {
            let (tx, rx) = mailbox_channel(cfg.notify_capacity);
            let fsm = ApplyFsm::new(rx, region(id), RaftApplyState::default(), None);
            router.register(id, BasicMailbox::new(tx, Box::new(fsm)));
        }
        let (done_tx, done) = crossbeam_channel::unbounded();
        ApplyPool {
            router,
            next_index: vec![1; regions as usize + 1],
            seq: 0,
            values,
            done_tx,
            done,
            errors: Arc::default(),
            kv,
            last_key: Vec::new(),
            _apply: apply,
            _raft: raft,
        }
    }

    /// One region's next `BATCH` committed Put entries, each with a callback; the last
    /// callback signals `done`.
    fn next_batch(&mut self, region_id: u64) -> ApplyMsg {
        let leader = Peer {
            id: region_id,
            store_id: 1,
            ..Default::default()
        };
        let mut entries = Vec::with_capacity(BATCH as usize);
        let mut cmds = Vec::with_capacity(BATCH as usize);
        for i in 0..BATCH {
            let index = self.next_index[region_id as usize];
            self.next_index[region_id as usize] += 1;
            self.seq += 1;
            let value = &self.values[self.seq as usize % self.values.len()];
            self.last_key = key(region_id, self.seq);
            let req = RaftCmdRequest {
                header: Some(RaftRequestHeader {
                    region_id,
                    peer: Some(leader),
                    region_epoch: Some(EPOCH),
                    ..Default::default()
                }),
                requests: vec![put_request(&self.last_key, value)],
                admin_request: None,
            };
            entries.push(Entry {
                index,
                term: 1,
                data: req.encode_to_vec().into(),
                ..Default::default()
            });
            let last = i + 1 == BATCH;
            let done = self.done_tx.clone();
            let errors = self.errors.clone();
            let callback = Callback::new(move |resp| {
                if resp.response.header.is_some_and(|h| h.error.is_some()) {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                if last {
                    let _ = done.send(());
                }
            });
            cmds.push(PendingCmd {
                index,
                term: 1,
                callback,
            });
        }
        ApplyMsg::Apply(Box::new(Apply {
            peer_id: region_id,
            term: 1,
            entries,
            cmds,
            committed_at: Instant::now(),
        }))
    }

    /// Every command succeeded and the newest key is stored.
    fn check_applied(&self) {
        let errors = self.errors.load(Ordering::Relaxed);
        assert_eq!(errors, 0, "apply answered errors");
        let got = self
            .kv
            .get_value_cf(CF_DEFAULT, &keys::data_key(&self.last_key))
            .unwrap();
        assert!(got.is_some(), "the newest key was not applied");
    }

    fn send(&self, region_id: u64, msg: ApplyMsg) {
        if self.router.force_send(region_id, msg).is_err() {
            panic!("apply fsm of region {region_id} is gone");
        }
    }
}

/// Deletes a closed engine: its not yet written-back pages go with it, so the next case does
/// not pay for this one's writeback.
fn discard(path: &Path) {
    std::fs::remove_dir_all(path).unwrap();
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("apply");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500))
        .throughput(Throughput::Elements(BATCH));
    let dir = tempfile::tempdir().unwrap();
    let values = Arc::new(values());

    // The limit: the same key/values as one write batch per 64 entries, unsynced like apply.
    let path = dir.path().join("raw");
    let kv = KvEngine::open(&path).unwrap();
    let mut seq = 0u64;
    group.bench_function("raw_rocksdb_wb64", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let kvs: Vec<(Vec<u8>, &Vec<u8>)> = (0..BATCH)
                    .map(|_| {
                        seq += 1;
                        (
                            keys::data_key(&key(1, seq)),
                            &values[seq as usize % values.len()],
                        )
                    })
                    .collect();
                let start = Instant::now();
                let mut wb = kv.write_batch();
                for (k, v) in &kvs {
                    wb.put_cf(CF_DEFAULT, k, v).unwrap();
                }
                kv.write(&wb, false).unwrap();
                spent += start.elapsed();
            }
            spent
        })
    });
    drop(kv);
    discard(&path);

    // One batch in flight: send, wait for its last callback, repeat.
    let path = dir.path().join("apply-1");
    let kv = KvEngine::open(&path).unwrap();
    let mut pool = ApplyPool::start(kv, 1, values.clone());
    group.bench_function("apply_one_in_flight", |b| {
        b.iter_custom(|iters| timed_batches(&mut pool, iters, 1, 1))
    });
    drop(pool);
    discard(&path);

    // Pipelined: many batches of several regions queued at once, as under load; the pool
    // merges them into fewer, larger write batches.
    let path = dir.path().join("apply-n");
    let kv = KvEngine::open(&path).unwrap();
    let mut pool = ApplyPool::start(kv, REGIONS, values.clone());
    group.bench_function("apply_pipelined_4_regions", |b| {
        b.iter_custom(|iters| timed_batches(&mut pool, iters, CHUNK, REGIONS))
    });
    drop(pool);
    discard(&path);
    group.finish();
}

/// Applies `iters` batches, `chunk` at a time spread over `regions` regions (all of a chunk
/// queued before the first is waited for), and returns the time from queueing to applied.
fn timed_batches(pool: &mut ApplyPool, iters: u64, chunk: u64, regions: u64) -> Duration {
    let mut spent = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(chunk);
        left -= n;
        let msgs: Vec<(u64, ApplyMsg)> = (0..n)
            .map(|i| {
                let r = i % regions + 1;
                (r, pool.next_batch(r))
            })
            .collect();
        let start = Instant::now();
        for (r, msg) in msgs {
            pool.send(r, msg);
        }
        for _ in 0..n {
            pool.done.recv().unwrap();
        }
        spent += start.elapsed();
    }
    pool.check_applied();
    spent
}

criterion_group!(benches, bench);
criterion_main!(benches);
