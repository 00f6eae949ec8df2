//! A fleet of real processes on loopback: one `shoal-pd` and N `shoal-server`s, each with its
//! own data directory under one temporary directory and fixed ports, so any process can be
//! killed and restarted on the same data and address.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use tikv_client::{Config, RawClient, TransactionClient};

use crate::binaries;
use crate::configs;
use crate::keyspace::pd_keyspace_range;
use crate::netns::StoreNetwork;
use crate::pd_api::{region_json, store_json, PdApi};
use crate::ports::{free_addr, free_port};
use crate::process::{ManagedProcess, ProcessSpec};
pub use crate::tls::FleetTls;
use crate::wait::POLL_INTERVAL;

/// How long a process may take to print its READY line (debug builds on a busy machine).
pub const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a SIGTERM'd process may take to exit.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a fresh fleet may take until every region is replicated and led.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Set this environment variable to keep a failed test's fleet directory.
pub const KEEP_ENV: &str = "SHOAL_KEEP_FLEET";

/// What to start.
#[derive(Clone, Debug)]
pub struct FleetOptions {
    pub stores: usize,
    /// `shoal-pd --config` content.
    pub pd_config: String,
    /// `shoal-server --config` content, shared by every store.
    pub store_config: String,
    /// The store program (same flags as `shoal-server`); `None` runs `shoal-server`.
    pub store_binary: Option<PathBuf>,
    /// The stores' `storage.api-version` (1 or 2), written as a `[storage]` table ahead of
    /// `store_config`; the first store fixes it for the cluster.
    pub api_version: u8,
    /// The stores' `storage.enable-ttl` (API V1 only: raw TTLs allowed).
    pub enable_ttl: bool,
    /// TLS on every link: certificates are generated (rcgen) into `<fleet dir>/certs` and a
    /// `[security]` table is appended to both configs (see [`FleetTls`]).
    pub tls: Option<FleetTls>,
}

impl Default for FleetOptions {
    fn default() -> Self {
        FleetOptions {
            stores: 3,
            pd_config: configs::pd_config(""),
            store_config: configs::store_config(""),
            store_binary: None,
            api_version: 2,
            enable_ttl: false,
            tls: None,
        }
    }
}

impl FleetOptions {
    /// The default options for a cluster serving API V1 (raw keys as given, no keyspace).
    pub fn api_v1() -> FleetOptions {
        FleetOptions {
            api_version: 1,
            ..FleetOptions::default()
        }
    }
}

/// One store process and where it lives.
pub struct StoreNode {
    pub addr: String,
    pub status_addr: String,
    pub data_dir: PathBuf,
    /// Known once the store has printed its READY line.
    pub store_id: u64,
    pub process: ManagedProcess,
}

/// The running fleet. Dropping it kills every process; on a panic it first prints the tail
/// of every log.
pub struct Fleet {
    pub pd_grpc: String,
    pub pd_http: String,
    pd: ManagedProcess,
    stores: Vec<StoreNode>,
    api: PdApi,
    options: FleetOptions,
    /// Namespaces of the stores, when started with [`Fleet::start_isolated`]. Dropped after
    /// the processes are dead.
    network: Option<StoreNetwork>,
    /// The generated certificates of a TLS fleet.
    certs: Option<security::generate::FleetCerts>,
    // Declared last: dropped after the processes are dead.
    dir: tempfile::TempDir,
}

/// How many times [`Fleet::start`] tries when a port it picked was taken meanwhile.
const PORT_RACE_ATTEMPTS: u32 = 3;

/// Whether a fleet failed to come up because a process could not bind its port.
fn lost_a_port_race(e: &anyhow::Error) -> bool {
    format!("{e:#}").contains("Address already in use")
}

impl Fleet {
    /// Starts PD and `options.stores` stores and waits until the fleet is settled (see
    /// [`Fleet::wait_settled`]) with `min(stores, 3)` voters per region.
    ///
    /// Ports are picked free just before the processes start, so another process on the
    /// machine may take one first; a fleet whose process found its port taken is started
    /// again on new ports (at most `PORT_RACE_ATTEMPTS` times).
    pub async fn start(options: FleetOptions) -> Result<Fleet> {
        let mut attempt = 1;
        loop {
            match Fleet::start_with(options.clone(), None).await {
                Err(e) if attempt < PORT_RACE_ATTEMPTS && lost_a_port_race(&e) => {
                    eprintln!("a fleet process found its port taken; starting again: {e:#}");
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Like [`Fleet::start`], with every store in a network namespace of its own (see
    /// [`StoreNetwork`]), so links between stores can be cut while the test, which talks to
    /// PD and the stores over the namespaces' bridge, still reaches all of them.
    pub async fn start_isolated(options: FleetOptions) -> Result<Fleet> {
        let network = StoreNetwork::create()?;
        Fleet::start_with(options, Some(network)).await
    }

    async fn start_with(options: FleetOptions, network: Option<StoreNetwork>) -> Result<Fleet> {
        let dir = tempfile::Builder::new()
            .prefix("shoal-fleet-")
            .tempdir()
            .context("cannot create the fleet directory")?;
        let certs = crate::tls::generate(dir.path(), options.tls.as_ref())?;
        let security = crate::tls::security_table(certs.as_ref(), options.tls.as_ref());
        std::fs::write(
            dir.path().join("pd.toml"),
            format!("{}{security}", options.pd_config),
        )?;
        let store_toml = format!(
            "[storage]\napi-version = {}\nenable-ttl = {}\n\n{}{security}",
            options.api_version, options.enable_ttl, options.store_config
        );
        std::fs::write(dir.path().join("store.toml"), store_toml)?;
        // With namespaces, PD listens on the bridge, which every store can reach, on an
        // address of its own so that a store can be cut off from PD alone.
        let pd_grpc = match &network {
            Some(net) => format!("{}:{}", net.pd_ip(), free_port()?),
            None => free_addr()?,
        };
        let pd_http = free_addr()?;
        let pd = ManagedProcess::start(pd_spec(dir.path(), &pd_grpc, &pd_http)?)?;
        let mut fleet = Fleet {
            api: crate::tls::pd_api(&pd_http, certs.as_ref())?,
            certs,
            pd_grpc,
            pd_http,
            pd,
            stores: Vec::new(),
            options,
            network,
            dir,
        };
        if let Err(e) = fleet.bring_up().await {
            // The fleet (and its logs) is about to be dropped: put the logs in the error.
            if std::env::var_os(KEEP_ENV).is_some() {
                fleet.dir.disable_cleanup(true);
            }
            bail!(
                "fleet in {} did not come up: {e:#}\n{}",
                fleet.dir.path().display(),
                fleet.log_tails(40)
            );
        }
        Ok(fleet)
    }

    async fn bring_up(&mut self) -> Result<()> {
        self.pd.wait_ready(READY_TIMEOUT).await?;
        for _ in 0..self.options.stores {
            self.spawn_store()?;
        }
        for i in 0..self.stores.len() {
            self.wait_store_ready(i).await?;
        }
        let voters = self.options.stores.min(3);
        self.wait_settled(voters, SETTLE_TIMEOUT).await
    }

    /// The fleet's temporary directory (data and logs).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Keeps the fleet's directory (data and logs) after the fleet is dropped.
    pub fn keep_dir(&mut self) -> &std::path::Path {
        self.dir.disable_cleanup(true);
        self.dir.path()
    }

    pub fn store_count(&self) -> usize {
        self.stores.len()
    }

    pub fn store(&self, i: usize) -> &StoreNode {
        &self.stores[i]
    }

    /// Store id of store number `i` (0-based order of start).
    pub fn store_id(&self, i: usize) -> u64 {
        self.stores[i].store_id
    }

    /// Index of the store with PD id `store_id`.
    pub fn store_index(&self, store_id: u64) -> Option<usize> {
        self.stores.iter().position(|s| s.store_id == store_id)
    }

    fn spawn_store(&mut self) -> Result<usize> {
        let i = self.stores.len();
        let name = format!("store{}", i + 1);
        let data_dir = self.dir.path().join(&name);
        std::fs::create_dir_all(&data_dir)?;
        let host = match &mut self.network {
            Some(net) => {
                net.add_store(i)?;
                net.store_ip(i)
            }
            None => "127.0.0.1".to_string(),
        };
        let addr = format!("{host}:{}", free_port()?);
        let status_addr = format!("{host}:{}", free_port()?);
        let binary = match &self.options.store_binary {
            Some(b) => b.clone(),
            None => binaries::server_binary()?,
        };
        let args = vec![
            "--pd".into(),
            self.pd_grpc.clone(),
            "--addr".into(),
            addr.clone(),
            "--status-addr".into(),
            status_addr.clone(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--config".into(),
            self.dir.path().join("store.toml").display().to_string(),
        ];
        let (binary, args) = match &self.network {
            Some(net) => {
                let (program, args) = net.wrap(i, &binary.display().to_string(), args);
                (program.into(), args)
            }
            None => (binary, args),
        };
        let spec = ProcessSpec {
            name,
            binary,
            args,
            ready_word: "STORE_READY",
            log_dir: self.dir.path().to_path_buf(),
        };
        self.stores.push(StoreNode {
            addr,
            status_addr,
            data_dir,
            store_id: 0,
            process: ManagedProcess::start(spec)?,
        });
        Ok(i)
    }

    async fn wait_store_ready(&mut self, i: usize) -> Result<()> {
        let node = &mut self.stores[i];
        let fields = node.process.wait_ready(READY_TIMEOUT).await?;
        let id: u64 = fields
            .get("store_id")
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("READY line of store{} has no store_id", i + 1))?;
        if node.store_id != 0 && node.store_id != id {
            bail!(
                "store{} came back as store {id}, was {}",
                i + 1,
                node.store_id
            );
        }
        node.store_id = id;
        Ok(())
    }

    /// Waits until PD reports regions split at the default keyspace's boundaries, every
    /// region with a leader and at least `voters` voters (learners do not count), and every started store Up.
    pub async fn wait_settled(&self, voters: usize, timeout: Duration) -> Result<()> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let why_not = self.unsettled_reason(voters);
            let Some(why_not) = why_not else {
                return Ok(());
            };
            if std::time::Instant::now() >= deadline {
                bail!("fleet not settled after {timeout:?}: {why_not}");
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    fn unsettled_reason(&self, voters: usize) -> Option<String> {
        let stores = match self.api.stores() {
            Ok(s) => s,
            Err(e) => return Some(format!("PD /stores: {e:#}")),
        };
        for node in &self.stores {
            let up = stores
                .iter()
                .any(|s| store_json::id(s) == node.store_id && store_json::state(s) == "Up");
            if !up {
                return Some(format!("store {} is not Up in PD", node.store_id));
            }
        }
        let regions = match self.api.regions() {
            Ok(r) => r,
            Err(e) => return Some(format!("PD /regions: {e:#}")),
        };
        if regions.is_empty() {
            return Some("PD knows no region".into());
        }
        // Raw scans of API V2 clients are only right once the keyspace has regions of its
        // own (a scan must never reach the region with an empty end key); in API V1, once
        // PD has split off the key space's tail.
        if self.options.api_version == 1 {
            let tail = keys::encode_bytes(&[0xff; 8]);
            if !regions.iter().any(|r| region_json::end_key(r) == tail) {
                return Some("no region ends at the API V1 tail boundary".into());
            }
        } else {
            let (ks_start, ks_end) = pd_keyspace_range();
            if !regions
                .iter()
                .any(|r| region_json::start_key(r) == ks_start)
            {
                return Some("no region starts at the default keyspace".into());
            }
            if !regions.iter().any(|r| region_json::end_key(r) == ks_end) {
                return Some("no region ends at the default keyspace's end".into());
            }
        }
        for r in &regions {
            if region_json::leader_store(r).is_none() {
                return Some(format!("region {} has no leader", region_json::id(r)));
            }
            if region_json::voter_stores(r).len() < voters {
                return Some(format!(
                    "region {} has voters on {:?} (peers on {:?}), wants {voters}",
                    region_json::id(r),
                    region_json::voter_stores(r),
                    region_json::peer_stores(r)
                ));
            }
        }
        None
    }

    /// A raw client with a few seconds of timeout per request: of the default keyspace on
    /// an API V2 fleet, without keyspace (API V1) on a V1 one.
    pub async fn raw_client(&self) -> Result<RawClient> {
        let config = self.client_config().with_timeout(Duration::from_secs(5));
        let config = if self.options.api_version == 1 {
            config
        } else {
            config.with_default_keyspace()
        };
        RawClient::new_with_config(vec![self.pd_grpc.clone()], config)
            .await
            .with_context(|| format!("raw client to PD {}", self.pd_grpc))
    }

    /// A transactional client with a few seconds of timeout per request: of the default
    /// keyspace on an API V2 fleet, without keyspace (API V1) on a V1 one.
    pub async fn txn_client(&self) -> Result<TransactionClient> {
        let config = self.client_config().with_timeout(Duration::from_secs(5));
        let config = if self.options.api_version == 1 {
            config
        } else {
            config.with_default_keyspace()
        };
        TransactionClient::new_with_config(vec![self.pd_grpc.clone()], config)
            .await
            .with_context(|| format!("transaction client to PD {}", self.pd_grpc))
    }

    /// The official client's config: with the fleet's client certificate on a TLS fleet.
    pub fn client_config(&self) -> Config {
        match &self.certs {
            Some(c) => Config::default().with_security(&c.ca, &c.client_cert, &c.client_key),
            None => Config::default(),
        }
    }

    /// The certificates of a TLS fleet (`None` for plaintext).
    pub fn certs(&self) -> Option<&security::generate::FleetCerts> {
        self.certs.as_ref()
    }

    /// The value of counter or gauge `name` on store `i`'s `/metrics` (0 when absent).
    pub fn store_metric(&self, i: usize, name: &str) -> Result<f64> {
        let url = format!("http://{}/metrics", self.stores[i].status_addr);
        let text = ureq::get(&url)
            .timeout(Duration::from_secs(5))
            .call()
            .with_context(|| format!("GET {url}"))?
            .into_string()?;
        Ok(text
            .lines()
            .filter(|l| l.split_whitespace().next() == Some(name))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .sum())
    }

    /// SIGKILL store `i`.
    pub fn kill_store(&mut self, i: usize) -> Result<()> {
        self.stores[i].process.kill()
    }

    /// SIGTERM store `i` and wait for a clean exit.
    pub async fn stop_store(&mut self, i: usize) -> Result<()> {
        self.stores[i].process.stop(STOP_TIMEOUT).await
    }

    /// Starts store `i` again on its data directory and ports; waits for READY.
    pub async fn restart_store(&mut self, i: usize) -> Result<()> {
        self.stores[i].process.restart()?;
        self.wait_store_ready(i).await
    }

    /// Starts one more store; returns its index once it is serving.
    pub async fn add_store(&mut self) -> Result<usize> {
        let i = self.spawn_store()?;
        self.wait_store_ready(i).await?;
        Ok(i)
    }

    /// Environment for store `i` from its next restart on (empty: none).
    pub fn set_store_env(&mut self, i: usize, env: Vec<(String, String)>) {
        self.stores[i].process.set_env(env);
    }

    /// Environment for PD from its next restart on (empty: none).
    pub fn set_pd_env(&mut self, env: Vec<(String, String)>) {
        self.pd.set_env(env);
    }

    /// SIGTERMs PD, starts it again on its data and ports and waits for READY.
    pub async fn restart_pd(&mut self) -> Result<()> {
        self.stop_pd().await?;
        self.start_pd().await
    }

    /// SIGTERM PD and wait for a clean exit.
    pub async fn stop_pd(&mut self) -> Result<()> {
        self.pd.stop(STOP_TIMEOUT).await
    }

    /// The stores' namespaces, if the fleet was started with [`Fleet::start_isolated`].
    pub fn network_mut(&mut self) -> Option<&mut StoreNetwork> {
        self.network.as_mut()
    }

    /// Whether the stores run in namespaces of their own.
    pub fn is_isolated(&self) -> bool {
        self.network.is_some()
    }

    /// SIGKILL PD.
    pub fn kill_pd(&mut self) -> Result<()> {
        self.pd.kill()
    }

    /// Starts PD again (after [`Fleet::kill_pd`] or [`Fleet::stop_pd`]) on its data and ports; waits for READY.
    pub async fn start_pd(&mut self) -> Result<()> {
        self.pd.restart()?;
        self.pd.wait_ready(READY_TIMEOUT).await?;
        Ok(())
    }

    /// Whether PD's process is running.
    pub fn pd_running(&mut self) -> bool {
        self.pd.is_running()
    }

    /// Whether store `i`'s process is running.
    pub fn store_running(&mut self, i: usize) -> bool {
        self.stores[i].process.is_running()
    }

    pub fn pd_api(&self) -> &PdApi {
        &self.api
    }

    pub fn pd_get(&self, path: &str) -> Result<Value> {
        self.api.get(path)
    }

    pub fn pd_post(&self, path: &str, body: &Value) -> Result<Value> {
        self.api.post(path, body)
    }

    pub fn pd_delete(&self, path: &str) -> Result<Value> {
        self.api.delete(path)
    }

    pub fn regions(&self) -> Result<Vec<Value>> {
        self.api.regions()
    }

    /// The highest region id PD lists (a fleet always has at least one region).
    pub fn max_region_id(&self) -> Result<u64> {
        self.regions()?
            .iter()
            .map(crate::region_json::id)
            .max()
            .ok_or_else(|| anyhow::anyhow!("PD lists no region"))
    }

    pub fn stores(&self) -> Result<Vec<Value>> {
        self.api.stores()
    }

    /// The last `lines` lines of every process's logs.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = self.pd.log_tail(lines);
        for node in &self.stores {
            out.push_str(&node.process.log_tail(lines));
        }
        out
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "===== fleet logs in {} =====\n{}",
                self.dir.path().display(),
                self.log_tails(40)
            );
            // Whole logs and data are worth keeping when asked for.
            if std::env::var_os(KEEP_ENV).is_some() {
                self.dir.disable_cleanup(true);
                eprintln!(
                    "===== kept {} ({KEEP_ENV} is set)",
                    self.dir.path().display()
                );
            }
        }
        for node in &mut self.stores {
            let _ = node.process.kill();
        }
        let _ = self.pd.kill();
    }
}

fn pd_spec(dir: &std::path::Path, grpc: &str, http: &str) -> Result<ProcessSpec> {
    let data_dir = dir.join("pd");
    std::fs::create_dir_all(&data_dir)?;
    Ok(ProcessSpec {
        name: "pd".into(),
        binary: binaries::pd_binary()?,
        args: vec![
            "--name".into(),
            "pd1".into(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--client-urls".into(),
            format!("http://{grpc}"),
            "--advertise-client-urls".into(),
            format!("http://{grpc}"),
            "--http-addr".into(),
            http.into(),
            "--config".into(),
            dir.join("pd.toml").display().to_string(),
        ],
        ready_word: "PD_READY",
        log_dir: dir.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::lost_a_port_race;

    #[test]
    fn only_a_port_taken_meanwhile_counts_as_a_lost_race() {
        let taken = anyhow::anyhow!(
            "fleet did not come up: pd exited\nshoal-pd: network: cannot listen for gRPC on \
             127.0.0.1:35855: Address already in use (os error 98)"
        );
        assert!(lost_a_port_race(&taken));
        let other = anyhow::anyhow!("fleet did not come up: store 1 exited: bad config");
        assert!(!lost_a_port_race(&other));
    }
}
