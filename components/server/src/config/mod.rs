//! The store's configuration: TOML (every key optional, unknown keys refused), from one file
//! or several layered in order, overridden by a few command-line flags, validated before
//! anything starts.

mod flags;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cpu_scheduling::CpuScheduling;
use crate::kv::StorageApi;

pub use flags::Flags;

/// A configuration that cannot be used, with the reason.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config: {0}")]
    Invalid(String),
    /// A `[security]` setting or certificate file that cannot be used (names the file).
    #[error("[security] {0}")]
    Security(#[from] security::SecurityError),
    #[error("cannot write the effective config to {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Everything `shoal-server` can be told.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    pub server: ServerSection,
    pub storage: StorageSection,
    /// `[rocksdb]`: the state-machine RocksDB's tuning, `engine::KvEngineOptions` itself
    /// (its docs give every key and the reasons for the defaults).
    pub rocksdb: engine::KvEngineOptions,
    /// `[raft-engine]`: how the raft log is written, `engine::RaftLogOptions` itself.
    pub raft_engine: engine::RaftLogOptions,
    pub pd: PdSection,
    /// `[raftstore]`: the store's raft machinery, `raftstore::Config` itself (its docs give
    /// every key; `[raftstore.split-policy]` is `raftstore::SplitPolicyConfig`).
    pub raftstore: raftstore::Config,
    pub gc: GcSection,
    pub pessimistic_txn: PessimisticTxnSection,
    pub log: LogSection,
    /// `[security]`: TLS and mutual TLS for every endpoint (`security::SecurityConfig`).
    pub security: security::SecurityConfig,
}

/// `[server]`: where the store listens and what it tells others.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServerSection {
    /// Address the gRPC server binds (`ip:port`; port 0 picks a free port).
    pub addr: String,
    /// Address other stores and clients dial (`host:port`). Empty means `addr` (or, when
    /// `addr` has port 0, the address actually bound).
    pub advertise_addr: String,
    /// Address of the status HTTP server (`/metrics`, `/status`).
    pub status_addr: String,
    /// Threads of the gRPC runtime (at least 1). With 1, the runtime runs on the process's
    /// main thread with tokio's current-thread scheduler, which writes the responses of
    /// requests that finish together in one system call (see `shoal-server`'s `grpc_runtime`).
    pub grpc_concurrency: usize,
    /// Largest gRPC message sent or received, in bytes.
    pub max_grpc_message_size: usize,
    /// Linux scheduling policy of the store process's threads: `"normal"` (the default,
    /// `SCHED_OTHER`) or `"batch"` (`SCHED_BATCH`: a thread that wakes up does not preempt
    /// the one running on its core). `"batch"` pays where the cores are shared by more
    /// runnable threads than there are cores, such as several stores on one host; see
    /// `crate::cpu_scheduling`. Applied by `shoal-server` before the store starts its
    /// threads; a store embedded in another program leaves its threads alone.
    pub cpu_scheduling: CpuScheduling,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            addr: "127.0.0.1:20160".into(),
            advertise_addr: String::new(),
            status_addr: "127.0.0.1:20180".into(),
            grpc_concurrency: 2,
            max_grpc_message_size: 64 * 1024 * 1024,
            cpu_scheduling: CpuScheduling::Normal,
        }
    }
}

/// `[storage]`: where the store keeps its data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct StorageSection {
    /// The data directory: `db/`, `raft/`, `snap/`, `LOCK`, `store.toml`.
    pub data_dir: PathBuf,
    /// How far ahead of PD's clock a transactional read's timestamp may be (1 s to 1 h). A
    /// read further ahead is refused with a key error, since it would push every later
    /// async-commit and 1PC commit timestamp that far ahead. PD's clock is sampled every
    /// twelfth of this.
    #[serde(with = "humantime_serde")]
    pub max_ts_drift_allowance: Duration,
    /// The cluster's API version, 1 or 2 (TiKV's `storage.api-version`): V2 (the default)
    /// serves keyspace-prefixed keys, V1 keys as given. PD records the version of the store
    /// that bootstraps the cluster and refuses stores configured otherwise.
    pub api_version: u8,
    /// API V1 only: allow raw TTLs (V1TTL, TiKV's `storage.enable-ttl`). V2 always allows
    /// them.
    pub enable_ttl: bool,
}

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection {
            data_dir: PathBuf::from("./shoal-data"),
            max_ts_drift_allowance: Duration::from_secs(60),
            api_version: 2,
            enable_ttl: false,
        }
    }
}

impl StorageSection {
    /// The storage API these settings select; errors on an unknown version number.
    pub fn api(&self) -> Result<StorageApi, ConfigError> {
        StorageApi::from_config(self.api_version, self.enable_ttl).map_err(ConfigError::Invalid)
    }
}

/// `[pd]`: how to reach the placement driver.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct PdSection {
    /// PD addresses (`host:port`, `http://host:port` or `https://host:port`; `https` is
    /// dialed exactly when `[security]` turns TLS on).
    pub endpoints: Vec<String>,
    /// How long start-up keeps trying to reach PD before giving up.
    #[serde(with = "humantime_serde")]
    pub start_timeout: Duration,
    /// Time allowed for one PD request.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
}

impl Default for PdSection {
    fn default() -> Self {
        PdSection {
            endpoints: vec!["127.0.0.1:2379".into()],
            start_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// `[gc]`: MVCC garbage collection below PD's safe point (see `gc_worker`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct GcSection {
    /// How often the store reads PD's GC safe point.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Keys examined per GC batch (one snapshot and one raft write each).
    pub batch_keys: usize,
}

impl Default for GcSection {
    fn default() -> Self {
        GcSection {
            poll_interval: Duration::from_secs(10),
            batch_keys: 256,
        }
    }
}

/// `[pessimistic-txn]`: how pessimistic lock requests wait (TiKV's section of that name).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct PessimisticTxnSection {
    /// Longest a pessimistic lock request waits for another transaction's lock to go before
    /// it answers `locked` (the wait of a request that sends `wait_timeout` 0, as client 0.4
    /// does, and the cap on a longer one). Between 1 ms and 1 hour.
    #[serde(with = "humantime_serde")]
    pub wait_for_lock_timeout: Duration,
}

impl Default for PessimisticTxnSection {
    fn default() -> Self {
        PessimisticTxnSection {
            wait_for_lock_timeout: Duration::from_secs(1),
        }
    }
}

/// `[log]`: what the store logs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct LogSection {
    /// A tracing filter such as `info` or `info,raftstore=debug` (`RUST_LOG` wins if set).
    pub level: String,
    /// `text` (for people) or `json` (one object per line, for log aggregation).
    pub format: LogFormat,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per event: `timestamp`, `level`, `target`, `fields` (the message and
    /// every field, `region_id` among them), `span`.
    Json,
}

/// The text of one config file.
fn read_config(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Lays `layer` over `base`: a table present in both is merged key by key, any other value
/// (arrays included) replaces the one below it.
fn merge_layer(base: &mut toml::Table, layer: toml::Table) {
    for (key, value) in layer {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(below)), toml::Value::Table(above)) => {
                merge_layer(below, above)
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

impl Config {
    /// Parses a TOML document (`origin` names it in errors).
    pub fn from_toml(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// The files named by `--config`, layered in order (or the defaults), then the flags,
    /// validated.
    ///
    /// # Errors
    /// [`ConfigError::Read`] or [`ConfigError::Parse`] naming the file; a key no section
    /// knows, or a value of the wrong type, is a [`ConfigError::Parse`] naming every layered
    /// file; [`ConfigError::Invalid`] for a value out of range.
    pub fn load(flags: &Flags) -> Result<Config, ConfigError> {
        let mut cfg = match flags.config.as_slice() {
            [] => Config::default(),
            [path] => Config::from_toml(&read_config(path)?, path)?,
            paths => {
                let mut merged = toml::Table::new();
                for path in paths {
                    let layer: toml::Table =
                        toml::from_str(&read_config(path)?).map_err(|e| ConfigError::Parse {
                            path: path.clone(),
                            message: e.to_string(),
                        })?;
                    merge_layer(&mut merged, layer);
                }
                let origin: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                Config::deserialize(merged).map_err(|e| ConfigError::Parse {
                    path: PathBuf::from(origin.join(" + ")),
                    message: e.to_string(),
                })?
            }
        };
        flags.apply(&mut cfg);
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every setting, naming the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        let addr: SocketAddr = match self.server.addr.parse() {
            Ok(a) => a,
            Err(_) => return bad(format!("server.addr {:?} is not ip:port", self.server.addr)),
        };
        if self.server.advertise_addr.is_empty() {
            if addr.ip().is_unspecified() {
                return bad(format!(
                    "server.addr {addr} listens on every interface: set server.advertise-addr \
                     to an address other stores can dial"
                ));
            }
        } else if !is_host_port(&self.server.advertise_addr) {
            return bad(format!(
                "server.advertise-addr {:?} is not host:port",
                self.server.advertise_addr
            ));
        }
        if self.server.status_addr.parse::<SocketAddr>().is_err() {
            return bad(format!(
                "server.status-addr {:?} is not ip:port",
                self.server.status_addr
            ));
        }
        self.storage.api()?;
        self.rocksdb
            .validate()
            .map_err(|e| ConfigError::Invalid(format!("rocksdb: {e}")))?;
        self.raft_engine
            .validate()
            .map_err(|e| ConfigError::Invalid(format!("raft-engine: {e}")))?;
        let wait = self.pessimistic_txn.wait_for_lock_timeout;
        if wait < Duration::from_millis(1) || wait > Duration::from_secs(3600) {
            return bad(format!(
                "pessimistic-txn.wait-for-lock-timeout {wait:?} must be between 1ms and 1h"
            ));
        }
        let drift = self.storage.max_ts_drift_allowance;
        if drift < Duration::from_secs(1) || drift > Duration::from_secs(3600) {
            return bad(format!(
                "storage.max-ts-drift-allowance {drift:?} must be between 1s and 1h"
            ));
        }
        if self.server.grpc_concurrency == 0 {
            return bad("server.grpc-concurrency must be > 0".into());
        }
        if self.server.max_grpc_message_size < 1024 * 1024 {
            return bad("server.max-grpc-message-size must be at least 1 MiB".into());
        }
        if (self.server.max_grpc_message_size as u64) < self.raftstore.raft_entry_max_size {
            return bad(format!(
                "server.max-grpc-message-size ({}) must hold a raft entry of \
                 raftstore.raft-entry-max-size ({})",
                self.server.max_grpc_message_size, self.raftstore.raft_entry_max_size
            ));
        }
        if self.storage.data_dir.as_os_str().is_empty() {
            return bad("storage.data-dir must be set".into());
        }
        if self.pd.endpoints.is_empty() {
            return bad("pd.endpoints must name at least one PD".into());
        }
        if let Some(e) = self.pd.endpoints.iter().find(|e| !is_endpoint(e)) {
            return bad(format!(
                "pd.endpoints: {e:?} is not host:port, http://host:port or https://host:port"
            ));
        }
        if self.gc.poll_interval.is_zero() {
            return bad("gc.poll-interval must be > 0".into());
        }
        if self.gc.batch_keys == 0 {
            return bad("gc.batch-keys must be > 0".into());
        }
        if self.pd.start_timeout.is_zero() {
            return bad("pd.start-timeout must be > 0".into());
        }
        if self.pd.request_timeout.is_zero() {
            return bad("pd.request-timeout must be > 0".into());
        }
        // Deadlines are `now + setting`: beyond a year they would overflow, not wait longer.
        for (name, value) in [
            ("pd.start-timeout", self.pd.start_timeout),
            ("pd.request-timeout", self.pd.request_timeout),
            ("gc.poll-interval", self.gc.poll_interval),
        ] {
            if value > raftstore::MAX_DURATION_SETTING {
                return bad(format!("{name} {value:?} must be at most 365 days"));
            }
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return bad(format!("log.level {:?}: {e}", self.log.level));
        }
        self.raftstore
            .validate()
            .map_err(|e| ConfigError::Invalid(format!("[raftstore] {e}")))?;
        // The files are read and checked here too, so a bad certificate stops the store
        // before it touches its data directory.
        self.tls()?;
        Ok(())
    }

    /// The `[security]` files, read and checked; `None` when TLS is off.
    pub fn tls(&self) -> Result<Option<std::sync::Arc<security::TlsMaterial>>, ConfigError> {
        Ok(security::TlsMaterial::load(&self.security)?.map(std::sync::Arc::new))
    }

    /// The raftstore settings, checked by raftstore's own rules.
    pub fn raftstore_config(&self) -> Result<raftstore::Config, ConfigError> {
        self.raftstore
            .validate()
            .map_err(|e| ConfigError::Invalid(format!("[raftstore] {e}")))?;
        Ok(self.raftstore.clone())
    }

    /// Writes this config as `<data-dir>/store.toml`, so what a store ran with is on record.
    pub fn write_effective(&self, data_dir: &Path) -> Result<(), ConfigError> {
        let path = data_dir.join("store.toml");
        let text = toml::to_string_pretty(self).map_err(|e| ConfigError::Write {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        std::fs::write(&path, text).map_err(|source| ConfigError::Write { path, source })
    }
}

fn is_host_port(s: &str) -> bool {
    s.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok_and(|p| p != 0)
    })
}

fn is_endpoint(s: &str) -> bool {
    is_host_port(security::client::host_port(s))
}
