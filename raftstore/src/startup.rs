//! How `Store::start` brings a store up, one named step at a time:
//!
//! 1. `Startup::new`: read the store's identity and create the two batch systems (raft
//!    pollers and apply pool) with their routers, pollers not yet running.
//! 2. `recover_regions`: build a peer for every live region recorded in the KV engine
//!    (resuming a snapshot a crash cut short, finishing removals a crash cut short) and
//!    register it with the routers and `StoreMeta`.
//! 3. `spawn_workers`: the threads the pollers hand work to (ticker, log writer, split
//!    checker, disk monitor, PD reporter, raft-log GC), so they exist before anything is sent.
//! 4. `spawn_pollers`: the apply pool, then the raft pollers with a context that reaches every
//!    worker.
//! 5. `start_regions`: wake every recovered peer and the store FSM, and report to PD at once.
//!
//! The store's own periodic ticks (`spawn_store_ticks`) start last.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use batch_system::{BatchSystem, HandlerBuilder};
use crossbeam_channel::Sender;
use engine::{KvEngine, RaftLogBatch, RaftLogEngine};
use parking_lot::Mutex;
use proto::raft_serverpb::PeerState;
use tracing::info;

use crate::bootstrap;
use crate::config::Config;
use crate::context::PollContext;
use crate::errors::{Error, Result};
use crate::fsm::apply::{ApplyControlFsm, ApplyFsm, ApplyPollerBuilder};
use crate::fsm::create::build_peer;
use crate::fsm::peer::PeerFsm;
use crate::fsm::store::StoreFsm;
use crate::log_writer::{LogBatchWriter, LogSink, LogWriter, WriteMsg};
use crate::msg::apply_router::ApplyRouter;
use crate::msg::router::RaftRouter;
use crate::msg::{PeerMsg, StoreMsg, StoreTick};
use crate::pd_client::PdClient;
use crate::poller::RaftPollerBuilder;
use crate::split_policy::builtin_policy;
use crate::split_policy::{SplitCheckTrigger, SplitPolicy};
use crate::stats::{unix_secs, StoreLiveness};
use crate::store_meta::StoreMeta;
use crate::ticker::Ticker;
use crate::transport::Transport;
use crate::worker::disk_monitor::{self, DiskMonitor, DiskUsage, SpacePolicy, WatchedDir};
use crate::worker::pd_stats::{PdStatsWorker, PdTask};
use crate::worker::raftlog_gc::{self, GcTask};
use crate::worker::region::{self as region_worker, SnapshotGenerator, SnapshotRequests};
use crate::worker::split_check::{self, SplitCheckTask};

/// Services a store relies on but does not own.
#[derive(Clone)]
pub struct StoreDeps {
    /// Id allocation for splits and split reports.
    pub pd: Arc<dyn PdClient>,
    /// Overrides the built-in split policy chosen by the config.
    pub split_policy: Option<Arc<dyn SplitPolicy>>,
}

/// What every start-up step works on: the engines, the routers, and the batch systems whose
/// pollers `spawn_pollers` starts.
pub(crate) struct Startup {
    pub cfg: Arc<Config>,
    pub store_id: u64,
    pub kv: KvEngine,
    pub raft_engine: RaftLogEngine,
    pub transport: Arc<dyn Transport>,
    pub deps: StoreDeps,
    pub router: RaftRouter,
    pub apply_router: ApplyRouter,
    pub meta: Arc<Mutex<StoreMeta>>,
    /// Peers hand snapshot generation to the region worker through this.
    pub snap_generator: SnapshotGenerator,
    /// The region worker's end, until `spawn_workers` starts it.
    snap_requests: Option<SnapshotRequests>,
    pub raft_system: BatchSystem<PeerFsm, StoreFsm>,
    pub apply_system: BatchSystem<ApplyFsm, ApplyControlFsm>,
    logger: slog::Logger,
}

/// The worker threads and the channels the pollers use to reach them.
pub(crate) struct Workers {
    pub threads: Vec<JoinHandle<()>>,
    pub ticker: Ticker,
    /// The log writer thread's queue; `None` when the pollers write the raft log themselves.
    pub writer: Option<Sender<WriteMsg>>,
    /// What each poller's context starts with.
    pub log_sink: LogSink,
    pub split_checker: Sender<SplitCheckTask>,
    /// When a region is due for its next split check (from the split policy).
    pub split_check_trigger: SplitCheckTrigger,
    pub pd_worker: Sender<PdTask>,
    pub gc: Sender<GcTask>,
    pub stop_disk_monitor: Sender<()>,
    disk: Arc<DiskUsage>,
    store_liveness: Arc<StoreLiveness>,
}

impl Startup {
    /// Step 1: the store's identity and its two batch systems, pollers not yet running.
    /// Errors with `InvalidConfig` when the data directory was never bootstrapped.
    pub fn new(
        cfg: Config,
        kv: KvEngine,
        raft_engine: RaftLogEngine,
        transport: Arc<dyn Transport>,
        deps: StoreDeps,
    ) -> Result<Startup> {
        let ident = bootstrap::load_store_ident(&kv)?.ok_or_else(|| {
            Error::InvalidConfig(format!(
                "data directory {:?} is not bootstrapped",
                kv.path()
            ))
        })?;
        let (store_tx, store_rx) = crossbeam_channel::unbounded();
        let (raft_router, raft_system) = batch_system::create_system(
            &batch_config(&cfg, cfg.store_pool_size),
            store_tx,
            Box::new(StoreFsm::new(store_rx)),
        );
        let (apply_ctl_tx, apply_ctl_rx) = crossbeam_channel::unbounded();
        let (apply_inner, apply_system) = batch_system::create_system(
            &batch_config(&cfg, cfg.apply_pool_size),
            apply_ctl_tx,
            Box::new(ApplyControlFsm {
                receiver: apply_ctl_rx,
            }),
        );
        let (snap_generator, snap_requests) = SnapshotGenerator::new();
        Ok(Startup {
            snap_generator,
            snap_requests: Some(snap_requests),
            cfg: Arc::new(cfg),
            store_id: ident.store_id,
            kv,
            raft_engine,
            transport,
            deps,
            router: RaftRouter::new(raft_router),
            apply_router: ApplyRouter { inner: apply_inner },
            meta: Arc::new(Mutex::new(StoreMeta::new(ident.store_id))),
            raft_system,
            apply_system,
            // raft-rs logs through slog; the store logs through tracing at its own call sites.
            logger: slog::Logger::root(slog::Discard, slog::o!()),
        })
    }

    /// Step 2: a peer for every live region, registered with the routers and `StoreMeta`.
    /// Returns the recovered regions' ids. A snapshot cut short by a crash is finished
    /// first; a region whose membership no longer holds this store is cleared instead.
    pub fn recover_regions(&mut self) -> Result<Vec<u64>> {
        let mut region_ids = Vec::new();
        let mut removed = Vec::new();
        let mut tombstones = Vec::new();
        for state in bootstrap::load_region_states(&self.kv)? {
            if state.state() == PeerState::Tombstone {
                if let Some(region) = &state.region {
                    tombstones.push(region.id);
                }
                continue;
            }
            let Some(region) = state.region.clone() else {
                return Err(Error::Codec("region state without a region".into()));
            };
            if state.state() == PeerState::Applying {
                info!(region_id = region.id, "resuming an interrupted snapshot");
                crate::region_snapshot::resume(&self.kv, &region)?;
            }
            let built = build_peer(
                &self.cfg,
                self.store_id,
                &self.kv,
                &self.raft_engine,
                region.clone(),
                &self.snap_generator,
                &self.logger,
            )?;
            match built {
                Some(mut created) => {
                    region_ids.push(created.region.id);
                    created.peer_mut().campaign_if_it_led();
                    created.register(&mut self.meta.lock(), &self.router, &self.apply_router);
                }
                None => removed.push(region),
            }
        }
        finish_interrupted_removals(&self.kv, &self.raft_engine, &self.meta.lock(), &removed)?;
        clean_raft_logs_of_tombstones(&self.raft_engine, &tombstones)?;
        info!(
            store_id = self.store_id,
            regions = region_ids.len(),
            "store recovered"
        );
        Ok(region_ids)
    }

    /// Step 3: the worker threads, before any poller can send them work.
    pub fn spawn_workers(&mut self) -> Result<Workers> {
        let store_id = self.store_id;
        let cfg = &self.cfg;
        let mut threads = Vec::new();
        // Background ticks fire on the raft clock's grid: late by under one base tick, and
        // together (see `ticker`).
        let (ticker, h) = Ticker::start(
            self.router.clone(),
            format!("ticker-{store_id}"),
            cfg.raft_base_tick_interval,
        )
        .map_err(engine::Error::Io)?;
        threads.push(h);

        let batch_writer = LogBatchWriter {
            raft_engine: self.raft_engine.clone(),
            router: self.router.clone(),
            transport: self.transport.clone(),
        };
        let (writer, log_sink) = if cfg.store_io_pool_size == 0 {
            let sink = LogSink::Inline {
                writer: batch_writer,
                pending: Vec::new(),
            };
            (None, sink)
        } else {
            let (writer, writer_rx) = crossbeam_channel::unbounded();
            let log_writer = LogWriter {
                batch_writer,
                size_limit: cfg.raft_write_size_limit,
                batch_wait: cfg.raft_write_wait_duration,
            };
            threads.push(
                log_writer
                    .spawn(writer_rx, format!("log-writer-{store_id}"))
                    .map_err(engine::Error::Io)?,
            );
            (Some(writer.clone()), LogSink::Thread(writer))
        };

        if let Some(requests) = self.snap_requests.take() {
            threads.push(
                region_worker::spawn(
                    requests,
                    self.kv.clone(),
                    self.router.clone(),
                    region_worker::RegionWorkerConfig {
                        snap_io_bytes_per_sec: self.cfg.snap_io_max_bytes_per_sec,
                        snap_gc_interval: self.cfg.snap_gc_interval,
                        snap_gc_timeout: self.cfg.snap_gc_timeout,
                    },
                    format!("region-{store_id}"),
                )
                .map_err(engine::Error::Io)?,
            );
        }

        let (split_checker, split_rx) = crossbeam_channel::unbounded();
        let policy = self
            .deps
            .split_policy
            .clone()
            .unwrap_or_else(|| builtin_policy(cfg));
        let split_check_trigger = policy.check_trigger();
        threads.push(
            split_check::spawn(
                split_rx,
                policy,
                self.deps.pd.clone(),
                self.router.clone(),
                format!("split-check-{store_id}"),
            )
            .map_err(engine::Error::Io)?,
        );

        let disk = Arc::new(DiskUsage::default());
        let (stop_disk_monitor, stop_disk_rx) = crossbeam_channel::bounded::<()>(1);
        let monitor = DiskMonitor {
            dirs: vec![
                WatchedDir {
                    path: self.kv.path().to_path_buf(),
                    pending_bytes: Some({
                        let kv = self.kv.clone();
                        Box::new(move || kv.pending_disk_bytes())
                    }),
                },
                WatchedDir {
                    path: self.raft_engine.path().to_path_buf(),
                    pending_bytes: None,
                },
            ],
            placeholder: placeholder_path(self.kv.path()),
            policy: SpacePolicy {
                low_space_threshold: cfg.disk_low_space_threshold,
                reserve_space: cfg.disk_reserve_space,
            },
            interval: cfg.disk_check_interval,
            usage: disk.clone(),
        };
        threads.push(
            monitor
                .spawn(stop_disk_rx, format!("disk-monitor-{store_id}"))
                .map_err(engine::Error::Io)?,
        );

        let (pd_worker, pd_rx) = crossbeam_channel::unbounded();
        let reporter = PdStatsWorker {
            store_id,
            pd: self.deps.pd.clone(),
            kv_dir: self.kv.path().to_path_buf(),
            raft_dir: self.raft_engine.path().to_path_buf(),
            snap_dir: crate::region_snapshot::snap_dir(&self.kv),
            flow: self.router.flow().clone(),
            disk: disk.clone(),
            start_time: unix_secs(),
        };
        threads.push(
            reporter
                .spawn(pd_rx, format!("pd-stats-{store_id}"))
                .map_err(engine::Error::Io)?,
        );

        let (gc, gc_rx) = crossbeam_channel::unbounded();
        threads.push(
            raftlog_gc::spawn(
                self.kv.clone(),
                self.raft_engine.clone(),
                self.router.clone(),
                gc_rx,
                format!("raftlog-gc-{store_id}"),
            )
            .map_err(engine::Error::Io)?,
        );

        Ok(Workers {
            split_check_trigger,
            threads,
            ticker,
            writer,
            log_sink,
            split_checker,
            pd_worker,
            gc,
            stop_disk_monitor,
            disk,
            store_liveness: self.router.liveness().clone(),
        })
    }

    /// Step 4: the apply pool, then the raft pollers, each poller with its own copy of a
    /// context that reaches every worker.
    pub fn spawn_pollers(&mut self, workers: &Workers) {
        let store_id = self.store_id;
        let mut apply_builder = ApplyPollerBuilder {
            kv: self.kv.clone(),
            raft_router: self.router.clone(),
            messages_per_tick: self.cfg.messages_per_tick,
            flow: self.router.flow().clone(),
        };
        // With no apply threads each raft poller applies what its peers commit.
        let inline_apply = if self.cfg.apply_pool_size == 0 {
            (0..self.cfg.store_pool_size)
                .map(|_| self.apply_system.inline_poller(apply_builder.build()))
                .collect()
        } else {
            Vec::new()
        };
        self.apply_system
            .spawn(format!("apply-{store_id}"), apply_builder);
        let template = PollContext {
            cfg: self.cfg.clone(),
            store_id,
            kv: self.kv.clone(),
            raft_engine: self.raft_engine.clone(),
            router: self.router.clone(),
            apply_router: self.apply_router.clone(),
            transport: self.transport.clone(),
            log_sink: workers.log_sink.clone(),
            gc: workers.gc.clone(),
            split_checker: workers.split_checker.clone(),
            snap_generator: self.snap_generator.clone(),
            split_check_trigger: workers.split_check_trigger,
            pd: self.deps.pd.clone(),
            pd_worker: workers.pd_worker.clone(),
            store_liveness: workers.store_liveness.clone(),
            flow: self.router.flow().clone(),
            disk: workers.disk.clone(),
            store_meta: self.meta.clone(),
            ticker: workers.ticker.clone(),
            logger: self.logger.clone(),
            pending_ticks: Vec::new(),
            pending_batch: Default::default(),
        };
        self.raft_system.spawn(
            format!("raftstore-{store_id}"),
            RaftPollerBuilder {
                make_ctx: Box::new(move || template.clone()),
                inline_apply,
            },
        );
    }

    /// Step 5: wake every recovered peer and the store FSM; PD hears about the store right
    /// away, not one interval later.
    pub fn start_regions(&self, region_ids: Vec<u64>) {
        for region_id in region_ids {
            let _ = self.router.force_send(region_id, PeerMsg::Start);
        }
        let _ = self.router.send_control(StoreMsg::Start);
        let _ = self
            .router
            .send_control(StoreMsg::Tick(StoreTick::PdStoreHeartbeat));
    }
}

/// Sends the store FSM its periodic ticks until told to stop.
pub(crate) fn spawn_store_ticks(
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

/// Deletes what the raft log still holds of regions whose peer here is a tombstone. A merge
/// writes its source's tombstone in the same batch as the merged target, and the source's
/// peer deletes its raft log only afterwards, when it is destroyed; a crash in between left
/// that log in the raft engine for good, since a tombstone is never recovered as a peer.
/// Synced, like the deletion it finishes.
fn clean_raft_logs_of_tombstones(raft_engine: &RaftLogEngine, tombstones: &[u64]) -> Result<()> {
    let present: std::collections::HashSet<u64> = raft_engine.raft_groups().into_iter().collect();
    let mut batch = RaftLogBatch::new();
    let mut cleaned = 0usize;
    for region_id in tombstones.iter().filter(|id| present.contains(id)) {
        batch.clean(*region_id);
        cleaned += 1;
    }
    if cleaned > 0 {
        info!(regions = cleaned, "deleting the raft logs of removed peers");
        raft_engine.write(&mut batch, true)?;
    }
    Ok(())
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

/// The reserved-space file lives next to the KV engine's directory, in the store's data
/// directory, so it is not counted as engine data.
fn placeholder_path(kv_dir: &Path) -> PathBuf {
    kv_dir
        .parent()
        .unwrap_or(kv_dir)
        .join(disk_monitor::PLACEHOLDER_FILE_NAME)
}

fn batch_config(cfg: &Config, pool_size: usize) -> batch_system::Config {
    batch_system::Config {
        pool_size,
        max_batch_size: cfg.max_batch_size,
        mailbox_capacity: cfg.notify_capacity,
        ..Default::default()
    }
}
