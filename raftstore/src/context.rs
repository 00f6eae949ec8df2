//! What a raft poller thread shares with the peers it drives.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use engine::{KvEngine, RaftLogEngine};
use parking_lot::Mutex;

use crate::config::Config;
use crate::log_writer::LogSink;
use crate::msg::apply_router::ApplyRouter;
use crate::msg::router::RaftRouter;
use crate::msg::PeerTick;
use crate::pd_client::PdClient;
use crate::split_policy::SplitCheckTrigger;
use crate::stats::{StoreFlow, StoreLiveness};
use crate::store_meta::StoreMeta;
use crate::ticker::{TickRegistration, Ticker};
use crate::transport::Transport;
use crate::worker::disk_monitor::DiskUsage;
use crate::worker::pd_stats::PdTask;
use crate::worker::raftlog_gc::GcTask;
use crate::worker::region::SnapshotGenerator;
use crate::worker::split_check::SplitCheckTask;

/// Handles shared by all peers a poller drives; one per poller thread.
#[derive(Clone)]
pub struct PollContext {
    pub cfg: Arc<Config>,
    pub store_id: u64,
    pub kv: KvEngine,
    pub raft_engine: RaftLogEngine,
    pub router: RaftRouter,
    pub apply_router: ApplyRouter,
    pub transport: Arc<dyn Transport>,
    /// Where this poller's readies go to be made durable.
    pub log_sink: LogSink,
    pub gc: Sender<GcTask>,
    pub split_checker: Sender<SplitCheckTask>,
    /// Builds region snapshots off the raft threads.
    pub snap_generator: SnapshotGenerator,
    /// When a region is due for its next split check (from the split policy).
    pub split_check_trigger: SplitCheckTrigger,
    pub pd: Arc<dyn PdClient>,
    /// Store heartbeats to PD are assembled off the raft threads.
    pub pd_worker: Sender<PdTask>,
    /// When other stores last pinged this one.
    pub store_liveness: Arc<StoreLiveness>,
    /// Store-wide read/write flow.
    pub flow: Arc<StoreFlow>,
    /// Whether the store's disk is too full to take writes.
    pub disk: Arc<DiskUsage>,
    pub store_meta: Arc<Mutex<StoreMeta>>,
    pub ticker: Ticker,
    pub logger: slog::Logger,
    /// Ticks registered this round, flushed to the ticker once.
    pub pending_ticks: Vec<TickRegistration>,
    /// Write commands of the peer being handled, waiting to share one entry.
    ///
    /// Invariant: empty whenever no peer's messages are being handled; only that peer adds
    /// to it, and `PeerFsm::handle_messages` flushes it before returning.
    pub(crate) pending_batch: crate::peer::proposal::ProposalBatch,
}

impl PollContext {
    pub fn schedule_tick(&mut self, region_id: u64, tick: PeerTick) {
        let interval = self.tick_interval(tick);
        self.schedule_tick_after(region_id, tick, interval);
    }

    /// The configured interval of `tick`.
    pub fn tick_interval(&self, tick: PeerTick) -> Duration {
        match tick {
            PeerTick::Raft => self.cfg.raft_base_tick_interval,
            PeerTick::RaftLogGc => self.cfg.raft_log_gc_tick_interval,
            PeerTick::SplitCheck => self.cfg.split_check_tick_interval,
            PeerTick::PdHeartbeat => self.cfg.pd_heartbeat_tick_interval,
            PeerTick::CheckMerge => self.cfg.merge_check_tick_interval,
            PeerTick::AwaitLeader => self.cfg.sleeping_follower_leader_wait,
        }
    }

    /// Registers `tick` for region `region_id`, due `interval` from now; returns the deadline.
    pub fn schedule_tick_after(
        &mut self,
        region_id: u64,
        tick: PeerTick,
        interval: Duration,
    ) -> Instant {
        let deadline = Instant::now() + interval;
        self.pending_ticks.push(TickRegistration {
            deadline,
            region_id,
            tick,
        });
        deadline
    }

    pub fn flush_ticks(&mut self) {
        if !self.pending_ticks.is_empty() {
            self.ticker
                .register(std::mem::take(&mut self.pending_ticks));
        }
    }
}
