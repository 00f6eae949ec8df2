//! PD's configuration: where it listens and keeps its data, and every scheduling knob. Read from
//! TOML (kebab-case keys, every field defaulted), overridden by flags, validated before start.
//! The `[schedule]` part can also be changed at runtime through HTTP; PD persists it then.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The longest any duration setting may be: a year. Deadlines and timers are `now + setting`,
/// which would overflow for longer ones; they are refused when the config is checked.
pub const MAX_DURATION_SETTING: Duration = Duration::from_secs(365 * 86_400);

/// Everything `shoal-pd` needs to run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// This PD member's name, shown in GetMembers.
    pub name: String,
    /// Directory of PD's own RocksDB (cluster id, stores, regions, allocators). Required.
    pub data_dir: PathBuf,
    /// Where the gRPC service listens, as `http://host:port` (or `https://`, which needs
    /// `[security]`; `host:port` works too). Port 0 picks a free port.
    pub client_urls: String,
    /// The URL clients are told to use. Empty: the client URL (with the bound port when the
    /// client URL asked for port 0).
    pub advertise_client_urls: String,
    /// Where the JSON HTTP API listens (`host:port`; port 0 picks a free port).
    pub http_addr: String,
    /// Largest gRPC message PD accepts, in bytes.
    pub max_grpc_message_size: usize,
    /// How far ahead of the clock PD reserves timestamps on disk. A restart resumes above the
    /// reserved window, so a longer window means fewer disk writes and a bigger jump on restart.
    #[serde(with = "humantime_serde")]
    pub tso_save_interval: Duration,
    /// How many ids PD reserves on disk at a time.
    pub id_batch_size: u64,
    /// The scheduling knobs.
    pub schedule: ScheduleConfig,
    /// `[security]`: TLS and mutual TLS on the gRPC and HTTP ports (`security::SecurityConfig`).
    pub security: security::SecurityConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: "pd".into(),
            data_dir: PathBuf::new(),
            client_urls: "http://127.0.0.1:2379".into(),
            advertise_client_urls: String::new(),
            http_addr: "127.0.0.1:2380".into(),
            max_grpc_message_size: 64 * 1024 * 1024,
            tso_save_interval: Duration::from_secs(3),
            id_batch_size: 1000,
            schedule: ScheduleConfig::default(),
            security: security::SecurityConfig::default(),
        }
    }
}

/// Thresholds and limits of the schedulers and operators.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ScheduleConfig {
    /// How often the schedulers look at the cluster.
    #[serde(with = "humantime_serde")]
    pub schedule_interval: Duration,
    /// Voters every region should have.
    pub max_replicas: u64,
    /// A store silent for longer is Down: its peers get replaced elsewhere.
    #[serde(with = "humantime_serde")]
    pub max_store_down_time: Duration,
    /// A store silent for longer gets no new peers or leaders (it may just be restarting).
    #[serde(with = "humantime_serde")]
    pub store_disconnect_time: Duration,
    /// Leader transfers balance-leader may run at once.
    pub leader_schedule_limit: u64,
    /// Region moves balance-region may run at once.
    pub region_schedule_limit: u64,
    /// Repairs the replica checker may run at once.
    pub replica_schedule_limit: u64,
    /// balance-leader acts when the leader counts of two stores differ by more than this.
    pub leader_balance_tolerance: u64,
    /// balance-region acts when region counts differ by more than this share of the mean...
    pub region_balance_tolerance_ratio: f64,
    /// ...and by more than this many regions.
    pub region_balance_min_tolerance: u64,
    /// Operators that move peers are abandoned after this long.
    #[serde(with = "humantime_serde")]
    pub peer_operator_timeout: Duration,
    /// Leader transfers are abandoned after this long.
    #[serde(with = "humantime_serde")]
    pub leader_operator_timeout: Duration,
    /// Split requests are abandoned after this long.
    #[serde(with = "humantime_serde")]
    pub split_operator_timeout: Duration,
    /// An operator step the leader has not acted on is sent again after this long.
    #[serde(with = "humantime_serde")]
    pub operator_resend_interval: Duration,
    /// A leader transfer step is sent at most this many times (once, then again every
    /// `operator-resend-interval` while the region still shows the old leader); if the leader
    /// has not moved one interval after the last attempt, the operator is cancelled so the
    /// region is free for new operators.
    pub leader_transfer_max_attempts: u32,
    /// Keep every region at `max-replicas` voters on healthy stores.
    pub enable_replica_checker: bool,
    /// Even out leaders across stores.
    pub enable_balance_leader: bool,
    /// Even out regions across stores.
    pub enable_balance_region: bool,
    /// Split regions at the default keyspace's boundaries.
    pub enable_keyspace_split: bool,
    /// Merges the merge checker may run at once; 0 turns merging off.
    pub merge_schedule_limit: u64,
    /// A region at most this big (approximate bytes of keys and values) may merge into a
    /// neighbour (PD's `max-merge-region-size`; a region with no size report yet counts as
    /// too big).
    pub max_merge_region_size: u64,
    /// ...and holding at most this many keys (PD's `max-merge-region-keys`).
    pub max_merge_region_keys: u64,
    /// A region split less than this long ago is not merged, nor merged into, so a split
    /// (by size, by load or by hand) is not undone at once (PD's `split-merge-interval`;
    /// at most 24 h). Splits are remembered in memory only, so nothing merges within this
    /// long of PD's start either.
    #[serde(with = "humantime_serde")]
    pub split_merge_interval: Duration,
    /// Merges not done after this long are abandoned (the source rolls back on its own
    /// once the target has moved on).
    #[serde(with = "humantime_serde")]
    pub merge_operator_timeout: Duration,
    /// Move the leaders of hot regions from the store whose leaders handle the most keys
    /// per second to the one whose leaders handle the fewest (PD's
    /// `balance-hot-region-scheduler`, leaders only). While on, balance-leader and
    /// balance-region leave hot regions alone, as PD's do.
    pub enable_hot_region_scheduler: bool,
    /// Hot-region leader transfers that may run at once (PD's `hot-region-schedule-limit`).
    pub hot_region_schedule_limit: u64,
    /// A region is hot when its leader reads and writes at least this many keys per second,
    /// measured over its reports (at least `RATE_WINDOW_SECS` of them).
    pub hot_region_min_key_rate: u64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            schedule_interval: Duration::from_secs(1),
            max_replicas: 3,
            max_store_down_time: Duration::from_secs(30 * 60),
            store_disconnect_time: Duration::from_secs(20),
            leader_schedule_limit: 4,
            region_schedule_limit: 4,
            replica_schedule_limit: 16,
            leader_balance_tolerance: 1,
            region_balance_tolerance_ratio: 0.05,
            region_balance_min_tolerance: 2,
            peer_operator_timeout: Duration::from_secs(10 * 60),
            leader_operator_timeout: Duration::from_secs(30),
            split_operator_timeout: Duration::from_secs(60),
            operator_resend_interval: Duration::from_secs(3),
            leader_transfer_max_attempts: 5,
            enable_replica_checker: true,
            enable_balance_leader: true,
            enable_balance_region: true,
            enable_keyspace_split: true,
            merge_schedule_limit: 8,
            max_merge_region_size: 20 * 1024 * 1024,
            max_merge_region_keys: 200_000,
            split_merge_interval: Duration::from_secs(60 * 60),
            merge_operator_timeout: Duration::from_secs(60),
            enable_hot_region_scheduler: true,
            hot_region_schedule_limit: 4,
            hot_region_min_key_rate: 100,
        }
    }
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::Config(msg.into())
}

impl ScheduleConfig {
    /// Every duration setting but `split-merge-interval` (at most a day), by its key.
    fn named_durations(&self) -> [(&'static str, Duration); 8] {
        [
            ("schedule-interval", self.schedule_interval),
            ("max-store-down-time", self.max_store_down_time),
            ("store-disconnect-time", self.store_disconnect_time),
            ("peer-operator-timeout", self.peer_operator_timeout),
            ("leader-operator-timeout", self.leader_operator_timeout),
            ("split-operator-timeout", self.split_operator_timeout),
            ("operator-resend-interval", self.operator_resend_interval),
            ("merge-operator-timeout", self.merge_operator_timeout),
        ]
    }

    pub fn validate(&self) -> Result<()> {
        if self.schedule_interval < Duration::from_millis(10) {
            return Err(invalid("schedule.schedule-interval must be at least 10ms"));
        }
        if self.max_replicas == 0 || self.max_replicas > 9 {
            return Err(invalid("schedule.max-replicas must be between 1 and 9"));
        }
        if self.leader_transfer_max_attempts == 0 {
            return Err(invalid(
                "schedule.leader-transfer-max-attempts must be at least 1",
            ));
        }
        if self.split_merge_interval.as_millis() > u128::from(crate::cluster::SPLIT_MEMORY_MS) {
            return Err(invalid("schedule.split-merge-interval must be at most 24h"));
        }
        if self.hot_region_min_key_rate == 0 {
            return Err(invalid(
                "schedule.hot-region-min-key-rate must be at least 1 key per second",
            ));
        }
        if !(0.0..=1.0).contains(&self.region_balance_tolerance_ratio) {
            return Err(invalid(
                "schedule.region-balance-tolerance-ratio must be between 0 and 1",
            ));
        }
        // schedule-interval's lower bound is checked above.
        for (name, d) in self.named_durations() {
            if d.is_zero() {
                return Err(invalid(format!("schedule.{name} must be positive")));
            }
            if d > MAX_DURATION_SETTING {
                return Err(invalid(format!("schedule.{name} must be at most 365 days")));
            }
        }
        Ok(())
    }

    /// This config with the keys of `patch` (a JSON object in the kebab-case form) replaced;
    /// unknown keys and wrong types are refused.
    pub fn patched(&self, patch: &serde_json::Value) -> Result<ScheduleConfig> {
        let serde_json::Value::Object(changes) = patch else {
            return Err(invalid("a schedule config update must be a JSON object"));
        };
        let original =
            serde_json::to_value(self).map_err(|e| invalid(format!("encode config: {e}")))?;
        let mut current = original.clone();
        let serde_json::Value::Object(fields) = &mut current else {
            return Err(invalid("the schedule config does not encode as an object"));
        };
        for (k, v) in changes {
            if !fields.contains_key(k) {
                return Err(invalid(format!("unknown schedule config key {k:?}")));
            }
            fields.insert(k.clone(), v.clone());
        }
        let next: ScheduleConfig = serde_json::from_value(current).map_err(|e| {
            // serde names the type it wanted, not the key: find the key by trying each change
            // alone on the current config.
            let culprit = changes.iter().find(|(k, v)| {
                let mut one = original.clone();
                one[k.as_str()] = (*v).clone();
                serde_json::from_value::<ScheduleConfig>(one).is_err()
            });
            match culprit {
                Some((k, _)) => invalid(format!("bad schedule config value for {k}: {e}")),
                None => invalid(format!("bad schedule config value: {e}")),
            }
        })?;
        next.validate()?;
        Ok(next)
    }
}

impl Config {
    /// Parses a TOML config file's content.
    pub fn from_toml(text: &str) -> Result<Config> {
        toml::from_str(text).map_err(|e| invalid(e.to_string()))
    }

    pub fn validate(&self) -> Result<()> {
        if self.name.is_empty() {
            return Err(invalid("name must not be empty"));
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("data-dir is required"));
        }
        host_port_of_url(&self.client_urls)?;
        if !self.advertise_client_urls.is_empty() {
            host_port_of_url(&self.advertise_client_urls)?;
        }
        check_host_port(&self.http_addr, "http-addr")?;
        if self.max_grpc_message_size < 4 * 1024 * 1024 {
            return Err(invalid("max-grpc-message-size must be at least 4 MiB"));
        }
        if self.tso_save_interval < Duration::from_millis(100) {
            return Err(invalid("tso-save-interval must be at least 100ms"));
        }
        if self.tso_save_interval > MAX_DURATION_SETTING {
            return Err(invalid("tso-save-interval must be at most 365 days"));
        }
        if self.id_batch_size == 0 {
            return Err(invalid("id-batch-size must be positive"));
        }
        self.security
            .validate()
            .map_err(|e| invalid(format!("[security] {e}")))?;
        if self.client_urls.starts_with("https://") && !self.security.enabled().unwrap_or(false) {
            return Err(invalid(format!(
                "client-urls {}: https needs [security] ca-path, cert-path and key-path",
                self.client_urls
            )));
        }
        self.schedule.validate()
    }
}

/// `host:port` of an `http://host:port` or `https://host:port` URL (a bare `host:port` is
/// accepted too). Whether PD speaks TLS is decided by `[security]`, not by the scheme.
pub fn host_port_of_url(url: &str) -> Result<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or(url);
    let rest = rest.trim_end_matches('/');
    check_host_port(rest, "client URL")?;
    Ok(rest.to_string())
}

fn check_host_port(addr: &str, what: &str) -> Result<()> {
    let Some((host, port)) = addr.rsplit_once(':') else {
        return Err(invalid(format!("{what} {addr:?} has no port")));
    };
    if host.is_empty() || host.contains('/') {
        return Err(invalid(format!("{what} {addr:?} has no valid host")));
    }
    port.parse::<u16>()
        .map_err(|_| invalid(format!("{what} {addr:?} has an invalid port")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults_but_needs_a_data_dir() {
        let cfg = Config::from_toml("").unwrap();
        assert_eq!(cfg, Config::default());
        assert!(matches!(cfg.validate(), Err(Error::Config(m)) if m.contains("data-dir")));
    }

    #[test]
    fn durations_and_sections_parse() {
        let cfg = Config::from_toml(
            "data-dir = \"/tmp/x\"\n[schedule]\nmax-store-down-time = \"3s\"\nmax-replicas = 1\n",
        )
        .unwrap();
        assert_eq!(cfg.schedule.max_store_down_time, Duration::from_secs(3));
        assert_eq!(cfg.schedule.max_replicas, 1);
        cfg.validate().unwrap();
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(Config::from_toml("no-such-key = 1").is_err());
        assert!(Config::from_toml("[schedule]\nmax-replicas = \"x\"").is_err());
        let mut cfg = Config {
            data_dir: "/tmp/x".into(),
            ..Config::default()
        };
        cfg.client_urls = "https://127.0.0.1:1".into();
        assert!(cfg.validate().is_err(), "https without [security]");
        cfg.client_urls = "ftp://127.0.0.1:1".into();
        assert!(cfg.validate().is_err());
        cfg.client_urls = "http://127.0.0.1".into();
        assert!(cfg.validate().is_err());
        cfg.client_urls = "http://127.0.0.1:0".into();
        cfg.validate().unwrap();
        cfg.schedule.max_replicas = 0;
        assert!(cfg.validate().is_err());
    }

    #[test]
    fn durations_beyond_a_year_are_refused_in_the_file_and_at_runtime() {
        for key in [
            "schedule-interval",
            "max-store-down-time",
            "store-disconnect-time",
            "peer-operator-timeout",
            "operator-resend-interval",
        ] {
            let cfg = Config::from_toml(&format!(
                "data-dir = \"/tmp/x\"\n[schedule]\n{key} = \"1000years\"\n"
            ))
            .unwrap();
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.contains(key) && err.contains("365 days"), "{err}");
            let err = ScheduleConfig::default()
                .patched(&serde_json::json!({ key: "400days" }))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{err}");
            ScheduleConfig::default()
                .patched(&serde_json::json!({ key: "300days" }))
                .unwrap();
        }
        let cfg = Config::from_toml("data-dir = \"/tmp/x\"\ntso-save-interval = \"1000years\"\n")
            .unwrap();
        assert!(cfg
            .validate()
            .unwrap_err()
            .to_string()
            .contains("tso-save-interval"));
    }

    #[test]
    fn partial_update_changes_only_given_keys() {
        let cfg = ScheduleConfig::default();
        let next = cfg
            .patched(&serde_json::json!({"max-replicas": 5, "schedule-interval": "250ms"}))
            .unwrap();
        assert_eq!(next.max_replicas, 5);
        assert_eq!(next.schedule_interval, Duration::from_millis(250));
        assert_eq!(next.leader_schedule_limit, cfg.leader_schedule_limit);
        assert!(cfg.patched(&serde_json::json!({"nope": 1})).is_err());
        // A value of the wrong type is refused naming its key.
        let err = cfg
            .patched(&serde_json::json!({"schedule-interval": "1s", "max-replicas": -1}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("max-replicas"), "{err}");
        assert!(cfg
            .patched(&serde_json::json!({"max-replicas": 0}))
            .is_err());
        assert!(cfg.patched(&serde_json::json!([1])).is_err());
        assert!(cfg
            .patched(&serde_json::json!({"leader-transfer-max-attempts": 0}))
            .is_err());
        let patched = cfg
            .patched(&serde_json::json!({"leader-transfer-max-attempts": 2}))
            .unwrap();
        assert_eq!(patched.leader_transfer_max_attempts, 2);
    }

    #[test]
    fn the_example_file_lists_the_defaults() {
        let text = include_str!("../pd.example.toml");
        assert_eq!(Config::from_toml(text).unwrap(), Config::default());
    }

    #[test]
    fn security_section_parses_and_partial_is_refused() {
        let cfg = Config::from_toml(
            "data-dir = \"/tmp/x\"\n[security]\nca-path = \"ca.pem\"\ncert-allowed-cn = [\"a\"]\n",
        )
        .unwrap();
        assert_eq!(cfg.security.cert_allowed_cn, vec!["a".to_string()]);
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("cert-path"), "{e}");
        assert_eq!(
            host_port_of_url("https://127.0.0.1:2379").unwrap(),
            "127.0.0.1:2379"
        );
    }

    #[test]
    fn url_host_port() {
        assert_eq!(
            host_port_of_url("http://127.0.0.1:2379/").unwrap(),
            "127.0.0.1:2379"
        );
        assert_eq!(host_port_of_url("localhost:1").unwrap(), "localhost:1");
    }
}
