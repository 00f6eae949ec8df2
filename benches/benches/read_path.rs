//! Per-read latency on the leader of a 3-store in-process cluster: served from the leader
//! lease (on the caller's thread) vs forced through ReadIndex (`read_quorum` in the request
//! header: a heartbeat round to the followers, then the read). A plain get from a snapshot of
//! the leader's RocksDB is the floor.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use engine::{KvRead, CF_DEFAULT};
use proto::raft_cmdpb::RaftCmdRequest;
use raftstore::testexport::ReadDelegate;
use shoal_benches::bench_raft_config;
use test_cluster::{get_request, get_value, Cluster};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const KEY: &[u8] = b"bench-key";
const TIMEOUT: Duration = Duration::from_secs(5);

/// Sends one read to the leader's store and checks it returned the value.
fn read(cluster: &Cluster, store_id: u64, req: &RaftCmdRequest, value: &[u8]) {
    let resp = cluster
        .call_on_store(store_id, req.clone(), TIMEOUT)
        .unwrap()
        .response;
    assert!(
        resp.header.as_ref().is_none_or(|h| h.error.is_none()),
        "read failed: {:?}",
        resp.header
    );
    assert_eq!(get_value(&resp).as_deref(), Some(value));
}

fn bench(c: &mut Criterion) {
    let mut cluster = Cluster::with_config(3, bench_raft_config());
    cluster.bootstrap(&[]);
    cluster.start();
    let leader = cluster.wait_leader(1);
    let value = vec![b'v'; 128];
    cluster.must_put(KEY, &value);
    let region = cluster.region(1).unwrap();
    let delegate: Arc<ReadDelegate> = cluster
        .store(leader.store_id)
        .meta()
        .lock()
        .readers
        .get(&1)
        .cloned()
        .unwrap();

    let mut group = c.benchmark_group("read_path");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));

    let lease_req = Cluster::new_request(&region, leader, vec![get_request(KEY)]);
    group.bench_function("lease_read", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                // Only writes and ReadIndex renew the lease: renew it untimed when it lapsed,
                // so every timed read is a lease read.
                if !delegate.can_read_locally(Instant::now() + Duration::from_millis(50)) {
                    cluster.must_put(KEY, &value);
                }
                let start = Instant::now();
                read(&cluster, leader.store_id, &lease_req, &value);
                spent += start.elapsed();
            }
            spent
        })
    });

    let mut quorum_req = lease_req.clone();
    if let Some(h) = quorum_req.header.as_mut() {
        h.read_quorum = true;
    }
    group.bench_function("read_index", |b| {
        b.iter(|| read(&cluster, leader.store_id, &quorum_req, &value))
    });

    let kv = cluster.store(leader.store_id).kv().clone();
    let data_key = keys::data_key(KEY);
    group.bench_function("raw_engine_snapshot_get", |b| {
        b.iter(|| {
            let got = kv.snapshot().get_value_cf(CF_DEFAULT, &data_key).unwrap();
            assert_eq!(got.as_deref(), Some(&value[..]));
        })
    });
    group.finish();
    drop(kv);
    cluster.shutdown();
}

criterion_group!(benches, bench);
criterion_main!(benches);
