//! Membership changes among existing peers: removal (also of the leader), demotion and
//! promotion through joint consensus, and refusals.

use proto::metapb::{Peer, PeerRole};
use proto::raft_cmdpb::ConfChangeType::{AddLearnerNode, AddNode, RemoveNode};
use test_cluster::*;

fn peer_on(cluster: &Cluster, region_id: u64, store_id: u64) -> Peer {
    *cluster
        .region(region_id)
        .unwrap()
        .peers
        .iter()
        .find(|p| p.store_id == store_id)
        .unwrap()
}

#[test]
fn remove_a_follower_then_the_leader() {
    let mut cluster = Cluster::run(3);
    let leader = cluster.wait_leader(1);
    cluster.must_put(b"k1", b"v1");
    let follower_store = cluster
        .store_ids()
        .into_iter()
        .find(|s| *s != leader.store_id)
        .unwrap();
    let follower = peer_on(&cluster, 1, follower_store);
    let region = cluster.must_change_peers(1, vec![(RemoveNode, follower)]);
    assert_eq!(region.peers.len(), 2);
    assert_eq!(region.region_epoch.unwrap().conf_ver, 2);
    // The removed peer is gone from its store, with its data.
    assert!(wait_until(DEFAULT_TIMEOUT, || cluster
        .store(follower_store)
        .meta()
        .lock()
        .region(1)
        .is_none()));
    assert_eq!(cluster.engine_get(follower_store, b"k1"), None);
    cluster.must_put(b"k2", b"v2");

    // Now remove the leader itself: the last voter takes over.
    let leader = cluster.wait_leader(1);
    cluster.must_change_peers(1, vec![(RemoveNode, leader)]);
    let new = cluster.wait_leader_elsewhere(1, leader.store_id);
    assert_ne!(new.store_id, follower_store);
    cluster.must_put(b"k3", b"v3");
    assert_eq!(cluster.must_get(b"k1"), Some(b"v1".to_vec()));
    assert_eq!(cluster.must_get(b"k2"), Some(b"v2".to_vec()));
    assert!(wait_until(DEFAULT_TIMEOUT, || cluster
        .engine_get(leader.store_id, b"k1")
        .is_none()));

    // After a full restart the removed peers stay removed and the survivor serves.
    for s in cluster.store_ids() {
        cluster.stop_store(s);
    }
    for s in cluster.store_ids() {
        cluster.start_store(s);
    }
    assert_eq!(
        cluster.store(follower_store).meta().lock().region_count(),
        0
    );
    assert_eq!(
        cluster.store(leader.store_id).meta().lock().region_count(),
        0
    );
    assert_eq!(cluster.must_get(b"k3"), Some(b"v3".to_vec()));
    assert_eq!(cluster.region(1).unwrap().peers.len(), 1);
}

#[test]
fn demote_and_promote_through_joint_consensus() {
    let cluster = Cluster::run(3);
    let leader = cluster.wait_leader(1);
    let others: Vec<u64> = cluster
        .store_ids()
        .into_iter()
        .filter(|s| *s != leader.store_id)
        .collect();
    let (a, b) = (
        peer_on(&cluster, 1, others[0]),
        peer_on(&cluster, 1, others[1]),
    );
    // Demote a to a learner with a simple change.
    let r = cluster.must_change_peers(1, vec![(AddLearnerNode, a)]);
    assert_eq!(
        r.peers.iter().find(|p| p.id == a.id).unwrap().role,
        PeerRole::Learner as i32
    );
    cluster.must_put(b"learner", b"sees-it");
    cluster.must_engine_eq(a.store_id, b"learner", Some(b"sees-it"));
    // Swap roles of a and b in one joint change, then leave the joint state.
    let joint = cluster.must_change_peers(1, vec![(AddNode, a), (AddLearnerNode, b)]);
    let role =
        |r: &proto::metapb::Region, p: Peer| r.peers.iter().find(|x| x.id == p.id).unwrap().role;
    assert_eq!(role(&joint, a), PeerRole::IncomingVoter as i32);
    assert_eq!(role(&joint, b), PeerRole::DemotingVoter as i32);
    cluster.must_put(b"joint", b"ok");
    let left = cluster.must_change_peers(1, vec![]);
    assert_eq!(role(&left, a), PeerRole::Voter as i32);
    assert_eq!(role(&left, b), PeerRole::Learner as i32);
    // Then drop the learner; writes go on and every voter has them.
    cluster.must_change_peers(1, vec![(RemoveNode, b)]);
    cluster.must_put(b"after", b"swap");
    cluster.must_engine_eq(a.store_id, b"after", Some(b"swap"));
    cluster.must_engine_eq(a.store_id, b"joint", Some(b"ok"));
    assert!(wait_until(DEFAULT_TIMEOUT, || cluster
        .engine_get(b.store_id, b"joint")
        .is_none()));
}

#[test]
fn bad_membership_changes_are_refused() {
    let cluster = Cluster::run(3);
    let leader = cluster.wait_leader(1);
    let missing = Peer {
        id: 999,
        store_id: 9,
        ..Default::default()
    };
    let err = cluster
        .change_peers(1, vec![(RemoveNode, missing)])
        .unwrap_err();
    assert!(
        matches!(&err, RequestError::Region(e) if e.message.contains("not a member")),
        "{err:?}"
    );
    for s in cluster
        .store_ids()
        .into_iter()
        .filter(|s| *s != leader.store_id)
    {
        let p = peer_on(&cluster, 1, s);
        cluster.must_change_peers(1, vec![(RemoveNode, p)]);
    }
    // Every store's view has caught up with the last change before the next is tried.
    assert!(wait_until(DEFAULT_TIMEOUT, || cluster
        .region(1)
        .unwrap()
        .peers
        .len()
        == 1));
    let leader = cluster.wait_leader(1);
    let err = cluster
        .change_peers(1, vec![(RemoveNode, leader)])
        .unwrap_err();
    assert!(
        matches!(&err, RequestError::Region(e) if e.message.contains("without a voter")),
        "{err:?}"
    );
    // Nothing changed: the single voter still serves.
    cluster.must_put(b"alone", b"fine");
    assert_eq!(cluster.region(1).unwrap().peers.len(), 1);
}

#[test]
fn a_peer_removed_while_partitioned_cleans_up_after_rejoining() {
    let cluster = Cluster::run(3);
    let leader = cluster.wait_leader(1);
    cluster.must_put(b"k", b"v");
    let away_store = cluster
        .store_ids()
        .into_iter()
        .find(|s| *s != leader.store_id)
        .unwrap();
    let away = peer_on(&cluster, 1, away_store);
    cluster.must_engine_eq(away_store, b"k", Some(b"v"));
    cluster.isolate(away_store);
    cluster.must_change_peers(1, vec![(RemoveNode, away)]);
    cluster.must_put(b"k2", b"v2");
    // While cut off it still believes it is a member.
    assert!(cluster.store(away_store).meta().lock().region(1).is_some());
    cluster.clear_filters();
    // Its first messages to the new configuration are answered with "you were removed".
    assert!(
        wait_until(DEFAULT_TIMEOUT, || cluster
            .store(away_store)
            .meta()
            .lock()
            .region(1)
            .is_none()),
        "the stale peer destroyed itself"
    );
    assert!(wait_until(DEFAULT_TIMEOUT, || cluster
        .engine_get(away_store, b"k")
        .is_none()));
    assert_eq!(cluster.must_get(b"k2"), Some(b"v2".to_vec()));
}

#[test]
fn replace_every_peer_one_by_one_under_load() {
    use std::sync::Arc;
    let mut cluster = Cluster::new(6);
    cluster.bootstrap_on(&[], &[1, 2, 3]);
    cluster.start();
    cluster.wait_leader(1);
    let cluster = Arc::new(cluster);
    let writers = Writers::start(cluster.clone(), 16, 400, |w, i| {
        format!("r{w:02}-{i:04}").into_bytes()
    });
    for (old_store, new_store) in [(1u64, 4u64), (2, 5), (3, 6)] {
        writers.wait_acked(10);
        let old = peer_on(&cluster, 1, old_store);
        let new = Peer {
            id: 10_000 + new_store,
            store_id: new_store,
            role: PeerRole::Learner as i32,
            is_witness: false,
        };
        cluster.must_change_peers(1, vec![(AddLearnerNode, new)]);
        cluster.must_engine_eq(new_store, b"never-written", None);
        // The leader hands over before it is demoted.
        if cluster.leader_of(1).is_some_and(|l| l.id == old.id) {
            let other = *cluster
                .region(1)
                .unwrap()
                .peers
                .iter()
                .find(|p| p.id != old.id && p.role == PeerRole::Voter as i32)
                .unwrap();
            cluster.must_transfer_leader(1, other);
        }
        cluster.must_change_peers(1, vec![(AddNode, new), (AddLearnerNode, old)]);
        cluster.must_change_peers(1, vec![]);
        cluster.must_change_peers(1, vec![(RemoveNode, old)]);
    }
    let acked = writers.finish();
    assert!(acked.len() > 100, "writes went on: {}", acked.len());
    let region = cluster.region(1).unwrap();
    let mut stores: Vec<u64> = region.peers.iter().map(|p| p.store_id).collect();
    stores.sort();
    assert_eq!(stores, vec![4, 5, 6]);
    for key in &acked {
        assert_eq!(
            cluster.must_get(key).as_deref(),
            Some(key.as_slice()),
            "acknowledged write lost"
        );
    }
    let last = acked.last().unwrap();
    for s in [4, 5, 6] {
        cluster.must_engine_eq(s, last, Some(last));
    }
}

#[test]
fn a_partitioned_peer_misses_a_split_and_its_removal_then_is_cleaned_up() {
    let cluster = Cluster::run(3);
    let leader = cluster.wait_leader(1);
    cluster.must_put(b"a", b"left");
    cluster.must_put(b"x", b"right");
    let away_store = cluster
        .store_ids()
        .into_iter()
        .find(|s| *s != leader.store_id)
        .unwrap();
    cluster.must_engine_eq(away_store, b"x", Some(b"right"));
    cluster.isolate(away_store);
    // Split [.., m) off; region 1 keeps [m, ..) and then drops the isolated peer.
    let regions = cluster.must_split(&[b"m"]);
    let left = regions.iter().find(|r| r.end_key == b"m").unwrap().id;
    let away = peer_on(&cluster, 1, away_store);
    cluster.must_change_peers(1, vec![(RemoveNode, away)]);
    cluster.must_put(b"x", b"right2");
    cluster.must_put(b"b", b"left2");
    cluster.clear_filters();
    // The stale peer learns it was removed from region 1 and cleans up; the left region's
    // peer on that store is rebuilt from its leader and holds the newest data.
    assert!(wait_until(DEFAULT_TIMEOUT, || cluster
        .store(away_store)
        .meta()
        .lock()
        .region(1)
        .is_none()));
    cluster.must_engine_eq(away_store, b"b", Some(b"left2"));
    cluster.must_engine_eq(away_store, b"a", Some(b"left"));
    cluster.must_engine_eq(away_store, b"x", None);
    assert!(wait_until(DEFAULT_TIMEOUT, || cluster
        .store(away_store)
        .meta()
        .lock()
        .region(left)
        .is_some()));
}

#[test]
fn a_peer_removed_while_its_store_was_down_cleans_up_after_restart() {
    let mut cluster = Cluster::run(3);
    let leader = cluster.wait_leader(1);
    cluster.must_put(b"k", b"v");
    let away_store = cluster
        .store_ids()
        .into_iter()
        .find(|s| *s != leader.store_id)
        .unwrap();
    let away = peer_on(&cluster, 1, away_store);
    cluster.must_engine_eq(away_store, b"k", Some(b"v"));
    cluster.stop_store(away_store);
    cluster.must_change_peers(1, vec![(RemoveNode, away)]);
    cluster.must_put(b"k2", b"v2");
    // Restarted, it still believes it is a member, and starts asleep asking for its leader;
    // the leader answers that it was removed.
    cluster.start_store(away_store);
    assert!(
        wait_until(DEFAULT_TIMEOUT, || cluster
            .store(away_store)
            .meta()
            .lock()
            .region(1)
            .is_none()),
        "the stale peer destroyed itself"
    );
    assert!(wait_until(DEFAULT_TIMEOUT, || cluster
        .engine_get(away_store, b"k")
        .is_none()));
    assert_eq!(cluster.must_get(b"k2"), Some(b"v2".to_vec()));
}

/// A peer added as a learner and then promoted leads with its current role: PD's region
/// heartbeat names it a voter, not the learner it was created as.
#[test]
fn a_promoted_learner_leads_as_a_voter() {
    let mut cluster = Cluster::new(4);
    cluster.bootstrap_on(&[], &[1, 2, 3]);
    cluster.start();
    cluster.wait_leader(1);
    let learner = Peer {
        id: 10_004,
        store_id: 4,
        role: PeerRole::Learner as i32,
        is_witness: false,
    };
    cluster.must_change_peers(1, vec![(AddLearnerNode, learner)]);
    cluster.must_change_peers(1, vec![(AddNode, learner)]);
    cluster.must_put(b"promoted", b"yes");
    cluster.must_engine_eq(4, b"promoted", Some(b"yes"));
    let voter = Peer {
        role: PeerRole::Voter as i32,
        ..learner
    };
    cluster.must_transfer_leader(1, voter);
    let heartbeat = cluster
        .pd
        .wait_region_heartbeat(1, DEFAULT_TIMEOUT, |hb| {
            hb.leader.is_some_and(|l| l.id == voter.id)
        })
        .expect("the promoted peer reports itself as the leader");
    assert_eq!(heartbeat.leader, Some(voter), "{heartbeat:?}");
}
