//! New peers on other stores catch up by snapshot.

use proto::metapb::{Peer, PeerRole};
use proto::raft_cmdpb::ConfChangeType::{AddLearnerNode, AddNode};
use test_cluster::*;

/// Three stores holding region 1 with `keys` written, and an empty fourth store.
fn cluster_with_spare_store(keys: impl Iterator<Item = Vec<u8>>) -> Cluster {
    let mut cluster = Cluster::new(4);
    cluster.bootstrap_on(&[], &[1, 2, 3]);
    cluster.start();
    cluster.wait_leader(1);
    for k in keys {
        cluster.must_put(&k, b"v");
    }
    cluster
}

/// The learner that joins region 1 on store 4.
fn learner_on_store_4() -> Peer {
    Peer {
        id: 4001,
        store_id: 4,
        role: PeerRole::Learner as i32,
        is_witness: false,
    }
}

#[test]
fn learner_catches_up_by_snapshot_is_promoted_and_leads() {
    let mut cluster = Cluster::new(4);
    cluster.bootstrap_on(&[], &[1, 2, 3]);
    cluster.start();
    cluster.wait_leader(1);
    for i in 0..100u32 {
        cluster.must_put(format!("s{i:03}").as_bytes(), &i.to_le_bytes());
    }
    let new = learner_on_store_4();
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
}

#[test]
fn a_far_behind_follower_gets_a_snapshot_after_forced_log_gc() {
    let cfg = raftstore::Config {
        raft_log_gc_count_limit: 40,
        ..raftstore::Config::for_tests()
    };
    let mut cluster = Cluster::with_config(3, cfg);
    cluster.bootstrap(&[]);
    cluster.start();
    let leader = cluster.wait_leader(1);
    let down = cluster.store_other_than(leader.store_id);
    cluster.must_put(b"before", b"1");
    cluster.must_engine_eq(down, b"before", Some(b"1"));
    cluster.stop_store(down);
    for i in 0..200u32 {
        cluster.must_put(format!("f{i:03}").as_bytes(), &i.to_le_bytes());
    }
    // The leader compacted past what the stopped follower has.
    let first = || {
        cluster
            .store(leader.store_id)
            .raft_engine()
            .first_index(1)
            .unwrap_or(0)
    };
    assert!(
        wait_until(DEFAULT_TIMEOUT, || first() > 100),
        "log compacted: {}",
        first()
    );
    cluster.start_store(down);
    cluster.must_engine_eq(down, b"f199", Some(&199u32.to_le_bytes()));
    cluster.must_engine_eq(down, b"f000", Some(&0u32.to_le_bytes()));
    cluster.must_engine_eq(down, b"before", Some(b"1"));
}

#[test]
fn a_store_that_crashed_while_applying_a_snapshot_finishes_it_at_restart() {
    let mut cluster = cluster_with_spare_store((0..50u32).map(|i| format!("c{i:03}").into_bytes()));
    let new = learner_on_store_4();
    cluster.must_change_peers(1, vec![(AddLearnerNode, new)]);
    cluster.must_engine_eq(4, b"c049", Some(b"v"));
    // An applied snapshot leaves no files behind.
    let snap_dir = cluster.store_dir(4).join("snap");
    assert!(
        wait_until(DEFAULT_TIMEOUT, || snapshot_files(&snap_dir).is_empty()),
        "applied snapshot files remain: {:?}",
        snapshot_files(&snap_dir)
    );
    // Crash in the middle of applying: what `begin_apply` leaves (the region Applying, the
    // snapshot's description and received files, part of the old data gone), rebuilt from
    // store 4's own data at its applied index.
    cluster.stop_store(4);
    {
        use engine::{KvEngine, KvRead, CF_DEFAULT, CF_RAFT};
        use proto::raft_serverpb::{
            PeerState, RaftApplyState, RaftTruncatedState, RegionLocalState,
        };
        use raftstore::testexport::region_snapshot;
        let kv = KvEngine::open(&cluster.kv_dir(4)).unwrap();
        let snapshot = region_snapshot::generate(&kv, 1, 0).unwrap();
        let data = region_snapshot::decode(&snapshot).unwrap();
        let (index, term) = (snapshot.get_metadata().index, snapshot.get_metadata().term);
        for f in &data.meta.as_ref().unwrap().cf_files {
            std::fs::rename(
                snap_dir.join(region_snapshot::file_name("gen", 1, term, index, &f.cf)),
                snap_dir.join(region_snapshot::file_name("rev", 1, term, index, &f.cf)),
            )
            .unwrap();
        }
        let mut state: RegionLocalState = kv
            .get_msg_cf(CF_RAFT, &keys::region_state_key(1))
            .unwrap()
            .unwrap();
        state.state = PeerState::Applying as i32;
        let mut apply: RaftApplyState = kv
            .get_msg_cf(CF_RAFT, &keys::apply_state_key(1))
            .unwrap()
            .unwrap();
        apply.truncated_state = Some(RaftTruncatedState { index, term });
        let mut wb = kv.write_batch();
        wb.put_msg_cf(CF_RAFT, &keys::region_state_key(1), &state)
            .unwrap();
        wb.put_msg_cf(CF_RAFT, &keys::apply_state_key(1), &apply)
            .unwrap();
        wb.put_msg_cf(CF_RAFT, &keys::snapshot_meta_key(1), &data)
            .unwrap();
        wb.delete_range_cf(
            CF_DEFAULT,
            &keys::data_key(b"c020"),
            &keys::data_key(b"c040"),
        )
        .unwrap();
        kv.write(&wb, true).unwrap();
    }
    cluster.start_store(4);
    // The store finishes the snapshot from its kept files before serving, then drops them.
    cluster.must_engine_eq(4, b"c030", Some(b"v"));
    cluster.must_put(b"after-crash", b"ok");
    cluster.must_engine_eq(4, b"after-crash", Some(b"ok"));
    assert!(
        wait_until(DEFAULT_TIMEOUT, || snapshot_files(&snap_dir).is_empty()),
        "the finished snapshot's files remain: {:?}",
        snapshot_files(&snap_dir)
    );
}

/// A leader keeps the snapshot it built for a new peer while it may hand it out again, and
/// no longer: the files go when the leader's store no longer holds the region, and when the
/// log was compacted past the snapshot.
#[test]
fn built_snapshot_files_go_when_their_peer_is_removed_or_the_log_moves_past_them() {
    let cfg = raftstore::Config {
        raft_log_gc_count_limit: 40,
        ..raftstore::Config::for_tests()
    };
    let mut cluster = Cluster::with_config(4, cfg);
    cluster.bootstrap_on(&[], &[1, 2, 3]);
    cluster.start();
    for i in 0..10u32 {
        cluster.must_put(format!("g{i:03}").as_bytes(), b"v");
    }
    let built_on = |store: u64| -> Vec<String> {
        snapshot_files(&cluster.store_dir(store).join("snap"))
            .into_iter()
            .filter(|f| f.starts_with("gen_1_"))
            .collect()
    };

    // Removed: the old leader's files go with its peer.
    let first_leader = cluster.wait_leader(1);
    cluster.must_change_peers(1, vec![(AddLearnerNode, learner_on_store_4())]);
    cluster.must_engine_eq(4, b"g009", Some(b"v"));
    assert!(
        !built_on(first_leader.store_id).is_empty(),
        "the leader built no snapshot for the learner"
    );
    let region = cluster.region(1).unwrap();
    let other = *region
        .peers
        .iter()
        .find(|p| p.store_id != first_leader.store_id && p.role == PeerRole::Voter as i32)
        .unwrap();
    cluster.must_transfer_leader(1, other);
    cluster.must_change_peers(
        1,
        vec![(proto::raft_cmdpb::ConfChangeType::RemoveNode, first_leader)],
    );
    assert!(
        wait_until(DEFAULT_TIMEOUT, || built_on(first_leader.store_id)
            .is_empty()),
        "a removed peer's snapshot files remain: {:?}",
        built_on(first_leader.store_id)
    );

    // Compacted: a new learner on the store just left gets a snapshot from the new leader,
    // whose files go once enough writes move the log past it.
    let leader = cluster.wait_leader(1);
    let rejoined = Peer {
        id: 4002,
        store_id: first_leader.store_id,
        role: PeerRole::Learner as i32,
        is_witness: false,
    };
    cluster.must_change_peers(1, vec![(AddLearnerNode, rejoined)]);
    cluster.must_engine_eq(first_leader.store_id, b"g009", Some(b"v"));
    let built = built_on(leader.store_id);
    assert!(!built.is_empty(), "the new leader built no snapshot");
    for i in 0..200u32 {
        cluster.must_put(format!("h{i:03}").as_bytes(), b"w");
    }
    assert!(
        wait_until(DEFAULT_TIMEOUT, || built_on(leader.store_id)
            .iter()
            .all(|f| !built.contains(f))),
        "a snapshot the log moved past remains: {:?}",
        built_on(leader.store_id)
    );
    cluster.must_engine_eq(first_leader.store_id, b"h199", Some(b"w"));
}

/// The names of the files in a snapshot directory (none if it does not exist).
fn snapshot_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_damaged_snapshot_is_rejected_and_sent_again() {
    use std::sync::atomic::Ordering;
    let cluster = cluster_with_spare_store((0..30u32).map(|i| format!("d{i:03}").into_bytes()));
    cluster
        .transport
        .corrupt_snapshots
        .store(1, Ordering::SeqCst);
    let new = learner_on_store_4();
    cluster.must_change_peers(1, vec![(AddLearnerNode, new)]);
    cluster.must_engine_eq(4, b"d029", Some(b"v"));
    assert_eq!(
        cluster.transport.corrupt_snapshots.load(Ordering::SeqCst),
        0,
        "one was damaged"
    );
    assert!(
        cluster.transport.snapshots_sent.load(Ordering::SeqCst) >= 2,
        "the damaged snapshot was sent again"
    );
}

#[test]
fn a_follower_restarting_while_receiving_a_snapshot_catches_up() {
    use std::sync::atomic::Ordering;
    let mut cluster = cluster_with_spare_store((0..30u32).map(|i| format!("m{i:03}").into_bytes()));
    // The first transfer arrives broken (as if cut off), and the receiver restarts.
    cluster
        .transport
        .corrupt_snapshots
        .store(1, Ordering::SeqCst);
    let new = learner_on_store_4();
    cluster.must_change_peers(1, vec![(AddLearnerNode, new)]);
    assert!(wait_until(DEFAULT_TIMEOUT, || cluster
        .transport
        .corrupt_snapshots
        .load(Ordering::SeqCst)
        == 0));
    cluster.stop_store(4);
    cluster.start_store(4);
    cluster.must_engine_eq(4, b"m029", Some(b"v"));
    cluster.must_put(b"after", b"restart");
    cluster.must_engine_eq(4, b"after", Some(b"restart"));
}

/// A burst of messages for a region the store has no peer of: they all queue at the store
/// before the first creates the peer. Exactly one peer must be created, and the others
/// delivered to it; a second peer FSM for the region would write its raft state too (the
/// store stopped on "persisted ready 1 after ready 1" when membership changes raced this).
#[test]
fn a_burst_of_messages_for_a_new_region_creates_one_peer() {
    use proto::eraftpb::{self, MessageType};
    use proto::raft_serverpb::RaftMessage;
    use protobuf::Message as _;

    let cluster = cluster_with_spare_store((0..50u32).map(|i| format!("b{i:03}").into_bytes()));
    let leader = cluster.wait_leader(1);
    let (_, term) = cluster
        .leaders(1)
        .into_iter()
        .find(|(p, _)| p.id == leader.id)
        .expect("leader's term");
    let region = cluster.region(1).unwrap();
    let heartbeat = |new: Peer, commit: u64| {
        let mut m = eraftpb::Message::default();
        m.set_msg_type(MessageType::MsgHeartbeat);
        m.from = leader.id;
        m.to = new.id;
        m.term = term;
        m.commit = commit;
        RaftMessage {
            region_id: 1,
            from_peer: Some(leader),
            to_peer: Some(new),
            region_epoch: region.region_epoch,
            start_key: region.start_key.clone(),
            end_key: region.end_key.clone(),
            message: m.write_to_bytes().unwrap(),
            ..Default::default()
        }
    };
    for round in 0..20u64 {
        // Each round adds a learner with a new peer id, and removes it again.
        let new = Peer {
            id: 5000 + round,
            ..learner_on_store_4()
        };
        let router = cluster.store(4).router();
        for _ in 0..64 {
            router.send_raft_message(heartbeat(new, 0)).unwrap();
        }
        cluster.must_change_peers(1, vec![(AddLearnerNode, new)]);
        cluster.must_put(format!("round{round}").as_bytes(), b"x");
        cluster.must_engine_eq(4, format!("round{round}").as_bytes(), Some(b"x"));
        cluster.must_engine_eq(4, b"b049", Some(b"v"));
        cluster.must_replicas_consistent();
        cluster.must_change_peers(
            1,
            vec![(proto::raft_cmdpb::ConfChangeType::RemoveNode, new)],
        );
        assert!(
            wait_until(DEFAULT_TIMEOUT, || cluster
                .store(4)
                .meta()
                .lock()
                .region(1)
                .is_none()),
            "round {round}: the removed learner was not destroyed"
        );
    }
}

/// A snapshot carries the transactional column families with the data: locks, commit records
/// (keys with a version suffix) and long values reach a follower that was down while the
/// leader compacted its log, byte for byte.
#[test]
fn a_snapshot_carries_locks_commit_records_and_long_values() {
    use engine::{KvRead, CF_LOCK};
    use proto::raft_cmdpb::{CmdType, PutRequest, Request};
    use txn::mvcc::{Key, Lock, LockType, Modify, MvccTxn, Write, WriteType};
    let cfg = raftstore::Config {
        raft_log_gc_count_limit: 40,
        ..raftstore::Config::for_tests()
    };
    let mut cluster = Cluster::with_config(3, cfg);
    cluster.bootstrap(&[]);
    cluster.start();
    let leader = cluster.wait_leader(1);
    let down = cluster.store_other_than(leader.store_id);
    cluster.must_put(b"before", b"1");
    cluster.must_engine_eq(down, b"before", Some(b"1"));
    cluster.stop_store(down);
    for i in 0..120u64 {
        let raw = format!("x\0\0\0t{i:03}");
        let key = Key::from_raw(raw.as_bytes());
        let mut changes = MvccTxn::new();
        changes.put_write(&key, 10 + i, &Write::new(WriteType::Put, 5 + i, None));
        changes.put_value(&key, 5 + i, vec![i as u8; 300]);
        changes.put_lock(
            &key,
            &Lock::new(LockType::Put, raw.clone().into_bytes(), 200 + i, 3000),
        );
        let requests = changes
            .into_modifies()
            .into_iter()
            .map(|m| match m {
                Modify::Put { cf, key, value } => Request {
                    cmd_type: CmdType::Put as i32,
                    put: Some(PutRequest {
                        cf: cf.to_string(),
                        key,
                        value,
                    }),
                    ..Default::default()
                },
                Modify::Delete { .. } => unreachable!("only puts are made here"),
            })
            .collect();
        cluster
            .request(key.as_encoded(), requests, false, DEFAULT_TIMEOUT)
            .unwrap();
    }
    let first = || {
        cluster
            .store(leader.store_id)
            .raft_engine()
            .first_index(1)
            .unwrap_or(0)
    };
    assert!(
        wait_until(DEFAULT_TIMEOUT, || first() > 60),
        "log compacted: {}",
        first()
    );
    cluster.start_store(down);
    let last_lock = keys::data_key(Key::from_raw(b"x\0\0\0t119").as_encoded());
    assert!(wait_until(DEFAULT_TIMEOUT, || {
        cluster
            .store(down)
            .kv()
            .get_value_cf(CF_LOCK, &last_lock)
            .is_ok_and(|v| v.is_some())
    }));
    // Every CF of every replica ends up the same (the check waits for equal applied indexes):
    // 120 locks, 120 commit records and 120 long values at least.
    let report = cluster.must_replicas_consistent();
    assert!(report.pairs >= 360, "{report:?}");
}
