//! Nemeses: faults injected into the running fleet, one at a time, each healed before the
//! next, each logged with the times it was injected and healed (on the workload's clock).

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::json;

use super::clock::{libfaketime, ClockSkew};
use super::fleet::ChaosFleet;
use super::keys::HotKeys;
use super::workload::Clock;
use crate::keyspace::pd_key;
use crate::pd_api::region_json;

/// Which faults a phase injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum NemesisKind {
    /// No faults (a baseline).
    None,
    /// SIGKILL a store (the hot keys' leader or any), then restart it.
    Kill,
    /// SIGSTOP a store (the hot keys' leader or any), then SIGCONT it.
    Stop,
    /// Kill and stop the hot keys' leader in turns (used to compare clients with and without
    /// retries).
    Crash,
    /// Move the leadership of a hot key's region to another store.
    Transfer,
    /// Split a hot key's region next to the key.
    Split,
    /// Add a fourth store, add and remove peers of hot regions, decommission a store.
    Membership,
    /// Restart PD (SIGTERM or SIGKILL, down for a moment).
    PdRestart,
    /// Cut a store (the hot keys' leader or any) off from the other stores while clients and
    /// PD still reach it; needs a fleet started with network namespaces.
    Partition,
    /// Restart a store (the hot keys' leader or any) or PD on a skewed clock (libfaketime:
    /// an offset of up to an hour, a rate within 10 %); with network namespaces the skewed
    /// store is also cut off from the others for a while. Healed by a restart on the real
    /// clock.
    Clock,
    /// All of the above in random order.
    Mixed,
}

impl NemesisKind {
    /// The nemeses `make chaos` runs by default, in order.
    pub const ALL: [NemesisKind; 9] = [
        NemesisKind::Kill,
        NemesisKind::Stop,
        NemesisKind::Transfer,
        NemesisKind::Split,
        NemesisKind::Membership,
        NemesisKind::PdRestart,
        NemesisKind::Partition,
        NemesisKind::Clock,
        NemesisKind::Mixed,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            NemesisKind::None => "none",
            NemesisKind::Kill => "kill",
            NemesisKind::Stop => "stop",
            NemesisKind::Crash => "crash",
            NemesisKind::Transfer => "transfer",
            NemesisKind::Split => "split",
            NemesisKind::Membership => "membership",
            NemesisKind::PdRestart => "pd-restart",
            NemesisKind::Partition => "partition",
            NemesisKind::Clock => "clock",
            NemesisKind::Mixed => "mixed",
        }
    }
}

impl fmt::Display for NemesisKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for NemesisKind {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let all = [NemesisKind::None, NemesisKind::Crash]
            .into_iter()
            .chain(NemesisKind::ALL);
        for kind in all {
            if kind.name() == s.trim() {
                return Ok(kind);
            }
        }
        bail!(
            "unknown nemesis {s:?}; one of none, kill, stop, crash, transfer, split, \
             membership, pd-restart, partition, clock, mixed"
        )
    }
}

/// One fault as it happened.
#[derive(Clone, Debug, Serialize)]
pub struct FaultRecord {
    /// What was done (`kill`, `stop`, `transfer-leader`, `split`, `add-peer`, `remove-peer`,
    /// `add-store`, `decommission`, `pd-kill`, `pd-restart`, `partition`).
    pub action: String,
    /// What it was done to.
    pub target: String,
    /// When it was injected (ns on the workload's clock).
    pub injected_at: u64,
    /// When it was healed or took effect (ns), if it did.
    pub healed_at: Option<u64>,
    /// Whether the fault was actually injected (PD may refuse an operator).
    pub applied: bool,
    /// Anything worth knowing (why it was refused, how long it took to show).
    pub note: String,
}

/// How a nemesis behaves.
#[derive(Clone, Debug)]
pub struct NemesisOptions {
    /// Which faults.
    pub kind: NemesisKind,
    /// Pause between two faults (jittered by up to 50 %).
    pub quiet: Duration,
    /// How long a killed or stopped process stays down (jittered by up to 50 %).
    pub hold: Duration,
    /// How long to wait for an operator's effect to show in PD.
    pub settle_timeout: Duration,
    /// Most stores ever started (the membership nemesis adds stores up to it).
    pub max_stores: usize,
    /// Whether the membership nemesis may decommission stores.
    pub decommission: bool,
    /// Whether a decommission may start before the previous one finished (more peers move
    /// at once; the fleet may take long to settle afterwards).
    pub overlapping_decommissions: bool,
    /// Seed of its random choices.
    pub seed: u64,
}

impl Default for NemesisOptions {
    fn default() -> Self {
        NemesisOptions {
            kind: NemesisKind::None,
            quiet: Duration::from_secs(1),
            hold: Duration::from_secs(2),
            settle_timeout: Duration::from_secs(5),
            max_stores: 5,
            decommission: true,
            overlapping_decommissions: false,
            seed: 1,
        }
    }
}

/// One concrete fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Kill {
        leader: bool,
    },
    Stop {
        leader: bool,
    },
    Transfer,
    Split,
    PeerMove,
    AddStore,
    Decommission,
    PdRestart {
        kill: bool,
    },
    /// Cuts a store off from the other stores, and with `from_pd` from PD too; clients
    /// still reach it.
    Partition {
        leader: bool,
        from_pd: bool,
    },
    /// Restarts a store (or PD) on a skewed clock, holds, restarts it on the real clock.
    Skew {
        leader: bool,
        pd: bool,
    },
}

/// Injects faults into a fleet and logs them.
pub struct Nemesis {
    opts: NemesisOptions,
    keys: HotKeys,
    clock: Clock,
    rng: StdRng,
    round: u64,
    log: Vec<FaultRecord>,
    /// When the current run ends: waits for an operator's effect stop there.
    until: Instant,
}

impl Nemesis {
    /// A nemesis acting on the regions of `keys`.
    pub fn new(opts: NemesisOptions, keys: HotKeys, clock: Clock) -> Nemesis {
        Nemesis {
            rng: StdRng::seed_from_u64(opts.seed),
            opts,
            keys,
            clock,
            round: 0,
            log: Vec::new(),
            until: Instant::now(),
        }
    }

    /// The faults so far.
    pub fn log(&self) -> &[FaultRecord] {
        &self.log
    }

    /// Consumes the nemesis, returning its log.
    pub fn into_log(self) -> Vec<FaultRecord> {
        self.log
    }

    fn jitter(&mut self, d: Duration) -> Duration {
        d.mul_f64(self.rng.gen_range(0.5..1.5))
    }

    /// Injects faults until `until`. Each fault is healed before the next; what an error
    /// leaves behind is for the caller to heal ([`ChaosFleet::heal_all`]).
    pub async fn run(&mut self, fleet: &mut ChaosFleet, until: Instant) -> Result<()> {
        self.until = until;
        if self.opts.kind == NemesisKind::None {
            tokio::time::sleep_until(until.into()).await;
            return Ok(());
        }
        loop {
            let quiet = self.jitter(self.opts.quiet);
            if Instant::now() + quiet >= until {
                break;
            }
            tokio::time::sleep(quiet).await;
            let action = self.pick(fleet);
            self.perform(fleet, action).await?;
            self.round += 1;
        }
        Ok(())
    }

    fn pick(&mut self, fleet: &ChaosFleet) -> Action {
        let alternate = self.round.is_multiple_of(2);
        match self.opts.kind {
            NemesisKind::Kill => Action::Kill { leader: alternate },
            NemesisKind::Stop => Action::Stop { leader: alternate },
            // Always the leader: that is where requests are in flight.
            NemesisKind::Crash if alternate => Action::Kill { leader: true },
            NemesisKind::Crash => Action::Stop { leader: true },
            NemesisKind::Transfer => Action::Transfer,
            NemesisKind::Split => Action::Split,
            NemesisKind::Membership => {
                let live = fleet.live_stores().len();
                if live < 4 && fleet.store_count() < self.opts.max_stores {
                    Action::AddStore
                } else if self.opts.decommission && live >= 4 && self.round % 4 == 2 {
                    Action::Decommission
                } else {
                    Action::PeerMove
                }
            }
            NemesisKind::PdRestart => Action::PdRestart { kill: alternate },
            // Rounds cycle through: the leader, any store, the leader cut from PD too.
            NemesisKind::Partition => Action::Partition {
                leader: self.round % 3 != 1,
                from_pd: self.round % 3 == 2,
            },
            // Rounds cycle through: the leader, PD, any store.
            NemesisKind::Clock => Action::Skew {
                leader: self.round.is_multiple_of(3),
                pd: self.round % 3 == 1,
            },
            NemesisKind::Mixed if libfaketime().is_some() && self.rng.gen_bool(0.1) => {
                Action::Skew {
                    leader: self.rng.gen_bool(0.5),
                    pd: self.rng.gen_bool(0.3),
                }
            }
            NemesisKind::Mixed if fleet.is_isolated() && self.rng.gen_bool(0.2) => {
                Action::Partition {
                    leader: self.rng.gen_bool(0.5),
                    from_pd: self.rng.gen_bool(0.5),
                }
            }
            NemesisKind::Mixed | NemesisKind::None => *[
                Action::Kill { leader: true },
                Action::Kill { leader: false },
                Action::Stop { leader: true },
                Action::Stop { leader: false },
                Action::Transfer,
                Action::Transfer,
                Action::Split,
                Action::PeerMove,
                Action::PdRestart { kill: true },
                Action::PdRestart { kill: false },
            ]
            .choose(&mut self.rng)
            .expect("non-empty"),
        }
    }

    fn record(&mut self, action: &str, target: String, injected_at: u64) -> usize {
        self.log.push(FaultRecord {
            action: action.into(),
            target,
            injected_at,
            healed_at: None,
            applied: true,
            note: String::new(),
        });
        self.log.len() - 1
    }

    /// Logs a heal of what was left broken (by an error, or by a process that exited).
    pub fn log_heal(&mut self, done: Vec<String>) {
        if done.is_empty() {
            return;
        }
        let now = self.clock.now();
        self.log.push(FaultRecord {
            action: "heal".into(),
            target: done.join(", "),
            injected_at: now,
            healed_at: Some(now),
            applied: false,
            note: "left over at the end".into(),
        });
    }

    fn refused(&mut self, action: &str, target: String, why: String) {
        let now = self.clock.now();
        self.log.push(FaultRecord {
            action: action.into(),
            target,
            injected_at: now,
            healed_at: None,
            applied: false,
            note: why,
        });
    }

    /// A random hot key in use now.
    fn hot_key(&mut self) -> String {
        let slot = self.rng.gen_range(0..self.keys.slots);
        self.keys.key(slot, self.clock.now())
    }

    /// The store to hit: the leader of a hot key's region, or any live store.
    async fn victim(&mut self, fleet: &ChaosFleet, leader: bool) -> Result<(usize, String)> {
        if leader {
            let key = self.hot_key();
            if let Ok(Some(i)) = fleet.leader_of(&key).await {
                if fleet.live_stores().contains(&i) {
                    return Ok((i, format!("store{} (leader for {key})", i + 1)));
                }
            }
        }
        let live = fleet.live_stores();
        let Some(&i) = live.choose(&mut self.rng) else {
            bail!("no live store to hit");
        };
        Ok((i, format!("store{}", i + 1)))
    }

    async fn perform(&mut self, fleet: &mut ChaosFleet, action: Action) -> Result<()> {
        match action {
            Action::Kill { leader } => {
                let (i, target) = self.victim(fleet, leader).await?;
                let hold = self.jitter(self.opts.hold);
                let at = self.record("kill", target, self.clock.now());
                fleet.kill_store(i)?;
                tokio::time::sleep(hold).await;
                self.log[at].healed_at = Some(self.clock.now());
                fleet.restart_store(i).await?;
            }
            Action::Stop { leader } => {
                let (i, target) = self.victim(fleet, leader).await?;
                let hold = self.jitter(self.opts.hold);
                let at = self.record("stop", target, self.clock.now());
                fleet.pause_store(i)?;
                tokio::time::sleep(hold).await;
                self.log[at].healed_at = Some(self.clock.now());
                fleet.resume_store(i)?;
            }
            Action::Partition { leader, from_pd } => {
                let (i, target) = self.victim(fleet, leader).await?;
                let hold = self.jitter(self.opts.hold);
                let at = self.record("partition", target, self.clock.now());
                let others = fleet.isolate_store(i)?;
                let mut cut: Vec<String> =
                    others.iter().map(|j| format!("store{}", j + 1)).collect();
                if from_pd {
                    fleet.isolate_store_from_pd(i)?;
                    cut.push("PD".into());
                }
                self.log[at].note = format!("cut off from {}", cut.join(", "));
                tokio::time::sleep(hold).await;
                self.log[at].healed_at = Some(self.clock.now());
                fleet.restore_links()?;
            }
            Action::Skew { leader, pd } => self.skew(fleet, leader, pd).await?,
            Action::PdRestart { kill } => {
                let hold = self.jitter(self.opts.hold) / 2;
                let action = if kill { "pd-kill" } else { "pd-restart" };
                let at = self.record(action, "PD".into(), self.clock.now());
                if kill {
                    fleet.kill_pd()?;
                } else {
                    fleet.stop_pd().await?;
                }
                tokio::time::sleep(hold).await;
                self.log[at].healed_at = Some(self.clock.now());
                fleet.start_pd().await?;
            }
            Action::Transfer => self.transfer(fleet).await,
            Action::Split => self.split(fleet).await,
            Action::PeerMove => self.peer_move(fleet).await,
            Action::AddStore => {
                let at = self.record("add-store", String::new(), self.clock.now());
                let i = fleet.add_store().await?;
                self.log[at].target = format!("store{} (id {})", i + 1, fleet.store_id(i));
                self.log[at].healed_at = Some(self.clock.now());
            }
            Action::Decommission => {
                // One decommission at a time unless asked otherwise: the next waits until the
                // last one is done.
                if !self.opts.overlapping_decommissions
                    && !fleet.pending_decommissions().await?.is_empty()
                {
                    self.peer_move(fleet).await;
                    return Ok(());
                }
                let live = fleet.live_stores();
                let Some(&i) = live.choose(&mut self.rng) else {
                    return Ok(());
                };
                let target = format!("store{} (id {})", i + 1, fleet.store_id(i));
                let at = self.record("decommission", target, self.clock.now());
                if let Err(e) = fleet.decommission(i).await {
                    self.log[at].applied = false;
                    self.log[at].note = format!("{e:#}");
                }
            }
        }
        Ok(())
    }

    /// Restarts a store (or PD) on a skewed clock; a skewed store is also cut off from the
    /// other stores for part of the hold when the fleet has network namespaces. Then restarts
    /// it on the real clock.
    async fn skew(&mut self, fleet: &mut ChaosFleet, leader: bool, pd: bool) -> Result<()> {
        let skew = ClockSkew::random(&mut self.rng);
        let Some(env) = skew.env() else {
            bail!("the clock nemesis needs libfaketime (Debian package faketime)");
        };
        let hold = self.jitter(self.opts.hold);
        if pd {
            let at = self.record("clock-skew", "PD".into(), self.clock.now());
            self.log[at].note = skew.to_string();
            fleet.restart_pd_with_env(env).await?;
            tokio::time::sleep(hold).await;
            self.log[at].healed_at = Some(self.clock.now());
            return fleet.restart_pd_with_env(Vec::new()).await;
        }
        let (i, target) = self.victim(fleet, leader).await?;
        let at = self.record("clock-skew", target, self.clock.now());
        self.log[at].note = skew.to_string();
        fleet.restart_store_with_env(i, env).await?;
        if fleet.is_isolated() {
            tokio::time::sleep(hold / 2).await;
            fleet.isolate_store(i)?;
            self.log[at]
                .note
                .push_str("; cut off from the other stores for a while");
            tokio::time::sleep(hold / 2).await;
            fleet.restore_links()?;
        } else {
            tokio::time::sleep(hold).await;
        }
        self.log[at].healed_at = Some(self.clock.now());
        fleet.restart_store_with_env(i, Vec::new()).await
    }

    /// Moves the leadership of a hot key's region to another of its voters.
    async fn transfer(&mut self, fleet: &ChaosFleet) {
        let key = self.hot_key();
        let region = match fleet.region_of(&key).await {
            Ok(r) => r,
            Err(e) => return self.refused("transfer-leader", key, format!("{e:#}")),
        };
        let id = region_json::id(&region);
        let leader = region_json::leader_store(&region);
        let up = fleet.up_store_ids().await.unwrap_or_default();
        let candidates: Vec<u64> = region_json::voter_stores(&region)
            .into_iter()
            .filter(|s| Some(*s) != leader && up.contains(s))
            .collect();
        let Some(&to) = candidates.choose(&mut self.rng) else {
            return self.refused(
                "transfer-leader",
                format!("region {id}"),
                "no other voter is up".into(),
            );
        };
        let target = format!("region {id} ({key}) from store {leader:?} to store {to}");
        let body = json!({"name": "transfer-leader", "region_id": id, "to_store_id": to});
        let at = self.record("transfer-leader", target, self.clock.now());
        if let Err(e) = fleet.pd_call("POST", "operators".into(), Some(body)).await {
            self.log[at].applied = false;
            self.log[at].note = format!("{e:#}");
            return;
        }
        let seen = self
            .wait_region(fleet, &key, |r| region_json::leader_store(r) == Some(to))
            .await;
        self.settled(at, seen);
    }

    /// Splits a hot key's region at the start of the key's slot or right after the key.
    async fn split(&mut self, fleet: &ChaosFleet) {
        let slot = self.rng.gen_range(0..self.keys.slots);
        let split_key = if slot > 0 && self.rng.gen_bool(0.3) {
            self.keys.slot_start(slot)
        } else {
            // Decreasing suffixes: each split key lies inside the hot key's current region.
            let key = self.keys.key(slot, self.clock.now());
            format!("{key}/{:06}", 999_999 - self.round.min(999_999))
        };
        let encoded = pd_key(split_key.as_bytes());
        let region = match fleet.region_of(&split_key).await {
            Ok(r) => r,
            Err(e) => return self.refused("split", split_key, format!("{e:#}")),
        };
        let id = region_json::id(&region);
        if region_json::start_key(&region) == encoded {
            return self.refused(
                "split",
                split_key,
                format!("region {id} already starts there"),
            );
        }
        let body = json!({"name": "split-region", "region_id": id,
            "keys": [hex::encode(&encoded)]});
        let at = self.record(
            "split",
            format!("region {id} at {split_key}"),
            self.clock.now(),
        );
        if let Err(e) = fleet.pd_call("POST", "operators".into(), Some(body)).await {
            self.log[at].applied = false;
            self.log[at].note = format!("{e:#}");
            return;
        }
        let seen = self
            .wait_region(fleet, &split_key, |r| region_json::start_key(r) == encoded)
            .await;
        self.settled(at, seen);
    }

    /// Adds a peer of a hot key's region on a store without one, or removes one of its peers
    /// (possibly the leader's).
    async fn peer_move(&mut self, fleet: &ChaosFleet) {
        let key = self.hot_key();
        let region = match fleet.region_of(&key).await {
            Ok(r) => r,
            Err(e) => return self.refused("add-peer", key, format!("{e:#}")),
        };
        let id = region_json::id(&region);
        let peers = region_json::peer_stores(&region);
        let up = fleet.up_store_ids().await.unwrap_or_default();
        let live: Vec<u64> = fleet
            .live_stores()
            .into_iter()
            .map(|i| fleet.store_id(i))
            .collect();
        let spare: Vec<u64> = live
            .iter()
            .copied()
            .filter(|s| !peers.contains(s) && up.contains(s))
            .collect();
        let (action, store, body) = if peers.len() <= 3 && !spare.is_empty() {
            let store = *spare.choose(&mut self.rng).expect("non-empty");
            let body = json!({"name": "add-peer", "region_id": id, "store_id": store});
            ("add-peer", store, body)
        } else if let Some(&store) = peers.choose(&mut self.rng) {
            let body = json!({"name": "remove-peer", "region_id": id, "store_id": store});
            ("remove-peer", store, body)
        } else {
            return self.refused("remove-peer", key, format!("region {id} has no peer"));
        };
        let target = format!("region {id} ({key}) on store {store}");
        let at = self.record(action, target, self.clock.now());
        if let Err(e) = fleet.pd_call("POST", "operators".into(), Some(body)).await {
            self.log[at].applied = false;
            self.log[at].note = format!("{e:#}");
            return;
        }
        // A removed peer may be replaced on the same store at once: watch the peer, not the
        // store.
        let removed = (action == "remove-peer")
            .then(|| peer_on_store(&region, store))
            .flatten();
        let seen = self
            .wait_region(fleet, &key, |r| match removed {
                Some(peer) => !region_peer_ids(r).contains(&peer),
                None => region_json::peer_stores(r).contains(&store),
            })
            .await;
        self.settled(at, seen);
    }

    /// Polls PD's region of `key` until `done` holds; returns how long it took.
    async fn wait_region(
        &self,
        fleet: &ChaosFleet,
        key: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> Option<Duration> {
        let start = Instant::now();
        let deadline =
            (start + self.opts.settle_timeout).min(self.until.max(start + Duration::from_secs(1)));
        while Instant::now() < deadline {
            if let Ok(region) = fleet.region_of(key).await {
                if done(&region) {
                    return Some(start.elapsed());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    fn settled(&mut self, at: usize, seen: Option<Duration>) {
        self.log[at].healed_at = Some(self.clock.now());
        self.log[at].note = match seen {
            Some(d) => format!("visible in PD after {} ms", d.as_millis()),
            None => format!(
                "not visible in PD within {} ms",
                self.opts.settle_timeout.as_millis()
            ),
        };
    }
}

/// Ids of a region's peers.
fn region_peer_ids(region: &serde_json::Value) -> Vec<u64> {
    region["peers"]
        .as_array()
        .map(|peers| peers.iter().filter_map(|p| p["id"].as_u64()).collect())
        .unwrap_or_default()
}

/// The id of a region's peer on `store`.
fn peer_on_store(region: &serde_json::Value, store: u64) -> Option<u64> {
    region["peers"]
        .as_array()?
        .iter()
        .find(|p| p["store_id"].as_u64() == Some(store))
        .and_then(|p| p["id"].as_u64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in NemesisKind::ALL {
            assert_eq!(kind.name().parse::<NemesisKind>().unwrap(), kind);
        }
        assert_eq!("crash".parse::<NemesisKind>().unwrap(), NemesisKind::Crash);
        assert_eq!(
            "partition".parse::<NemesisKind>().unwrap(),
            NemesisKind::Partition
        );
        assert!("flood".parse::<NemesisKind>().is_err());
    }

    #[test]
    fn peers_are_found_by_store() {
        let region = json!({"peers": [{"id": 5, "store_id": 1}, {"id": 9, "store_id": 3}]});
        assert_eq!(peer_on_store(&region, 3), Some(9));
        assert_eq!(peer_on_store(&region, 2), None);
        assert_eq!(region_peer_ids(&region), vec![5, 9]);
    }
}
