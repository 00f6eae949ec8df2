//! Lease reads: a deposed leader must not serve stale data.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use proto::eraftpb::{self, MessageType};
use proto::errorpb;
use proto::metapb::{Peer, Region};
use proto::raft_serverpb::RaftMessage;
use protobuf::Message as _;
use raftstore::{Config, Transport};
use test_cluster::*;

#[test]
fn isolated_old_leader_refuses_reads_after_its_lease() {
    let cluster = Cluster::run(3);
    let old = cluster.wait_leader(1);
    cluster.must_put(b"k", b"v1");
    // A lease read on the leader works while it is healthy.
    assert_eq!(cluster.must_get(b"k"), Some(b"v1".to_vec()));

    cluster.isolate(old.store_id);
    let new = cluster.wait_leader_elsewhere(1, old.store_id);
    cluster.must_put(b"k", b"v2");

    // The old leader's lease ran out before anyone else could be elected.
    let delegate = cluster
        .store(old.store_id)
        .meta()
        .lock()
        .readers
        .get(&1)
        .cloned()
        .expect("read delegate");
    assert!(!delegate.can_read_locally(Instant::now()));

    // Asking the old leader directly never returns the stale value.
    let region = cluster.region(1).unwrap();
    let req = Cluster::new_request(&region, old, vec![get_request(b"k")]);
    match cluster.call_on_store(old.store_id, req, Duration::from_millis(300)) {
        Ok(resp) => {
            let err: Option<errorpb::Error> =
                resp.response.header.as_ref().and_then(|h| h.error.clone());
            assert!(
                err.is_some(),
                "stale read served: {:?}",
                get_value(&resp.response)
            );
        }
        Err(RequestError::Timeout) => {}
        Err(e) => panic!("unexpected: {e:?}"),
    }

    // The new leader serves the new value, locally and through ReadIndex.
    assert_eq!(cluster.get(b"k", false).unwrap(), Some(b"v2".to_vec()));
    assert_eq!(cluster.get(b"k", true).unwrap(), Some(b"v2".to_vec()));
    assert_ne!(new.store_id, old.store_id);
}

#[test]
fn read_index_reads_see_the_latest_write() {
    let cluster = Cluster::run(3);
    cluster.wait_leader(1);
    for i in 0..20u8 {
        cluster.must_put(b"ri", &[i]);
        assert_eq!(cluster.get(b"ri", true).unwrap(), Some(vec![i]));
    }
}

/// Holds every `MsgTimeoutNow` sent to one store while `holding` is set; `release` sends the
/// held ones on, as a network that buffered them for a while would.
struct HoldTimeoutNow {
    to_store: u64,
    holding: AtomicBool,
    held: Mutex<Vec<RaftMessage>>,
}

impl Filter for HoldTimeoutNow {
    fn check(&self, _: u64, to: u64, msg: &RaftMessage) -> FilterAction {
        if to != self.to_store || !self.holding.load(Ordering::SeqCst) || msg.extra.is_some() {
            return FilterAction::Pass;
        }
        match eraftpb::Message::parse_from_bytes(&msg.message) {
            Ok(m) if m.get_msg_type() == MessageType::MsgTimeoutNow => {
                self.held.lock().push(msg.clone());
                FilterAction::Drop
            }
            _ => FilterAction::Pass,
        }
    }
}

/// Drops everything sent to one store (it still sends).
struct DropIncoming(u64);

impl Filter for DropIncoming {
    fn check(&self, _: u64, to: u64, _: &RaftMessage) -> FilterAction {
        if to == self.0 {
            FilterAction::Drop
        } else {
            FilterAction::Pass
        }
    }
}

/// Puts `value` under `k` through `peer` until it is accepted (bounded; `what` names the
/// failure).
fn put_until_accepted(cluster: &Cluster, region: &Region, peer: Peer, value: &[u8], what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let req = Cluster::new_request(region, peer, vec![put_request(b"k", value)]);
        let resp = cluster.call_on_store(peer.store_id, req, Duration::from_secs(5));
        let accepted = resp.is_ok_and(|r| {
            r.response
                .header
                .as_ref()
                .and_then(|h| h.error.as_ref())
                .is_none()
        });
        if accepted {
            return;
        }
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A leader transfer that raft gave up on may still happen: the target campaigns whenever
/// the `MsgTimeoutNow` reaches it, and the other voters grant a transfer campaign even while
/// they hear from the old leader. So a leader that sent `MsgTimeoutNow` in a term must not
/// serve lease reads again in that term; here the message arrives late, after the transfer
/// was abandoned and the old leader committed a write, and the old leader (cut off from
/// hearing about the new term) is asked to read while the new leader has written.
#[test]
fn a_late_timeout_now_cannot_leave_the_old_leader_a_lease() {
    // A long lease, so that the whole scenario fits inside it on a slow machine.
    let cfg = Config {
        raft_base_tick_interval: Duration::from_millis(100),
        raft_election_timeout_ticks: 50,
        raft_store_max_leader_lease: Duration::from_millis(4900),
        hibernate_regions: false,
        ..Config::for_tests()
    };
    let mut cluster = Cluster::with_config(3, cfg);
    cluster.bootstrap(&[]);
    cluster.start();
    let old = cluster.wait_leader(1);
    cluster.must_put(b"k", b"v1");
    let region = cluster.region(1).unwrap();
    let target = *region
        .peers
        .iter()
        .find(|p| p.id != old.id)
        .expect("a follower");
    // The target has answered the leader, so the leader knows where its log ends.
    cluster.must_engine_eq(target.store_id, b"k", Some(b"v1"));
    let hold = Arc::new(HoldTimeoutNow {
        to_store: target.store_id,
        holding: AtomicBool::new(true),
        held: Mutex::new(Vec::new()),
    });
    cluster.transport.add_filter(hold.clone());

    cluster.transfer_leader(1, target).unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || !hold.held.lock().is_empty()),
        "no MsgTimeoutNow was sent"
    );
    // Raft gives the transfer up after an election timeout; proposals are taken again.
    put_until_accepted(
        &cluster,
        &region,
        old,
        b"v2",
        "the transfer was never given up",
    );
    assert_eq!(cluster.leader_of(1).map(|l| l.id), Some(old.id));

    // The old leader stops hearing anything; the held MsgTimeoutNow now arrives.
    cluster.add_filter(DropIncoming(old.store_id));
    hold.holding.store(false, Ordering::SeqCst);
    for msg in hold.held.lock().drain(..) {
        cluster.transport.send(msg);
    }
    put_until_accepted(
        &cluster,
        &region,
        target,
        b"v3",
        "the target never took over",
    );

    // The old leader must not answer v2 from its own state.
    let req = Cluster::new_request(&region, old, vec![get_request(b"k")]);
    match cluster.call_on_store(old.store_id, req, Duration::from_millis(500)) {
        Ok(resp) => {
            let header_error = resp.response.header.as_ref().and_then(|h| h.error.clone());
            let value = get_value(&resp.response);
            assert!(
                header_error.is_some() || value.as_deref() == Some(b"v3"),
                "the old leader served {:?} after the new leader wrote v3",
                value.map(|v| String::from_utf8_lossy(&v).into_owned())
            );
        }
        Err(RequestError::Timeout) => {}
        Err(e) => panic!("unexpected: {e:?}"),
    }
}
