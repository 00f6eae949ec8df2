//! Agreement and replication: writes reach every store, in the same order, only with a
//! majority.

use std::sync::Arc;

use prost::Message as _;
use std::time::Duration;

use engine::RaftLogEngine;
use raftstore::Config;
use test_cluster::*;

#[test]
fn basic_agreement() {
    let cluster = Cluster::run(3);
    cluster.wait_leader(1);
    for i in 0..20u32 {
        let k = format!("key{i}");
        cluster.must_put(k.as_bytes(), &i.to_be_bytes());
    }
    for s in cluster.store_ids() {
        for i in 0..20u32 {
            let k = format!("key{i}");
            cluster.must_engine_eq(s, k.as_bytes(), Some(&i.to_be_bytes()));
        }
    }
    cluster.must_delete(b"key3");
    assert_eq!(cluster.must_get(b"key3"), None);
    for s in cluster.store_ids() {
        cluster.must_engine_eq(s, b"key3", None);
    }
}

/// The committed log prefix (data of normal entries) a store holds for a region.
fn committed_log(raft: &RaftLogEngine, region_id: u64, first: u64, last: u64) -> Vec<Vec<u8>> {
    let mut entries = Vec::new();
    raft.fetch_entries(region_id, first, last + 1, None, &mut entries)
        .expect("fetch entries");
    assert_eq!(entries.len() as u64, last + 1 - first);
    entries.into_iter().map(|e| e.data.to_vec()).collect()
}

#[test]
fn concurrent_clients_are_applied_in_the_same_order_everywhere() {
    let cfg = Config {
        // Keep the whole log so every store's order can be compared.
        raft_log_gc_threshold: u64::MAX / 2,
        raft_log_gc_count_limit: u64::MAX / 2,
        ..Config::for_tests()
    };
    let mut cluster = Cluster::with_config(3, cfg);
    cluster.bootstrap(&[]);
    cluster.start();
    cluster.wait_leader(1);
    let cluster = Arc::new(cluster);
    let clients = 32;
    let per_client = 10;
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let cluster = cluster.clone();
            std::thread::spawn(move || {
                for i in 0..per_client {
                    // Every client also overwrites one shared key: its final value must be the
                    // same everywhere, which only holds if the order is the same.
                    cluster.must_put(format!("c{c}-{i}").as_bytes(), b"x");
                    cluster.must_put(b"shared", format!("c{c}-{i}").as_bytes());
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("client thread");
    }
    let final_value = cluster.must_get(b"shared").expect("shared key written");
    for s in cluster.store_ids() {
        cluster.must_engine_eq(s, b"shared", Some(&final_value));
        for c in 0..clients {
            for i in 0..per_client {
                cluster.must_engine_eq(s, format!("c{c}-{i}").as_bytes(), Some(b"x"));
            }
        }
    }
    // Compare the applied log itself entry by entry.
    let applied: Vec<u64> = cluster
        .store_ids()
        .iter()
        .map(|s| {
            cluster
                .store(*s)
                .raft_engine()
                .last_index(1)
                .expect("region has a log")
        })
        .collect();
    let common = *applied.iter().min().unwrap();
    let logs: Vec<Vec<Vec<u8>>> = cluster
        .store_ids()
        .iter()
        .map(|s| committed_log(cluster.store(*s).raft_engine(), 1, 6, common))
        .collect();
    // Concurrent writes may share entries: count the writes the entries carry.
    let writes: usize = logs[0]
        .iter()
        .filter_map(|data| proto::raft_cmdpb::RaftCmdRequest::decode(data.as_slice()).ok())
        .map(|cmd| {
            cmd.requests
                .iter()
                .filter(|r| r.cmd_type() == proto::raft_cmdpb::CmdType::Put)
                .count()
        })
        .sum();
    assert!(
        writes >= (clients * per_client * 2) as usize,
        "{writes} writes in the log"
    );
    assert_eq!(logs[0], logs[1]);
    assert_eq!(logs[0], logs[2]);
}

#[test]
fn agreement_with_a_minority_down() {
    let mut cluster = Cluster::run(5);
    cluster.wait_leader(1);
    cluster.must_put(b"before", b"1");
    let leader = cluster.wait_leader(1);
    let down: Vec<u64> = cluster
        .store_ids()
        .into_iter()
        .filter(|s| *s != leader.store_id)
        .take(2)
        .collect();
    for s in &down {
        cluster.stop_store(*s);
    }
    for i in 0..10u8 {
        cluster.must_put(&[b'm', i], &[i]);
    }
    for s in cluster
        .store_ids()
        .into_iter()
        .filter(|s| !down.contains(s))
    {
        cluster.must_engine_eq(s, &[b'm', 9], Some(&[9]));
    }
    for s in &down {
        cluster.start_store(*s);
    }
    for s in &down {
        cluster.must_engine_eq(*s, &[b'm', 9], Some(&[9]));
        cluster.must_engine_eq(*s, b"before", Some(b"1"));
    }
}

#[test]
fn nothing_commits_without_a_majority() {
    let cluster = Cluster::run(3);
    let leader = cluster.wait_leader(1);
    cluster.must_put(b"k", b"old");
    // The leader can send nothing: its proposals cannot reach a majority.
    cluster.add_filter(DropOutgoingFilter(leader.store_id));
    let region = cluster.region(1).unwrap();
    let req = Cluster::new_request(&region, leader, vec![put_request(b"k", b"new")]);
    let res = cluster.call_on_store(leader.store_id, req, Duration::from_millis(500));
    let committed =
        matches!(&res, Ok(r) if r.response.header.as_ref().is_none_or(|h| h.error.is_none()));
    assert!(
        !committed,
        "a write without a majority was acknowledged: {:?}",
        res.is_ok()
    );
    for s in cluster.store_ids() {
        assert_eq!(cluster.engine_get(s, b"k").as_deref(), Some(&b"old"[..]));
    }
    cluster.clear_filters();
}

#[test]
fn leader_failure_and_follower_failure() {
    let mut cluster = Cluster::run(3);
    let leader = cluster.wait_leader(1);
    cluster.must_put(b"a", b"1");
    cluster.stop_store(leader.store_id);
    cluster.must_put(b"b", b"2");
    let new_leader = cluster.wait_leader(1);
    assert_ne!(new_leader.store_id, leader.store_id);
    let follower = cluster
        .store_ids()
        .into_iter()
        .find(|s| *s != leader.store_id && *s != new_leader.store_id)
        .unwrap();
    cluster.start_store(leader.store_id);
    cluster.must_engine_eq(leader.store_id, b"b", Some(b"2"));
    cluster.stop_store(follower);
    cluster.must_put(b"c", b"3");
    cluster.start_store(follower);
    for s in cluster.store_ids() {
        cluster.must_engine_eq(s, b"a", Some(b"1"));
        cluster.must_engine_eq(s, b"b", Some(b"2"));
        cluster.must_engine_eq(s, b"c", Some(b"3"));
    }
}

#[test]
fn isolated_leaders_uncommitted_entries_are_overwritten() {
    let cluster = Cluster::run(3);
    let old = cluster.wait_leader(1);
    cluster.must_put(b"k", b"committed");
    // Cut the leader off, then let it append entries that can never commit.
    cluster.isolate(old.store_id);
    let region = cluster.region(1).unwrap();
    for i in 0..5u8 {
        let req = Cluster::new_request(&region, old, vec![put_request(b"k", &[b'u', i])]);
        let _ = cluster.call_on_store(old.store_id, req, Duration::from_millis(50));
    }
    let old_last = cluster.store(old.store_id).raft_engine().last_index(1);
    // The majority elects a new leader and commits different entries.
    let new = cluster.wait_leader_elsewhere(1, old.store_id);
    for i in 0..3u8 {
        cluster.must_put(b"k", &[b'n', i]);
    }
    cluster.clear_filters();
    // The old leader's log is repaired: it converges to the majority's value.
    cluster.must_engine_eq(old.store_id, b"k", Some(b"n\x02"));
    assert_ne!(new.store_id, old.store_id);
    // The old leader had appended entries beyond the committed log that were replaced.
    assert!(old_last.is_some());
    for s in cluster.store_ids() {
        assert_eq!(cluster.engine_get(s, b"k").as_deref(), Some(&b"n\x02"[..]));
    }
}

#[test]
fn writes_converge_under_packet_loss_and_delay() {
    let cluster = Cluster::run(3);
    cluster.wait_leader(1);
    cluster.add_filter(DropRateFilter::new(0.2, 42));
    cluster.add_filter(DelayFilter(Duration::from_millis(3)));
    for i in 0..30u32 {
        cluster.must_put(format!("lossy{i}").as_bytes(), &i.to_le_bytes());
    }
    cluster.clear_filters();
    for s in cluster.store_ids() {
        for i in 0..30u32 {
            cluster.must_engine_eq(s, format!("lossy{i}").as_bytes(), Some(&i.to_le_bytes()));
        }
    }
}

#[test]
fn a_follower_missing_appends_catches_up_afterwards() {
    let cluster = Cluster::run(3);
    let leader = cluster.wait_leader(1);
    let lagging = cluster
        .store_ids()
        .into_iter()
        .find(|s| *s != leader.store_id)
        .unwrap();
    cluster.add_filter(DropMessageTypeFilter {
        msg_type: proto::eraftpb::MessageType::MsgAppend,
        to_store: Some(lagging),
    });
    for i in 0..20u8 {
        cluster.must_put(&[b'f', i], &[i]);
    }
    // The majority committed without the lagging follower.
    assert_eq!(cluster.engine_get(lagging, &[b'f', 19]), None);
    cluster.clear_filters();
    cluster.must_engine_eq(lagging, &[b'f', 19], Some(&[19]));
    cluster.must_engine_eq(lagging, &[b'f', 0], Some(&[0]));
}
