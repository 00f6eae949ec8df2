//! Leader election under partitions.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

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
