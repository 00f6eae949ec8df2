//! An in-memory transport between the stores of one process, with filters that drop, delay
//! or partition traffic the way a real network might.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, Sender};
use parking_lot::{Mutex, RwLock};
use proto::eraftpb::{self, MessageType};
use proto::raft_serverpb::RaftMessage;
use protobuf::Message as _;
use raftstore::RaftRouter;
use raftstore::Transport;
use rand::{Rng, SeedableRng};

/// What a filter decides for one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterAction {
    Pass,
    Drop,
    Delay(Duration),
}

/// Looks at every message between stores.
pub trait Filter: Send + Sync {
    fn check(&self, from_store: u64, to_store: u64, msg: &RaftMessage) -> FilterAction;
}

/// Stores in different groups cannot talk.
pub struct PartitionFilter {
    groups: Vec<HashSet<u64>>,
}

impl PartitionFilter {
    pub fn new(groups: &[&[u64]]) -> PartitionFilter {
        PartitionFilter {
            groups: groups.iter().map(|g| g.iter().copied().collect()).collect(),
        }
    }

    fn group_of(&self, store: u64) -> Option<usize> {
        self.groups.iter().position(|g| g.contains(&store))
    }
}

impl Filter for PartitionFilter {
    fn check(&self, from: u64, to: u64, _: &RaftMessage) -> FilterAction {
        if self.group_of(from) == self.group_of(to) {
            FilterAction::Pass
        } else {
            FilterAction::Drop
        }
    }
}

/// One store can neither send nor receive.
pub struct IsolationFilter(pub u64);

impl Filter for IsolationFilter {
    fn check(&self, from: u64, to: u64, _: &RaftMessage) -> FilterAction {
        if from == self.0 || to == self.0 {
            FilterAction::Drop
        } else {
            FilterAction::Pass
        }
    }
}

/// Drops a fraction of all messages, reproducibly from a seed.
pub struct DropRateFilter {
    rate: f64,
    rng: Mutex<rand::rngs::StdRng>,
}

impl DropRateFilter {
    pub fn new(rate: f64, seed: u64) -> DropRateFilter {
        DropRateFilter {
            rate,
            rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)),
        }
    }
}

impl Filter for DropRateFilter {
    fn check(&self, _: u64, _: u64, _: &RaftMessage) -> FilterAction {
        if self.rng.lock().gen_bool(self.rate) {
            FilterAction::Drop
        } else {
            FilterAction::Pass
        }
    }
}

/// Delays every message by a fixed time.
pub struct DelayFilter(pub Duration);

impl Filter for DelayFilter {
    fn check(&self, _: u64, _: u64, _: &RaftMessage) -> FilterAction {
        FilterAction::Delay(self.0)
    }
}

/// Drops one raft message type, optionally only towards one store.
pub struct DropMessageTypeFilter {
    pub msg_type: MessageType,
    pub to_store: Option<u64>,
}

impl Filter for DropMessageTypeFilter {
    fn check(&self, _: u64, to: u64, msg: &RaftMessage) -> FilterAction {
        if self.to_store.is_some_and(|s| s != to) || msg.extra.is_some() || msg.region_id == 0 {
            return FilterAction::Pass;
        }
        match eraftpb::Message::parse_from_bytes(&msg.message) {
            Ok(m) if m.get_msg_type() == self.msg_type => FilterAction::Drop,
            _ => FilterAction::Pass,
        }
    }
}

/// Drops everything a store sends (it still receives).
pub struct DropOutgoingFilter(pub u64);

impl Filter for DropOutgoingFilter {
    fn check(&self, from: u64, _: u64, _: &RaftMessage) -> FilterAction {
        if from == self.0 {
            FilterAction::Drop
        } else {
            FilterAction::Pass
        }
    }
}

/// Messages kept for one starting store at most; beyond, they are dropped as a full listen
/// backlog would refuse connections.
const BACKLOG_LIMIT: usize = 100_000;

/// Routes messages to the target store's router after running the filters.
pub struct SimTransport {
    routers: RwLock<HashMap<u64, RaftRouter>>,
    /// Messages to stores that are starting (`expect`) and not registered yet, in arrival
    /// order: a server binds its listener before its peers start, so what they are sent in
    /// the meantime waits in the socket's backlog instead of being lost.
    backlogs: Mutex<HashMap<u64, Vec<RaftMessage>>>,
    /// Each store's snapshot directory, for copying snapshot files between stores.
    snap_dirs: RwLock<HashMap<u64, PathBuf>>,
    /// Damage the next this-many snapshot files on their way.
    pub corrupt_snapshots: std::sync::atomic::AtomicUsize,
    /// Snapshot messages delivered so far.
    pub snapshots_sent: std::sync::atomic::AtomicUsize,
    filters: RwLock<Vec<Arc<dyn Filter>>>,
    delayed: Mutex<Option<Sender<(Instant, u64, RaftMessage)>>>,
    delay_thread: Mutex<Option<JoinHandle<()>>>,
}

impl Default for SimTransport {
    fn default() -> Self {
        SimTransport {
            routers: RwLock::new(HashMap::new()),
            backlogs: Mutex::new(HashMap::new()),
            snap_dirs: RwLock::new(HashMap::new()),
            corrupt_snapshots: std::sync::atomic::AtomicUsize::new(0),
            snapshots_sent: std::sync::atomic::AtomicUsize::new(0),
            filters: RwLock::new(Vec::new()),
            delayed: Mutex::new(None),
            delay_thread: Mutex::new(None),
        }
    }
}

impl SimTransport {
    pub fn new() -> Arc<SimTransport> {
        let t = Arc::new(SimTransport::default());
        let (tx, rx) = crossbeam_channel::unbounded::<(Instant, u64, RaftMessage)>();
        let weak = Arc::downgrade(&t);
        let handle = std::thread::Builder::new()
            .name("sim-delay".into())
            .spawn(move || {
                let mut heap: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
                let mut pending: HashMap<u64, (u64, RaftMessage)> = HashMap::new();
                let mut seq = 0u64;
                loop {
                    let now = Instant::now();
                    while let Some(Reverse((at, s))) = heap.peek().copied() {
                        if at > now {
                            break;
                        }
                        heap.pop();
                        if let (Some((to, msg)), Some(t)) = (pending.remove(&s), weak.upgrade()) {
                            t.deliver(to, msg);
                        }
                    }
                    let wait = heap
                        .peek()
                        .map(|Reverse((at, _))| at.saturating_duration_since(now))
                        .unwrap_or(Duration::from_millis(100));
                    match rx.recv_timeout(wait) {
                        Ok((at, to, msg)) => {
                            seq += 1;
                            heap.push(Reverse((at, seq)));
                            pending.insert(seq, (to, msg));
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            })
            .expect("spawn delay thread");
        *t.delayed.lock() = Some(tx);
        *t.delay_thread.lock() = Some(handle);
        t
    }

    /// `store_id` is about to start: messages to it wait (up to `BACKLOG_LIMIT`) until
    /// `register`, or are dropped by `cancel_expect` if the start fails.
    pub fn expect(&self, store_id: u64) {
        self.backlogs.lock().entry(store_id).or_default();
    }

    /// The store did not start after all; what waited for it is dropped.
    pub fn cancel_expect(&self, store_id: u64) {
        self.backlogs.lock().remove(&store_id);
    }

    /// Routes messages to `store_id` from now on, first what waited for it since `expect`.
    pub fn register(&self, store_id: u64, router: RaftRouter, snap_dir: PathBuf) {
        self.snap_dirs.write().insert(store_id, snap_dir);
        let waiting = {
            let mut backlogs = self.backlogs.lock();
            self.routers.write().insert(store_id, router);
            backlogs.remove(&store_id).unwrap_or_default()
        };
        for msg in waiting {
            self.deliver(store_id, msg);
        }
    }

    /// Copies a snapshot's files from the sender's to the receiver's snapshot directory in
    /// 1 MiB chunks, as a network stream would deliver them.
    fn send_snapshot_files(&self, from: u64, to: u64, msg: &RaftMessage) -> std::io::Result<()> {
        let Ok(m) = eraftpb::Message::parse_from_bytes(&msg.message) else {
            return Ok(());
        };
        if m.get_msg_type() != MessageType::MsgSnapshot {
            return Ok(());
        }
        let dirs = self.snap_dirs.read();
        let (Some(src), Some(dst)) = (dirs.get(&from), dirs.get(&to)) else {
            return Err(std::io::Error::other("unknown store"));
        };
        std::fs::create_dir_all(dst)?;
        let snapshot = m.get_snapshot();
        let data = raftstore::snap::decode(snapshot).map_err(std::io::Error::other)?;
        let sent = raftstore::snap::files(src, "gen", msg.region_id, snapshot, &data);
        let received = raftstore::snap::files(dst, "rev", msg.region_id, snapshot, &data);
        for ((_, from_path, _, _), (_, to_path, _, _)) in sent.iter().zip(&received) {
            let mut input = std::fs::File::open(from_path)?;
            let mut output = std::fs::File::create(to_path)?;
            let mut chunk = vec![0u8; 1024 * 1024];
            loop {
                let n = input.read(&mut chunk)?;
                if n == 0 {
                    break;
                }
                output.write_all(&chunk[..n])?;
            }
            output.sync_all()?;
            let damage = self
                .corrupt_snapshots
                .fetch_update(
                    std::sync::atomic::Ordering::SeqCst,
                    std::sync::atomic::Ordering::SeqCst,
                    |n| n.checked_sub(1),
                )
                .is_ok();
            if damage {
                let mut bytes = std::fs::read(to_path)?;
                let middle = bytes.len() / 2;
                bytes[middle] ^= 0xff;
                std::fs::write(to_path, &bytes)?;
            }
        }
        self.snapshots_sent
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    pub fn unregister(&self, store_id: u64) {
        self.routers.write().remove(&store_id);
    }

    pub fn add_filter(&self, f: Arc<dyn Filter>) {
        self.filters.write().push(f);
    }

    pub fn clear_filters(&self) {
        self.filters.write().clear();
    }

    fn deliver(&self, to_store: u64, msg: RaftMessage) {
        let mut router = self.routers.read().get(&to_store).cloned();
        if router.is_none() {
            // Checked again under the backlog lock, which `register` holds while it adds the
            // router, so a message is either kept here or routed, never lost in between.
            let mut backlogs = self.backlogs.lock();
            router = self.routers.read().get(&to_store).cloned();
            if router.is_none() {
                if let Some(backlog) = backlogs.get_mut(&to_store) {
                    if backlog.len() < BACKLOG_LIMIT {
                        backlog.push(msg);
                    }
                }
                return;
            }
        }
        if let Some(r) = router {
            // As the server's receiving end does: any traffic shows the sender alive.
            if let Some(from) = msg.from_peer.as_ref() {
                r.liveness().heard(from.store_id, Instant::now());
            }
            // A region the target store lacks is handled (and dropped) by its store FSM.
            let _ = r.send_raft_message(msg);
        }
    }

    pub fn shutdown(&self) {
        self.delayed.lock().take();
        if let Some(h) = self.delay_thread.lock().take() {
            let _ = h.join();
        }
    }
}

impl Transport for SimTransport {
    fn send(&self, msg: RaftMessage) {
        let from = msg.from_peer.as_ref().map_or(0, |p| p.store_id);
        let to = msg.to_peer.as_ref().map_or(0, |p| p.store_id);
        let mut delay = Duration::ZERO;
        for f in self.filters.read().iter() {
            match f.check(from, to, &msg) {
                FilterAction::Pass => {}
                FilterAction::Drop => return,
                FilterAction::Delay(d) => delay = delay.max(d),
            }
        }
        if let Err(e) = self.send_snapshot_files(from, to, &msg) {
            tracing::warn!(region_id = msg.region_id, "snapshot files not sent: {e}");
            return;
        }
        if delay.is_zero() {
            self.deliver(to, msg);
        } else if let Some(tx) = self.delayed.lock().as_ref() {
            let _ = tx.send((Instant::now() + delay, to, msg));
        }
    }
}

impl Drop for SimTransport {
    fn drop(&mut self) {
        self.delayed.get_mut().take();
    }
}
