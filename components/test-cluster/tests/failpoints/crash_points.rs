//! A store crashes at each failpoint under write load, is restarted, and the cluster loses no
//! acknowledged write and ends with identical replicas.
//!
//! "Crash" here: the store's thread reaching the point panics there, so its step never
//! completes (a write batch never written, a ready never reported durable, a snapshot half
//! applied); the test then stops the store's other threads and restarts it on its data
//! directories, as after a process crash.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::RwLock;
use proto::metapb::{Peer, PeerRole};
use proto::raft_cmdpb::ConfChangeType::{AddLearnerNode, AddNode, RemoveNode};
use raftstore::testexport::failpoints::*;
use test_cluster::failpoint::crash_at;
use test_cluster::*;

use crate::load::Load;

/// Which store of the region a scenario crashes.
#[derive(Clone, Copy, Debug)]
enum Victim {
    Leader,
    Follower,
}

/// Who writes the raft log (the store's `store-io-pool-size`) and applies committed
/// entries (`apply-pool-size`).
#[derive(Clone, Copy, Debug)]
enum LogWrites {
    /// The log writer thread (1); apply threads.
    WriterThread,
    /// Each raft poller, at the end of its round (0); apply threads.
    Pollers,
    /// Each raft poller writes its round's log and applies what its peers committed (both
    /// 0, as the local fleet runs).
    PollersAlsoApply,
}

/// `count` stores, region 1 on stores 1-3, with a small log GC limit so snapshots happen.
fn cluster(count: usize) -> Arc<RwLock<Cluster>> {
    cluster_writing_logs(count, LogWrites::WriterThread)
}

fn cluster_writing_logs(count: usize, log_writes: LogWrites) -> Arc<RwLock<Cluster>> {
    let cfg = raftstore::Config {
        raft_log_gc_count_limit: 40,
        store_io_pool_size: match log_writes {
            LogWrites::WriterThread => 1,
            LogWrites::Pollers | LogWrites::PollersAlsoApply => 0,
        },
        apply_pool_size: match log_writes {
            LogWrites::PollersAlsoApply => 0,
            _ => raftstore::Config::for_tests().apply_pool_size,
        },
        ..raftstore::Config::for_tests()
    };
    let mut cluster = Cluster::with_config(count, cfg);
    cluster.bootstrap_on(&[], &[1, 2, 3]);
    cluster.start();
    cluster.wait_leader(1);
    Arc::new(RwLock::new(cluster))
}

fn pick(cluster: &Cluster, victim: Victim) -> u64 {
    let leader = cluster.wait_leader(1);
    match victim {
        Victim::Leader => leader.store_id,
        Victim::Follower => (1..=3).find(|s| *s != leader.store_id).expect("a follower"),
    }
}

/// Crashes `victim` at `point` while writers run and `trigger` makes the point reachable,
/// restarts it, and checks the outcome.
fn crash_and_recover(
    point: &'static str,
    victim: Victim,
    trigger: impl FnOnce(&Arc<RwLock<Cluster>>, u64),
) {
    crash_and_recover_writing_logs(point, victim, trigger, LogWrites::WriterThread);
}

/// [`crash_and_recover`] on stores whose raft log is written by `log_writes`.
fn crash_and_recover_writing_logs(
    point: &'static str,
    victim: Victim,
    trigger: impl FnOnce(&Arc<RwLock<Cluster>>, u64),
    log_writes: LogWrites,
) {
    let _scenario = fail::FailScenario::setup();
    let cluster = cluster_writing_logs(3, log_writes);
    let load = Load::start(cluster.clone(), 4);
    assert!(load.wait_progress(50), "no progress before the crash");
    let store = pick(&cluster.read(), victim);
    let fired = crash_at(point, store);
    trigger(&cluster, store);
    assert!(
        wait_until(DEFAULT_TIMEOUT, || fired.load(Ordering::SeqCst)),
        "store {store} never reached {point}"
    );
    fail::remove(point);
    cluster.write().stop_store(store);
    assert!(
        load.wait_progress(20),
        "no progress while store {store} was down"
    );
    cluster.write().start_store(store);
    assert!(
        load.wait_progress(50),
        "no progress after store {store} came back"
    );
    let (acked, report) = load.finish_and_check();
    assert!(acked > 100, "the load made progress: {acked}");
    assert!(report.regions >= 1);
}

/// Nothing to do: the load itself reaches the point.
fn load_only(_: &Arc<RwLock<Cluster>>, _: u64) {}

/// Cuts `store` off until the leader compacted its log past it, then heals, so the store is
/// sent a snapshot (or, for the leader, sends one to a follower it cut off).
fn force_snapshot(cluster: &Arc<RwLock<Cluster>>, store: u64) {
    let c = cluster.read();
    let leader = c.wait_leader(1).store_id;
    let lagging = if store == leader {
        (1..=3).find(|s| *s != leader).expect("a follower")
    } else {
        store
    };
    c.isolate(lagging);
    let last = c.store(lagging).raft_engine().last_index(1).unwrap_or(0);
    let compacted = wait_until(DEFAULT_TIMEOUT, || {
        let leader = c.leader_of(1).map_or(leader, |p| p.store_id);
        c.store(leader).raft_engine().first_index(1).unwrap_or(0) > last + 1
    });
    c.clear_filters();
    assert!(compacted, "the leader never compacted past store {lagging}");
}

#[test]
fn crash_before_the_log_writer_fsyncs() {
    crash_and_recover(LOG_WRITER_BEFORE_FSYNC, Victim::Leader, load_only);
}

#[test]
fn crash_after_the_log_writer_fsyncs() {
    crash_and_recover(LOG_WRITER_AFTER_FSYNC, Victim::Follower, load_only);
}

#[test]
fn crash_before_the_log_writer_notifies_peers() {
    crash_and_recover(LOG_WRITER_BEFORE_NOTIFY, Victim::Leader, load_only);
}

// The same three points with the raft pollers writing the log themselves
// (`store-io-pool-size = 0`): the crashing thread is then the poller, in the middle of its
// round, with the round's other readies unwritten or unannounced.

#[test]
fn crash_before_a_poller_fsyncs_its_round() {
    crash_and_recover_writing_logs(
        LOG_WRITER_BEFORE_FSYNC,
        Victim::Leader,
        load_only,
        LogWrites::Pollers,
    );
}

#[test]
fn crash_after_a_poller_fsyncs_its_round() {
    crash_and_recover_writing_logs(
        LOG_WRITER_AFTER_FSYNC,
        Victim::Follower,
        load_only,
        LogWrites::Pollers,
    );
}

#[test]
fn crash_before_a_poller_notifies_its_round() {
    crash_and_recover_writing_logs(
        LOG_WRITER_BEFORE_NOTIFY,
        Victim::Leader,
        load_only,
        LogWrites::Pollers,
    );
}

#[test]
fn crash_before_the_apply_write_batch() {
    crash_and_recover(APPLY_BEFORE_WRITE, Victim::Leader, load_only);
}

#[test]
fn crash_after_the_apply_write_batch() {
    crash_and_recover(APPLY_AFTER_WRITE, Victim::Leader, load_only);
}

// The apply points and a split with the raft pollers also applying (`apply-pool-size = 0`):
// the poller then dies between taking its round's readies and writing its log.

#[test]
fn crash_before_a_poller_writes_its_apply_batch() {
    crash_and_recover_writing_logs(
        APPLY_BEFORE_WRITE,
        Victim::Leader,
        load_only,
        LogWrites::PollersAlsoApply,
    );
}

#[test]
fn crash_after_a_poller_writes_its_apply_batch() {
    crash_and_recover_writing_logs(
        APPLY_AFTER_WRITE,
        Victim::Follower,
        load_only,
        LogWrites::PollersAlsoApply,
    );
}

#[test]
fn crash_while_a_poller_applies_a_split() {
    crash_and_recover_writing_logs(
        SPLIT_APPLY,
        Victim::Follower,
        split_at_m,
        LogWrites::PollersAlsoApply,
    );
}

#[test]
fn crash_while_generating_a_snapshot() {
    crash_and_recover(SNAPSHOT_GENERATE, Victim::Leader, force_snapshot);
}

#[test]
fn crash_while_sending_a_snapshot() {
    crash_and_recover(SNAPSHOT_SEND, Victim::Leader, force_snapshot);
}

#[test]
fn crash_while_receiving_a_snapshot() {
    crash_and_recover(SNAPSHOT_RECEIVE, Victim::Follower, force_snapshot);
}

#[test]
fn crash_before_ingesting_a_snapshot() {
    crash_and_recover(SNAPSHOT_BEFORE_INGEST, Victim::Follower, force_snapshot);
}

#[test]
fn crash_while_applying_a_split() {
    crash_and_recover(SPLIT_APPLY, Victim::Follower, split_at_m);
}

fn split_at_m(cluster: &Arc<RwLock<Cluster>>, _: u64) {
    // Retried: a split racing the crash may be refused with a stale epoch.
    let ok = wait_until(DEFAULT_TIMEOUT, || {
        cluster.read().split(&[b"m".as_slice()]).is_ok()
    });
    assert!(ok, "split at m never succeeded");
}

#[test]
fn crash_while_applying_a_membership_change() {
    crash_and_recover(CONF_CHANGE_APPLY, Victim::Follower, |cluster, store| {
        let c = cluster.read();
        let peer = *c
            .region(1)
            .unwrap()
            .peers
            .iter()
            .find(|p| p.store_id == store)
            .unwrap();
        let learner = Peer {
            role: PeerRole::Learner as i32,
            ..peer
        };
        // Demote the victim to a learner and back: both steps apply on its store.
        let _ = c.change_peers(1, vec![(AddLearnerNode, learner)]);
        let _ = c.change_peers(1, vec![(AddNode, peer)]);
    });
}

#[test]
fn crash_while_destroying_a_removed_peer_finishes_the_removal_at_restart() {
    let _scenario = fail::FailScenario::setup();
    let cluster = cluster(3);
    let load = Load::start(cluster.clone(), 4);
    assert!(load.wait_progress(50), "no progress before the removal");
    let store = pick(&cluster.read(), Victim::Follower);
    let fired = crash_at(REGION_DESTROY, store);
    let peer = *cluster
        .read()
        .region(1)
        .unwrap()
        .peers
        .iter()
        .find(|p| p.store_id == store)
        .unwrap();
    cluster
        .read()
        .must_change_peers(1, vec![(RemoveNode, peer)]);
    assert!(
        wait_until(DEFAULT_TIMEOUT, || fired.load(Ordering::SeqCst)),
        "store {store} never reached {REGION_DESTROY}"
    );
    fail::remove(REGION_DESTROY);
    cluster.write().stop_store(store);
    cluster.write().start_store(store);
    assert!(load.wait_progress(50), "no progress after the removal");
    let (acked, _) = load.finish_and_check();
    assert!(acked > 100, "the load made progress: {acked}");
    // The removed store keeps nothing of the region: no peer, a tombstone, no data. (If it
    // learned of its removal from a tombstone message rather than by applying the change, it
    // comes back as a member of the old configuration and is told again.)
    let c = cluster.read();
    assert!(
        wait_until(DEFAULT_TIMEOUT, || c
            .store(store)
            .meta()
            .lock()
            .region(1)
            .is_none()),
        "store {store} still holds region 1 after its removal"
    );
    let state = raftstore::testexport::load_region_state(c.store(store).kv(), 1)
        .unwrap()
        .expect("region state");
    assert_eq!(state.state(), proto::raft_serverpb::PeerState::Tombstone);
    assert_eq!(c.engine_get(store, b"w0-00000"), None);
    assert_eq!(c.engine_get(store, b"hot0"), None);
}

/// A store that crashes after a merge applied, before the source's peer deleted its raft
/// log, deletes that log when it restarts: the source is a tombstone and never comes back
/// as a peer, so nothing else would.
#[test]
fn crash_before_a_merged_source_deletes_its_raft_log_deletes_it_at_restart() {
    let _scenario = fail::FailScenario::setup();
    let mut cluster = Cluster::with_config(3, raftstore::Config::for_tests());
    let (source, target) = cluster.start_two_regions(b"m");
    cluster.must_put(b"a-before", b"1");
    cluster.must_put(b"x-before", b"1");
    let victim = 3;
    assert!(cluster
        .store(victim)
        .raft_engine()
        .raft_state(source.id)
        .unwrap()
        .is_some());
    let fired = crash_at(REGION_DESTROY, victim);
    // PD resends the step with every heartbeat; so does this loop, until the victim's peer
    // of the source reaches its destroy.
    let reached = wait_until(DEFAULT_TIMEOUT, || {
        if fired.load(Ordering::SeqCst) {
            return true;
        }
        if let (Some(current), Some(leader)) =
            (cluster.region(source.id), cluster.leader_of(source.id))
        {
            cluster.pd_operator(leader.store_id, merge_step(&current, &target));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        false
    });
    assert!(reached, "store {victim} never destroyed the merged source");
    fail::remove(REGION_DESTROY);
    cluster.stop_store(victim);
    cluster.start_store(victim);

    let raft_engine = cluster.store(victim).raft_engine().clone();
    assert_eq!(raft_engine.raft_state(source.id).unwrap(), None);
    assert_eq!(raft_engine.first_index(source.id), None);
    assert!(!raft_engine.raft_groups().contains(&source.id));
    let state = raftstore::testexport::load_region_state(cluster.store(victim).kv(), source.id)
        .unwrap()
        .expect("region state");
    assert_eq!(state.state(), proto::raft_serverpb::PeerState::Tombstone);
    // The merged region serves both sides from every store, the restarted one included.
    cluster.must_engine_eq(victim, b"a-before", Some(b"1"));
    cluster.must_put(b"a-after", b"2");
    cluster.must_engine_eq(victim, b"a-after", Some(b"2"));
}
