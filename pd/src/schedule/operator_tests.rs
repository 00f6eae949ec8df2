//! Step advancement, cancellation and the messages of operators.

use proto::metapb;

use super::*;

fn peer(id: u64, store_id: u64, role: PeerRole) -> Peer {
    Peer {
        id,
        store_id,
        role: role as i32,
        is_witness: false,
    }
}

fn region(peers: Vec<Peer>, leader: u64, conf_ver: u64, version: u64) -> RegionInfo {
    let leader = peers.iter().find(|p| p.id == leader).copied();
    RegionInfo::new(
        metapb::Region {
            id: 1,
            start_key: vec![],
            end_key: vec![],
            region_epoch: Some(RegionEpoch { conf_ver, version }),
            peers,
        },
        leader,
    )
}

fn voters() -> Vec<Peer> {
    vec![
        peer(11, 1, PeerRole::Voter),
        peer(12, 2, PeerRole::Voter),
        peer(13, 3, PeerRole::Voter),
    ]
}

fn move_op(start: &RegionInfo, now: Instant) -> Operator {
    Operator::new(
        start,
        OpKind::Region,
        "move peer from store 3 to store 4",
        vec![
            OpStep::AddLearner {
                store_id: 4,
                peer_id: 14,
            },
            OpStep::PromoteLearner {
                store_id: 4,
                peer_id: 14,
            },
            OpStep::RemovePeer {
                store_id: 3,
                peer_id: 13,
            },
        ],
        &ScheduleConfig::default(),
        Now {
            instant: now,
            unix_ms: 0,
        },
    )
}

#[test]
fn steps_advance_as_the_region_reports_them_done() {
    let now = Instant::now();
    let start = region(voters(), 11, 5, 2);
    let mut op = move_op(&start, now);
    assert_eq!(op.check(&start, now), &OpStatus::Running);
    let msg = op.step_response(&start, 9).unwrap();
    let change = &msg.change_peer_v2.unwrap().changes[0];
    assert_eq!(change.change_type, ConfChangeType::AddLearnerNode as i32);
    assert_eq!(change.peer.unwrap().role, PeerRole::Learner as i32);
    assert_eq!(msg.region_epoch.unwrap().conf_ver, 5);
    assert_eq!(msg.target_peer.unwrap().id, 11);

    // The learner appears but still needs a snapshot: the step is not done yet.
    let mut peers = voters();
    peers.push(peer(14, 4, PeerRole::Learner));
    let mut added = region(peers.clone(), 11, 6, 2);
    added.pending_peers = vec![peer(14, 4, PeerRole::Learner)];
    assert_eq!(op.check(&added, now), &OpStatus::Running);
    assert_eq!(op.current, 0);
    added.pending_peers.clear();
    op.check(&added, now);
    assert_eq!(op.current, 1);
    let msg = op.step_response(&added, 9).unwrap();
    assert_eq!(
        msg.change_peer_v2.unwrap().changes[0].change_type,
        ConfChangeType::AddNode as i32
    );

    peers[3].role = PeerRole::Voter as i32;
    let promoted = region(peers.clone(), 11, 7, 2);
    op.check(&promoted, now);
    assert_eq!(op.current, 2);
    let removed = region(
        peers[..2].iter().chain(&peers[3..]).copied().collect(),
        11,
        8,
        2,
    );
    assert_eq!(op.check(&removed, now), &OpStatus::Finished);
}

#[test]
fn removing_the_leader_transfers_leadership_first() {
    let now = Instant::now();
    let start = region(voters(), 13, 5, 2);
    let op = Operator::new(
        &start,
        OpKind::Admin,
        "remove",
        vec![OpStep::RemovePeer {
            store_id: 3,
            peer_id: 13,
        }],
        &ScheduleConfig::default(),
        Now {
            instant: now,
            unix_ms: 0,
        },
    );
    let msg = op.step_response(&start, 1).unwrap();
    assert!(msg.change_peer_v2.is_none());
    assert_ne!(msg.transfer_leader.unwrap().peer.unwrap().id, 13);
}

#[test]
fn unexpected_epoch_changes_cancel_and_time_runs_out() {
    let now = Instant::now();
    let start = region(voters(), 11, 5, 2);
    let mut op = move_op(&start, now);
    let split = region(voters(), 11, 5, 3);
    assert!(matches!(op.check(&split, now), OpStatus::Cancelled(_)));

    let mut op = move_op(&start, now);
    // Someone else removed a peer.
    let other = region(voters()[..2].to_vec(), 11, 6, 2);
    assert!(matches!(op.check(&other, now), OpStatus::Cancelled(_)));

    let mut op = move_op(&start, now);
    let later = now + ScheduleConfig::default().peer_operator_timeout;
    assert_eq!(op.check(&start, later), &OpStatus::TimedOut);
}

#[test]
fn transfer_and_split_steps() {
    let now = Now {
        instant: Instant::now(),
        unix_ms: 0,
    };
    let start = region(voters(), 11, 5, 2);
    let cfg = ScheduleConfig::default();
    let mut op = Operator::new(
        &start,
        OpKind::Leader,
        "t",
        vec![OpStep::TransferLeader {
            from_store: 1,
            to_store: 2,
        }],
        &cfg,
        now,
    );
    assert_eq!(op.timeout, cfg.leader_operator_timeout);
    let msg = op.step_response(&start, 1).unwrap();
    assert_eq!(msg.transfer_leader.unwrap().peer.unwrap().id, 12);
    assert_eq!(
        op.influence(),
        vec![
            Influence {
                store_id: 1,
                regions: 0,
                leaders: -1
            },
            Influence {
                store_id: 2,
                regions: 0,
                leaders: 1
            }
        ]
    );
    assert_eq!(
        op.check(&region(voters(), 12, 5, 2), now.instant),
        &OpStatus::Finished
    );

    let mut split = Operator::new(
        &start,
        OpKind::Split,
        "s",
        vec![OpStep::Split {
            keys: vec![b"k".to_vec()],
        }],
        &cfg,
        now,
    );
    let msg = split.step_response(&start, 1).unwrap();
    assert_eq!(msg.split_region.unwrap().policy, CheckPolicy::Usekey as i32);
    assert_eq!(split.check(&start, now.instant), &OpStatus::Running);
    assert_eq!(
        split.check(&region(voters(), 11, 5, 3), now.instant),
        &OpStatus::Finished
    );
}

#[test]
fn a_move_onto_a_store_that_left_is_stopped_but_a_move_off_it_is_not() {
    let now = Instant::now();
    let start = region(voters(), 11, 5, 2);
    let op = move_op(&start, now);
    let with = |target: Option<StoreStatus>| {
        move |store: u64| {
            if store == 4 {
                target
            } else {
                Some(StoreStatus::Up)
            }
        }
    };
    assert_eq!(op.unreachable_target(with(Some(StoreStatus::Up))), None);
    assert_eq!(
        op.unreachable_target(with(Some(StoreStatus::Disconnected))),
        None
    );
    for (status, name) in [
        (StoreStatus::Offline, "Offline"),
        (StoreStatus::Down, "Down"),
        (StoreStatus::Tombstone, "Tombstone"),
    ] {
        let why = op.unreachable_target(with(Some(status))).unwrap();
        assert!(why.contains("store 4") && why.contains(name), "{why}");
    }
    assert!(op.unreachable_target(with(None)).is_some());
    // The peer removed from store 3 is what a repair does when store 3 is Down or Offline.
    let off_store_3 = |store: u64| {
        if store == 3 {
            Some(StoreStatus::Down)
        } else {
            Some(StoreStatus::Up)
        }
    };
    assert_eq!(op.unreachable_target(off_store_3), None);
}
