//! Raftstore configuration: every field has a production default; tests shorten the timings
//! through the same struct. It is also the `[raftstore]` section of the store's TOML file:
//! keys are the field names in kebab-case, durations are humantime strings ("10ms", "5m"),
//! byte counts are plain integers, and unknown keys are refused.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::errors::{Error, Result};

/// Settings of one store's raft machinery.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Interval of one raft logical clock tick.
    #[serde(with = "humantime_serde")]
    pub raft_base_tick_interval: Duration,
    /// Ticks between leader heartbeats.
    pub raft_heartbeat_ticks: usize,
    /// Ticks without a leader before a follower campaigns.
    pub raft_election_timeout_ticks: usize,
    /// Largest batch of entries in one append message.
    pub raft_max_size_per_msg: u64,
    /// Appends in flight per follower.
    pub raft_max_inflight_msgs: usize,
    /// A proposal larger than this is refused with `RaftEntryTooLarge`.
    pub raft_entry_max_size: u64,
    /// How often a leader considers compacting its raft log.
    #[serde(with = "humantime_serde")]
    pub raft_log_gc_tick_interval: Duration,
    /// Do not compact fewer entries than this (unless limits are exceeded).
    pub raft_log_gc_threshold: u64,
    /// Compact when the log holds more entries than this.
    pub raft_log_gc_count_limit: u64,
    /// Compact when the log holds more bytes than this.
    pub raft_log_gc_size_limit: u64,
    /// Leader lease; must be shorter than the election timeout.
    #[serde(with = "humantime_serde")]
    pub raft_store_max_leader_lease: Duration,
    /// Raft poller threads.
    pub store_pool_size: usize,
    /// Apply poller threads. 0 has each raft poller apply committed entries itself at the end
    /// of its round, after it has taken its peers' readies and before it writes the raft log:
    /// no thread is woken per batch of committed entries and no answer waits for one to run,
    /// at the price of a raft poller that also writes to the KV engine. It suits a store
    /// with few cores; the raft-ready → apply split of TiKV's raftstore suits many.
    pub apply_pool_size: usize,
    /// Log writer threads: 1 runs one thread that group-commits every raft poller's readies
    /// into the raft log; 0 has each raft poller write its own round's readies (one write
    /// and fsync per round) before it handles more messages, which saves the two thread
    /// hand-overs per ready that a log writer costs, at the price of a poller that waits for
    /// the disk (TiKV's `store-io-pool-size`, whose 0 means the same). At most 1.
    pub store_io_pool_size: usize,
    /// FSMs handled per poller round.
    pub max_batch_size: usize,
    /// Messages drained from one mailbox per round.
    pub messages_per_tick: usize,
    /// Soft capacity of a peer's mailbox; beyond it proposals get `ServerIsBusy`.
    pub notify_capacity: usize,
    /// Idle regions stop ticking once all peers agree.
    pub hibernate_regions: bool,
    /// Ticks without activity before a leader asks its followers to hibernate.
    pub hibernate_idle_ticks: usize,
    /// How often a store pings the stores it shares regions with, so hibernated followers
    /// notice a dead leader store.
    #[serde(with = "humantime_serde")]
    pub store_heartbeat_interval: Duration,
    /// A store unheard of for this long is reported unreachable to its regions' peers. Its
    /// sleeping followers wake, and followers whose leader lives there campaign within two
    /// heartbeat intervals instead of waiting out their election timeout, if this is at least
    /// `raft-store-max-leader-lease` (so every lease the silent leader held has ended).
    #[serde(with = "humantime_serde")]
    pub store_unreachable_timeout: Duration,
    /// A follower restarted asleep (it asks for its leader instead of ticking, again every
    /// election timeout plus up to as long again) that has heard of no leader after between
    /// this long and twice as long wakes up and ticks towards an election.
    #[serde(with = "humantime_serde")]
    pub sleeping_follower_leader_wait: Duration,
    /// Stop collecting write tasks into one log batch beyond this many bytes.
    pub raft_write_size_limit: usize,
    /// A small log batch waits this long for more peers' entries before its fsync.
    #[serde(with = "humantime_serde")]
    pub raft_write_wait_duration: Duration,
    /// Entries kept in a peer's cache after they are persisted and applied.
    pub raft_entry_cache_limit: usize,
    /// How often the raft log engine reclaims files.
    #[serde(with = "humantime_serde")]
    pub raft_engine_purge_interval: Duration,
    /// How often a leader asks the split policy whether its region should split.
    #[serde(with = "humantime_serde")]
    pub split_check_tick_interval: Duration,
    /// How often a merging region's peers push the merge on (send `CommitMerge` to the
    /// target, or roll back once the target has moved on); TiKV's `merge-check-tick-interval`.
    #[serde(with = "humantime_serde")]
    pub merge_check_tick_interval: Duration,
    /// PrepareMerge is refused while a peer's log lags the leader's by more than this many
    /// entries: `CommitMerge` carries the entries the slowest peer may lack (TiKV's
    /// `merge-max-log-gap`).
    pub merge_max_log_gap: u64,
    /// The built-in split policy (a custom one can be given to the store instead).
    pub split_policy: SplitPolicyConfig,
    /// Load-based splitting beside the size or keys policy: `[raftstore.load-split]`.
    pub load_split: LoadSplitConfig,
    /// Bytes written to a region after which the size policy checks it again (TiKV's
    /// `region-split-check-diff`); unset: 1/16 of the policy's `split-size`.
    pub region_split_check_diff: Option<u64>,
    /// How often a region leader reports its region to PD (it also reports at once on
    /// leadership, split and membership changes).
    #[serde(with = "humantime_serde")]
    pub pd_heartbeat_tick_interval: Duration,
    /// A tick whose report would say nothing new (same epoch, peers, leader, term, down and
    /// pending peers and size estimates, no flow) is skipped until this long after the last
    /// report; then one is sent anyway. 0: report on every tick. A sleeping leader ticks
    /// after this interval plus up to half of it again, at random, so regions that woke
    /// together do not report together.
    #[serde(with = "humantime_serde")]
    pub pd_heartbeat_max_quiet_interval: Duration,
    /// Bytes per second the region worker reads a region's data at while building a snapshot
    /// (TiKV's `snap-io-max-bytes-per-sec`), so a large snapshot leaves the disk to the write
    /// path; 0: no limit.
    pub snap_io_max_bytes_per_sec: u64,
    /// How often the region worker removes snapshot files nothing will read again (TiKV's
    /// `snap-mgr-gc-tick-interval`): those of regions no longer here, of applied or compacted
    /// snapshots, and expired ones (see `snap-gc-timeout`).
    #[serde(with = "humantime_serde")]
    pub snap_gc_interval: Duration,
    /// The age at which a snapshot file is removed even though its region might still use it
    /// (TiKV's `snap-gc-timeout`); the files of a snapshot being applied stay. A leader hands
    /// out a snapshot it built for at most half of this, then builds a new one.
    #[serde(with = "humantime_serde")]
    pub snap_gc_timeout: Duration,
    /// How often the store reports its statistics to PD.
    #[serde(with = "humantime_serde")]
    pub pd_store_heartbeat_tick_interval: Duration,
    /// A peer not heard from for longer than this is reported down to PD.
    #[serde(with = "humantime_serde")]
    pub max_peer_down_duration: Duration,
    /// A leader transfer is accepted when the target voter's log is at most this many entries
    /// behind the leader's last entry. Raft then sends the missing entries, hands over once the
    /// target has all of them, and gives up after an election timeout; the leader refuses new
    /// proposals meanwhile. 0 accepts only a target that already has every entry.
    pub leader_transfer_max_log_lag: u64,
    /// Bytes: while fewer are available on the filesystem of the KV engine or of the raft
    /// log, leaders refuse writes with `ServerIsBusy` ("disk full"); reads go on. What the KV
    /// engine will write without new requests (unflushed memtables, the next write-ahead
    /// log's preallocation) counts as used. 0 never refuses. See `worker::disk_monitor`.
    pub disk_low_space_threshold: u64,
    /// Bytes of the placeholder file the store keeps in its data directory while space is
    /// plentiful, and deletes on turning disk full so the writes already under way have room
    /// to finish (TiKV's `reserve-space`). 0 keeps no placeholder.
    pub disk_reserve_space: u64,
    /// How often the free space is checked.
    #[serde(with = "humantime_serde")]
    pub disk_check_interval: Duration,
}

/// Which built-in split policy a store uses: `[raftstore.split-policy]`, where `kind`
/// ("size", "keys", "load", "fixed-keys") picks the policy and the other keys are its
/// settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SplitPolicyConfig {
    /// Split regions over `max_size` bytes into pieces of `split_size` bytes.
    #[serde(rename_all = "kebab-case")]
    Size { max_size: u64, split_size: u64 },
    /// Split regions over `max_keys` keys into pieces of `split_keys` keys.
    #[serde(rename_all = "kebab-case")]
    Keys { max_keys: u64, split_keys: u64 },
    /// Split regions serving more than `qps_threshold` requests per second (over `window`)
    /// where the load halves.
    #[serde(rename_all = "kebab-case")]
    Load {
        qps_threshold: f64,
        #[serde(with = "humantime_serde")]
        window: Duration,
    },
    /// Split at fixed boundaries, such as keyspace prefixes; in TOML, hex-encoded keys.
    #[serde(rename_all = "kebab-case")]
    FixedKeys {
        #[serde(with = "hex_keys")]
        boundaries: Vec<Vec<u8>>,
    },
}

/// Load-based splitting next to the size or keys split policy (TiKV's load-base-split):
/// `[raftstore.load-split]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct LoadSplitConfig {
    /// On by default; off leaves splitting to size or keys alone.
    pub enabled: bool,
    /// Requests per second a region must serve, over `window`, to be split by load
    /// (TiKV's `split.qps-threshold`, 3000).
    pub qps_threshold: f64,
    /// How far back requests are counted and sampled.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

impl Default for LoadSplitConfig {
    fn default() -> Self {
        LoadSplitConfig {
            enabled: true,
            qps_threshold: 3000.0,
            window: Duration::from_secs(10),
        }
    }
}

impl Config {
    /// The window over which peers sample their load, when a split policy uses it.
    pub fn load_sampling_window(&self) -> Option<Duration> {
        match &self.split_policy {
            SplitPolicyConfig::Load { window, .. } => Some(*window),
            SplitPolicyConfig::Size { .. } | SplitPolicyConfig::Keys { .. }
                if self.load_split.enabled =>
            {
                Some(self.load_split.window)
            }
            _ => None,
        }
    }
}

/// Keys as hex strings in the config file, so binary keys (keyspace prefixes) can be written.
mod hex_keys {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(keys: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(keys.iter().map(hex::encode))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|k| hex::decode(k).map_err(|e| D::Error::custom(format!("{k:?} is not hex: {e}"))))
            .collect()
    }
}

impl Default for SplitPolicyConfig {
    fn default() -> Self {
        SplitPolicyConfig::Size {
            max_size: 144 * 1024 * 1024,
            split_size: 96 * 1024 * 1024,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            raft_base_tick_interval: Duration::from_secs(1),
            raft_heartbeat_ticks: 2,
            raft_election_timeout_ticks: 10,
            raft_max_size_per_msg: 1024 * 1024,
            raft_max_inflight_msgs: 256,
            raft_entry_max_size: 8 * 1024 * 1024,
            raft_log_gc_tick_interval: Duration::from_secs(3),
            raft_log_gc_threshold: 50,
            raft_log_gc_count_limit: 196_608,
            raft_log_gc_size_limit: 192 * 1024 * 1024,
            raft_store_max_leader_lease: Duration::from_secs(9),
            store_pool_size: 2,
            apply_pool_size: 2,
            store_io_pool_size: 1,
            max_batch_size: 256,
            messages_per_tick: 4096,
            notify_capacity: 40960,
            hibernate_regions: true,
            hibernate_idle_ticks: 4,
            store_heartbeat_interval: Duration::from_secs(2),
            store_unreachable_timeout: Duration::from_secs(10),
            sleeping_follower_leader_wait: Duration::from_secs(60),
            raft_write_size_limit: 1024 * 1024,
            raft_write_wait_duration: Duration::from_micros(20),
            raft_entry_cache_limit: 1024,
            raft_engine_purge_interval: Duration::from_secs(10),
            split_check_tick_interval: Duration::from_secs(10),
            merge_check_tick_interval: Duration::from_secs(2),
            merge_max_log_gap: 128,
            split_policy: SplitPolicyConfig::default(),
            region_split_check_diff: None,
            load_split: LoadSplitConfig::default(),
            pd_heartbeat_tick_interval: Duration::from_secs(60),
            pd_heartbeat_max_quiet_interval: Duration::from_secs(600),
            snap_io_max_bytes_per_sec: 100 * 1024 * 1024,
            snap_gc_interval: Duration::from_secs(60),
            snap_gc_timeout: Duration::from_secs(4 * 3600),
            pd_store_heartbeat_tick_interval: Duration::from_secs(10),
            max_peer_down_duration: Duration::from_secs(600),
            leader_transfer_max_log_lag: 128,
            disk_low_space_threshold: 1024 * 1024 * 1024,
            disk_reserve_space: 1024 * 1024 * 1024,
            disk_check_interval: Duration::from_secs(1),
        }
    }
}

impl Config {
    /// Timings for tests: a 10 ms tick, elections after ~100-200 ms.
    pub fn for_tests() -> Config {
        Config {
            raft_base_tick_interval: Duration::from_millis(10),
            raft_heartbeat_ticks: 2,
            raft_election_timeout_ticks: 10,
            raft_log_gc_tick_interval: Duration::from_millis(100),
            raft_store_max_leader_lease: Duration::from_millis(90),
            store_pool_size: 2,
            apply_pool_size: 1,
            store_heartbeat_interval: Duration::from_millis(20),
            store_unreachable_timeout: Duration::from_millis(100),
            sleeping_follower_leader_wait: Duration::from_secs(1),
            raft_engine_purge_interval: Duration::from_secs(1),
            split_check_tick_interval: Duration::from_millis(100),
            merge_check_tick_interval: Duration::from_millis(50),
            pd_heartbeat_tick_interval: Duration::from_secs(1),
            pd_store_heartbeat_tick_interval: Duration::from_secs(1),
            max_peer_down_duration: Duration::from_secs(2),
            // Tests run many stores on one shared disk: no reserve, and writes are refused
            // only when the disk is nearly out of space.
            disk_low_space_threshold: 16 * 1024 * 1024,
            disk_reserve_space: 0,
            disk_check_interval: Duration::from_millis(100),
            snap_gc_interval: Duration::from_millis(200),
            ..Config::default()
        }
    }

    /// The election timeout as wall time; `Duration::MAX` if it would not fit (a config
    /// [`Config::validate`] refuses).
    pub fn election_timeout(&self) -> Duration {
        u32::try_from(self.raft_election_timeout_ticks)
            .ok()
            .and_then(|ticks| self.raft_base_tick_interval.checked_mul(ticks))
            .unwrap_or(Duration::MAX)
    }

    /// Every duration setting with its name in the config file.
    fn durations(&self) -> Vec<(&'static str, Duration)> {
        let mut all = vec![
            ("raft-base-tick-interval", self.raft_base_tick_interval),
            ("raft-log-gc-tick-interval", self.raft_log_gc_tick_interval),
            (
                "raft-store-max-leader-lease",
                self.raft_store_max_leader_lease,
            ),
            ("store-heartbeat-interval", self.store_heartbeat_interval),
            ("store-unreachable-timeout", self.store_unreachable_timeout),
            (
                "sleeping-follower-leader-wait",
                self.sleeping_follower_leader_wait,
            ),
            ("raft-write-wait-duration", self.raft_write_wait_duration),
            (
                "raft-engine-purge-interval",
                self.raft_engine_purge_interval,
            ),
            ("split-check-tick-interval", self.split_check_tick_interval),
            ("merge-check-tick-interval", self.merge_check_tick_interval),
            (
                "pd-heartbeat-tick-interval",
                self.pd_heartbeat_tick_interval,
            ),
            (
                "pd-heartbeat-max-quiet-interval",
                self.pd_heartbeat_max_quiet_interval,
            ),
            (
                "pd-store-heartbeat-tick-interval",
                self.pd_store_heartbeat_tick_interval,
            ),
            ("max-peer-down-duration", self.max_peer_down_duration),
            ("disk-check-interval", self.disk_check_interval),
            ("snap-gc-interval", self.snap_gc_interval),
            ("snap-gc-timeout", self.snap_gc_timeout),
            ("load-split.window", self.load_split.window),
        ];
        if let SplitPolicyConfig::Load { window, .. } = &self.split_policy {
            all.push(("split-policy.window", *window));
        }
        all
    }

    /// Checks the invariants the raft machinery relies on.
    pub fn validate(&self) -> Result<()> {
        let bad = |why: String| Err(Error::InvalidConfig(why));
        // Timers add these to the current instant and multiply them by tick counts; a value
        // beyond any sensible setting would overflow there and stop the store.
        for (name, value) in self.durations() {
            if value > MAX_DURATION_SETTING {
                return bad(format!(
                    "{name} ({value:?}) must be at most {} days",
                    MAX_DURATION_SETTING.as_secs() / 86_400
                ));
            }
        }
        if self.raft_election_timeout_ticks > MAX_TICKS_SETTING
            || self.raft_heartbeat_ticks > MAX_TICKS_SETTING
        {
            return bad(format!(
                "raft-election-timeout-ticks and raft-heartbeat-ticks must be at most \
                 {MAX_TICKS_SETTING}"
            ));
        }
        if self.raft_heartbeat_ticks == 0 {
            return bad("raft-heartbeat-ticks must be > 0".into());
        }
        if self.raft_election_timeout_ticks <= self.raft_heartbeat_ticks {
            return bad("raft-election-timeout-ticks must exceed raft-heartbeat-ticks".into());
        }
        // The lease must end before another peer can win an election, with a tick to spare
        // for clock drift between stores.
        let max_lease = self
            .election_timeout()
            .saturating_sub(self.raft_base_tick_interval);
        if self.raft_store_max_leader_lease > max_lease {
            return bad(format!(
                "raft-store-max-leader-lease {:?} must be <= election timeout - 1 tick ({:?})",
                self.raft_store_max_leader_lease, max_lease
            ));
        }
        if self.store_pool_size == 0 {
            return bad("store-pool-size must be > 0".into());
        }
        if self.store_io_pool_size > 1 {
            return bad(format!(
                "store-io-pool-size must be 0 (raft pollers write the raft log) or 1 (one log \
                 writer thread), not {}",
                self.store_io_pool_size
            ));
        }
        if self.max_batch_size == 0 || self.messages_per_tick == 0 {
            return bad("batch sizes must be > 0".into());
        }
        match &self.split_policy {
            SplitPolicyConfig::Size {
                max_size,
                split_size,
            } if split_size == &0 || max_size < split_size => {
                return bad("split policy: need 0 < split-size <= max-size".into())
            }
            SplitPolicyConfig::Keys {
                max_keys,
                split_keys,
            } if split_keys == &0 || max_keys < split_keys => {
                return bad("split policy: need 0 < split-keys <= max-keys".into())
            }
            SplitPolicyConfig::Load { window, .. } if window.is_zero() => {
                return bad("split policy: load window must be > 0".into())
            }
            _ => {}
        }
        if self.load_split.enabled
            && (self.load_split.window.is_zero()
                || self.load_split.qps_threshold.is_nan()
                || self.load_split.qps_threshold <= 0.0)
        {
            return bad("load-split: need qps-threshold > 0 and window > 0".into());
        }
        if self.raft_entry_max_size == 0 {
            return bad("raft-entry-max-size must be > 0".into());
        }
        // Timers that run every so often: zero would make them spin.
        for (name, value) in self.durations() {
            if NONZERO_DURATIONS.contains(&name) && value.is_zero() {
                return bad(format!("{name} must be > 0"));
            }
        }
        Ok(())
    }
}

/// The longest any duration setting may be: a year. Longer ones are refused at start
/// instead of overflowing the timers that use them.
pub const MAX_DURATION_SETTING: Duration = Duration::from_secs(365 * 86_400);

/// The duration settings that must not be zero.
const NONZERO_DURATIONS: [&str; 9] = [
    "raft-base-tick-interval",
    "store-heartbeat-interval",
    "raft-engine-purge-interval",
    "pd-heartbeat-tick-interval",
    "pd-store-heartbeat-tick-interval",
    "max-peer-down-duration",
    "disk-check-interval",
    "snap-gc-interval",
    "snap-gc-timeout",
];

/// The most ticks an election timeout or heartbeat may take.
pub const MAX_TICKS_SETTING: usize = 1_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_test_preset_are_valid() {
        Config::default().validate().unwrap();
        Config::for_tests().validate().unwrap();
    }

    #[test]
    fn lease_longer_than_election_is_refused() {
        let cfg = Config {
            raft_store_max_leader_lease: Duration::from_secs(10),
            ..Config::default()
        };
        assert!(matches!(cfg.validate(), Err(Error::InvalidConfig(_))));
    }

    #[test]
    fn every_duration_that_must_not_be_zero_is_refused_at_zero() {
        let names: Vec<&str> = Config::default()
            .durations()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        for name in NONZERO_DURATIONS {
            assert!(names.contains(&name), "{name} is not a duration setting");
        }
        let cfg = Config {
            disk_check_interval: Duration::ZERO,
            ..Config::default()
        };
        assert!(matches!(cfg.validate(), Err(Error::InvalidConfig(m)) if m.contains("disk-check")));
    }

    #[test]
    fn zero_pd_intervals_are_refused() {
        let cfg = Config {
            pd_heartbeat_tick_interval: Duration::ZERO,
            ..Config::default()
        };
        assert!(
            matches!(cfg.validate(), Err(Error::InvalidConfig(m)) if m.contains("pd-heartbeat"))
        );
        let cfg = Config {
            max_peer_down_duration: Duration::ZERO,
            ..Config::for_tests()
        };
        assert!(cfg.validate().is_err());
    }

    #[test]
    fn store_io_pool_size_is_zero_or_one() {
        for (size, valid) in [(0, true), (1, true), (2, false)] {
            let cfg = Config {
                store_io_pool_size: size,
                ..Config::default()
            };
            match cfg.validate() {
                Ok(()) => assert!(valid, "store-io-pool-size {size} was accepted"),
                Err(Error::InvalidConfig(m)) => {
                    assert!(!valid, "store-io-pool-size {size} was refused: {m}");
                    assert!(m.contains("store-io-pool-size"), "{m}");
                }
                Err(e) => panic!("unexpected error {e}"),
            }
        }
    }

    /// Durations too long for the timers were accepted and then overflowed: the election
    /// timeout's product panicked inside `validate`, a split-check interval panicked every
    /// raft poller once the store had started. Both are now refused with the setting named.
    #[test]
    fn durations_beyond_a_year_are_refused_without_overflowing() {
        let huge = Duration::MAX / 2;
        type Setter = fn(&mut Config, Duration);
        let cases: [(&str, Setter); 3] = [
            ("raft-base-tick-interval", |c, d| {
                c.raft_base_tick_interval = d
            }),
            ("split-check-tick-interval", |c, d| {
                c.split_check_tick_interval = d
            }),
            ("load-split.window", |c, d| c.load_split.window = d),
        ];
        for (name, set) in cases {
            for too_long in [huge, MAX_DURATION_SETTING + Duration::from_secs(1)] {
                let mut cfg = Config::default();
                set(&mut cfg, too_long);
                match cfg.validate() {
                    Err(Error::InvalidConfig(m)) => assert!(m.contains(name), "{m}"),
                    other => panic!("{name} = {too_long:?}: {other:?}"),
                }
            }
            // A year itself is allowed.
            let mut cfg = Config::default();
            set(&mut cfg, MAX_DURATION_SETTING);
            cfg.validate().unwrap();
        }
        let cfg = Config {
            raft_election_timeout_ticks: usize::MAX,
            ..Config::default()
        };
        assert_eq!(cfg.election_timeout(), Duration::MAX);
        assert!(matches!(cfg.validate(), Err(Error::InvalidConfig(m)) if m.contains("ticks")),);
    }
}
