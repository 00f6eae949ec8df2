//! The `[raftstore]` section: every `raftstore::Config` field, with its defaults taken from
//! raftstore itself so the two never drift apart.

use std::time::Duration;

use raftstore::config::SplitPolicyConfig;
use serde::{Deserialize, Serialize};

/// Settings of the store's raft machinery (see `raftstore::Config` for the details).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct RaftstoreSection {
    /// Interval of one raft logical clock tick.
    #[serde(with = "humantime_serde")]
    pub raft_base_tick_interval: Duration,
    /// Ticks between leader heartbeats.
    pub raft_heartbeat_ticks: usize,
    /// Ticks without a leader before a follower campaigns.
    pub raft_election_timeout_ticks: usize,
    /// Largest batch of entries in one append message, in bytes.
    pub raft_max_size_per_msg: u64,
    /// Appends in flight per follower.
    pub raft_max_inflight_msgs: usize,
    /// A proposal larger than this many bytes is refused.
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
    /// Apply poller threads.
    pub apply_pool_size: usize,
    /// FSMs handled per poller round.
    pub max_batch_size: usize,
    /// Messages drained from one mailbox per round.
    pub messages_per_tick: usize,
    /// Soft capacity of a peer's mailbox; beyond it proposals get ServerIsBusy.
    pub notify_capacity: usize,
    /// Idle regions stop ticking once all peers agree.
    pub hibernate_regions: bool,
    /// Ticks without activity before a leader asks its followers to hibernate.
    pub hibernate_idle_ticks: usize,
    /// How often a store pings the stores it shares regions with.
    #[serde(with = "humantime_serde")]
    pub store_heartbeat_interval: Duration,
    /// A store unheard of for this long is reported unreachable to its regions' peers.
    #[serde(with = "humantime_serde")]
    pub store_unreachable_timeout: Duration,
    /// Stop collecting write tasks into one log batch beyond this many bytes.
    pub raft_write_size_limit: usize,
    /// A small log batch waits this long for more entries before its fsync.
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
    /// How often a region leader reports its region to PD.
    #[serde(with = "humantime_serde")]
    pub pd_heartbeat_tick_interval: Duration,
    /// How often the store reports its statistics to PD.
    #[serde(with = "humantime_serde")]
    pub pd_store_heartbeat_tick_interval: Duration,
    /// A peer not heard from for longer than this is reported down to PD.
    #[serde(with = "humantime_serde")]
    pub max_peer_down_duration: Duration,
    /// A leader transfer is accepted when the target's log is at most this many entries behind
    /// the leader's; 0 accepts only a target that has every entry.
    pub leader_transfer_max_log_lag: u64,
    /// Bytes: writes are refused ("disk full") while fewer are available on the disk of the
    /// KV engine or the raft log; reads go on. 0 never refuses.
    pub disk_low_space_threshold: u64,
    /// Bytes of the placeholder file kept in the data directory and deleted when the disk
    /// turns full, so writes under way can finish. 0 keeps none.
    pub disk_reserve_space: u64,
    /// How often free space is checked.
    #[serde(with = "humantime_serde")]
    pub disk_check_interval: Duration,
    /// The built-in split policy.
    pub split_policy: SplitPolicySection,
}

/// `[raftstore.split-policy]`: `kind` picks the policy, the other keys are its settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SplitPolicySection {
    /// Split regions over `max-size` bytes into pieces of `split-size`.
    #[serde(rename_all = "kebab-case")]
    Size { max_size: u64, split_size: u64 },
    /// Split regions over `max-keys` keys into pieces of `split-keys`.
    #[serde(rename_all = "kebab-case")]
    Keys { max_keys: u64, split_keys: u64 },
    /// Split regions serving more than `qps-threshold` requests per second where the
    /// load halves.
    #[serde(rename_all = "kebab-case")]
    Load {
        qps_threshold: f64,
        #[serde(with = "humantime_serde")]
        window: Duration,
    },
    /// Split at fixed boundaries, given as hex-encoded keys.
    #[serde(rename_all = "kebab-case")]
    FixedKeys { boundaries: Vec<String> },
}

impl SplitPolicySection {
    fn from_policy(p: &SplitPolicyConfig) -> SplitPolicySection {
        match p {
            SplitPolicyConfig::Size {
                max_size,
                split_size,
            } => SplitPolicySection::Size {
                max_size: *max_size,
                split_size: *split_size,
            },
            SplitPolicyConfig::Keys {
                max_keys,
                split_keys,
            } => SplitPolicySection::Keys {
                max_keys: *max_keys,
                split_keys: *split_keys,
            },
            SplitPolicyConfig::Load {
                qps_threshold,
                window,
            } => SplitPolicySection::Load {
                qps_threshold: *qps_threshold,
                window: *window,
            },
            SplitPolicyConfig::FixedKeys { boundaries } => SplitPolicySection::FixedKeys {
                boundaries: boundaries.iter().map(hex::encode).collect(),
            },
        }
    }

    fn to_policy(&self) -> Result<SplitPolicyConfig, String> {
        Ok(match self {
            SplitPolicySection::Size {
                max_size,
                split_size,
            } => SplitPolicyConfig::Size {
                max_size: *max_size,
                split_size: *split_size,
            },
            SplitPolicySection::Keys {
                max_keys,
                split_keys,
            } => SplitPolicyConfig::Keys {
                max_keys: *max_keys,
                split_keys: *split_keys,
            },
            SplitPolicySection::Load {
                qps_threshold,
                window,
            } => SplitPolicyConfig::Load {
                qps_threshold: *qps_threshold,
                window: *window,
            },
            SplitPolicySection::FixedKeys { boundaries } => SplitPolicyConfig::FixedKeys {
                boundaries: boundaries
                    .iter()
                    .map(|b| {
                        hex::decode(b).map_err(|e| {
                            format!("raftstore.split-policy.boundaries: {b:?} is not hex: {e}")
                        })
                    })
                    .collect::<Result<_, _>>()?,
            },
        })
    }
}

impl Default for RaftstoreSection {
    fn default() -> Self {
        RaftstoreSection::from_config(&raftstore::Config::default())
    }
}

impl RaftstoreSection {
    pub fn from_config(c: &raftstore::Config) -> RaftstoreSection {
        RaftstoreSection {
            raft_base_tick_interval: c.raft_base_tick_interval,
            raft_heartbeat_ticks: c.raft_heartbeat_ticks,
            raft_election_timeout_ticks: c.raft_election_timeout_ticks,
            raft_max_size_per_msg: c.raft_max_size_per_msg,
            raft_max_inflight_msgs: c.raft_max_inflight_msgs,
            raft_entry_max_size: c.raft_entry_max_size,
            raft_log_gc_tick_interval: c.raft_log_gc_tick_interval,
            raft_log_gc_threshold: c.raft_log_gc_threshold,
            raft_log_gc_count_limit: c.raft_log_gc_count_limit,
            raft_log_gc_size_limit: c.raft_log_gc_size_limit,
            raft_store_max_leader_lease: c.raft_store_max_leader_lease,
            store_pool_size: c.store_pool_size,
            apply_pool_size: c.apply_pool_size,
            max_batch_size: c.max_batch_size,
            messages_per_tick: c.messages_per_tick,
            notify_capacity: c.notify_capacity,
            hibernate_regions: c.hibernate_regions,
            hibernate_idle_ticks: c.hibernate_idle_ticks,
            store_heartbeat_interval: c.store_heartbeat_interval,
            store_unreachable_timeout: c.store_unreachable_timeout,
            raft_write_size_limit: c.raft_write_size_limit,
            raft_write_wait_duration: c.raft_write_wait_duration,
            raft_entry_cache_limit: c.raft_entry_cache_limit,
            raft_engine_purge_interval: c.raft_engine_purge_interval,
            split_check_tick_interval: c.split_check_tick_interval,
            pd_heartbeat_tick_interval: c.pd_heartbeat_tick_interval,
            pd_store_heartbeat_tick_interval: c.pd_store_heartbeat_tick_interval,
            max_peer_down_duration: c.max_peer_down_duration,
            leader_transfer_max_log_lag: c.leader_transfer_max_log_lag,
            disk_low_space_threshold: c.disk_low_space_threshold,
            disk_reserve_space: c.disk_reserve_space,
            disk_check_interval: c.disk_check_interval,
            split_policy: SplitPolicySection::from_policy(&c.split_policy),
        }
    }

    /// The raftstore config this section describes, validated by raftstore's own rules.
    pub fn to_config(&self) -> Result<raftstore::Config, String> {
        let c = raftstore::Config {
            raft_base_tick_interval: self.raft_base_tick_interval,
            raft_heartbeat_ticks: self.raft_heartbeat_ticks,
            raft_election_timeout_ticks: self.raft_election_timeout_ticks,
            raft_max_size_per_msg: self.raft_max_size_per_msg,
            raft_max_inflight_msgs: self.raft_max_inflight_msgs,
            raft_entry_max_size: self.raft_entry_max_size,
            raft_log_gc_tick_interval: self.raft_log_gc_tick_interval,
            raft_log_gc_threshold: self.raft_log_gc_threshold,
            raft_log_gc_count_limit: self.raft_log_gc_count_limit,
            raft_log_gc_size_limit: self.raft_log_gc_size_limit,
            raft_store_max_leader_lease: self.raft_store_max_leader_lease,
            store_pool_size: self.store_pool_size,
            apply_pool_size: self.apply_pool_size,
            max_batch_size: self.max_batch_size,
            messages_per_tick: self.messages_per_tick,
            notify_capacity: self.notify_capacity,
            hibernate_regions: self.hibernate_regions,
            hibernate_idle_ticks: self.hibernate_idle_ticks,
            store_heartbeat_interval: self.store_heartbeat_interval,
            store_unreachable_timeout: self.store_unreachable_timeout,
            raft_write_size_limit: self.raft_write_size_limit,
            raft_write_wait_duration: self.raft_write_wait_duration,
            raft_entry_cache_limit: self.raft_entry_cache_limit,
            raft_engine_purge_interval: self.raft_engine_purge_interval,
            split_check_tick_interval: self.split_check_tick_interval,
            split_policy: self.split_policy.to_policy()?,
            pd_heartbeat_tick_interval: self.pd_heartbeat_tick_interval,
            pd_store_heartbeat_tick_interval: self.pd_store_heartbeat_tick_interval,
            max_peer_down_duration: self.max_peer_down_duration,
            leader_transfer_max_log_lag: self.leader_transfer_max_log_lag,
            disk_low_space_threshold: self.disk_low_space_threshold,
            disk_reserve_space: self.disk_reserve_space,
            disk_check_interval: self.disk_check_interval,
        };
        c.validate().map_err(|e| format!("[raftstore] {e}"))?;
        Ok(c)
    }
}
