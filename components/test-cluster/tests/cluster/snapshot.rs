//! New peers on other stores catch up by snapshot.

use proto::metapb::{Peer, PeerRole};
use proto::raft_cmdpb::ConfChangeType::{AddLearnerNode, AddNode, RemoveNode};
use test_cluster::*;

#[test]
fn learner_catches_up_by_snapshot_is_promoted_and_leads() {
    let mut cluster = Cluster::new(4);
    cluster.bootstrap_on(&[], &[1, 2, 3]);
    cluster.start();
    cluster.wait_leader(1);
    for i in 0..100u32 {
        cluster.must_put(format!("s{i:03}").as_bytes(), &i.to_le_bytes());
    }
    let new = Peer {
        id: 4001,
        store_id: 4,
        role: PeerRole::Learner as i32,
        is_witness: false,
    };
    cluster.must_change_peers(1, vec![(AddLearnerNode, new)]);
    // Everything written before it joined arrives (the log starts after the bootstrap
    // index, so only a snapshot can bring it), and so do later writes.
    cluster.must_engine_eq(4, b"s000", Some(&0u32.to_le_bytes()));
    cluster.must_engine_eq(4, b"s099", Some(&99u32.to_le_bytes()));
    cluster.must_put(b"later", b"x");
    cluster.must_engine_eq(4, b"later", Some(b"x"));
    assert!(cluster.store(4).meta().lock().region(1).is_some());

    cluster.must_change_peers(1, vec![(AddNode, new)]);
    cluster.must_transfer_leader(1, new);
    assert_eq!(
        cluster.must_get(b"s042"),
        Some(42u32.to_le_bytes().to_vec())
    );
    cluster.must_put(b"from-new-leader", b"y");
    for s in cluster.store_ids() {
        cluster.must_engine_eq(s, b"from-new-leader", Some(b"y"));
    }
    // The store that joined by snapshot recovers it after a restart.
    cluster.stop_store(4);
    cluster.start_store(4);
    cluster.must_engine_eq(4, b"s007", Some(&7u32.to_le_bytes()));
    let _ = RemoveNode;
}
