//! Leader election under partitions.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use proto::eraftpb::{self, MessageType};
use proto::metapb::Peer;
use proto::raft_serverpb::RaftMessage;
use protobuf::Message as _;
use rand::{Rng, SeedableRng};
use test_cluster::*;

/// Records every (term -> leader peers) seen, so two leaders in one term can be caught.
#[derive(Default)]
struct LeaderHistory {
    by_term: HashMap<u64, HashSet<u64>>,
}

impl LeaderHistory {
    fn observe(&mut self, cluster: &Cluster, region_id: u64) {
        for (peer, term) in cluster.leaders(region_id) {
            self.by_term.entry(term).or_default().insert(peer.id);
        }
    }

    fn assert_one_leader_per_term(&self) {
        for (term, leaders) in &self.by_term {
            assert!(leaders.len() <= 1, "term {term} had leaders {leaders:?}");
        }
    }
}

#[test]
fn initial_election_gives_exactly_one_leader() {
    let cluster = Cluster::run(3);
    let leader = cluster.wait_leader(1);
    let leaders = cluster.leaders(1);
    let term = leaders.iter().find(|(p, _)| p.id == leader.id).unwrap().1;
    let same_term: Vec<_> = leaders.iter().filter(|(_, t)| *t == term).collect();
    assert_eq!(same_term.len(), 1, "one leader in term {term}: {leaders:?}");
    // The leader is stable while nothing fails.
    let mut history = LeaderHistory::default();
    for _ in 0..50 {
        history.observe(&cluster, 1);
        std::thread::sleep(Duration::from_millis(5));
    }
    history.assert_one_leader_per_term();
    assert_eq!(cluster.leader_of(1), Some(leader));
}

#[test]
fn re_election_after_leader_is_isolated() {
    let cluster = Cluster::run(3);
    let old = cluster.wait_leader(1);
    cluster.must_put(b"k1", b"v1");
    cluster.isolate(old.store_id);
    let new = cluster.wait_leader_elsewhere(1, old.store_id);
    assert_ne!(new.store_id, old.store_id);
    cluster.must_put(b"k2", b"v2");
    cluster.clear_filters();
    // After healing, the old leader follows and catches up.
    cluster.must_engine_eq(old.store_id, b"k2", Some(b"v2"));
    let mut history = LeaderHistory::default();
    history.observe(&cluster, 1);
    history.assert_one_leader_per_term();
}

#[test]
fn no_leader_without_a_quorum() {
    let mut cluster = Cluster::run(3);
    let leader = cluster.wait_leader(1);
    cluster.must_put(b"k", b"v");
    let others: Vec<u64> = cluster
        .store_ids()
        .into_iter()
        .filter(|s| *s != leader.store_id)
        .collect();
    for s in &others {
        cluster.stop_store(*s);
    }
    // The lone store must step down (check-quorum) and can never win an election.
    assert!(
        wait_until(DEFAULT_TIMEOUT, || cluster.leader_of(1).is_none()),
        "a leader without a quorum stepped down"
    );
    for _ in 0..30 {
        assert!(
            cluster.leader_of(1).is_none(),
            "no leader without a majority"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for s in others {
        cluster.start_store(s);
    }
    cluster.wait_leader(1);
    assert_eq!(cluster.must_get(b"k"), Some(b"v".to_vec()));
}

#[test]
fn random_partitions_never_show_two_leaders_in_a_term() {
    let cluster = Cluster::run(5);
    cluster.wait_leader(1);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut history = LeaderHistory::default();
    for round in 0..12 {
        let mut stores = cluster.store_ids();
        let cut = rng.gen_range(1..stores.len());
        for i in (1..stores.len()).rev() {
            stores.swap(i, rng.gen_range(0..=i));
        }
        let (a, b) = stores.split_at(cut);
        cluster.partition(a, b);
        for _ in 0..20 {
            history.observe(&cluster, 1);
            std::thread::sleep(Duration::from_millis(10));
        }
        cluster.clear_filters();
        for _ in 0..5 {
            history.observe(&cluster, 1);
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = round;
    }
    history.assert_one_leader_per_term();
    // The healed cluster still works.
    cluster.must_put(b"after", b"partitions");
    assert_eq!(cluster.must_get(b"after"), Some(b"partitions".to_vec()));
}

/// One region on three stores whose followers, left to their own clocks, would wait 100-200 s
/// (10,000-20,000 ticks of 10 ms) before campaigning: they run with a 10,000-tick election
/// timeout from a restart after the first election. A store is declared unreachable after
/// 1 s of silence (generous, so a slow machine never declares a live store gone). Returns the
/// cluster and the leader, after `k1` = `v1` and `k2` = `v2` were written.
fn one_region_with_patient_followers(hibernate: bool) -> (Cluster, Peer) {
    let cfg = raftstore::Config {
        hibernate_regions: hibernate,
        store_unreachable_timeout: Duration::from_secs(1),
        ..raftstore::Config::for_tests()
    };
    let mut cluster = Cluster::with_config(3, cfg);
    cluster.bootstrap(&[]);
    cluster.start();
    let leader = cluster.wait_leader(1);
    cluster.must_put(b"k1", b"v1");
    cluster.cfg.raft_election_timeout_ticks = 10_000;
    cluster.restart_stores_except(leader.store_id);
    cluster.must_put(b"k2", b"v2");
    assert_eq!(cluster.leader_of(1), Some(leader));
    (cluster, leader)
}

/// Kills the leader's store and checks the followers elect a new leader that serves every
/// write: within the test's 20 s wait only if they campaign on the store's silence instead of
/// waiting out their 100-200 s election timeout.
fn the_followers_of_a_dead_leader_elect_on_its_silence(cluster: &mut Cluster, leader: Peer) {
    cluster.stop_store(leader.store_id);
    let new = cluster.wait_leader_elsewhere(1, leader.store_id);
    assert_ne!(new.store_id, leader.store_id);
    cluster.must_put(b"k3", b"v3");
    for (k, v) in [(b"k1", b"v1"), (b"k2", b"v2"), (b"k3", b"v3")] {
        assert_eq!(cluster.must_get(k), Some(v.to_vec()));
    }
    cluster.start_store(leader.store_id);
    cluster.must_engine_eq(leader.store_id, b"k3", Some(b"v3"));
}

#[test]
fn followers_of_a_dead_leader_campaign_once_its_store_is_silent() {
    let (mut cluster, leader) = one_region_with_patient_followers(false);
    the_followers_of_a_dead_leader_elect_on_its_silence(&mut cluster, leader);
}

/// A second dead leader after the first one's store came back: the followers now include a
/// peer restarted after an election it missed, and they still campaign on the silence.
fn a_second_dead_leader_after_a_restart_is_replaced_on_its_silence(hibernate: bool) {
    let (mut cluster, leader) = one_region_with_patient_followers(hibernate);
    if hibernate {
        assert!(cluster.wait_region_hibernated(1));
    }
    the_followers_of_a_dead_leader_elect_on_its_silence(&mut cluster, leader);
    let second = cluster.wait_leader(1);
    if hibernate {
        assert!(cluster.wait_region_hibernated(1));
    }
    the_followers_of_a_dead_leader_elect_on_its_silence(&mut cluster, second);
}

#[test]
fn followers_campaign_on_a_second_dead_leaders_silence_after_a_restart() {
    a_second_dead_leader_after_a_restart_is_replaced_on_its_silence(false);
}

#[test]
fn sleeping_followers_campaign_on_a_second_dead_leaders_silence_after_a_restart() {
    a_second_dead_leader_after_a_restart_is_replaced_on_its_silence(true);
}

#[test]
fn sleeping_followers_of_a_dead_leader_campaign_once_its_store_is_silent() {
    let (mut cluster, leader) = one_region_with_patient_followers(true);
    assert!(cluster.wait_region_hibernated(1));
    the_followers_of_a_dead_leader_elect_on_its_silence(&mut cluster, leader);
}

/// Cuts the link between two stores (both ways) and notes what `watched` asks for and gets:
/// pre-vote requests it sends, pre-votes granted to it, and vote requests it sends (only a
/// granted pre-vote leads to one).
struct CutLinkWatchVotes {
    link: (u64, u64),
    watched: u64,
    pre_vote_sent: AtomicBool,
    pre_vote_granted: AtomicBool,
    vote_sent: AtomicBool,
}

impl Filter for CutLinkWatchVotes {
    fn check(&self, from: u64, to: u64, msg: &RaftMessage) -> FilterAction {
        let (a, b) = self.link;
        if (from, to) == (a, b) || (from, to) == (b, a) {
            return FilterAction::Drop;
        }
        if msg.extra.is_some() {
            return FilterAction::Pass;
        }
        let Ok(m) = eraftpb::Message::parse_from_bytes(&msg.message) else {
            return FilterAction::Pass;
        };
        let seen = match m.get_msg_type() {
            MessageType::MsgRequestPreVote if from == self.watched => &self.pre_vote_sent,
            MessageType::MsgRequestVote if from == self.watched => &self.vote_sent,
            MessageType::MsgRequestPreVoteResponse if to == self.watched && !m.reject => {
                &self.pre_vote_granted
            }
            _ => return FilterAction::Pass,
        };
        seen.store(true, Ordering::SeqCst);
        FilterAction::Pass
    }
}

#[test]
fn a_follower_cut_off_from_a_live_leader_cannot_unseat_it() {
    // The leader's store falls silent for one follower only: that follower campaigns early,
    // but the other follower still hears the leader and ignores the pre-vote (check-quorum's
    // lease), so the leader keeps its term and serves on.
    let (cluster, leader) = one_region_with_patient_followers(false);
    let term = cluster.newest_term(1);
    let cut_off = cluster.store_other_than(leader.store_id);
    let watch = Arc::new(CutLinkWatchVotes {
        link: (leader.store_id, cut_off),
        watched: cut_off,
        pre_vote_sent: AtomicBool::new(false),
        pre_vote_granted: AtomicBool::new(false),
        vote_sent: AtomicBool::new(false),
    });
    cluster.transport.add_filter(watch.clone());
    assert!(
        wait_until(DEFAULT_TIMEOUT, || watch
            .pre_vote_sent
            .load(Ordering::SeqCst)),
        "the cut-off follower campaigned once the leader's store fell silent"
    );
    // The writes' appends reach the other follower after the pre-vote did.
    cluster.must_put(b"k3", b"v3");
    cluster.must_put(b"k4", b"v4");
    assert!(!watch.pre_vote_granted.load(Ordering::SeqCst));
    assert!(!watch.vote_sent.load(Ordering::SeqCst));
    assert_eq!(cluster.leader_of(1), Some(leader));
    assert_eq!(
        cluster.newest_term(1),
        term,
        "a refused pre-vote raises no term"
    );
    cluster.clear_filters();
    cluster.must_engine_eq(cut_off, b"k4", Some(b"v4"));
}
