//! Writing readies to the raft log: one batch of peers' readies committed to the raft log
//! engine with one fsync, then the messages that had to wait for durability sent and each
//! peer told its ready is persisted ([`LogBatchWriter`]). Either a dedicated log writer thread
//! group-commits the readies every poller hands it ([`LogWriter`], `store-io-pool-size = 1`),
//! or each raft poller writes its own round's readies before it sleeps (`store-io-pool-size
//! = 0`, TiKV's synchronous raft writes), which saves two thread hand-overs per ready.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use engine::{RaftLogBatch, RaftLogEngine};
use proto::eraftpb::Entry;
use proto::raft_serverpb::{RaftLocalState, RaftMessage};
use tracing::error;

use crate::metrics::{
    LOG_WRITER_DURATION, LOG_WRITER_ENTRIES, LOG_WRITER_FSYNCS, LOG_WRITER_TASKS,
};
use crate::msg::router::RaftRouter;
use crate::msg::PeerMsg;
use crate::transport::Transport;

/// What one peer's ready needs persisted.
pub struct WriteTask {
    pub region_id: u64,
    pub peer_id: u64,
    pub ready_number: u64,
    pub entries: Vec<Entry>,
    /// The raft state after this ready, when it changed.
    pub raft_state: Option<RaftLocalState>,
    /// Sent only after the write is durable (a follower's acks and votes).
    pub messages: Vec<RaftMessage>,
    /// Drop the region's whole log first (a snapshot replaced it).
    pub clean_log: bool,
}

pub enum WriteMsg {
    Task(WriteTask),
    Shutdown,
}

/// Where a raft poller hands its peers' readies to be made durable (`store-io-pool-size`).
pub enum LogSink {
    /// To the log writer thread, which group-commits every poller's readies.
    Thread(Sender<WriteMsg>),
    /// Kept by the poller and written at the end of its round ([`LogSink::flush`]), one
    /// batch for every peer the round handled.
    Inline {
        writer: LogBatchWriter,
        pending: Vec<WriteTask>,
    },
}

impl Clone for LogSink {
    /// The same destination; an inline sink's copy starts with nothing pending, since the
    /// readies collected belong to the poller that took them.
    fn clone(&self) -> Self {
        match self {
            LogSink::Thread(sender) => LogSink::Thread(sender.clone()),
            LogSink::Inline { writer, .. } => LogSink::Inline {
                writer: writer.clone(),
                pending: Vec::new(),
            },
        }
    }
}

impl LogSink {
    /// Hands over one ready's write. False once the log writer thread is gone, which happens
    /// only while the store shuts down.
    pub fn submit(&mut self, task: WriteTask) -> bool {
        match self {
            LogSink::Thread(sender) => sender.send(WriteMsg::Task(task)).is_ok(),
            LogSink::Inline { pending, .. } => {
                pending.push(task);
                true
            }
        }
    }

    /// Writes the readies collected inline since the last flush (one raft log write and
    /// fsync), sends their messages and queues their persisted notices; with a log writer
    /// thread there is nothing to do here. Called by the poller once per round, after every
    /// peer's ready is taken.
    pub fn flush(&mut self) {
        if let LogSink::Inline { writer, pending } = self {
            writer.write(pending);
        }
    }
}

/// Writes batches of readies: everything one log write needs.
#[derive(Clone)]
pub struct LogBatchWriter {
    pub raft_engine: RaftLogEngine,
    /// Where each peer is told its ready is durable ([`PeerMsg::Persisted`]).
    pub router: RaftRouter,
    /// Sends the messages that waited for durability.
    pub transport: Arc<dyn Transport>,
}

/// The log writer thread: group-commits the readies every raft poller sends it.
pub struct LogWriter {
    pub batch_writer: LogBatchWriter,
    /// Stop collecting tasks into one batch beyond this many bytes of entries.
    pub size_limit: usize,
    /// How long a small batch waits for more tasks before it is written.
    pub batch_wait: std::time::Duration,
}

/// Makes this thread's short timed waits as short as asked: Linux otherwise lets a timer fire up
/// to 50 µs late (the default timer slack), which turns a 20 µs batch wait into ~90 µs.
fn precise_timers() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK only changes the calling thread's timer slack; no pointers.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}

/// Batches smaller than this wait `batch_wait` for company.
const BATCH_SIZE_HINT: usize = 8 * 1024;

impl LogWriter {
    pub fn spawn(
        self,
        receiver: Receiver<WriteMsg>,
        name: String,
    ) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name(name)
            .spawn(move || self.run(receiver))
    }

    fn run(self, receiver: Receiver<WriteMsg>) {
        precise_timers();
        let mut tasks: Vec<WriteTask> = Vec::new();
        loop {
            let Ok(first) = receiver.recv() else {
                return;
            };
            let mut shutdown = false;
            let mut bytes = 0usize;
            let mut next = Some(first);
            // Whatever queued up during the previous fsync joins this one.
            while let Some(msg) = next.take() {
                match msg {
                    WriteMsg::Task(t) => {
                        bytes += t.entries.iter().map(|e| e.data.len() + 32).sum::<usize>();
                        tasks.push(t);
                    }
                    WriteMsg::Shutdown => shutdown = true,
                }
                if bytes < self.size_limit {
                    next = receiver.try_recv().ok();
                    if next.is_none() && !self.batch_wait.is_zero() && bytes < BATCH_SIZE_HINT {
                        // A small batch: give concurrent peers a moment to join this fsync.
                        next = receiver.recv_timeout(self.batch_wait).ok();
                    }
                }
            }
            self.batch_writer.write(&mut tasks);
            if shutdown {
                return;
            }
        }
    }
}

impl LogBatchWriter {
    /// Makes `tasks` durable with one raft log write and fsync, then sends their messages and
    /// tells each peer its ready is persisted (through the router, so a poller writing its
    /// own round's readies picks the notices up in its next round). Leaves `tasks` empty.
    ///
    /// # Panics
    /// When the raft log cannot be encoded or written: acknowledging anything after a failed
    /// write would lose data on a crash, so the store stops instead.
    pub fn write(&self, tasks: &mut Vec<WriteTask>) {
        if tasks.is_empty() {
            return;
        }
        let mut batch = RaftLogBatch::new();
        let mut states: HashMap<u64, RaftLocalState> = HashMap::new();
        let mut entries = 0u64;
        for t in tasks.iter_mut() {
            if t.clean_log {
                batch.clean(t.region_id);
            }
            if !t.entries.is_empty() {
                entries += t.entries.len() as u64;
                if let Err(e) = batch.append(t.region_id, std::mem::take(&mut t.entries)) {
                    panic!("region {}: cannot encode raft entries: {e}", t.region_id);
                }
            }
            if let Some(s) = t.raft_state.take() {
                states.insert(t.region_id, s);
            }
        }
        for (region_id, state) in &states {
            if let Err(e) = batch.put_raft_state(*region_id, state) {
                panic!("region {region_id}: cannot encode raft state: {e}");
            }
        }
        if !batch.is_empty() {
            crate::failpoint!(crate::failpoints::LOG_WRITER_BEFORE_FSYNC);
            let start = Instant::now();
            if let Err(e) = self.raft_engine.write(&mut batch, true) {
                // Acknowledging anything now would lose data on a crash.
                error!("raft log write failed: {e}");
                panic!("raft log write failed: {e}");
            }
            crate::failpoint!(crate::failpoints::LOG_WRITER_AFTER_FSYNC);
            LOG_WRITER_DURATION.observe(start.elapsed().as_secs_f64());
            LOG_WRITER_FSYNCS.inc();
            LOG_WRITER_ENTRIES.inc_by(entries);
        }
        LOG_WRITER_TASKS.inc_by(tasks.len() as u64);
        for t in tasks.iter_mut() {
            for m in t.messages.drain(..) {
                self.transport.send(m);
            }
        }
        self.transport.flush();
        crate::failpoint!(crate::failpoints::LOG_WRITER_BEFORE_NOTIFY);
        for t in tasks.drain(..) {
            let _ = self.router.force_send(
                t.region_id,
                PeerMsg::Persisted {
                    peer_id: t.peer_id,
                    ready_number: t.ready_number,
                },
            );
        }
    }
}
