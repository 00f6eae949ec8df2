//! Commands that cannot succeed get the right typed error.

use std::time::Duration;

use proto::metapb::RegionEpoch;
use test_cluster::*;

fn error_of(resp: Result<raftstore::CmdResponse, RequestError>) -> proto::errorpb::Error {
    let resp = resp.expect("store answered");
    resp.response
        .header
        .and_then(|h| h.error)
        .expect("response carries an error")
}

#[test]
fn region_errors_are_typed() {
    // Every check below asks the leader found first: an election timeout of 1 s keeps it
    // in place on a loaded machine (with the tests' usual 100 ms, a stalled leader's
    // followers may elect another one midway).
    let mut cluster = Cluster::with_config(
        3,
        raftstore::Config {
            raft_election_timeout_ticks: 100,
            ..raftstore::Config::for_tests()
        },
    );
    cluster.bootstrap(&[b"m".to_vec()]);
    cluster.start();
    let leader = cluster.wait_leader(1);
    cluster.must_put(b"a", b"1");
    let region = cluster.region(1).unwrap();
    let t = Duration::from_secs(5);

    // A follower answers NotLeader with the leader as a hint.
    let follower_store = cluster
        .store_ids()
        .into_iter()
        .find(|s| *s != leader.store_id)
        .unwrap();
    let follower = *region
        .peers
        .iter()
        .find(|p| p.store_id == follower_store)
        .unwrap();
    let req = Cluster::new_request(&region, follower, vec![put_request(b"a", b"2")]);
    let e = error_of(cluster.call_on_store(follower_store, req, t));
    let nl = e.not_leader.expect("not leader");
    assert_eq!(nl.region_id, 1);
    assert_eq!(nl.leader.map(|p| p.id), Some(leader.id));

    // A stale epoch gets EpochNotMatch with the current region.
    let mut stale = region.clone();
    stale.region_epoch = Some(RegionEpoch {
        conf_ver: 1,
        version: 0,
    });
    let req = Cluster::new_request(&stale, leader, vec![put_request(b"a", b"2")]);
    let e = error_of(cluster.call_on_store(leader.store_id, req, t));
    let current = e.epoch_not_match.expect("epoch not match").current_regions;
    assert_eq!(current[0].id, 1);
    assert_eq!(current[0].region_epoch, region.region_epoch);

    // A key outside the region.
    let req = Cluster::new_request(&region, leader, vec![put_request(b"x", b"2")]);
    let e = error_of(cluster.call_on_store(leader.store_id, req, t));
    let kn = e.key_not_in_region.expect("key not in region");
    assert_eq!((kn.key, kn.region_id), (b"x".to_vec(), 1));

    // An unknown region.
    let mut unknown = region.clone();
    unknown.id = 99;
    let req = Cluster::new_request(&unknown, leader, vec![put_request(b"a", b"2")]);
    let e = error_of(cluster.call_on_store(leader.store_id, req, t));
    assert_eq!(e.region_not_found.map(|r| r.region_id), Some(99));

    // An entry over the size limit.
    let big = vec![0u8; cluster.cfg.raft_entry_max_size as usize + 1];
    let req = Cluster::new_request(&region, leader, vec![put_request(b"a", &big)]);
    let e = error_of(cluster.call_on_store(leader.store_id, req, t));
    assert_eq!(e.raft_entry_too_large.map(|r| r.region_id), Some(1));

    // A request for another store.
    let mut wrong = leader;
    wrong.store_id = follower_store;
    let req = Cluster::new_request(&region, wrong, vec![put_request(b"a", b"2")]);
    let e = error_of(cluster.call_on_store(leader.store_id, req, t));
    assert!(e.store_not_match.is_some());

    // An unknown column family is refused and nothing is written.
    let mut put = put_request(b"a", b"3");
    put.put.as_mut().unwrap().cf = "nope".into();
    let req = Cluster::new_request(&region, leader, vec![put]);
    let e = error_of(cluster.call_on_store(leader.store_id, req, t));
    assert!(e.message.contains("column family"), "{}", e.message);

    // None of the refused commands changed the data.
    assert_eq!(cluster.must_get(b"a"), Some(b"1".to_vec()));
    for s in cluster.store_ids() {
        cluster.must_engine_eq(s, b"a", Some(b"1"));
    }
}

#[test]
fn proposals_overwritten_by_a_new_leader_get_stale_command() {
    let cluster = Cluster::run(3);
    let old = cluster.wait_leader(1);
    cluster.must_put(b"k", b"v");
    cluster.isolate(old.store_id);
    let region = cluster.region(1).unwrap();
    let mut waiting = Vec::new();
    for i in 0..3u8 {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let req = Cluster::new_request(&region, old, vec![put_request(b"k", &[i])]);
        cluster.store(old.store_id).propose(
            req,
            raftstore::Callback::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        waiting.push(rx);
    }
    cluster.wait_leader_elsewhere(1, old.store_id);
    cluster.must_put(b"k", b"new");
    cluster.clear_filters();
    cluster.must_engine_eq(old.store_id, b"k", Some(b"new"));
    for rx in waiting {
        let resp = rx
            .recv_timeout(DEFAULT_TIMEOUT)
            .expect("every proposal is answered");
        let err = resp
            .response
            .header
            .and_then(|h| h.error)
            .expect("an error");
        assert!(
            err.stale_command.is_some() || err.not_leader.is_some(),
            "unexpected answer {err:?}"
        );
    }
}

#[test]
fn a_full_mailbox_answers_server_is_busy_and_writes_nothing() {
    let cfg = raftstore::Config {
        notify_capacity: 8,
        ..raftstore::Config::for_tests()
    };
    let mut cluster = Cluster::with_config(3, cfg);
    cluster.bootstrap(&[]);
    cluster.start();
    let leader = cluster.wait_leader(1);
    let region = cluster.region(1).unwrap();
    // Far more commands than the mailbox holds, faster than a poller can take them.
    let mut waiting = Vec::new();
    for i in 0..2000u32 {
        let key = format!("busy{i:05}").into_bytes();
        let (tx, rx) = crossbeam_channel::bounded(1);
        let req = Cluster::new_request(&region, leader, vec![put_request(&key, b"v")]);
        cluster.store(leader.store_id).propose(
            req,
            raftstore::Callback::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        waiting.push((key, rx));
    }
    let mut busy = Vec::new();
    for (key, rx) in waiting {
        let resp = rx
            .recv_timeout(DEFAULT_TIMEOUT)
            .expect("every command is answered");
        match resp.response.header.and_then(|h| h.error) {
            Some(e) if e.server_is_busy.is_some() => busy.push(key),
            Some(e) => panic!("unexpected error {}", e.message),
            None => {}
        }
    }
    assert!(!busy.is_empty(), "a full mailbox pushed back");
    for key in busy.iter().take(50) {
        assert_eq!(
            cluster.must_get(key),
            None,
            "a refused write was not applied"
        );
    }
}
