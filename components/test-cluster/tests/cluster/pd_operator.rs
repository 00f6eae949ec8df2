//! Operator steps from PD, executed by region leaders: membership changes, leader transfer
//! and splits; steps that no longer apply are ignored.

use proto::metapb::{Peer, PeerRole, Region};
use proto::pdpb::{
    ChangePeer, ChangePeerV2, CheckPolicy, ConfChangeType, RegionHeartbeatResponse, SplitRegion,
    TransferLeader,
};
use proto::raft_cmdpb::{CmdType, GetRequest, Request};
use test_cluster::*;

fn change(peer: Peer, ty: ConfChangeType) -> ChangePeer {
    ChangePeer {
        peer: Some(peer),
        change_type: ty as i32,
    }
}

fn step_for(region: &Region) -> RegionHeartbeatResponse {
    RegionHeartbeatResponse {
        region_id: region.id,
        region_epoch: region.region_epoch,
        ..Default::default()
    }
}

/// Sends a step to the region's current leader, again and again (as PD resends on every
/// heartbeat) until `done` holds.
fn run_step(
    cluster: &Cluster,
    region_id: u64,
    make: impl Fn(&Region) -> RegionHeartbeatResponse,
    mut done: impl FnMut(&Cluster) -> bool,
) -> bool {
    wait_until(DEFAULT_TIMEOUT, || {
        if done(cluster) {
            return true;
        }
        if let (Some(region), Some(leader)) =
            (cluster.region(region_id), cluster.leader_of(region_id))
        {
            cluster.pd_operator(leader.store_id, make(&region));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        false
    })
}

fn role_on(cluster: &Cluster, region_id: u64, store_id: u64) -> Option<PeerRole> {
    cluster
        .region(region_id)?
        .peers
        .iter()
        .find(|p| p.store_id == store_id)
        .map(|p| p.role())
}

/// A read sent through the peer's mailbox: once it is answered, every message queued
/// before it has been handled.
fn mailbox_barrier(cluster: &Cluster, store_id: u64, region_id: u64) {
    let region = cluster
        .store(store_id)
        .meta()
        .lock()
        .region(region_id)
        .cloned();
    let region = region.expect("the store has the region");
    let me = *region
        .peers
        .iter()
        .find(|p| p.store_id == store_id)
        .unwrap();
    let mut req = Cluster::new_request(
        &region,
        me,
        vec![Request {
            cmd_type: CmdType::Get as i32,
            get: Some(GetRequest {
                cf: String::new(),
                key: region.start_key.clone(),
            }),
            ..Default::default()
        }],
    );
    if let Some(h) = req.header.as_mut() {
        h.read_quorum = true;
    }
    cluster
        .call_on_store(store_id, req, DEFAULT_TIMEOUT)
        .expect("the peer answers");
}

#[test]
fn add_learner_promote_and_remove_through_operators() {
    let mut cluster = Cluster::new(4);
    cluster.bootstrap_on(&[], &[1, 2, 3]);
    cluster.start();
    cluster.wait_leader(1);
    cluster.must_put(b"k1", b"v1");
    let new_peer = Peer {
        id: cluster.pd.alloc_id(),
        store_id: 4,
        ..Default::default()
    };

    let added = run_step(
        &cluster,
        1,
        |r| RegionHeartbeatResponse {
            change_peer: Some(change(new_peer, ConfChangeType::AddLearnerNode)),
            ..step_for(r)
        },
        |c| role_on(c, 1, 4) == Some(PeerRole::Learner),
    );
    assert!(added, "a learner is added on store 4");
    cluster.must_engine_eq(4, b"k1", Some(b"v1"));

    let promoted = run_step(
        &cluster,
        1,
        |r| RegionHeartbeatResponse {
            change_peer_v2: Some(ChangePeerV2 {
                changes: vec![change(new_peer, ConfChangeType::AddNode)],
            }),
            ..step_for(r)
        },
        |c| role_on(c, 1, 4) == Some(PeerRole::Voter),
    );
    assert!(promoted, "the learner becomes a voter");
    cluster.must_put(b"k2", b"v2");
    cluster.must_engine_eq(4, b"k2", Some(b"v2"));

    let removed = run_step(
        &cluster,
        1,
        |r| RegionHeartbeatResponse {
            change_peer: Some(change(new_peer, ConfChangeType::RemoveNode)),
            ..step_for(r)
        },
        |c| role_on(c, 1, 4).is_none(),
    );
    assert!(removed, "the peer on store 4 is removed");
    assert!(wait_until(DEFAULT_TIMEOUT, || cluster
        .store(4)
        .meta()
        .lock()
        .region(1)
        .is_none()));
    cluster.must_engine_eq(4, b"k1", None);
    assert_eq!(cluster.region(1).unwrap().peers.len(), 3);
    cluster.shutdown();
}

#[test]
fn transfer_leader_and_split_through_operators() {
    let cluster = Cluster::run(3);
    let leader = cluster.wait_leader(1);
    cluster.must_put(b"a", b"1");
    cluster.must_put(b"x", b"2");
    let region = cluster.region(1).unwrap();
    let target = *region.peers.iter().find(|p| p.id != leader.id).unwrap();
    let moved = run_step(
        &cluster,
        1,
        |r| RegionHeartbeatResponse {
            transfer_leader: Some(TransferLeader {
                peer: Some(target),
                peers: vec![],
            }),
            ..step_for(r)
        },
        |c| c.leader_of(1).map(|l| l.id) == Some(target.id),
    );
    assert!(moved, "leadership moves to the target");

    // Keys outside the region (or on its boundary) are skipped; the one inside is used.
    let split = run_step(
        &cluster,
        1,
        |r| RegionHeartbeatResponse {
            split_region: Some(SplitRegion {
                policy: CheckPolicy::Usekey as i32,
                keys: vec![b"".to_vec(), b"m".to_vec()],
            }),
            ..step_for(r)
        },
        |c| c.region_for_key(b"a").is_some_and(|r| r.end_key == b"m"),
    );
    assert!(split, "the region splits at m");
    let right = cluster.region_for_key(b"x").unwrap();
    assert_eq!(right.start_key, b"m");
    cluster.wait_leader(right.id);
    let left = cluster.region_for_key(b"a").unwrap();
    cluster.wait_leader(left.id);
    assert_eq!(cluster.must_get(b"a"), Some(b"1".to_vec()));
    assert_eq!(cluster.must_get(b"x"), Some(b"2".to_vec()));
}

#[test]
fn stale_or_misdirected_steps_are_ignored() {
    let mut cluster = Cluster::new(4);
    cluster.bootstrap_on(&[], &[1, 2, 3]);
    cluster.start();
    let leader = cluster.wait_leader(1);
    cluster.must_put(b"k", b"v");
    let region = cluster.region(1).unwrap();
    let conf_ver = region.region_epoch.unwrap().conf_ver;
    let stale_peer = Peer {
        id: cluster.pd.alloc_id(),
        store_id: 4,
        ..Default::default()
    };
    let good_peer = Peer {
        id: cluster.pd.alloc_id(),
        store_id: 4,
        ..Default::default()
    };

    // A follower is not the one to act: it ignores a valid step.
    let follower = *region.peers.iter().find(|p| p.id != leader.id).unwrap();
    cluster.pd_operator(
        follower.store_id,
        RegionHeartbeatResponse {
            change_peer: Some(change(stale_peer, ConfChangeType::AddLearnerNode)),
            ..step_for(&region)
        },
    );
    mailbox_barrier(&cluster, follower.store_id, 1);

    // A step for an older epoch is ignored by the leader.
    let mut old = region.clone();
    if let Some(e) = old.region_epoch.as_mut() {
        e.conf_ver -= 1;
    }
    cluster.pd_operator(
        leader.store_id,
        RegionHeartbeatResponse {
            change_peer: Some(change(stale_peer, ConfChangeType::AddLearnerNode)),
            ..step_for(&old)
        },
    );
    // The leader then gets current steps; had an ignored one run, store 4 would already
    // hold a peer and these would be refused.
    let ran = run_step(
        &cluster,
        1,
        |r| RegionHeartbeatResponse {
            change_peer: Some(change(good_peer, ConfChangeType::AddLearnerNode)),
            ..step_for(r)
        },
        |c| role_on(c, 1, 4).is_some(),
    );
    assert!(ran, "the current step runs");
    let after = cluster.region(1).unwrap();
    let on4 = after.peers.iter().find(|p| p.store_id == 4).unwrap();
    assert_eq!(on4.id, good_peer.id);
    assert_eq!(after.region_epoch.unwrap().conf_ver, conf_ver + 1);
    cluster.must_engine_eq(4, b"k", Some(b"v"));

    // A step for a region this store does not know is dropped quietly.
    cluster.pd_operator(
        leader.store_id,
        RegionHeartbeatResponse {
            region_id: 999,
            ..Default::default()
        },
    );
    cluster.must_put(b"k2", b"v2");
    cluster.shutdown();
}

#[test]
fn a_learner_that_caught_up_is_reported_without_waiting_for_the_slow_tick() {
    // Periodic reports are far apart here: only event-driven ones can arrive in time.
    let cfg = raftstore::Config {
        pd_heartbeat_tick_interval: std::time::Duration::from_secs(600),
        ..raftstore::Config::for_tests()
    };
    let mut cluster = Cluster::with_config(4, cfg);
    cluster.bootstrap_on(&[], &[1, 2, 3]);
    cluster.start();
    cluster.wait_leader(1);
    for i in 0..50u32 {
        cluster.must_put(format!("k{i}").as_bytes(), b"v");
    }
    let learner = Peer {
        id: cluster.pd.alloc_id(),
        store_id: 4,
        role: PeerRole::Learner as i32,
        ..Default::default()
    };
    let added = run_step(
        &cluster,
        1,
        |r| RegionHeartbeatResponse {
            change_peer: Some(change(learner, ConfChangeType::AddLearnerNode)),
            ..step_for(r)
        },
        |c| role_on(c, 1, 4) == Some(PeerRole::Learner),
    );
    assert!(added, "a learner is added on store 4");
    let report = cluster.pd.wait_region_heartbeat(1, DEFAULT_TIMEOUT, |hb| {
        let region = hb.region.as_ref();
        region.is_some_and(|r| r.peers.iter().any(|p| p.id == learner.id))
            && !hb.pending_peers.iter().any(|p| p.id == learner.id)
    });
    assert!(
        report.is_some(),
        "PD hears that the learner caught up: {:?}",
        cluster.pd.region_heartbeat(1)
    );
    cluster.must_engine_eq(4, b"k7", Some(b"v"));
}
