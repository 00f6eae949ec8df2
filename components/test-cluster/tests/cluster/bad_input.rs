//! Bad raft messages are dropped without harm; corrupt files stop a store from starting.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use proto::eraftpb::{self, MessageType};
use proto::metapb::{Peer, RegionEpoch};
use proto::raft_serverpb::RaftMessage;
use protobuf::Message as _;
use test_cluster::*;

fn raft_message(
    region_id: u64,
    from: Peer,
    to: Peer,
    epoch: RegionEpoch,
    msg: Vec<u8>,
) -> RaftMessage {
    RaftMessage {
        region_id,
        from_peer: Some(from),
        to_peer: Some(to),
        message: msg,
        region_epoch: Some(epoch),
        ..Default::default()
    }
}

fn append_with_term(from: u64, to: u64, term: u64) -> Vec<u8> {
    let mut m = eraftpb::Message::default();
    m.set_msg_type(MessageType::MsgAppend);
    m.from = from;
    m.to = to;
    m.term = term;
    m.index = 1000;
    m.log_term = term;
    m.commit = 1000;
    m.write_to_bytes().unwrap()
}

#[test]
fn stale_unknown_and_malformed_messages_are_dropped() {
    let cluster = Cluster::run(3);
    let leader = cluster.wait_leader(1);
    cluster.must_put(b"k", b"v");
    let term_before = cluster.newest_term(1);
    let follower_store = cluster
        .store_ids()
        .into_iter()
        .find(|s| *s != leader.store_id)
        .unwrap();
    let target = Peer {
        id: 1000 + follower_store,
        store_id: follower_store,
        ..Default::default()
    };
    let removed = Peer {
        id: 999,
        store_id: 9,
        ..Default::default()
    };
    let store = cluster.store(follower_store);
    // From a peer that is not a member, with an older epoch and a huge term: must not
    // disturb the region.
    store
        .on_raft_message(raft_message(
            1,
            removed,
            target,
            RegionEpoch {
                conf_ver: 0,
                version: 1,
            },
            append_with_term(999, target.id, term_before + 100),
        ))
        .unwrap();
    // For an unknown region overlapping region 1.
    let mut unknown = raft_message(
        77,
        removed,
        Peer {
            id: 77_001,
            store_id: follower_store,
            ..Default::default()
        },
        RegionEpoch {
            conf_ver: 1,
            version: 1,
        },
        append_with_term(999, 77_001, 1),
    );
    unknown.start_key = b"a".to_vec();
    unknown.end_key = b"z".to_vec();
    store.on_raft_message(unknown).unwrap();
    // Garbage where the raft message should be.
    store
        .on_raft_message(raft_message(
            1,
            Peer {
                id: 1000 + leader.store_id,
                store_id: leader.store_id,
                ..Default::default()
            },
            target,
            RegionEpoch {
                conf_ver: 1,
                version: 1,
            },
            vec![0xff, 0xfe, 0x01, 0x02, 0x03],
        ))
        .unwrap();
    // For a peer id this store does not host.
    store
        .on_raft_message(raft_message(
            1,
            Peer {
                id: 1000 + leader.store_id,
                store_id: leader.store_id,
                ..Default::default()
            },
            Peer {
                id: 5555,
                store_id: follower_store,
                ..Default::default()
            },
            RegionEpoch {
                conf_ver: 1,
                version: 1,
            },
            append_with_term(1000 + leader.store_id, 5555, term_before + 100),
        ))
        .unwrap();

    cluster.must_put(b"k2", b"v2");
    let term_after = cluster.newest_term(1);
    assert_eq!(
        term_before, term_after,
        "no election was forced by bad messages"
    );
    assert_eq!(cluster.leader_of(1), Some(leader));
    assert!(
        store.meta().lock().region(77).is_none(),
        "no region created for bad message"
    );
    for s in cluster.store_ids() {
        cluster.must_engine_eq(s, b"k2", Some(b"v2"));
    }
}

fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(ext))
        .collect();
    out.sort();
    out
}

fn flip_bytes_in_middle(path: &Path) {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let len = f.metadata().unwrap().len();
    assert!(len > 64, "{path:?} is too small to corrupt");
    let at = len / 2;
    let mut buf = [0u8; 16];
    f.seek(SeekFrom::Start(at)).unwrap();
    f.read_exact(&mut buf).unwrap();
    for b in buf.iter_mut() {
        *b ^= 0xa5;
    }
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&buf).unwrap();
    f.sync_all().unwrap();
}

#[test]
fn corrupt_raft_log_file_refuses_to_start_naming_the_file() {
    // Keep the whole log live, so the damaged bytes belong to entries the store needs.
    let cfg = raftstore::Config {
        raft_log_gc_threshold: u64::MAX / 2,
        raft_log_gc_count_limit: u64::MAX / 2,
        ..raftstore::Config::for_tests()
    };
    let mut cluster = Cluster::with_config(3, cfg);
    cluster.bootstrap(&[]);
    cluster.start();
    cluster.wait_leader(1);
    for i in 0..200u32 {
        cluster.must_put(format!("c{i}").as_bytes(), &[7u8; 256]);
    }
    let victim = 1;
    cluster.stop_store(victim);
    let files = files_with_ext(&cluster.raft_dir(victim), ".raftlog");
    let file = files.last().expect("a raft log file").clone();
    flip_bytes_in_middle(&file);
    let err = cluster
        .try_start_store(victim)
        .expect_err("a corrupt raft log must not start");
    let name = file.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        err.to_string().contains(&name),
        "error {err} does not name {name}"
    );
    // The rest of the cluster keeps serving.
    cluster.must_put(b"still", b"works");
}

#[test]
fn corrupt_kv_manifest_refuses_to_start_naming_the_file() {
    let mut cluster = Cluster::run(3);
    cluster.wait_leader(1);
    cluster.must_put(b"k", b"v");
    let victim = 2;
    cluster.stop_store(victim);
    let files: Vec<PathBuf> = std::fs::read_dir(cluster.kv_dir(victim))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("MANIFEST-")
        })
        .collect();
    let manifest = files.last().expect("a manifest").clone();
    let len = std::fs::metadata(&manifest).unwrap().len();
    // Overwrite the manifest's records with garbage.
    let mut f = OpenOptions::new().write(true).open(&manifest).unwrap();
    f.write_all(&vec![0xabu8; len as usize]).unwrap();
    f.sync_all().unwrap();
    let err = cluster
        .try_start_store(victim)
        .expect_err("a corrupt kv engine must not start");
    let name = manifest.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        err.to_string().contains(&name),
        "error {err} does not name {name}"
    );
    cluster.must_put(b"still", b"works");
}
