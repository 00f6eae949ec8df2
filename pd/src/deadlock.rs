//! The cluster's deadlock detector: a wait-for graph over transactions, as TiKV's deadlock
//! detector keeps it (`DetectTable` in TiKV's `lock_manager/deadlock.rs`). TiKV elects one
//! store to hold the graph; Shoal keeps it on PD, which every store already talks to, so
//! there is exactly one per cluster.
//!
//! A store reports that transaction `txn` waits for the lock of transaction `wait_for_txn`
//! on a key (identified by its hash). The edge `txn -> wait_for_txn` is added unless a path
//! `wait_for_txn -> ... -> txn` already exists: then the new wait would close a cycle, so it
//! is refused and answered with the cycle (the waiter gives up, which breaks the deadlock
//! before it forms). Stores remove an edge when its wait ends; every edge also expires
//! `ttl` after it was last reported (3 s, like TiKV), so a lost clean-up or a store that
//! died mid-wait never leaves a phantom edge that makes later waits look deadlocked.
//! A search visits at most `max_search` transactions, so a huge graph cannot stall PD; past
//! that bound the wait is let through undetected (it then ends by its lock-wait timeout).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use proto::deadlock::WaitForEntry;

/// How long an edge lives after it was last reported (TiKV's detector uses 3 s).
pub const DEFAULT_TTL: Duration = Duration::from_secs(3);

/// Transactions one search visits at most.
pub const DEFAULT_MAX_SEARCH: usize = 10_000;

/// A wait that would close a cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct Deadlock {
    /// The hash of the key the cycle closes on: the key, held by the transaction that asked,
    /// which the last transaction of the existing chain waits for (TiKV's
    /// `deadlock_key_hash`).
    pub key_hash: u64,
    /// The edges of the cycle in order, from the one leaving `wait_for_txn` to the new one,
    /// which comes last.
    pub wait_chain: Vec<WaitForEntry>,
}

/// One key through which a transaction waits for another.
#[derive(Debug, Clone)]
struct KeyWait {
    entry: WaitForEntry,
    /// When the wait was first reported, for `wait_time`.
    since: Instant,
    /// When it was last reported; it expires `ttl` after.
    refreshed: Instant,
}

impl KeyWait {
    /// Whether the wait was reported less than `ttl` before `now`.
    fn live(&self, now: Instant, ttl: Duration) -> bool {
        now.saturating_duration_since(self.refreshed) < ttl
    }
}

/// The wait-for graph. Pure logic: the caller passes the time, so tests control expiry.
#[derive(Debug)]
pub struct WaitForGraph {
    /// txn -> the transactions it waits for -> the keys it waits on (few: usually one).
    edges: HashMap<u64, HashMap<u64, Vec<KeyWait>>>,
    ttl: Duration,
    max_search: usize,
    /// When every expired edge was last swept away (searches only drop the ones they meet).
    last_sweep: Option<Instant>,
}

impl Default for WaitForGraph {
    fn default() -> Self {
        WaitForGraph::new(DEFAULT_TTL, DEFAULT_MAX_SEARCH)
    }
}

impl WaitForGraph {
    pub fn new(ttl: Duration, max_search: usize) -> WaitForGraph {
        WaitForGraph {
            edges: HashMap::new(),
            ttl,
            max_search: max_search.max(1),
            last_sweep: None,
        }
    }

    /// Reports that `entry.txn` waits for `entry.wait_for_txn` on the key `entry.key_hash`.
    /// Returns the deadlock, without adding the edge, when `wait_for_txn` already waits
    /// (through any chain) for `txn`; otherwise records the edge (or refreshes it) and
    /// returns `None`.
    pub fn detect(&mut self, entry: &WaitForEntry, now: Instant) -> Option<Deadlock> {
        self.sweep_if_due(now);
        // A transaction never waits for itself: nothing to record.
        if entry.txn == entry.wait_for_txn {
            return None;
        }
        // An edge already there was checked when it was added, and any wait added since
        // that would close a cycle through it was refused: only refresh it (as TiKV does).
        if self.refresh_if_present(entry, now) {
            return None;
        }
        if let Some(deadlock) = self.find_path(entry, now) {
            return Some(deadlock);
        }
        self.edges
            .entry(entry.txn)
            .or_default()
            .entry(entry.wait_for_txn)
            .or_default()
            .push(KeyWait {
                entry: entry.clone(),
                since: now,
                refreshed: now,
            });
        None
    }

    /// Removes the wait of `txn` for `wait_for_txn` on the key `key_hash`.
    pub fn clean_up_wait_for(&mut self, txn: u64, wait_for_txn: u64, key_hash: u64) {
        let Some(outs) = self.edges.get_mut(&txn) else {
            return;
        };
        if let Some(waits) = outs.get_mut(&wait_for_txn) {
            waits.retain(|w| w.entry.key_hash != key_hash);
            if waits.is_empty() {
                outs.remove(&wait_for_txn);
            }
        }
        if outs.is_empty() {
            self.edges.remove(&txn);
        }
    }

    /// Removes every wait of `txn`.
    pub fn clean_up(&mut self, txn: u64) {
        self.edges.remove(&txn);
    }

    /// Every live wait, with `wait_time` the milliseconds since it was first reported.
    pub fn entries(&mut self, now: Instant) -> Vec<WaitForEntry> {
        self.sweep(now);
        let mut out: Vec<WaitForEntry> = self
            .edges
            .values()
            .flat_map(|outs| outs.values().flatten())
            .map(|w| entry_at(w, now))
            .collect();
        out.sort_by_key(|e| (e.txn, e.wait_for_txn, e.key_hash));
        out
    }

    /// Live waits in the graph.
    pub fn len(&mut self, now: Instant) -> usize {
        self.sweep(now);
        self.edges
            .values()
            .flat_map(|outs| outs.values())
            .map(Vec::len)
            .sum()
    }

    pub fn is_empty(&mut self, now: Instant) -> bool {
        self.len(now) == 0
    }

    /// Refreshes the edge `txn -> wait_for_txn` if it is live, adding the key if it is new
    /// for the edge; false when there is no live edge.
    fn refresh_if_present(&mut self, entry: &WaitForEntry, now: Instant) -> bool {
        let ttl = self.ttl;
        let Some(waits) = self
            .edges
            .get_mut(&entry.txn)
            .and_then(|outs| outs.get_mut(&entry.wait_for_txn))
        else {
            return false;
        };
        waits.retain(|w| w.live(now, ttl));
        if waits.is_empty() {
            self.clean_up_wait_for(entry.txn, entry.wait_for_txn, entry.key_hash);
            return false;
        }
        match waits
            .iter_mut()
            .find(|w| w.entry.key_hash == entry.key_hash)
        {
            Some(w) => w.refreshed = now,
            None => waits.push(KeyWait {
                entry: entry.clone(),
                since: now,
                refreshed: now,
            }),
        }
        true
    }

    /// Depth-first search from `wait_for_txn` for `txn` over live edges, dropping the expired
    /// ones it meets. Returns the cycle the new edge would close.
    fn find_path(&mut self, entry: &WaitForEntry, now: Instant) -> Option<Deadlock> {
        let (txn, start) = (entry.txn, entry.wait_for_txn);
        // Each visited transaction -> the one whose edge led to it (the start has none).
        let mut came_from: HashMap<u64, Option<u64>> = HashMap::from([(start, None)]);
        let mut stack = vec![start];
        while let Some(node) = stack.pop() {
            let Some(outs) = self.edges.get_mut(&node) else {
                continue;
            };
            let ttl = self.ttl;
            outs.retain(|_, waits| {
                waits.retain(|w| w.live(now, ttl));
                !waits.is_empty()
            });
            if outs.is_empty() {
                self.edges.remove(&node);
                continue;
            }
            if outs.contains_key(&txn) {
                return Some(self.cycle(entry, node, &came_from, now));
            }
            let next: Vec<u64> = outs.keys().copied().collect();
            for to in next {
                if came_from.contains_key(&to) {
                    continue;
                }
                if came_from.len() >= self.max_search {
                    return None;
                }
                came_from.insert(to, Some(node));
                stack.push(to);
            }
        }
        None
    }

    /// The cycle `wait_for_txn -> ... -> last -> txn -> wait_for_txn`, each edge represented
    /// by its oldest key wait.
    fn cycle(
        &self,
        entry: &WaitForEntry,
        last: u64,
        came_from: &HashMap<u64, Option<u64>>,
        now: Instant,
    ) -> Deadlock {
        // Walk back from `last` to the start, then reverse: the edges in waiting order.
        let mut hops = vec![(last, entry.txn)];
        let mut node = last;
        while let Some(Some(prev)) = came_from.get(&node) {
            hops.push((*prev, node));
            node = *prev;
        }
        hops.reverse();
        let mut wait_chain: Vec<WaitForEntry> = hops
            .into_iter()
            .filter_map(|(from, to)| self.oldest_wait(from, to))
            .map(|w| entry_at(w, now))
            .collect();
        let key_hash = wait_chain.last().map_or(0, |e| e.key_hash);
        wait_chain.push(entry.clone());
        Deadlock {
            key_hash,
            wait_chain,
        }
    }

    fn oldest_wait(&self, from: u64, to: u64) -> Option<&KeyWait> {
        self.edges
            .get(&from)?
            .get(&to)?
            .iter()
            .min_by_key(|w| w.since)
    }

    fn sweep_if_due(&mut self, now: Instant) {
        if self
            .last_sweep
            .is_none_or(|at| now.saturating_duration_since(at) >= self.ttl)
        {
            self.sweep(now);
        }
    }

    /// Drops every expired wait.
    fn sweep(&mut self, now: Instant) {
        let ttl = self.ttl;
        self.edges.retain(|_, outs| {
            outs.retain(|_, waits| {
                waits.retain(|w| w.live(now, ttl));
                !waits.is_empty()
            });
            !outs.is_empty()
        });
        self.last_sweep = Some(now);
    }
}

fn entry_at(w: &KeyWait, now: Instant) -> WaitForEntry {
    WaitForEntry {
        wait_time: now.saturating_duration_since(w.since).as_millis() as u64,
        ..w.entry.clone()
    }
}

/// The graph behind a lock, on the wall clock: what the gRPC service shares between streams.
#[derive(Debug, Default)]
pub struct Detector {
    graph: Mutex<WaitForGraph>,
}

impl Detector {
    pub fn new(graph: WaitForGraph) -> Detector {
        Detector {
            graph: Mutex::new(graph),
        }
    }

    pub fn detect(&self, entry: &WaitForEntry) -> Option<Deadlock> {
        self.graph.lock().detect(entry, Instant::now())
    }

    pub fn clean_up_wait_for(&self, txn: u64, wait_for_txn: u64, key_hash: u64) {
        self.graph
            .lock()
            .clean_up_wait_for(txn, wait_for_txn, key_hash)
    }

    pub fn clean_up(&self, txn: u64) {
        self.graph.lock().clean_up(txn)
    }

    pub fn entries(&self) -> Vec<WaitForEntry> {
        self.graph.lock().entries(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait(txn: u64, wait_for_txn: u64, key_hash: u64) -> WaitForEntry {
        WaitForEntry {
            txn,
            wait_for_txn,
            key_hash,
            key: format!("k{key_hash}").into_bytes(),
            ..Default::default()
        }
    }

    /// (txn, wait_for_txn, key_hash) of each entry.
    fn edges(entries: &[WaitForEntry]) -> Vec<(u64, u64, u64)> {
        entries
            .iter()
            .map(|e| (e.txn, e.wait_for_txn, e.key_hash))
            .collect()
    }

    #[test]
    fn two_transactions_waiting_on_each_other_are_a_deadlock() {
        let mut g = WaitForGraph::default();
        let now = Instant::now();
        assert_eq!(g.detect(&wait(1, 2, 20), now), None);
        let found = g.detect(&wait(2, 1, 10), now).expect("a deadlock");
        // 2 waits on key 10, held by 1, which waits on key 20 held by 2: the cycle closes
        // on key 20, the key of the asking transaction that the chain waits for.
        assert_eq!(found.key_hash, 20);
        assert_eq!(edges(&found.wait_chain), vec![(1, 2, 20), (2, 1, 10)]);
        assert_eq!(found.wait_chain[0].key, b"k20");
        // The refused edge is not recorded.
        assert_eq!(edges(&g.entries(now)), vec![(1, 2, 20)]);
    }

    #[test]
    fn a_cycle_of_three_comes_back_in_waiting_order() {
        let mut g = WaitForGraph::default();
        let now = Instant::now();
        assert_eq!(g.detect(&wait(1, 2, 12), now), None);
        assert_eq!(g.detect(&wait(2, 3, 23), now), None);
        let found = g.detect(&wait(3, 1, 31), now).expect("a deadlock");
        assert_eq!(found.key_hash, 23);
        assert_eq!(
            edges(&found.wait_chain),
            vec![(1, 2, 12), (2, 3, 23), (3, 1, 31)]
        );
        assert_eq!(g.len(now), 2);
    }

    #[test]
    fn chains_and_shared_holders_are_no_deadlock() {
        let mut g = WaitForGraph::default();
        let now = Instant::now();
        // 1 -> 2 -> 3, 1 -> 3, 4 -> 1, 5 -> 3: no cycle anywhere.
        for (txn, wait_for, key) in [(1, 2, 1), (2, 3, 2), (1, 3, 3), (4, 1, 4), (5, 3, 5)] {
            assert_eq!(
                g.detect(&wait(txn, wait_for, key), now),
                None,
                "{txn}->{wait_for}"
            );
        }
        // The same wait reported again, or on a second key, only refreshes the edge.
        assert_eq!(g.detect(&wait(1, 2, 1), now), None);
        assert_eq!(g.detect(&wait(1, 2, 6), now), None);
        // A transaction never deadlocks with itself.
        assert_eq!(g.detect(&wait(7, 7, 7), now), None);
        assert_eq!(g.len(now), 6);
    }

    #[test]
    fn edges_expire_after_the_ttl_unless_reported_again() {
        let ttl = Duration::from_secs(3);
        let mut g = WaitForGraph::new(ttl, DEFAULT_MAX_SEARCH);
        let t0 = Instant::now();
        assert_eq!(g.detect(&wait(1, 2, 20), t0), None);
        assert_eq!(g.detect(&wait(3, 4, 40), t0), None);
        // 1 -> 2 is reported again just before it would expire; 3 -> 4 is not.
        assert_eq!(g.detect(&wait(1, 2, 20), t0 + ttl / 2), None);
        let later = t0 + ttl + Duration::from_millis(1);
        assert!(g.detect(&wait(4, 3, 30), later).is_none(), "3 -> 4 expired");
        assert!(g.detect(&wait(2, 1, 10), later).is_some(), "1 -> 2 is live");
        // Long after, nothing is left and the old wait is no deadlock any more.
        let much_later = later + ttl * 2;
        assert!(g.is_empty(much_later));
        assert_eq!(g.detect(&wait(2, 1, 10), much_later), None);
    }

    #[test]
    fn clean_ups_remove_one_wait_or_all_of_a_transaction() {
        let mut g = WaitForGraph::default();
        let now = Instant::now();
        assert_eq!(g.detect(&wait(1, 2, 20), now), None);
        assert_eq!(g.detect(&wait(1, 2, 21), now), None);
        assert_eq!(g.detect(&wait(1, 3, 30), now), None);
        assert_eq!(g.detect(&wait(4, 1, 10), now), None);

        g.clean_up_wait_for(1, 2, 20);
        assert_eq!(
            edges(&g.entries(now)),
            vec![(1, 2, 21), (1, 3, 30), (4, 1, 10)]
        );
        // Still waiting for 2 through key 21: 2 -> 1 closes a cycle.
        assert!(g.detect(&wait(2, 1, 11), now).is_some());
        g.clean_up_wait_for(1, 2, 21);
        assert_eq!(g.detect(&wait(2, 1, 11), now), None);

        g.clean_up(1);
        assert_eq!(edges(&g.entries(now)), vec![(2, 1, 11), (4, 1, 10)]);
        // 1 waits for nobody now, so 3 may wait for 1.
        assert_eq!(g.detect(&wait(3, 1, 12), now), None);
        // Cleaning up what is not there is harmless.
        g.clean_up_wait_for(9, 8, 7);
        g.clean_up(9);
    }

    #[test]
    fn the_search_gives_up_past_its_bound() {
        let now = Instant::now();
        let chain = |g: &mut WaitForGraph| {
            for t in 1..20 {
                assert_eq!(g.detect(&wait(t, t + 1, t), now), None);
            }
        };
        let mut small = WaitForGraph::new(DEFAULT_TTL, 5);
        chain(&mut small);
        assert_eq!(small.detect(&wait(20, 1, 99), now), None);
        let mut large = WaitForGraph::default();
        chain(&mut large);
        let found = large.detect(&wait(20, 1, 99), now).expect("a deadlock");
        assert_eq!(found.wait_chain.len(), 20);
        assert_eq!(found.key_hash, 19);
    }

    #[test]
    fn the_detector_reports_wait_times_and_shares_the_graph() {
        let d = Detector::default();
        assert!(d.detect(&wait(1, 2, 20)).is_none());
        let entries = d.entries();
        assert_eq!(edges(&entries), vec![(1, 2, 20)]);
        assert_eq!(entries[0].key, b"k20");
        assert!(d.detect(&wait(2, 1, 10)).is_some());
        d.clean_up(1);
        assert!(d.entries().is_empty());
    }
}
