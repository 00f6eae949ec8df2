//! A running store: recovers its regions, starts the raft pollers, log writer, apply pool and
//! workers, and stops them again.

use std::sync::Arc;
use std::thread::JoinHandle;

use batch_system::BatchSystem;
use crossbeam_channel::Sender;
use engine::{KvEngine, RaftLogEngine};
use parking_lot::Mutex;
use proto::raft_cmdpb::RaftCmdRequest;
use proto::raft_serverpb::{PeerState, RaftMessage};
use tracing::info;

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
use crate::store_meta::StoreMeta;
use crate::ticker::Ticker;
use crate::transport::Transport;
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
    raft_system: BatchSystem<PeerFsm, StoreFsm>,
    apply_system: BatchSystem<ApplyFsm, ApplyControlFsm>,
    writer: Sender<WriteMsg>,
    threads: Vec<JoinHandle<()>>,
    ticker: Ticker,
    stop_store_ticks: Sender<()>,
    gc: Option<Sender<GcTask>>,
    split_checker: Option<Sender<SplitCheckTask>>,
    pd: Arc<dyn PdClient>,
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
            if let Some(created) = build_peer(&cfg, store_id, &kv, &raft_engine, region, &logger)? {
                region_ids.push(created.region.id);
                created.register(&mut meta.lock(), &router, &apply_router);
            }
        }
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
        let (stop_tx, h) = spawn_store_ticks(&cfg, router.clone(), store_id)?;
        threads.push(h);

        Ok(Store {
            store_id,
            reader: LocalReader::new(store_id, kv.clone(), meta.clone()),
            kv,
            raft_engine,
            router,
            meta,
            raft_system,
            apply_system,
            writer: writer_tx,
            threads,
            ticker,
            stop_store_ticks: stop_tx,
            gc: Some(gc_tx),
            split_checker: Some(split_tx),
            pd: deps.pd,
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

    /// Delivers a raft message from another store.
    pub fn on_raft_message(&self, msg: RaftMessage) -> Result<()> {
        self.router.send_raft_message(msg)
    }

    /// Stops every thread; the engines stay on disk for a restart.
    pub fn stop(mut self) {
        info!(store_id = self.store_id, "stopping store");
        let _ = self.stop_store_ticks.send(());
        self.ticker.stop();
        self.raft_system.shutdown();
        let _ = self.writer.send(WriteMsg::Shutdown);
        self.apply_system.shutdown();
        self.gc.take();
        self.split_checker.take();
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
    }
}

/// Sends the store FSM its periodic ticks until told to stop.
fn spawn_store_ticks(
    cfg: &Config,
    router: RaftRouter,
    store_id: u64,
) -> Result<(Sender<()>, JoinHandle<()>)> {
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
    let heartbeat = cfg.store_heartbeat_interval;
    let purge_every =
        (cfg.raft_engine_purge_interval.as_millis() / heartbeat.as_millis().max(1)).max(1) as u64;
    let h = std::thread::Builder::new()
        .name(format!("store-ticks-{store_id}"))
        .spawn(move || {
            let mut n: u64 = 0;
            loop {
                match stop_rx.recv_timeout(heartbeat) {
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                n += 1;
                if router
                    .send_control(StoreMsg::Tick(StoreTick::StoreHeartbeat))
                    .is_err()
                {
                    return;
                }
                if n.is_multiple_of(purge_every) {
                    let _ = router.send_control(StoreMsg::Tick(StoreTick::PurgeRaftLog));
                }
            }
        })
        .map_err(engine::Error::Io)?;
    Ok((stop_tx, h))
}
