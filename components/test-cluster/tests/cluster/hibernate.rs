//! Idle regions stop ticking once every peer agrees, and wake on demand.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use proto::eraftpb::{self, MessageType};
use proto::metapb::{Peer, Region};
use proto::raft_serverpb::{ExtraMessageType, RaftMessage};
use protobuf::Message as _;
use test_cluster::*;

#[test]
fn idle_regions_hibernate_and_wake_on_demand() {
    // A generous liveness timeout, so a slow machine never wakes regions spuriously.
    let cfg = raftstore::Config {
        store_unreachable_timeout: Duration::from_secs(1),
        ..raftstore::Config::for_tests()
    };
    let mut cluster = Cluster::with_config(3, cfg);
    let split: Vec<Vec<u8>> = (1..10u8).map(|i| vec![b'k', b'0' + i]).collect();
    let regions = cluster.bootstrap(&split);
    cluster.start();
    for r in &regions {
        cluster.wait_leader(r.id);
        cluster.must_put(&[b'k', b'0' + (r.id - 1) as u8, b'x'], b"v");
    }
    for r in &regions {
        assert!(
            cluster.wait_region_hibernated(r.id),
            "region {} hibernates",
            r.id
        );
    }
    // A write wakes only its own region, which then goes back to sleep.
    let leader3 = cluster
        .leader_of(3)
        .expect("hibernated regions keep their leader");
    cluster.must_put(b"k2-again", b"w");
    assert_eq!(cluster.leader_of(3), Some(leader3));
    for r in regions.iter().filter(|r| r.id != 3) {
        for s in cluster.store_ids() {
            assert!(
                cluster.is_hibernating(s, r.id),
                "region {} stayed asleep",
                r.id
            );
        }
    }
    assert!(cluster.wait_region_hibernated(3));
    // Reads work on hibernated regions too.
    assert_eq!(cluster.get(b"k4x", true).unwrap(), Some(b"v".to_vec()));

    // The leader's store dies while its regions sleep: followers notice and elect a new one.
    let leader5 = cluster.leader_of(5).unwrap();
    assert!(cluster.wait_region_hibernated(5));
    cluster.stop_store(leader5.store_id);
    let new5 = cluster.wait_leader(5);
    assert_ne!(new5.store_id, leader5.store_id);
    cluster.must_put(b"k4-after", b"z");
    assert_eq!(cluster.must_get(b"k4-after"), Some(b"z".to_vec()));
    cluster.start_store(leader5.store_id);
    cluster.must_engine_eq(leader5.store_id, b"k4-after", Some(b"z"));
}

/// One region on 3 stores, with `cfg` except that no store is declared unreachable within a
/// test; returns the cluster and the region's leader after a first write (`k1` = `v1`).
fn one_region_no_store_is_declared_gone(cfg: raftstore::Config) -> (Cluster, Peer) {
    let mut cluster = Cluster::with_config(
        3,
        raftstore::Config {
            store_unreachable_timeout: Duration::from_secs(600),
            ..cfg
        },
    );
    cluster.bootstrap(&[]);
    cluster.start();
    let leader = cluster.wait_leader(1);
    cluster.must_put(b"k1", b"v1");
    (cluster, leader)
}

#[test]
fn a_restarted_leader_wins_its_sleeping_region_back_at_once() {
    // Nobody notices a store is gone within the test, and every store started after the
    // first election has an election timeout of 100 s: the region only gets a leader in time
    // if the restarted leader campaigns at once and its sleeping followers, which still take
    // it for their leader, weigh its vote instead of waiting out their lease.
    let (mut cluster, leader) =
        one_region_no_store_is_declared_gone(raftstore::Config::for_tests());
    cluster.cfg.raft_election_timeout_ticks = 10_000;
    cluster.restart_stores_except(leader.store_id);
    // The followers learn their leader again from its appends, then the region sleeps.
    cluster.must_put(b"k2", b"v2");
    assert_eq!(cluster.leader_of(1), Some(leader));
    assert!(cluster.wait_region_hibernated(1));

    cluster.stop_store(leader.store_id);
    cluster.start_store(leader.store_id);
    let back = cluster.wait_leader(1);
    assert_eq!(
        back, leader,
        "the restarted leader won the election it started"
    );
    cluster.must_put(b"k3", b"v3");
    assert_eq!(cluster.must_get(b"k1"), Some(b"v1".to_vec()));
    assert_eq!(cluster.must_get(b"k3"), Some(b"v3".to_vec()));
}

/// Counts, per region, the messages that show a sleeping region woke up or held an election:
/// a leader's hibernation requests (sent only by an awake leader) and (pre)vote requests.
#[derive(Default)]
struct WakeSigns {
    hibernate_requests: Mutex<HashMap<u64, usize>>,
    vote_requests: Mutex<HashMap<u64, usize>>,
    /// Heartbeat answers per (region, store they came from).
    heartbeat_answers: Mutex<HashSet<(u64, u64)>>,
}

impl WakeSigns {
    fn count(map: &Mutex<HashMap<u64, usize>>, region_id: u64) -> usize {
        map.lock().get(&region_id).copied().unwrap_or(0)
    }
}

impl Filter for WakeSigns {
    fn check(&self, from: u64, _: u64, msg: &RaftMessage) -> FilterAction {
        if let Some(extra) = &msg.extra {
            if extra.r#type() == ExtraMessageType::MsgHibernateRequest {
                *self
                    .hibernate_requests
                    .lock()
                    .entry(msg.region_id)
                    .or_default() += 1;
            }
            return FilterAction::Pass;
        }
        match eraftpb::Message::parse_from_bytes(&msg.message).map(|m| m.get_msg_type()) {
            Ok(MessageType::MsgRequestVote | MessageType::MsgRequestPreVote) => {
                *self.vote_requests.lock().entry(msg.region_id).or_default() += 1;
            }
            Ok(MessageType::MsgHeartbeatResponse) => {
                self.heartbeat_answers.lock().insert((msg.region_id, from));
            }
            _ => {}
        }
        FilterAction::Pass
    }
}

/// Bootstraps `n` regions on 3 stores, moves every leader to store 1, writes to each and
/// waits until all of them sleep.
fn sleeping_regions_led_by_store_1(cfg: raftstore::Config, n: u8) -> (Cluster, Vec<Region>) {
    let mut cluster = Cluster::with_config(3, cfg);
    let split: Vec<Vec<u8>> = (1..n).map(|i| vec![b'k', b'0' + i]).collect();
    let regions = cluster.bootstrap(&split);
    cluster.start();
    for (i, r) in regions.iter().enumerate() {
        cluster.wait_leader(r.id);
        let on_1 = *r.peers.iter().find(|p| p.store_id == 1).unwrap();
        cluster.must_transfer_leader(r.id, on_1);
        cluster.must_put(&[b'k', b'0' + i as u8, b'x'], b"v");
    }
    for r in &regions {
        assert!(
            cluster.wait_region_hibernated(r.id),
            "region {} hibernates",
            r.id
        );
    }
    (cluster, regions)
}

/// Restarts `store_id`, which leads none of `regions` (all asleep), running `while_down`
/// while it is stopped, and checks that its peers learned their leaders without waking any
/// region or starting an election.
fn restart_wakes_no_region(
    cluster: &mut Cluster,
    store_id: u64,
    regions: &[Region],
    while_down: impl FnOnce(&Cluster),
) {
    let terms: Vec<u64> = regions.iter().map(|r| cluster.newest_term(r.id)).collect();
    cluster.stop_store(store_id);
    while_down(cluster);
    let signs = Arc::new(WakeSigns::default());
    cluster.transport.add_filter(signs.clone());
    cluster.start_store(store_id);
    // The restarted peers ask who leads; each sleeping leader answers with a heartbeat.
    assert!(
        wait_until(DEFAULT_TIMEOUT, || regions.iter().all(|r| signs
            .heartbeat_answers
            .lock()
            .contains(&(r.id, store_id)))),
        "every restarted peer heard from its leader"
    );
    for (r, term) in regions.iter().zip(&terms) {
        assert_eq!(
            WakeSigns::count(&signs.vote_requests, r.id),
            0,
            "region {}: no election",
            r.id
        );
        assert_eq!(
            WakeSigns::count(&signs.hibernate_requests, r.id),
            0,
            "region {}: its leader never woke",
            r.id
        );
        assert_eq!(cluster.newest_term(r.id), *term);
        for s in cluster.store_ids() {
            assert!(
                cluster.is_hibernating(s, r.id),
                "region {} asleep on store {s}",
                r.id
            );
        }
    }
}

/// The configuration of the restart tests: a generous liveness timeout, and a restarted
/// follower's last-resort wake-up (`sleeping-follower-leader-wait`) far beyond the test, so
/// only the leader's answer can settle a restarted peer.
fn restart_test_config() -> raftstore::Config {
    raftstore::Config {
        store_unreachable_timeout: Duration::from_secs(1),
        sleeping_follower_leader_wait: Duration::from_secs(600),
        ..raftstore::Config::for_tests()
    }
}

#[test]
fn a_restarted_follower_store_wakes_no_sleeping_region() {
    // Before, each restarted follower ticked until its election timeout and pre-voted, which
    // woke its region's leader: a store restarting with 300,000 peers woke 200,000 regions.
    let (mut cluster, regions) = sleeping_regions_led_by_store_1(restart_test_config(), 5);
    restart_wakes_no_region(&mut cluster, 3, &regions, |_| {});
    // The restarted peers still take part: the leader's store dies, and stores 2 and 3
    // elect new leaders that hold every write.
    cluster.stop_store(1);
    for (i, r) in regions.iter().enumerate() {
        let new = cluster.wait_leader_elsewhere(r.id, 1);
        assert_ne!(new.store_id, 1);
        assert_eq!(
            cluster.must_get(&[b'k', b'0' + i as u8, b'x']),
            Some(b"v".to_vec())
        );
    }
    cluster.must_put(b"k1-after", b"w");
    assert_eq!(cluster.must_get(b"k1-after"), Some(b"w".to_vec()));
}

/// Makes one store's peer of a region run for a term and lose it: once the peer got
/// `MsgTimeoutNow` (it campaigns at once, voting for itself), everything it sends is dropped,
/// so its vote requests never arrive and the old leader never hears of the new term.
struct MuteAfterTimeoutNow {
    region_id: u64,
    store_id: u64,
    muted: AtomicBool,
    /// The term of the (dropped) vote requests the muted peer sent.
    campaign_term: AtomicU64,
}

impl Filter for MuteAfterTimeoutNow {
    fn check(&self, from: u64, to: u64, msg: &RaftMessage) -> FilterAction {
        if msg.region_id != self.region_id || msg.extra.is_some() {
            return FilterAction::Pass;
        }
        let Ok(m) = eraftpb::Message::parse_from_bytes(&msg.message) else {
            return FilterAction::Pass;
        };
        if to == self.store_id && m.get_msg_type() == MessageType::MsgTimeoutNow {
            self.muted.store(true, Ordering::SeqCst);
            return FilterAction::Pass;
        }
        if from != self.store_id || !self.muted.load(Ordering::SeqCst) {
            return FilterAction::Pass;
        }
        if m.get_msg_type() == MessageType::MsgRequestVote {
            self.campaign_term.store(m.term, Ordering::SeqCst);
        }
        FilterAction::Drop
    }
}

#[test]
fn a_restarted_follower_that_lost_an_election_wakes_no_sleeping_region() {
    // A peer that ran for its region's current term and lost voted for itself in that term,
    // as the term's leader did. Before, such a peer campaigned on restart as if it had led,
    // and its pre-votes woke the region (seen where two peers raced in a region's first
    // election).
    let (mut cluster, regions) = sleeping_regions_led_by_store_1(restart_test_config(), 2);
    let region = &regions[0];
    let peer_on = |s: u64| *region.peers.iter().find(|p| p.store_id == s).unwrap();
    let mute = Arc::new(MuteAfterTimeoutNow {
        region_id: region.id,
        store_id: 3,
        muted: AtomicBool::new(false),
        campaign_term: AtomicU64::new(0),
    });
    cluster.transport.add_filter(mute.clone());
    // Store 3's peer campaigns for the next term and is cut off; store 2's peer then wins
    // that same term with store 1's vote.
    let _ = cluster.transfer_leader(region.id, peer_on(3));
    assert!(
        wait_until(DEFAULT_TIMEOUT, || mute
            .campaign_term
            .load(Ordering::SeqCst)
            != 0),
        "store 3's peer campaigned"
    );
    cluster.must_transfer_leader(region.id, peer_on(2));
    let lost_term = mute.campaign_term.load(Ordering::SeqCst);
    assert_eq!(cluster.newest_term(region.id), lost_term);
    cluster.transport.clear_filters();
    cluster.must_put(b"k0-lost", b"v");
    cluster.must_engine_eq(3, b"k0-lost", Some(b"v"));
    assert!(cluster.wait_region_hibernated(region.id));

    restart_wakes_no_region(&mut cluster, 3, &regions, |cluster| {
        // On disk, store 3's peer voted for itself in the term store 2's peer leads.
        let state = engine::RaftLogEngine::open(&cluster.raft_dir(3))
            .unwrap()
            .raft_state(region.id)
            .unwrap()
            .expect("store 3 keeps the region's raft state");
        assert_eq!((state.term, state.vote), (lost_term, peer_on(3).id));
        assert_ne!(state.led_term, lost_term);
    });
    assert_eq!(cluster.leader_of(region.id), Some(peer_on(2)));
    cluster.must_put(b"k0-after", b"w");
    cluster.must_engine_eq(3, b"k0-after", Some(b"w"));
}

#[test]
fn a_restarted_follower_that_never_voted_in_its_term_wakes_no_sleeping_region() {
    // A peer whose store was down while its region elected a leader learns the new term from
    // the leader's appends and holds no vote in it. Before, such a peer restarted awake and
    // its pre-votes woke the region (seen where a loaded machine started store 3 after its
    // regions' first election).
    let mut cluster = Cluster::with_config(3, restart_test_config());
    let region = cluster.bootstrap(&[]).remove(0);
    let peer_on = |s: u64| *region.peers.iter().find(|p| p.store_id == s).unwrap();
    cluster.start();
    cluster.wait_leader(region.id);
    cluster.must_transfer_leader(region.id, peer_on(1));
    cluster.must_put(b"k1", b"v1");
    cluster.must_engine_eq(3, b"k1", Some(b"v1"));
    cluster.stop_store(3);
    cluster.must_transfer_leader(region.id, peer_on(2));
    let term = cluster.newest_term(region.id);
    cluster.start_store(3);
    cluster.must_put(b"k2", b"v2");
    cluster.must_engine_eq(3, b"k2", Some(b"v2"));
    assert!(cluster.wait_region_hibernated(region.id));

    restart_wakes_no_region(&mut cluster, 3, std::slice::from_ref(&region), |cluster| {
        let state = engine::RaftLogEngine::open(&cluster.raft_dir(3))
            .unwrap()
            .raft_state(region.id)
            .unwrap()
            .expect("store 3 keeps the region's raft state");
        assert_eq!(
            (state.term, state.vote),
            (term, 0),
            "store 3 never voted in the term"
        );
    });
    assert_eq!(cluster.leader_of(region.id), Some(peer_on(2)));
    cluster.must_put(b"k3", b"v3");
    cluster.must_engine_eq(3, b"k3", Some(b"v3"));
}

/// Drops the first raft heartbeat of each region sent to one store.
struct DropFirstHeartbeatTo {
    store_id: u64,
    dropped: Mutex<HashSet<u64>>,
}

impl Filter for DropFirstHeartbeatTo {
    fn check(&self, _: u64, to: u64, msg: &RaftMessage) -> FilterAction {
        if to != self.store_id || msg.extra.is_some() {
            return FilterAction::Pass;
        }
        let heartbeat = eraftpb::Message::parse_from_bytes(&msg.message)
            .is_ok_and(|m| m.get_msg_type() == MessageType::MsgHeartbeat);
        if heartbeat && self.dropped.lock().insert(msg.region_id) {
            FilterAction::Drop
        } else {
            FilterAction::Pass
        }
    }
}

#[test]
fn a_restarted_follower_whose_answer_was_lost_asks_again() {
    // A sleeping leader sends nothing but its answer to a restarted follower's query; if
    // that heartbeat is lost (the leader's store cannot reach the restarted one yet), the
    // follower asks again an election timeout later instead of waiting for its last-resort
    // wake-up (600 s here).
    let (mut cluster, regions) = sleeping_regions_led_by_store_1(restart_test_config(), 3);
    restart_wakes_no_region(&mut cluster, 3, &regions, |cluster| {
        cluster.add_filter(DropFirstHeartbeatTo {
            store_id: 3,
            dropped: Mutex::new(HashSet::new()),
        });
    });
    cluster.must_put(b"k1-after", b"w");
    cluster.must_engine_eq(3, b"k1-after", Some(b"w"));
}

#[test]
fn a_restarted_leader_whose_state_does_not_say_it_led_is_replaced_at_once() {
    // Raft state written before `led_term` existed does not say the peer led: restarted, it
    // asks who leads like a follower. Its followers, asleep and still in its lease, forget it
    // when it asks, so the region elects a leader within an election timeout. Neither
    // fallback (a store declared unreachable, a follower's last-resort wake-up) comes within
    // the test.
    let (mut cluster, leader) = one_region_no_store_is_declared_gone(raftstore::Config {
        sleeping_follower_leader_wait: Duration::from_secs(600),
        ..raftstore::Config::for_tests()
    });
    assert!(cluster.wait_region_hibernated(1));
    cluster.stop_store(leader.store_id);
    {
        let log = engine::RaftLogEngine::open(&cluster.raft_dir(leader.store_id)).unwrap();
        let mut state = log.raft_state(1).unwrap().expect("the leader's raft state");
        assert_eq!(
            (state.vote, state.led_term),
            (leader.id, state.term),
            "the leader's state says it led"
        );
        state.led_term = 0;
        let mut batch = engine::RaftLogBatch::new();
        batch.put_raft_state(1, &state).unwrap();
        log.write(&mut batch, true).unwrap();
    }
    cluster.start_store(leader.store_id);
    cluster.wait_leader(1);
    cluster.must_put(b"k2", b"v2");
    assert_eq!(cluster.must_get(b"k1"), Some(b"v1".to_vec()));
    assert_eq!(cluster.must_get(b"k2"), Some(b"v2".to_vec()));
}

#[test]
fn a_sleeping_leader_stays_asleep_while_it_keeps_a_quorum() {
    // Region 1 is led from store 3; the others from store 1.
    let (cluster, regions) = sleeping_regions_led_by_store_1(raftstore::Config::for_tests(), 4);
    let first = &regions[0];
    let on_3 = *first.peers.iter().find(|p| p.store_id == 3).unwrap();
    cluster.must_transfer_leader(first.id, on_3);
    assert!(cluster.wait_region_hibernated(first.id));
    let signs = Arc::new(WakeSigns::default());
    cluster.transport.add_filter(signs.clone());
    let mut cluster = cluster;
    cluster.stop_store(3);
    // Region 1 gets a new leader only once both other stores declared store 3 unreachable:
    // until then a sleeping follower still in its leader's lease ignores votes.
    let new = cluster.wait_leader_elsewhere(first.id, 3);
    assert_ne!(new.store_id, 3);
    // The regions led from store 1 keep two of three voters: nothing woke them.
    for r in &regions[1..] {
        assert_eq!(
            WakeSigns::count(&signs.hibernate_requests, r.id),
            0,
            "region {}: its leader never woke",
            r.id
        );
        assert!(cluster.is_hibernating(1, r.id), "region {} asleep", r.id);
        assert!(cluster.is_hibernating(2, r.id), "region {} asleep", r.id);
    }
    // They serve as before, and store 3 catches up when it is back.
    cluster.must_put(b"k2-down", b"x");
    cluster.start_store(3);
    cluster.must_engine_eq(3, b"k2-down", Some(b"x"));
    // Losing the quorum still wakes a leader, which steps down (check-quorum).
    cluster.stop_store(2);
    cluster.stop_store(3);
    for r in &regions[1..] {
        assert!(
            wait_until(DEFAULT_TIMEOUT, || cluster.leader_of(r.id).is_none()),
            "region {}: a leader without a quorum stepped down",
            r.id
        );
    }
}

/// Drops the store liveness pings one store sends; its raft messages pass.
struct DropPingsFrom(u64);

impl Filter for DropPingsFrom {
    fn check(&self, from: u64, _: u64, msg: &RaftMessage) -> FilterAction {
        let ping = msg
            .extra
            .as_ref()
            .is_some_and(|e| e.r#type() == ExtraMessageType::MsgStoreHeartbeat);
        if from == self.0 && ping {
            FilterAction::Drop
        } else {
            FilterAction::Pass
        }
    }
}

#[test]
fn a_store_whose_raft_traffic_flows_is_not_declared_unreachable() {
    // A store busy with a burst of raft messages may send its pings late. Before, only pings
    // counted: its peers' stores declared it unreachable and woke every region it led.
    let cfg = raftstore::Config {
        pd_store_heartbeat_tick_interval: Duration::from_millis(100),
        ..raftstore::Config::for_tests()
    };
    let (cluster, regions) = sleeping_regions_led_by_store_1(cfg, 3);
    let (busy, asleep) = (&regions[0], &regions[1]);
    for r in [busy, asleep] {
        let on_3 = *r.peers.iter().find(|p| p.store_id == 3).unwrap();
        cluster.must_transfer_leader(r.id, on_3);
    }
    assert!(cluster.wait_region_hibernated(asleep.id));
    let term = cluster.newest_term(asleep.id);
    let signs = Arc::new(WakeSigns::default());
    cluster.transport.add_filter(signs.clone());
    cluster.add_filter(DropPingsFrom(3));
    // Writes to the region store 3 leads keep its appends flowing for ten PD store reports
    // of store 1 (100 ms apart; store-unreachable-timeout is 100 ms).
    let clock = cluster.pd.store_report_count(1);
    for i in 0..100_000u32 {
        if cluster.pd.store_report_count(1) >= clock + 10 {
            break;
        }
        cluster.must_put(format!("k0-{i}").as_bytes(), b"v");
    }
    assert!(cluster.pd.store_report_count(1) >= clock + 10);
    assert_eq!(
        WakeSigns::count(&signs.vote_requests, asleep.id),
        0,
        "no election in the sleeping region store 3 leads"
    );
    assert_eq!(cluster.newest_term(asleep.id), term);
    assert_eq!(cluster.leader_of(asleep.id).map(|p| p.store_id), Some(3));
}
