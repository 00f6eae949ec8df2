//! How a leader tells followers of commits: plain writes reach them with the next append or
//! heartbeat (no append of its own per commit), urgent entries such as splits at once.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use proto::eraftpb::{self, MessageType};
use proto::raft_serverpb::RaftMessage;
use protobuf::Message as _;
use raftstore::Config;
use test_cluster::*;

/// Heartbeats every 50 ticks (0.5 s) instead of every 2: a follower that learns a commit
/// before the next heartbeat learned it from an append.
fn rare_heartbeats() -> Config {
    Config {
        raft_heartbeat_ticks: 50,
        raft_election_timeout_ticks: 200,
        ..Config::for_tests()
    }
}

/// What one store sends the other peers of one region, counted as it passes.
#[derive(Default)]
struct Sent {
    /// Appends without entries: a commit index and nothing else.
    empty_appends: usize,
    heartbeats: usize,
    /// Per receiving store: the last entry index any append carried and the highest commit
    /// index any append told.
    appended: HashMap<u64, (u64, u64)>,
}

struct Watch {
    from_store: u64,
    region_id: u64,
    sent: Arc<Mutex<Sent>>,
}

impl Filter for Watch {
    fn check(&self, from: u64, to: u64, msg: &RaftMessage) -> FilterAction {
        if from != self.from_store || msg.region_id != self.region_id || msg.extra.is_some() {
            return FilterAction::Pass;
        }
        let Ok(m) = eraftpb::Message::parse_from_bytes(&msg.message) else {
            return FilterAction::Pass;
        };
        let mut sent = self.sent.lock();
        match m.get_msg_type() {
            MessageType::MsgHeartbeat => sent.heartbeats += 1,
            MessageType::MsgAppend => {
                if m.get_entries().is_empty() {
                    sent.empty_appends += 1;
                }
                let last = m.get_entries().last().map_or(0, |e| e.index);
                let seen = sent.appended.entry(to).or_default();
                seen.0 = seen.0.max(last);
                seen.1 = seen.1.max(m.commit);
            }
            _ => {}
        }
        FilterAction::Pass
    }
}

fn watch(cluster: &Cluster, from_store: u64, region_id: u64) -> Arc<Mutex<Sent>> {
    let sent = Arc::new(Mutex::new(Sent::default()));
    cluster.add_filter(Watch {
        from_store,
        region_id,
        sent: sent.clone(),
    });
    sent
}

fn started(cfg: Config) -> Cluster {
    let mut cluster = Cluster::with_config(3, cfg);
    cluster.bootstrap(&[]);
    cluster.start();
    cluster.wait_leader(1);
    // The new leader's first entry commits and applies: its own broadcast window is over.
    cluster.must_put(b"warm-up", b"1");
    cluster
}

#[test]
fn plain_writes_send_no_append_of_their_own_to_tell_the_commit() {
    let cluster = started(rare_heartbeats());
    let leader = cluster.wait_leader(1);
    let sent = watch(&cluster, leader.store_id, 1);
    let writes = 30;
    for i in 0..writes {
        cluster.must_put(format!("k{i:02}").as_bytes(), b"v");
    }
    let sent = sent.lock();
    // A heartbeat answered by a follower still missing entries draws one append, which may
    // be empty; nothing else sends one. Broadcasting each commit would send two per write.
    assert!(
        sent.empty_appends <= sent.heartbeats,
        "{} empty appends for {writes} writes and {} heartbeats",
        sent.empty_appends,
        sent.heartbeats
    );
    drop(sent);
    // The followers still end up with every write.
    for s in cluster.store_ids() {
        for i in 0..writes {
            cluster.must_engine_eq(s, format!("k{i:02}").as_bytes(), Some(b"v"));
        }
    }
}

#[test]
fn a_split_is_told_committed_to_followers_at_once() {
    let cluster = started(rare_heartbeats());
    let leader = cluster.wait_leader(1);
    let sent = watch(&cluster, leader.store_id, 1);
    let regions = cluster.must_split(&[b"m"]);
    assert_eq!(regions.len(), 2);
    let followers: Vec<u64> = cluster
        .store_ids()
        .into_iter()
        .filter(|s| *s != leader.store_id)
        .collect();
    // Nothing is written after the split: only an append sent for the split's commit tells
    // a follower that its last entry committed.
    let told = wait_until(DEFAULT_TIMEOUT, || {
        let sent = sent.lock();
        followers.iter().all(|s| {
            sent.appended
                .get(s)
                .is_some_and(|(last, commit)| *last > 0 && commit >= last)
        })
    });
    assert!(told, "appends sent: {:?}", sent.lock().appended);
    for r in &regions {
        cluster.wait_leader(r.id);
    }
    cluster.must_put(b"a-after-split", b"1");
    cluster.must_put(b"z-after-split", b"1");
    for s in cluster.store_ids() {
        cluster.must_engine_eq(s, b"a-after-split", Some(b"1"));
        cluster.must_engine_eq(s, b"z-after-split", Some(b"1"));
    }
}
