//! Leader transfer: to caught-up voters only, safe under load.

use std::sync::Arc;

use proto::eraftpb::MessageType;
use test_cluster::*;

#[test]
fn transfer_leader_under_load_loses_nothing() {
    let cluster = Arc::new(Cluster::run(3));
    cluster.wait_leader(1);
    let writers = Writers::start(cluster.clone(), 4, 3000, |w, i| {
        format!("t{w}-{i:05}").into_bytes()
    });
    let region = cluster.region(1).unwrap();
    for round in 0..2 {
        for p in &region.peers {
            writers.wait_acked(round * 60 + 10);
            cluster.must_transfer_leader(1, *p);
            assert_eq!(cluster.leader_of(1).map(|l| l.id), Some(p.id));
        }
    }
    let acked = writers.finish();
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
