//! A peer whose raft poller is held (here in its log write) keeps receiving raft messages;
//! its mailbox must stay bounded, and the peer must catch up once the poller goes on.

use proto::eraftpb::{self, MessageType};
use proto::raft_serverpb::RaftMessage;
use protobuf::Message as _;
use raftstore::testexport::failpoints::LOG_WRITER_BEFORE_FSYNC;
use test_cluster::failpoint::Gate;
use test_cluster::*;

/// The mailbox bound of this test's stores (`notify-capacity`).
const CAPACITY: usize = 256;
/// Sends between two length checks of a mailbox under its bound.
const CHECK_INTERVAL: usize = 8;

#[test]
fn raft_messages_for_a_held_peer_stop_queueing_at_its_mailbox_bound() {
    let _scenario = fail::FailScenario::setup();
    let cfg = raftstore::Config {
        // The poller writes its round's readies itself, so holding the write holds the peer.
        store_io_pool_size: 0,
        store_pool_size: 1,
        notify_capacity: CAPACITY,
        ..raftstore::Config::for_tests()
    };
    let mut cluster = Cluster::with_config(3, cfg);
    cluster.bootstrap(&[]);
    cluster.start();
    let leader = cluster.wait_leader(1);
    let region = cluster.region(1).expect("region 1");
    let follower = region
        .peers
        .iter()
        .copied()
        .find(|p| p.store_id != leader.store_id)
        .expect("a follower");
    cluster.must_put(b"k", b"v1");
    cluster.must_engine_eq(follower.store_id, b"k", Some(b"v1"));

    let gate = Gate::hold(LOG_WRITER_BEFORE_FSYNC, follower.store_id);
    cluster.must_put(b"k", b"v2");
    assert!(
        gate.wait_held(DEFAULT_TIMEOUT),
        "the follower's poller never reached its log write"
    );
    let term = cluster.newest_term(1);
    let heartbeat = || {
        let mut m = eraftpb::Message::default();
        m.set_msg_type(MessageType::MsgHeartbeat);
        m.from = leader.id;
        m.to = follower.id;
        m.term = term;
        RaftMessage {
            region_id: 1,
            from_peer: Some(leader),
            to_peer: Some(follower),
            region_epoch: region.region_epoch,
            message: m.write_to_bytes().expect("encodes"),
            ..Default::default()
        }
    };
    let router = cluster.store(follower.store_id).router();
    for _ in 0..10_000 {
        // A refusal is the point of the test; the message counts as delivered or dropped.
        let _ = router.send_raft_message(heartbeat());
    }
    let queued = router.inner.mailbox(1).map_or(0, |m| m.len());
    assert!(
        queued <= CAPACITY + 2 * CHECK_INTERVAL,
        "{queued} raft messages queued for a held peer with a mailbox bound of {CAPACITY}"
    );

    gate.open();
    cluster.must_put(b"k", b"v3");
    cluster.must_engine_eq(follower.store_id, b"k", Some(b"v3"));
}
