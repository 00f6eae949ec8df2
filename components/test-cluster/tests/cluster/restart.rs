//! Restarts, including in the middle of a write load, lose no acknowledged write.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use test_cluster::*;

#[test]
fn restarting_every_store_recovers_acknowledged_writes() {
    let mut cluster = Cluster::run(3);
    cluster.wait_leader(1);
    for i in 0..100u32 {
        cluster.must_put(format!("r{i:03}").as_bytes(), &i.to_le_bytes());
    }
    for s in cluster.store_ids() {
        cluster.stop_store(s);
    }
    for s in cluster.store_ids() {
        cluster.start_store(s);
    }
    cluster.wait_leader(1);
    for i in 0..100u32 {
        assert_eq!(
            cluster.must_get(format!("r{i:03}").as_bytes()),
            Some(i.to_le_bytes().to_vec())
        );
    }
    // The restarted cluster keeps accepting writes.
    cluster.must_put(b"after", b"restart");
    for s in cluster.store_ids() {
        cluster.must_engine_eq(s, b"after", Some(b"restart"));
    }
}

#[test]
fn restarts_under_load_lose_no_acknowledged_write() {
    restart_under_load(Cluster::run(3));
}

/// The same with the raft pollers writing the raft log themselves at the end of each round
/// (`store-io-pool-size = 0`) instead of a log writer thread.
#[test]
fn restarts_under_load_lose_no_acknowledged_write_when_pollers_write_the_log() {
    let cfg = raftstore::Config {
        store_io_pool_size: 0,
        ..raftstore::Config::for_tests()
    };
    let mut cluster = Cluster::with_config(3, cfg);
    cluster.bootstrap(&[]);
    cluster.start();
    restart_under_load(cluster);
}

/// The same with the raft pollers also applying what their peers commit
/// (`apply-pool-size = 0`), as the local fleet runs.
#[test]
fn restarts_under_load_lose_no_acknowledged_write_when_pollers_apply() {
    let mut cluster = Cluster::with_config(3, pollers_write_and_apply());
    cluster.bootstrap(&[]);
    cluster.start();
    restart_under_load(cluster);
}

/// Four writers put keys while every store is restarted one by one, twice, then all at
/// once; every acknowledged key must read back and be on every store.
fn restart_under_load(cluster: Cluster) {
    let cluster = Arc::new(RwLock::new(cluster));
    cluster.read().wait_leader(1);
    let acked: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (cluster, acked, stop) = (cluster.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0u32;
                while !stop.load(Ordering::Relaxed) && i < 5000 {
                    let key = format!("w{w}-{i:05}").into_bytes();
                    let ok = {
                        let c = cluster.read();
                        c.request_once(
                            &key,
                            vec![put_request(&key, &key)],
                            false,
                            Duration::from_millis(500),
                        )
                        .is_ok()
                    };
                    if ok {
                        acked.lock().push(key);
                        i += 1;
                    } else {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            })
        })
        .collect();
    // Restart every store one by one, then all at once, while the writers run.
    for round in 0..2 {
        for s in 1..=3u64 {
            wait_until(DEFAULT_TIMEOUT, || {
                acked.lock().len() > (round * 3 + s as usize) * 20
            });
            cluster.write().stop_store(s);
            std::thread::sleep(Duration::from_millis(50));
            cluster.write().start_store(s);
        }
    }
    {
        let before = acked.lock().len();
        wait_until(DEFAULT_TIMEOUT, || acked.lock().len() > before + 20);
        let mut c = cluster.write();
        for s in 1..=3u64 {
            c.stop_store(s);
        }
        for s in 1..=3u64 {
            c.start_store(s);
        }
    }
    let before = acked.lock().len();
    wait_until(DEFAULT_TIMEOUT, || acked.lock().len() > before + 20);
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().expect("writer");
    }
    let acked = acked.lock().clone();
    assert!(acked.len() > 100, "the load made progress: {}", acked.len());
    let c = cluster.read();
    for key in &acked {
        assert_eq!(
            c.must_get(key).as_deref(),
            Some(key.as_slice()),
            "acknowledged write lost"
        );
    }
    for s in c.store_ids() {
        let last = acked.last().unwrap();
        c.must_engine_eq(s, last, Some(last));
    }
}
