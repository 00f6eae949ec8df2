//! Region lifecycle costs: snapshot generation and apply speed for a 64 MiB region, and the
//! time from a split proposal until the new regions serve writes.
//!
//! Usage: region-lifecycle [snapshot_mib=64] [splits=20]

use std::time::Instant;

use engine::{KvEngine, CF_DEFAULT, CF_RAFT};
use proto::metapb::{Peer, Region, RegionEpoch};
use proto::raft_serverpb::{PeerState, RegionLocalState};
use raftstore::testexport::initial_apply_state;
use raftstore::testexport::region_snapshot as snap;
use shoal_benches::percentiles;
use test_cluster::Cluster;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn snapshot_speed(mib: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = KvEngine::open(&dir.path().join("a/db")).expect("open");
    let dst = KvEngine::open(&dir.path().join("b/db")).expect("open");
    let region = Region {
        id: 1,
        region_epoch: Some(RegionEpoch {
            conf_ver: 1,
            version: 1,
        }),
        peers: vec![Peer {
            id: 1,
            store_id: 1,
            ..Default::default()
        }],
        ..Default::default()
    };
    // Incompressible values, so the files are as large as the data.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut value = vec![0u8; 1024];
    let mut wb = src.write_batch();
    for i in 0..mib * 1024 {
        for b in value.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        wb.put_cf(
            CF_DEFAULT,
            &keys::data_key(format!("k{i:08}").as_bytes()),
            &value,
        )
        .expect("put");
        if wb.count() >= 4096 {
            src.write(&wb, false).expect("write");
            wb.clear();
        }
    }
    let state = RegionLocalState {
        state: PeerState::Normal as i32,
        region: Some(region.clone()),
        merge_state: None,
    };
    wb.put_msg_cf(CF_RAFT, &keys::region_state_key(1), &state)
        .expect("put");
    wb.put_msg_cf(CF_RAFT, &keys::apply_state_key(1), &initial_apply_state())
        .expect("put");
    src.write(&wb, true).expect("write");
    let bytes = (mib * 1024 * (1024 + 10)) as f64 / (1024.0 * 1024.0);

    let t = Instant::now();
    let snapshot = snap::generate(&src, 1, 0).expect("generate");
    let gen = t.elapsed().as_secs_f64();
    let data = snap::decode(&snapshot).expect("decode");
    let sent = snap::files(&snap::snap_dir(&src), "gen", 1, &snapshot, &data);
    let recv = snap::files(&snap::snap_dir(&dst), "rev", 1, &snapshot, &data);
    std::fs::create_dir_all(snap::snap_dir(&dst)).expect("dir");
    for ((_, from, _, _), (_, to, _, _)) in sent.iter().zip(&recv) {
        std::fs::copy(from, to).expect("copy");
    }
    let t = Instant::now();
    snap::verify_received(&dst, 1, &snapshot).expect("verify");
    let apply_state = snap::begin_apply(&dst, None, &snapshot, &data).expect("begin apply");
    let region = data.region.clone().expect("snapshot region");
    snap::ingest(&dst, &region, &apply_state, &data).expect("ingest");
    let apply = t.elapsed().as_secs_f64();
    println!(
        "snapshot of a {mib} MiB region: generate {:.0} MB/s ({gen:.2}s), verify+apply {:.0} MB/s ({apply:.2}s)",
        bytes / gen,
        bytes / apply
    );
}

fn split_latency(splits: usize) {
    let mut cluster = Cluster::new(3);
    cluster.bootstrap(&[]);
    cluster.start();
    cluster.wait_leader(1);
    for i in 0..splits {
        cluster.must_put(format!("s{i:04}").as_bytes(), b"v");
    }
    let mut samples = Vec::new();
    for i in 1..splits {
        let key = format!("s{i:04}");
        let t = Instant::now();
        cluster.split(&[key.as_bytes()]).expect("split");
        // The new region (left of the key) serves a write.
        cluster.must_put(format!("s{:04}-after", i - 1).as_bytes(), b"w");
        samples.push(t.elapsed());
    }
    let p = percentiles(&mut samples);
    println!(
        "split proposal -> new region serving a write ({} splits, test timings): p50 {:.1} ms, p99 {:.1} ms",
        samples.len(),
        p.p50 / 1000.0,
        p.p99 / 1000.0
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mib = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(64);
    let splits = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(20);
    snapshot_speed(mib);
    split_latency(splits);
}
