//! A running store: recovers its regions, starts the raft pollers, log writer, apply pool and
//! workers, and stops them again.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use batch_system::BatchSystem;
use crossbeam_channel::Sender;
use engine::{KvEngine, RaftLogEngine};
use parking_lot::Mutex;
use proto::raft_cmdpb::RaftCmdRequest;
use proto::raft_serverpb::RaftMessage;
use tracing::{debug, info};

use crate::config::Config;
use crate::errors::Result;
use crate::fsm::apply::{ApplyControlFsm, ApplyFsm};
use crate::fsm::peer::PeerFsm;
use crate::fsm::store::StoreFsm;
use crate::log_writer::WriteMsg;
use crate::msg::router::RaftRouter;
use crate::msg::{Callback, PeerMsg, RaftCommand};
use crate::operation::read::local::LocalReader;
use crate::pd_client::PdClient;
pub use crate::startup::StoreDeps;
use crate::startup::{spawn_store_ticks, Startup};
use crate::store_meta::StoreMeta;
use crate::ticker::Ticker;
use crate::transport::Transport;
use crate::worker::pd_stats::PdTask;
use crate::worker::raftlog_gc::GcTask;
use crate::worker::region::SnapshotGenerator;
use crate::worker::split_check::{self, SplitCheckTask};

/// One store process's raft machinery.
pub struct Store {
    store_id: u64,
    kv: KvEngine,
    raft_engine: RaftLogEngine,
    router: RaftRouter,
    meta: Arc<Mutex<StoreMeta>>,
    reader: LocalReader,
    /// The log writer thread's queue, when the store runs one.
    writer: Option<Sender<WriteMsg>>,
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
    snap_generator: SnapshotGenerator,
    split_checker: Sender<SplitCheckTask>,
    pd_worker: Sender<PdTask>,
}

impl Store {
    /// Starts a bootstrapped store on its engines, in named steps (see `startup`): recover
    /// every live region, spawn the worker threads, spawn the raft and apply pollers, then
    /// start the regions and the store's own ticks.
    ///
    /// Errors: `InvalidConfig` for a config `Config::validate` refuses or a data directory
    /// that was never bootstrapped; engine and codec errors from recovery; `Io` when a thread
    /// cannot be spawned.
    pub fn start(
        cfg: Config,
        kv: KvEngine,
        raft_engine: RaftLogEngine,
        transport: Arc<dyn Transport>,
        deps: StoreDeps,
    ) -> Result<Store> {
        cfg.validate()?;
        crate::metrics::register_all();
        let mut startup = Startup::new(cfg, kv, raft_engine, transport, deps)?;
        let region_ids = startup.recover_regions()?;
        let mut workers = startup.spawn_workers()?;
        startup.spawn_pollers(&workers);
        startup.start_regions(region_ids);
        let (stop_store_ticks, h) =
            spawn_store_ticks(&startup.cfg, startup.router.clone(), startup.store_id)?;
        workers.threads.push(h);

        let Startup {
            store_id,
            kv,
            raft_engine,
            router,
            meta,
            deps,
            raft_system,
            apply_system,
            snap_generator,
            ..
        } = startup;
        Ok(Store {
            store_id,
            reader: LocalReader::new(store_id, kv.clone(), meta.clone(), router.flow().clone()),
            kv,
            raft_engine,
            router,
            meta,
            writer: workers.writer,
            ticker: workers.ticker,
            pd: deps.pd,
            running: Mutex::new(Some(Running {
                raft_system,
                apply_system,
                threads: workers.threads,
                stop_store_ticks,
                stop_disk_monitor: workers.stop_disk_monitor,
                gc: workers.gc,
                split_checker: workers.split_checker,
                pd_worker: workers.pd_worker,
                snap_generator: snap_generator.clone(),
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

    /// Notes that a batch of messages from store `store_id` arrived. Any traffic shows the
    /// store alive, not only its pings: a store busy with a burst of raft messages (a restart
    /// with 100,000s of regions) may deliver its pings late, and must not be declared
    /// unreachable for it, which would wake every region it leads.
    pub fn heard_from_store(&self, store_id: u64) {
        self.router.liveness().heard(store_id, Instant::now());
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
        if let Some(writer) = &self.writer {
            let _ = writer.send(WriteMsg::Shutdown);
        }
        running.apply_system.shutdown();
        // Closing the worker channels ends those threads.
        drop(running.gc);
        drop(running.split_checker);
        drop(running.pd_worker);
        running.snap_generator.stop_worker();
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

#[cfg(test)]
mod tests {
    use super::Store;

    #[test]
    fn store_is_shareable_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Store>();
    }
}
