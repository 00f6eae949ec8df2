//! Leader transfer: to caught-up voters only, safe under load.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use proto::eraftpb::MessageType;
use test_cluster::*;

#[test]
fn transfer_leader_under_load_loses_nothing() {
    let cluster = Arc::new(Cluster::run(3));
    cluster.wait_leader(1);
    let acked: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (cluster, acked, stop) = (cluster.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0u32;
                while !stop.load(Ordering::Relaxed) && i < 3000 {
                    let key = format!("t{w}-{i:05}").into_bytes();
                    if cluster.put(&key, &key).is_ok() {
                        acked.lock().push(key);
                    }
                    i += 1;
                }
            })
        })
        .collect();
    let region = cluster.region(1).unwrap();
    for round in 0..2 {
        for p in &region.peers {
            wait_until(DEFAULT_TIMEOUT, || acked.lock().len() > round * 60 + 10);
            cluster.must_transfer_leader(1, *p);
            assert_eq!(cluster.leader_of(1).map(|l| l.id), Some(p.id));
        }
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().clone();
    assert!(acked.len() > 60);
    for key in &acked {
        assert_eq!(cluster.must_get(key).as_deref(), Some(key.as_slice()));
    }
}

#[test]
fn transfer_to_a_lagging_peer_is_refused() {
    let cluster = Cluster::run(3);
    let leader = cluster.wait_leader(1);
    let region = cluster.region(1).unwrap();
    let target = *region
        .peers
        .iter()
        .find(|p| p.store_id != leader.store_id)
        .unwrap();
    cluster.add_filter(DropMessageTypeFilter {
        msg_type: MessageType::MsgAppend,
        to_store: Some(target.store_id),
    });
    cluster.must_put(b"k", b"v");
    let err = cluster
        .transfer_leader(1, target)
        .expect_err("a lagging peer cannot take over");
    match err {
        RequestError::Region(e) => assert!(e.message.contains("caught up"), "{}", e.message),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(cluster.leader_of(1), Some(leader));
    cluster.clear_filters();
    cluster.must_engine_eq(target.store_id, b"k", Some(b"v"));
    cluster.must_transfer_leader(1, target);
    // The new leader serves the data; the old one no longer claims the lease.
    assert_eq!(cluster.must_get(b"k"), Some(b"v".to_vec()));
}
