//! What a region leader tells PD about its region besides the meta: which peers are down or
//! pending, how big the region is and how much was written. State and pure rules here; the
//! reporting itself is `operation::pd_heartbeat`.

use super::peer_map::PeerMap;
use std::time::{Duration, Instant};

use proto::metapb;
use proto::pdpb::PeerStats;

use crate::stats::{Flow, StoreLiveness};

/// PD reporting state of one peer.
#[derive(Debug, Default)]
pub struct PdStats {
    /// When each other peer was last heard from (kept while leading).
    pub peer_heard: PeerMap<Instant>,
    /// Peers added while this peer led, with the log index they must reach to count as
    /// caught up.
    pub catching_up: PeerMap<u64>,
    /// Key + value bytes of the region's data (all data column families), if measured.
    pub approximate_size: Option<u64>,
    /// Keys of the region's data, if measured.
    pub approximate_keys: Option<u64>,
    /// Written while leading, since the last report.
    pub written: Flow,
    /// Unix seconds of the last report.
    pub last_report: u64,
    /// Down and pending peers as last reported. A leader that steps down repeats them in its
    /// final report: its raft progress of the followers is gone by then.
    pub reported_down: Vec<PeerStats>,
    pub reported_pending: Vec<metapb::Peer>,
    /// When the live PD heartbeat tick is due (none registered: `None`). A tick that fires
    /// before this was replaced by a sooner one (the region woke up) and is ignored.
    pub tick_due: Option<Instant>,
    /// What the last report said, for skipping ticks that would repeat it (none: nothing sent
    /// since this peer last became leader).
    pub last_sent: Option<SentReport>,
}

/// The gist of a region report: everything PD acts on except the flow, as a hash, and when it
/// was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SentReport {
    /// [`report_digest`] of the report.
    pub digest: u64,
    /// The report carried written or read bytes or keys.
    pub had_flow: bool,
    /// The same report (digest, no flow) had already been sent before this one: it was
    /// repeated once, so one lost or refused report (a stream that broke, a PD not yet
    /// ready) cannot leave PD with an old picture until the quiet limit.
    pub repeated: bool,
    pub at: Instant,
}

/// A hash of what PD learns from a report besides its flow: the region's epoch and peers, the
/// leader and its term, which peers are down or pending (not for how long: that grows on every
/// tick) and the size estimates. The epoch stands for the range, which only changes with it.
pub fn report_digest(
    region: &metapb::Region,
    leader: &metapb::Peer,
    term: u64,
    down: &[PeerStats],
    pending: &[metapb::Peer],
    size: u64,
    keys: u64,
) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    region.id.hash(&mut h);
    let epoch = region.region_epoch.unwrap_or_default();
    (epoch.conf_ver, epoch.version).hash(&mut h);
    for p in &region.peers {
        (p.id, p.store_id, p.role).hash(&mut h);
    }
    (leader.id, term).hash(&mut h);
    down.iter()
        .map(|d| d.peer.map_or(0, |p| p.id))
        .collect::<Vec<_>>()
        .hash(&mut h);
    pending
        .iter()
        .map(|p| p.id)
        .collect::<Vec<_>>()
        .hash(&mut h);
    (size, keys).hash(&mut h);
    h.finish()
}

/// Whether a tick may skip its report: PD was already told exactly this twice (same digest,
/// repeated once), neither that report nor this one carries flow (so PD's hot-region rates
/// already read zero), and the last report is younger than `max_quiet`, after which one is
/// sent anyway so PD's picture is refreshed now and then (after a PD restart, say).
pub fn may_skip_report(
    last: Option<&SentReport>,
    digest: u64,
    has_flow: bool,
    now: Instant,
    max_quiet: Duration,
) -> bool {
    match last {
        Some(last) => {
            last.digest == digest
                && last.repeated
                && !last.had_flow
                && !has_flow
                && now.saturating_duration_since(last.at) < max_quiet
        }
        None => false,
    }
}

impl PdStats {
    /// A new leader starts every peer's silence clock now.
    pub fn on_became_leader(&mut self, peers: &[metapb::Peer], now: Instant) {
        self.peer_heard.clear();
        for p in peers {
            self.peer_heard.insert(p.id, now);
        }
        self.catching_up.clear();
        self.written = Flow::default();
        self.last_sent = None;
    }

    /// A PD heartbeat tick fired at `now`: true if it is the live one (it is then no longer
    /// registered), false if a sooner tick replaced it.
    pub fn tick_fired(&mut self, now: Instant) -> bool {
        match self.tick_due {
            Some(due) if now >= due => {
                self.tick_due = None;
                true
            }
            _ => false,
        }
    }

    /// Whether a tick due `interval` after `now` must be registered: none is, or the one
    /// registered is due later than that.
    pub fn tick_needed(&self, now: Instant, interval: Duration) -> bool {
        self.tick_due.is_none_or(|due| due > now + interval)
    }

    /// A tick due at `due` was registered; it replaces any other.
    pub fn tick_registered(&mut self, due: Instant) {
        self.tick_due = Some(due);
    }

    pub fn heard_from(&mut self, peer_id: u64, now: Instant) {
        self.peer_heard.insert(peer_id, now);
    }

    /// A hibernated region exchanges no messages; every peer agreed to sleep, so a peer counts
    /// as heard from whenever its store last pinged this one.
    pub fn refresh_from_stores(
        &mut self,
        peers: &[metapb::Peer],
        self_id: u64,
        liveness: &StoreLiveness,
    ) {
        for p in peers.iter().filter(|p| p.id != self_id) {
            if let Some(at) = liveness.last_heard(p.store_id) {
                let e = self.peer_heard.get_or_insert(p.id, at);
                *e = (*e).max(at);
            }
        }
    }

    /// Adds the data an apply round wrote to the estimates, and to the flow while leading.
    pub fn on_written(&mut self, written: Flow, leading: bool) {
        if let Some(size) = self.approximate_size.as_mut() {
            *size += written.bytes;
        }
        if let Some(keys) = self.approximate_keys.as_mut() {
            *keys += written.keys;
        }
        if leading {
            self.written.bytes += written.bytes;
            self.written.keys += written.keys;
        }
    }
}

/// Peers (other than `self_id`) not heard from for longer than `max_down`. A peer without a
/// record starts its clock now.
pub fn down_peers(
    peers: &[metapb::Peer],
    self_id: u64,
    heard: &mut PeerMap<Instant>,
    now: Instant,
    max_down: Duration,
) -> Vec<PeerStats> {
    let mut down = Vec::new();
    for p in peers.iter().filter(|p| p.id != self_id) {
        let last = *heard.get_or_insert(p.id, now);
        let silent = now.saturating_duration_since(last);
        if silent > max_down {
            down.push(PeerStats {
                peer: Some(*p),
                down_seconds: silent.as_secs(),
            });
        }
    }
    down
}

/// A follower's replication progress as the leader sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerProgress {
    pub matched: u64,
    /// The leader is sending it a snapshot.
    pub needs_snapshot: bool,
    /// The leader does not know its log position yet (right after an election).
    pub probing: bool,
}

/// Peers that cannot serve as up-to-date replicas: they need a snapshot (their log position is
/// below the leader's first log index), or were added and have not reached the log index they
/// were added at.
pub fn pending_peers(
    peers: &[metapb::Peer],
    self_id: u64,
    first_index: u64,
    catching_up: &PeerMap<u64>,
    progress: impl Fn(u64) -> Option<PeerProgress>,
) -> Vec<metapb::Peer> {
    peers
        .iter()
        .filter(|p| p.id != self_id)
        .filter(|p| {
            let Some(pr) = progress(p.id) else {
                return false;
            };
            let behind_log = !pr.probing && pr.matched < first_index;
            let still_catching_up = catching_up
                .get(&p.id)
                .is_some_and(|target| pr.matched < *target);
            pr.needs_snapshot || behind_log || still_catching_up
        })
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(id: u64) -> metapb::Peer {
        metapb::Peer {
            id,
            store_id: id,
            ..Default::default()
        }
    }

    #[test]
    fn silent_peers_are_down_after_the_limit() {
        let peers = vec![peer(1), peer(2), peer(3)];
        let now = Instant::now();
        let mut heard = PeerMap::default();
        heard.insert(2, now - Duration::from_secs(30));
        heard.insert(3, now - Duration::from_secs(1));
        let down = down_peers(&peers, 1, &mut heard, now, Duration::from_secs(10));
        assert_eq!(down.len(), 1);
        assert_eq!(down[0].peer.unwrap().id, 2);
        assert!(down[0].down_seconds >= 30);
        // Nobody is down when every peer spoke recently.
        heard.insert(2, now);
        assert!(down_peers(&peers, 1, &mut heard, now, Duration::from_secs(10)).is_empty());
    }

    #[test]
    fn a_peer_without_record_starts_its_clock() {
        let peers = vec![peer(1), peer(2)];
        let now = Instant::now();
        let mut heard = PeerMap::default();
        assert!(down_peers(&peers, 1, &mut heard, now, Duration::from_secs(1)).is_empty());
        assert_eq!(heard.get(&2), Some(&now));
    }

    fn region(version: u64, peers: &[u64]) -> metapb::Region {
        metapb::Region {
            id: 7,
            region_epoch: Some(metapb::RegionEpoch {
                conf_ver: 1,
                version,
            }),
            peers: peers.iter().map(|id| peer(*id)).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn the_digest_changes_with_what_pd_acts_on_but_not_with_down_time() {
        let r = region(1, &[1, 2, 3]);
        let base = report_digest(&r, &peer(1), 5, &[], &[], 100, 10);
        assert_eq!(base, report_digest(&r, &peer(1), 5, &[], &[], 100, 10));
        assert_ne!(
            base,
            report_digest(&region(2, &[1, 2, 3]), &peer(1), 5, &[], &[], 100, 10)
        );
        assert_ne!(
            base,
            report_digest(&region(1, &[1, 2, 4]), &peer(1), 5, &[], &[], 100, 10)
        );
        assert_ne!(base, report_digest(&r, &peer(2), 5, &[], &[], 100, 10));
        assert_ne!(base, report_digest(&r, &peer(1), 6, &[], &[], 100, 10));
        assert_ne!(
            base,
            report_digest(&r, &peer(1), 5, &[], &[peer(3)], 100, 10)
        );
        assert_ne!(base, report_digest(&r, &peer(1), 5, &[], &[], 101, 10));
        assert_ne!(base, report_digest(&r, &peer(1), 5, &[], &[], 100, 11));
        let down = |secs| PeerStats {
            peer: Some(peer(2)),
            down_seconds: secs,
        };
        let with_down = report_digest(&r, &peer(1), 5, &[down(30)], &[], 100, 10);
        assert_ne!(base, with_down);
        assert_eq!(
            with_down,
            report_digest(&r, &peer(1), 5, &[down(90)], &[], 100, 10)
        );
    }

    #[test]
    fn only_a_repeated_flowless_report_within_the_quiet_limit_is_skipped() {
        let now = Instant::now();
        let quiet = Duration::from_secs(600);
        let sent = |had_flow, ago| SentReport {
            digest: 42,
            had_flow,
            repeated: true,
            at: now - Duration::from_secs(ago),
        };
        // A report is repeated once before ticks go quiet.
        let once = SentReport {
            repeated: false,
            ..sent(false, 10)
        };
        assert!(!may_skip_report(Some(&once), 42, false, now, quiet));
        assert!(may_skip_report(
            Some(&sent(false, 10)),
            42,
            false,
            now,
            quiet
        ));
        // Nothing sent yet (a new leader), or something changed.
        assert!(!may_skip_report(None, 42, false, now, quiet));
        assert!(!may_skip_report(
            Some(&sent(false, 10)),
            43,
            false,
            now,
            quiet
        ));
        // Flow now, or flow last time (PD must see the rate drop to zero).
        assert!(!may_skip_report(
            Some(&sent(false, 10)),
            42,
            true,
            now,
            quiet
        ));
        assert!(!may_skip_report(
            Some(&sent(true, 10)),
            42,
            false,
            now,
            quiet
        ));
        // Quiet for too long.
        assert!(!may_skip_report(
            Some(&sent(false, 600)),
            42,
            false,
            now,
            quiet
        ));
    }

    #[test]
    fn store_pings_count_for_hibernated_peers() {
        let peers = vec![peer(1), peer(2)];
        let now = Instant::now();
        let mut stats = PdStats::default();
        stats.heard_from(2, now - Duration::from_secs(100));
        let liveness = StoreLiveness::default();
        liveness.heard(2, now);
        stats.refresh_from_stores(&peers, 1, &liveness);
        assert_eq!(stats.peer_heard.get(&2), Some(&now));
        assert!(stats.peer_heard.get(&1).is_none());
    }

    #[test]
    fn pending_means_behind_the_log_or_still_catching_up() {
        let peers = vec![peer(1), peer(2), peer(3), peer(4), peer(5)];
        let mut catching_up = PeerMap::default();
        catching_up.insert(5, 50);
        let progress = |id| {
            Some(match id {
                // Up to date.
                2 => PeerProgress {
                    matched: 100,
                    needs_snapshot: false,
                    probing: false,
                },
                // Below the first log index.
                3 => PeerProgress {
                    matched: 5,
                    needs_snapshot: false,
                    probing: false,
                },
                // Not probed yet: unknown, not pending.
                4 => PeerProgress {
                    matched: 0,
                    needs_snapshot: false,
                    probing: true,
                },
                // Added at index 50 and not there yet.
                _ => PeerProgress {
                    matched: 40,
                    needs_snapshot: false,
                    probing: false,
                },
            })
        };
        let pending = pending_peers(&peers, 1, 10, &catching_up, progress);
        let ids: Vec<u64> = pending.iter().map(|p| p.id).collect();
        assert_eq!(ids, vec![3, 5]);
        let snapshot = |_| {
            Some(PeerProgress {
                matched: 100,
                needs_snapshot: true,
                probing: false,
            })
        };
        assert_eq!(
            pending_peers(&peers[..2], 1, 10, &PeerMap::default(), snapshot).len(),
            1
        );
    }

    #[test]
    fn writes_grow_estimates_and_leader_flow() {
        let mut stats = PdStats::default();
        stats.on_written(Flow { bytes: 10, keys: 1 }, false);
        assert_eq!(stats.approximate_size, None);
        assert_eq!(stats.written, Flow::default());
        stats.approximate_size = Some(100);
        stats.approximate_keys = Some(4);
        stats.on_written(Flow { bytes: 10, keys: 1 }, true);
        assert_eq!(stats.approximate_size, Some(110));
        assert_eq!(stats.approximate_keys, Some(5));
        assert_eq!(stats.written, Flow { bytes: 10, keys: 1 });
    }

    #[test]
    fn a_tick_replaced_by_a_sooner_one_is_ignored() {
        let mut stats = PdStats::default();
        let t0 = Instant::now();
        let slow = Duration::from_secs(600);
        let fast = Duration::from_secs(60);
        // Asleep: the tick is registered far off.
        assert!(stats.tick_needed(t0, slow));
        stats.tick_registered(t0 + slow);
        assert!(!stats.tick_needed(t0, slow), "one tick at a time");
        // Woken 10 s later: a sooner tick replaces it.
        let woke = t0 + Duration::from_secs(10);
        assert!(stats.tick_needed(woke, fast));
        stats.tick_registered(woke + fast);
        assert!(!stats.tick_needed(woke, fast));
        // The sooner tick is live when it fires; the next is registered.
        assert!(stats.tick_fired(woke + fast));
        assert!(stats.tick_needed(woke + fast, fast));
        // Nine ticks later the live one is due at t0 + 610 s.
        let live = woke + fast * 10;
        stats.tick_registered(live);
        // The replaced tick fires at t0 + 600 s and is ignored; the chain goes on.
        assert!(!stats.tick_fired(t0 + slow));
        assert_eq!(stats.tick_due, Some(live));
        assert!(stats.tick_fired(live));
        // With no tick registered (leadership lost), a stray tick does nothing.
        stats.tick_due = None;
        assert!(!stats.tick_fired(t0 + slow));
    }
}
