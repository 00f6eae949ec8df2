//! A running store: recovers its regions, starts the raft pollers, log writer, apply pool and
//! workers, and stops them again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use batch_system::BatchSystem;
use crossbeam_channel::Sender;
use engine::{KvEngine, RaftLogEngine};
use parking_lot::Mutex;
use proto::raft_cmdpb::RaftCmdRequest;
use proto::raft_serverpb::{PeerState, RaftMessage};
use tracing::{debug, info};

use crate::apply::{ApplyControlFsm, ApplyFsm, ApplyPollerBuilder, ApplyRouter};
use crate::bootstrap;
use crate::config::Config;
use crate::config::SplitPolicyConfig;
use crate::context::PollContext;
use crate::errors::{Error, Result};
use crate::fsm::create::build_peer;
use crate::fsm::peer::PeerFsm;
use crate::fsm::store::StoreFsm;
use crate::log_writer::{LogWriter, WriteMsg};
use crate::msg::{Callback, PeerMsg, RaftCommand, StoreMsg, StoreTick};
use crate::operation::read::lease::LocalReader;
use crate::pd_client::PdClient;
use crate::poller::RaftPollerBuilder;
use crate::raftlog_gc::{self, GcTask};
use crate::router::RaftRouter;
use crate::split_policy::{FixedKeysPolicy, KeysPolicy, LoadPolicy, SizePolicy, SplitPolicy};
use crate::stats::{unix_secs, StoreLiveness};
use crate::store_meta::StoreMeta;
use crate::ticker::Ticker;
use crate::transport::Transport;
use crate::worker::disk_monitor::{self, DiskMonitor, DiskUsage, SpacePolicy};
use crate::worker::pd_stats::{PdStatsWorker, PdTask};
use crate::worker::split_check::{self, SplitCheckTask};

/// Services a store relies on but does not own.
#[derive(Clone)]
pub struct StoreDeps {
    /// Id allocation for splits and split reports.
    pub pd: Arc<dyn PdClient>,
    /// Overrides the built-in split policy chosen by the config.
    pub split_policy: Option<Arc<dyn SplitPolicy>>,
}

/// The built-in split policy the config names.
pub fn builtin_policy(cfg: &Config) -> Arc<dyn SplitPolicy> {
    const BATCH_SPLIT_LIMIT: usize = 10;
    match &cfg.split_policy {
        SplitPolicyConfig::Size {
            max_size,
            split_size,
        } => Arc::new(SizePolicy {
            max_size: *max_size,
            split_size: *split_size,
            batch_limit: BATCH_SPLIT_LIMIT,
        }),
        SplitPolicyConfig::Keys {
            max_keys,
            split_keys,
        } => Arc::new(KeysPolicy {
            max_keys: *max_keys,
            split_keys: *split_keys,
            batch_limit: BATCH_SPLIT_LIMIT,
        }),
        SplitPolicyConfig::Load { qps_threshold, .. } => Arc::new(LoadPolicy {
            qps_threshold: *qps_threshold,
        }),
        SplitPolicyConfig::FixedKeys { boundaries } => Arc::new(FixedKeysPolicy {
            boundaries: boundaries.clone(),
        }),
    }
}

/// One store process's raft machinery.
pub struct Store {
    store_id: u64,
    kv: KvEngine,
    raft_engine: RaftLogEngine,
    router: RaftRouter,
    meta: Arc<Mutex<StoreMeta>>,
    reader: LocalReader,
    writer: Sender<WriteMsg>,
    ticker: Ticker,
    pd: Arc<dyn PdClient>,
    /// What `stop` tears down; `None` once stopped, so a second `stop` does nothing.
    running: Mutex<Option<Running>>,
}

/// The threads and channels a running store owns until it stops.
struct Running {
    raft_system: BatchSystem<PeerFsm, StoreFsm>,
    apply_system: BatchSystem<ApplyFsm, ApplyControlFsm>,
    threads: Vec<JoinHandle<()>>,
    stop_store_ticks: Sender<()>,
    stop_disk_monitor: Sender<()>,
    gc: Sender<GcTask>,
    split_checker: Sender<SplitCheckTask>,
    pd_worker: Sender<PdTask>,
}

fn raft_logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

fn batch_config(cfg: &Config, pool_size: usize) -> batch_system::Config {
    batch_system::Config {
        pool_size,
        max_batch_size: cfg.max_batch_size,
        mailbox_capacity: cfg.notify_capacity,
        ..Default::default()
    }
}

impl Store {
    /// Starts a bootstrapped store on its engines.
    pub fn start(
        cfg: Config,
        kv: KvEngine,
        raft_engine: RaftLogEngine,
        transport: Arc<dyn Transport>,
        deps: StoreDeps,
    ) -> Result<Store> {
        cfg.validate()?;
        let cfg = Arc::new(cfg);
        let ident = bootstrap::load_store_ident(&kv)?.ok_or_else(|| {
            Error::InvalidConfig(format!(
                "data directory {:?} is not bootstrapped",
                kv.path()
            ))
        })?;
        let store_id = ident.store_id;
        let logger = raft_logger();

        let (store_tx, store_rx) = crossbeam_channel::unbounded();
        let (raft_router, mut raft_system) = batch_system::create_system(
            &batch_config(&cfg, cfg.store_pool_size),
            store_tx,
            Box::new(StoreFsm::new(store_rx)),
        );
        let router = RaftRouter::new(raft_router);
        let (apply_ctl_tx, apply_ctl_rx) = crossbeam_channel::unbounded();
        let (apply_inner, mut apply_system) = batch_system::create_system(
            &batch_config(&cfg, cfg.apply_pool_size),
            apply_ctl_tx,
            Box::new(ApplyControlFsm {
                receiver: apply_ctl_rx,
            }),
        );
        let apply_router = ApplyRouter { inner: apply_inner };

        // Recover every live region.
        let meta = Arc::new(Mutex::new(StoreMeta::new(store_id)));
        let mut region_ids = Vec::new();
        let mut removed = Vec::new();
        for state in bootstrap::load_region_states(&kv)? {
            if state.state() == PeerState::Tombstone {
                continue;
            }
            let Some(region) = state.region.clone() else {
                return Err(Error::Codec("region state without a region".into()));
            };
            if state.state() == PeerState::Applying {
                // A snapshot was cut short by a crash: finish it before serving.
                info!(region_id = region.id, "resuming an interrupted snapshot");
                crate::snap::resume(&kv, &region)?;
            }
            match build_peer(&cfg, store_id, &kv, &raft_engine, region.clone(), &logger)? {
                Some(created) => {
                    region_ids.push(created.region.id);
                    created.register(&mut meta.lock(), &router, &apply_router);
                }
                None => removed.push(region),
            }
        }
        finish_interrupted_removals(&kv, &raft_engine, &meta.lock(), &removed)?;
        info!(store_id, regions = region_ids.len(), "store recovered");

        let mut threads = Vec::new();
        let (ticker, h) = Ticker::start(router.clone(), format!("ticker-{store_id}"))
            .map_err(engine::Error::Io)?;
        threads.push(h);
        let (writer_tx, writer_rx) = crossbeam_channel::unbounded();
        threads.push(
            LogWriter {
                raft_engine: raft_engine.clone(),
                router: router.clone(),
                transport: transport.clone(),
                size_limit: cfg.raft_write_size_limit,
                batch_wait: cfg.raft_write_wait_duration,
            }
            .spawn(writer_rx, format!("log-writer-{store_id}"))
            .map_err(engine::Error::Io)?,
        );
        let (split_tx, split_rx) = crossbeam_channel::unbounded();
        threads.push(
            split_check::spawn(
                split_rx,
                deps.split_policy
                    .clone()
                    .unwrap_or_else(|| builtin_policy(&cfg)),
                deps.pd.clone(),
                router.clone(),
                format!("split-check-{store_id}"),
            )
            .map_err(engine::Error::Io)?,
        );
        let disk = Arc::new(DiskUsage::default());
        let (stop_disk_tx, stop_disk_rx) = crossbeam_channel::bounded::<()>(1);
        threads.push(
            DiskMonitor {
                dirs: vec![kv.path().to_path_buf(), raft_engine.path().to_path_buf()],
                placeholder: placeholder_path(kv.path()),
                policy: SpacePolicy {
                    low_space_threshold: cfg.disk_low_space_threshold,
                    reserve_space: cfg.disk_reserve_space,
                },
                interval: cfg.disk_check_interval,
                usage: disk.clone(),
            }
            .spawn(stop_disk_rx, format!("disk-monitor-{store_id}"))
            .map_err(engine::Error::Io)?,
        );
        let (pd_tx, pd_rx) = crossbeam_channel::unbounded();
        threads.push(
            PdStatsWorker {
                store_id,
                pd: deps.pd.clone(),
                kv_dir: kv.path().to_path_buf(),
                raft_dir: raft_engine.path().to_path_buf(),
                snap_dir: crate::snap::snap_dir(&kv),
                flow: router.flow().clone(),
                disk: disk.clone(),
                start_time: unix_secs(),
            }
            .spawn(pd_rx, format!("pd-stats-{store_id}"))
            .map_err(engine::Error::Io)?,
        );
        let store_liveness = Arc::new(StoreLiveness::default());
        let (gc_tx, gc_rx) = crossbeam_channel::unbounded();
        threads.push(
            raftlog_gc::spawn(
                kv.clone(),
                raft_engine.clone(),
                gc_rx,
                format!("raftlog-gc-{store_id}"),
            )
            .map_err(engine::Error::Io)?,
        );

        apply_system.spawn(
            format!("apply-{store_id}"),
            ApplyPollerBuilder {
                kv: kv.clone(),
                raft_router: router.clone(),
                messages_per_tick: cfg.messages_per_tick,
                flow: router.flow().clone(),
            },
        );
        let template = PollContext {
            cfg: cfg.clone(),
            store_id,
            kv: kv.clone(),
            raft_engine: raft_engine.clone(),
            router: router.clone(),
            apply_router: apply_router.clone(),
            transport: transport.clone(),
            writer: writer_tx.clone(),
            gc: gc_tx.clone(),
            split_checker: split_tx.clone(),
            pd: deps.pd.clone(),
            pd_worker: pd_tx.clone(),
            store_liveness,
            flow: router.flow().clone(),
            disk: disk.clone(),
            store_meta: meta.clone(),
            ticker: ticker.clone(),
            logger: logger.clone(),
            pending_ticks: Vec::new(),
        };
        let make_ctx = move || template.clone();
        raft_system.spawn(
            format!("raftstore-{store_id}"),
            RaftPollerBuilder {
                make_ctx: Box::new(make_ctx),
            },
        );
        for region_id in region_ids {
            let _ = router.force_send(region_id, PeerMsg::Start);
        }
        let _ = router.send_control(StoreMsg::Start);
        // PD hears about the store right away, not one interval later.
        let _ = router.send_control(StoreMsg::Tick(StoreTick::PdStoreHeartbeat));
        let (stop_tx, h) = spawn_store_ticks(&cfg, router.clone(), store_id)?;
        threads.push(h);

        Ok(Store {
            store_id,
            reader: LocalReader::new(store_id, kv.clone(), meta.clone(), router.flow().clone()),
            kv,
            raft_engine,
            router,
            meta,
            writer: writer_tx,
            ticker,
            pd: deps.pd,
            running: Mutex::new(Some(Running {
                raft_system,
                apply_system,
                threads,
                stop_store_ticks: stop_tx,
                stop_disk_monitor: stop_disk_tx,
                gc: gc_tx,
                split_checker: split_tx,
                pd_worker: pd_tx,
            })),
        })
    }

    pub fn store_id(&self) -> u64 {
        self.store_id
    }

    pub fn kv(&self) -> &KvEngine {
        &self.kv
    }

    pub fn raft_engine(&self) -> &RaftLogEngine {
        &self.raft_engine
    }

    pub fn router(&self) -> &RaftRouter {
        &self.router
    }

    pub fn meta(&self) -> &Arc<Mutex<StoreMeta>> {
        &self.meta
    }

    /// Submits a command: lease reads are answered on this thread, everything else goes to
    /// the region's peer. The callback is always invoked exactly once (or dropped when the
    /// store stops).
    pub fn propose(&self, request: RaftCmdRequest, callback: Callback) {
        if crate::util::is_read_only(&request) {
            if let Some(resp) = self.reader.try_read(&request) {
                callback.invoke(resp);
                return;
            }
        }
        self.router
            .send_command(RaftCommand::new(request, callback));
    }

    /// Splits a region at `split_keys` (an operator's or a test's request); the callback
    /// gets the admin response with the resulting regions.
    pub fn split_region(
        &self,
        region: &proto::metapb::Region,
        split_keys: Vec<Vec<u8>>,
        callback: Callback,
    ) {
        split_check::propose_split(&self.router, self.pd.as_ref(), region, split_keys, callback);
    }

    /// How many regions this store leads.
    pub fn leader_count(&self) -> usize {
        self.meta.lock().leader_count()
    }

    /// Executes one operator step PD sent for `resp.region_id`. Never blocks: the step is
    /// queued to the region's peer, which drops it if the region is unknown here, this peer
    /// does not lead, or the step's epoch is stale (PD resends it with the next heartbeat).
    pub fn on_pd_operator(&self, resp: proto::pdpb::RegionHeartbeatResponse) {
        let region_id = resp.region_id;
        if let Err(e) = self
            .router
            .try_send(region_id, PeerMsg::PdOperator(Box::new(resp)))
        {
            debug!(region_id, "operator step not delivered: {e}");
        }
    }

    /// Delivers a raft message from another store.
    pub fn on_raft_message(&self, msg: RaftMessage) -> Result<()> {
        self.router.send_raft_message(msg)
    }

    /// Stops every thread; the engines stay on disk for a restart. Calling it again does
    /// nothing.
    pub fn stop(&self) {
        let Some(mut running) = self.running.lock().take() else {
            return;
        };
        info!(store_id = self.store_id, "stopping store");
        let _ = running.stop_store_ticks.send(());
        let _ = running.stop_disk_monitor.send(());
        self.ticker.stop();
        running.raft_system.shutdown();
        let _ = self.writer.send(WriteMsg::Shutdown);
        running.apply_system.shutdown();
        // Closing the worker channels ends those threads.
        drop(running.gc);
        drop(running.split_checker);
        drop(running.pd_worker);
        for h in running.threads.drain(..) {
            let _ = h.join();
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The reserved-space file lives next to the KV engine's directory, in the store's data
/// directory, so it is not counted as engine data.
fn placeholder_path(kv_dir: &Path) -> PathBuf {
    kv_dir
        .parent()
        .unwrap_or(kv_dir)
        .join(disk_monitor::PLACEHOLDER_FILE_NAME)
}

/// Sends the store FSM its periodic ticks until told to stop.
fn spawn_store_ticks(
    cfg: &Config,
    router: RaftRouter,
    store_id: u64,
) -> Result<(Sender<()>, JoinHandle<()>)> {
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
    let schedule = [
        (StoreTick::StoreHeartbeat, cfg.store_heartbeat_interval),
        (StoreTick::PurgeRaftLog, cfg.raft_engine_purge_interval),
        (
            StoreTick::PdStoreHeartbeat,
            cfg.pd_store_heartbeat_tick_interval,
        ),
    ];
    let h = std::thread::Builder::new()
        .name(format!("store-ticks-{store_id}"))
        .spawn(move || {
            let start = Instant::now();
            // A zero interval must not turn this thread into a busy loop.
            let schedule =
                schedule.map(|(tick, every)| (tick, every.max(Duration::from_millis(1))));
            let mut due: Vec<Instant> = schedule.iter().map(|(_, every)| start + *every).collect();
            loop {
                let next = due.iter().min().copied().unwrap_or(start);
                let wait = next.saturating_duration_since(Instant::now());
                match stop_rx.recv_timeout(wait) {
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                let now = Instant::now();
                for ((tick, every), at) in schedule.iter().zip(due.iter_mut()) {
                    if *at > now {
                        continue;
                    }
                    *at = now + *every;
                    if router.send_control(StoreMsg::Tick(*tick)).is_err() {
                        return;
                    }
                }
            }
        })
        .map_err(engine::Error::Io)?;
    Ok((stop_tx, h))
}

/// Completes removals a crash cut short: a region whose recorded membership no longer holds
/// this store's peer, but which was not yet marked Tombstone (the membership change was applied,
/// the destroy had not run). Its range is deleted only where no live local region overlaps it,
/// so a stale record can never wipe data this store serves.
fn finish_interrupted_removals(
    kv: &KvEngine,
    raft_engine: &RaftLogEngine,
    meta: &StoreMeta,
    removed: &[proto::metapb::Region],
) -> Result<()> {
    for region in removed.iter().filter(|r| !r.peers.is_empty()) {
        let overlaps = meta.overlapping_regions(&region.start_key, &region.end_key);
        info!(
            region_id = region.id,
            ?overlaps,
            "finishing the removal of a peer interrupted by a crash"
        );
        crate::operation::destroy::clear_removed_region(
            kv,
            raft_engine,
            region,
            overlaps.is_empty(),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Store;

    #[test]
    fn store_is_shareable_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Store>();
    }
}
