//! A [`Fleet`] with the handles a nemesis needs: stores paused with SIGSTOP (resumed with
//! SIGCONT on drop, before the fleet's processes are killed), stores killed and restarted,
//! decommissioned stores kept out of later faults, and PD's HTTP API called off the async
//! worker threads.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::keyspace::pd_key;
use crate::pd_api::{region_json, store_json, PdApi};
use crate::{configs, Fleet, FleetOptions};

/// Stores stopped with SIGSTOP. Dropping it sends SIGCONT to each, so a failing test never
/// leaves a stopped process behind.
#[derive(Default)]
struct PausedStores {
    /// (store index, pid).
    pids: Vec<(usize, u32)>,
}

impl PausedStores {
    fn resume(&mut self, index: usize) -> Result<()> {
        if let Some(pos) = self.pids.iter().position(|(i, _)| *i == index) {
            let (_, pid) = self.pids.remove(pos);
            signal(pid, libc::SIGCONT)?;
        }
        Ok(())
    }

    fn resume_all(&mut self) -> Result<()> {
        let mut first_error = None;
        for (_, pid) in self.pids.drain(..) {
            if let Err(e) = signal(pid, libc::SIGCONT) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for PausedStores {
    fn drop(&mut self) {
        if let Err(e) = self.resume_all() {
            eprintln!("could not resume a paused store: {e:#}");
        }
    }
}

fn signal(pid: u32, sig: libc::c_int) -> Result<()> {
    let pid = libc::pid_t::try_from(pid).context("pid out of range")?;
    // SAFETY: kill(2) on the pid of our own child, which has not been reaped: the fleet only
    // reaps a store in kill/stop, and a paused store is resumed before either.
    if unsafe { libc::kill(pid, sig) } != 0 {
        bail!("kill({pid}, {sig}): {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// The stores' threads as in `make run`'s fleet (`scripts/fleet-store.toml`): one raft poller
/// that writes its own readies to the raft log (no log writer thread) and applies what its
/// peers commit (no apply thread), all under `SCHED_BATCH`, so the faults hit the arrangement
/// users run. (Ends `[raftstore]` and
/// opens `[server]`, so it goes last.)
const MAKE_RUN_THREADS: &str = "store-pool-size = 1\napply-pool-size = 0\nstore-io-pool-size = 0\n\n[server]\ncpu-scheduling = \"batch\"";

/// The fleet under test and what the nemesis did to it.
pub struct ChaosFleet {
    // Declared first so it is dropped first: paused stores get SIGCONT before the fleet's
    // processes are killed and reaped.
    paused: PausedStores,
    fleet: Fleet,
    api: PdApi,
    /// Indexes of decommissioned stores, never touched again.
    retired: BTreeSet<usize>,
}

impl ChaosFleet {
    /// Starts PD and `stores` stores with the harness's short timings.
    pub async fn start(stores: usize) -> Result<ChaosFleet> {
        ChaosFleet::start_with(stores, false).await
    }

    /// Like [`ChaosFleet::start`], with each store in a network namespace of its own so links
    /// between stores can be cut (see [`crate::netns::StoreNetwork`]).
    pub async fn start_isolated(stores: usize) -> Result<ChaosFleet> {
        ChaosFleet::start_with(stores, true).await
    }

    async fn start_with(stores: usize, isolated: bool) -> Result<ChaosFleet> {
        let options = FleetOptions {
            stores,
            store_config: configs::store_config(MAKE_RUN_THREADS),
            ..FleetOptions::default()
        };
        let fleet = if isolated {
            Fleet::start_isolated(options).await?
        } else {
            Fleet::start(options).await?
        };
        Ok(ChaosFleet {
            paused: PausedStores::default(),
            api: fleet.pd_api().clone(),
            fleet,
            retired: BTreeSet::new(),
        })
    }

    /// The underlying fleet.
    pub fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    /// Store indexes that were not decommissioned.
    pub fn live_stores(&self) -> Vec<usize> {
        (0..self.fleet.store_count())
            .filter(|i| !self.retired.contains(i))
            .collect()
    }

    /// Store indexes that were decommissioned.
    pub fn retired_stores(&self) -> Vec<usize> {
        self.retired.iter().copied().collect()
    }

    /// Every store started so far (live or not).
    pub fn store_count(&self) -> usize {
        self.fleet.store_count()
    }

    /// PD's id of store `i`.
    pub fn store_id(&self, i: usize) -> u64 {
        self.fleet.store_id(i)
    }

    /// The index of the store with PD id `id`.
    pub fn store_index(&self, id: u64) -> Option<usize> {
        self.fleet.store_index(id)
    }

    /// Whether links between stores can be cut.
    pub fn is_isolated(&self) -> bool {
        self.fleet.is_isolated()
    }

    /// Cuts store `i` off from every other live store (clients and PD still reach it);
    /// returns the stores it can no longer reach.
    pub fn isolate_store(&mut self, i: usize) -> Result<Vec<usize>> {
        let others: Vec<usize> = self.live_stores().into_iter().filter(|j| *j != i).collect();
        let net = self
            .fleet
            .network_mut()
            .ok_or_else(|| anyhow!("the fleet was not started with network namespaces"))?;
        for &j in &others {
            net.cut(i, j)?;
        }
        Ok(others)
    }

    /// Cuts store `i` off from PD as well (after [`ChaosFleet::isolate_store`]).
    pub fn isolate_store_from_pd(&mut self, i: usize) -> Result<()> {
        self.fleet
            .network_mut()
            .ok_or_else(|| anyhow!("the fleet was not started with network namespaces"))?
            .cut_from_pd(i)
    }

    /// Restores every cut link between stores, and to PD.
    pub fn restore_links(&mut self) -> Result<()> {
        match self.fleet.network_mut() {
            Some(net) => net.restore_all(),
            None => Ok(()),
        }
    }

    /// SIGSTOP store `i`.
    pub fn pause_store(&mut self, i: usize) -> Result<()> {
        if self.paused.pids.iter().any(|(p, _)| *p == i) {
            return Ok(());
        }
        let pid = self
            .fleet
            .store(i)
            .process
            .pid()
            .ok_or_else(|| anyhow!("store{} is not running", i + 1))?;
        if !self.fleet.store_running(i) {
            bail!("store{} is not running", i + 1);
        }
        signal(pid, libc::SIGSTOP)?;
        self.paused.pids.push((i, pid));
        Ok(())
    }

    /// SIGCONT store `i` if it was paused.
    pub fn resume_store(&mut self, i: usize) -> Result<()> {
        self.paused.resume(i)
    }

    /// SIGKILL store `i` (resumed first if it was paused). Fails if the store had already
    /// exited on its own.
    pub fn kill_store(&mut self, i: usize) -> Result<()> {
        self.paused.resume(i)?;
        if !self.fleet.store_running(i) {
            bail!(
                "store{} (id {}) had exited on its own\n{}",
                i + 1,
                self.store_id(i),
                self.store_log_tail(i, 30)
            );
        }
        self.fleet.kill_store(i)
    }

    /// Starts store `i` again on its data; waits until it serves.
    pub async fn restart_store(&mut self, i: usize) -> Result<()> {
        self.fleet.restart_store(i).await
    }

    /// SIGKILLs store `i` and starts it again with `env` (empty: none) from now on; waits
    /// until it serves.
    pub async fn restart_store_with_env(
        &mut self,
        i: usize,
        env: Vec<(String, String)>,
    ) -> Result<()> {
        self.kill_store(i)?;
        self.fleet.set_store_env(i, env);
        self.fleet.restart_store(i).await
    }

    /// Stops PD and starts it again with `env` (empty: none) from now on; waits until it
    /// serves.
    pub async fn restart_pd_with_env(&mut self, env: Vec<(String, String)>) -> Result<()> {
        self.fleet.stop_pd().await?;
        self.fleet.set_pd_env(env);
        self.fleet.start_pd().await
    }

    /// Starts one more store; returns its index once it serves.
    pub async fn add_store(&mut self) -> Result<usize> {
        self.fleet.add_store().await
    }

    /// SIGKILL PD.
    pub fn kill_pd(&mut self) -> Result<()> {
        self.fleet.kill_pd()
    }

    /// SIGTERM PD and wait for its exit.
    pub async fn stop_pd(&mut self) -> Result<()> {
        self.fleet.stop_pd().await
    }

    /// Starts PD again; waits until it serves.
    pub async fn start_pd(&mut self) -> Result<()> {
        self.fleet.start_pd().await
    }

    /// Asks PD to decommission store `i`; it is left out of every later fault.
    pub async fn decommission(&mut self, i: usize) -> Result<()> {
        let id = self.fleet.store_id(i);
        self.pd_call("DELETE", format!("store/{id}"), None).await?;
        self.retired.insert(i);
        Ok(())
    }

    /// Undoes every fault still in place: resumes paused stores, restarts stopped live stores
    /// and PD. Returns what it had to do.
    pub async fn heal_all(&mut self) -> Result<Vec<String>> {
        let mut done = Vec::new();
        for (i, _) in self.paused.pids.clone() {
            done.push(format!("SIGCONT store{}", i + 1));
        }
        self.paused.resume_all()?;
        if let Some(net) = self.fleet.network_mut() {
            let cut = net.cut_links();
            if !cut.is_empty() {
                done.push(format!("restore links {cut:?}"));
                net.restore_all()?;
            }
        }
        if !self.fleet.pd_running() {
            done.push("start PD".into());
            self.fleet.start_pd().await?;
        }
        for i in self.live_stores() {
            if !self.fleet.store_running(i) {
                done.push(format!("restart store{}", i + 1));
                self.fleet.restart_store(i).await?;
            }
        }
        Ok(done)
    }

    /// One PD HTTP call, run on a blocking thread.
    pub async fn pd_call(&self, method: &str, path: String, body: Option<Value>) -> Result<Value> {
        let api = self.api.clone();
        let method = method.to_string();
        tokio::task::spawn_blocking(move || {
            let answer = api.request(&method, &path, body.as_ref())?;
            if !(200..300).contains(&answer.status) {
                bail!(
                    "{method} {path} answered {}: {}",
                    answer.status,
                    answer.body
                );
            }
            Ok(answer.body)
        })
        .await
        .context("PD call task")?
    }

    /// PD's region holding user key `key`.
    pub async fn region_of(&self, key: &str) -> Result<Value> {
        let path = format!("region/key/{}", hex::encode(pd_key(key.as_bytes())));
        self.pd_call("GET", path, None).await
    }

    /// The store index leading the region of `key`, per PD.
    pub async fn leader_of(&self, key: &str) -> Result<Option<usize>> {
        let region = self.region_of(key).await?;
        Ok(region_json::leader_store(&region).and_then(|s| self.store_index(s)))
    }

    /// Every region PD knows.
    pub async fn regions(&self) -> Result<Vec<Value>> {
        let page = self.pd_call("GET", "regions".into(), None).await?;
        Ok(page["regions"].as_array().cloned().unwrap_or_default())
    }

    /// Every store PD knows.
    pub async fn stores(&self) -> Result<Vec<Value>> {
        let page = self.pd_call("GET", "stores".into(), None).await?;
        Ok(page["stores"].as_array().cloned().unwrap_or_default())
    }

    /// Store ids PD reports Up.
    pub async fn up_store_ids(&self) -> Result<Vec<u64>> {
        Ok(self
            .stores()
            .await?
            .iter()
            .filter(|s| store_json::state(s) == "Up")
            .map(store_json::id)
            .collect())
    }

    /// Why the fleet is not healthy yet, if it is not: every live store Up, every region led
    /// and with at least `voters` peers, decommissioned stores Tombstone and holding no peer.
    pub async fn unhealthy_reason(&self, voters: usize) -> Result<Option<String>> {
        let stores = self.stores().await?;
        let state_of = |id: u64| {
            stores
                .iter()
                .find(|s| store_json::id(s) == id)
                .map(|s| store_json::state(s).to_string())
                .unwrap_or_else(|| "unknown".into())
        };
        for i in self.live_stores() {
            let id = self.store_id(i);
            if state_of(id) != "Up" {
                return Ok(Some(format!("store {id} is {}", state_of(id))));
            }
        }
        for i in self.retired_stores() {
            let id = self.store_id(i);
            if state_of(id) != "Tombstone" {
                return Ok(Some(format!(
                    "decommissioned store {id} is {}",
                    state_of(id)
                )));
            }
        }
        let regions = self.regions().await?;
        if regions.is_empty() {
            return Ok(Some("PD knows no region".into()));
        }
        for r in &regions {
            let peers = region_json::peer_stores(r);
            if region_json::leader_store(r).is_none() {
                return Ok(Some(format!("region {} has no leader", region_json::id(r))));
            }
            let voter_stores = region_json::voter_stores(r);
            if voter_stores.len() < voters {
                return Ok(Some(format!(
                    "region {} has voters on {voter_stores:?} (peers on {peers:?})",
                    region_json::id(r)
                )));
            }
            if let Some(i) = self
                .retired
                .iter()
                .find(|i| peers.contains(&self.store_id(**i)))
            {
                return Ok(Some(format!(
                    "region {} still has a peer on decommissioned store {}",
                    region_json::id(r),
                    self.store_id(*i)
                )));
            }
        }
        Ok(None)
    }

    /// Waits until [`ChaosFleet::unhealthy_reason`] finds nothing (three voters per region).
    pub async fn wait_healthy(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let why = match self.unhealthy_reason(3).await {
                Ok(None) => return Ok(()),
                Ok(Some(why)) => why,
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() >= deadline {
                bail!("fleet not healthy after {timeout:?}: {why}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Keeps the fleet's directory (data and logs) after the fleet is dropped; returns it.
    pub fn keep_dir(&mut self) -> std::path::PathBuf {
        self.fleet.keep_dir().to_path_buf()
    }

    /// Decommissioned stores PD does not report Tombstone yet.
    pub async fn pending_decommissions(&self) -> Result<Vec<usize>> {
        let stores = self.stores().await?;
        Ok(self
            .retired_stores()
            .into_iter()
            .filter(|i| {
                let id = self.store_id(*i);
                !stores
                    .iter()
                    .any(|s| store_json::id(s) == id && store_json::state(s) == "Tombstone")
            })
            .collect())
    }

    /// Live stores whose process has exited without the nemesis stopping it.
    pub fn exited_stores(&mut self) -> Vec<usize> {
        self.live_stores()
            .into_iter()
            .filter(|i| !self.fleet.store_running(*i))
            .collect()
    }

    /// Whether PD's process is running.
    pub fn pd_running(&mut self) -> bool {
        self.fleet.pd_running()
    }

    /// The last `lines` lines of store `i`'s logs.
    pub fn store_log_tail(&self, i: usize, lines: usize) -> String {
        self.fleet.store(i).process.log_tail(lines)
    }

    /// The last `lines` lines of every process's logs.
    pub fn log_tails(&self, lines: usize) -> String {
        self.fleet.log_tails(lines)
    }
}
