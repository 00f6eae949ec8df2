//! Poller threads and the batch system that owns them.

use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use tracing::info;

use crate::config::Config;
use crate::fsm::Fsm;
use crate::mailbox::{BasicMailbox, MailboxSender};
use crate::metrics::{BATCH_SIZE, FSMS_HANDLED, POLL_ROUNDS};
use crate::router::Router;
use crate::scheduler::{FsmTypes, Scheduler};

/// What the handler wants done with an FSM after handling it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandleResult {
    /// Keep it in the batch: it has more to do.
    KeepProcessing,
    /// Release it; `progress` is the mailbox length the handler last saw.
    StopAt { progress: usize, skip_end: bool },
}

/// The logic a poller thread runs; one instance per thread.
pub trait PollHandler<N: Fsm, C: Fsm>: Send + 'static {
    /// Start of a round with `batch_size` FSMs.
    fn begin(&mut self, batch_size: usize);
    /// Handles the control FSM; `Some(len)` releases it.
    fn handle_control(&mut self, control: &mut C) -> Option<usize>;
    fn handle_normal(&mut self, normal: &mut N) -> HandleResult;
    fn light_end(&mut self, _batch: &mut [Option<Box<N>>]) {}
    /// End of a round; every FSM handled in the round is in `batch`.
    fn end(&mut self, batch: &mut [Option<Box<N>>]);
    /// Called before the poller blocks waiting for work.
    fn pause(&mut self) {}
}

/// Makes one handler per poller thread.
pub trait HandlerBuilder<N: Fsm, C: Fsm> {
    type Handler: PollHandler<N, C>;
    fn build(&mut self) -> Self::Handler;
}

/// FSMs of the current round and their mailboxes, side by side.
struct Batch<N: Fsm, C: Fsm> {
    fsms: Vec<Option<Box<N>>>,
    mailboxes: Vec<BasicMailbox<N>>,
    since: Vec<Instant>,
    results: Vec<HandleResult>,
    control: Option<(Box<C>, BasicMailbox<C>)>,
}

impl<N: Fsm, C: Fsm> Batch<N, C> {
    fn len(&self) -> usize {
        self.fsms.len()
    }

    fn is_empty(&self) -> bool {
        self.fsms.is_empty() && self.control.is_none()
    }

    /// Returns false on the shutdown sentinel.
    fn push(&mut self, t: FsmTypes<N, C>) -> bool {
        match t {
            FsmTypes::Normal(fsm, mb) => {
                self.fsms.push(Some(fsm));
                self.mailboxes.push(mb);
                self.since.push(Instant::now());
                self.results.push(HandleResult::KeepProcessing);
                true
            }
            FsmTypes::Control(fsm, mb) => {
                self.control = Some((fsm, mb));
                true
            }
            FsmTypes::Empty => false,
        }
    }

    fn remove(&mut self, i: usize) -> (Option<Box<N>>, BasicMailbox<N>) {
        self.since.swap_remove(i);
        self.results.swap_remove(i);
        (self.fsms.swap_remove(i), self.mailboxes.swap_remove(i))
    }
}

impl<N: Fsm, C: Fsm> Batch<N, C> {
    fn with_capacity(max_batch_size: usize) -> Batch<N, C> {
        Batch {
            fsms: Vec::with_capacity(max_batch_size),
            mailboxes: Vec::with_capacity(max_batch_size),
            since: Vec::with_capacity(max_batch_size),
            results: Vec::with_capacity(max_batch_size),
            control: None,
        }
    }

    /// Drops every FSM still held, closing its mailbox (shutdown).
    fn close_all(&mut self) {
        for (fsm, mb) in self.fsms.drain(..).zip(self.mailboxes.drain(..)) {
            mb.close();
            drop(fsm);
        }
        self.since.clear();
        self.results.clear();
        if let Some((c, mb)) = self.control.take() {
            mb.close();
            drop(c);
        }
    }
}

/// What a poller needs to run rounds, whichever thread runs them.
struct RoundRunner<N: Fsm, C: Fsm, H: PollHandler<N, C>> {
    receiver: Receiver<FsmTypes<N, C>>,
    scheduler: Scheduler<N, C>,
    handler: H,
    max_batch_size: usize,
    reschedule_duration: std::time::Duration,
    reschedule_toggle: bool,
}

impl<N: Fsm, C: Fsm, H: PollHandler<N, C>> RoundRunner<N, C, H> {
    /// Tops `batch` up from the shared queue without waiting. Returns false on the shutdown
    /// sentinel.
    fn fill(&mut self, batch: &mut Batch<N, C>) -> bool {
        while batch.len() < self.max_batch_size {
            match self.receiver.try_recv() {
                Ok(t) => {
                    if !batch.push(t) {
                        return false;
                    }
                }
                Err(_) => break,
            }
        }
        true
    }

    /// Handles every FSM in `batch` once, then releases those that are done (putting back in
    /// the batch any whose mailbox filled up meanwhile), drops stopped ones and moves FSMs
    /// hot for longer than `reschedule_duration` back to the shared queue.
    fn round(&mut self, batch: &mut Batch<N, C>) {
        self.handler.begin(batch.len());
        if let Some((mut control, mb)) = batch.control.take() {
            match self.handler.handle_control(&mut control) {
                Some(_) => {
                    mb.release(control);
                    // A message that arrived while we held it found nobody to wake it.
                    if !mb.is_empty() {
                        if let Some(c) = mb.take_fsm() {
                            batch.control = Some((c, mb));
                        }
                    }
                }
                None => batch.control = Some((control, mb)),
            }
        }
        for i in 0..batch.fsms.len() {
            if let Some(fsm) = batch.fsms[i].as_mut() {
                batch.results[i] = self.handler.handle_normal(fsm);
            }
        }
        self.handler.light_end(&mut batch.fsms);
        self.handler.end(&mut batch.fsms);
        POLL_ROUNDS.inc();
        FSMS_HANDLED.inc_by(batch.len() as u64);
        BATCH_SIZE.observe(batch.len() as f64);

        // Release, drop or keep each FSM; iterate backwards so swap_remove is safe.
        let now = Instant::now();
        for i in (0..batch.fsms.len()).rev() {
            let stopped = batch.fsms[i].as_ref().is_none_or(|f| f.is_stopped());
            if stopped {
                let (fsm, mb) = batch.remove(i);
                mb.close();
                drop(fsm);
                continue;
            }
            match batch.results[i] {
                HandleResult::StopAt { .. } => {
                    let (fsm, mb) = batch.remove(i);
                    if let Some(fsm) = fsm {
                        mb.release(fsm);
                    }
                    if !mb.is_empty() {
                        if let Some(fsm) = mb.take_fsm() {
                            batch.push(FsmTypes::Normal(fsm, mb));
                        }
                    }
                }
                HandleResult::KeepProcessing => {
                    let hot =
                        now.saturating_duration_since(batch.since[i]) >= self.reschedule_duration;
                    if hot {
                        // Move only every other hot FSM so they do not all travel together.
                        self.reschedule_toggle = !self.reschedule_toggle;
                        if self.reschedule_toggle {
                            let (fsm, mb) = batch.remove(i);
                            if let Some(fsm) = fsm {
                                let _ = self.scheduler.sender.send(FsmTypes::Normal(fsm, mb));
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A poller thread: blocks for work, then runs rounds until it is told to stop.
struct Poller<N: Fsm, C: Fsm, H: PollHandler<N, C>> {
    runner: RoundRunner<N, C, H>,
}

impl<N: Fsm, C: Fsm, H: PollHandler<N, C>> Poller<N, C, H> {
    fn run(mut self) {
        let mut batch = Batch::with_capacity(self.runner.max_batch_size);
        loop {
            if batch.is_empty() {
                self.runner.handler.pause();
                match self.runner.receiver.recv() {
                    Ok(t) => {
                        if !batch.push(t) {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
            if !self.runner.fill(&mut batch) {
                break;
            }
            self.runner.round(&mut batch);
        }
        // Shutting down: FSMs still held are dropped with their mailboxes closed.
        batch.close_all();
    }
}

/// Runs a batch system's rounds on a thread that belongs to someone else, for a system built
/// with `pool_size = 0` (no poller threads of its own). Whoever schedules work for its FSMs
/// calls [`InlinePoller::poll`] afterwards on the same thread: the work is then done without
/// waking another thread. TiKV's raftstore v1 has no such mode; the closest is its
/// `store-io-pool-size = 0`, where the raft poller writes the log itself.
///
/// The caller must poll before it blocks (see [`InlinePoller::poll`]), or FSMs scheduled on
/// the shared queue wait until it polls next. Several inline pollers (and poller threads) may
/// share one system: each FSM is still handled by one of them at a time.
pub struct InlinePoller<N: Fsm, C: Fsm, H: PollHandler<N, C>> {
    runner: RoundRunner<N, C, H>,
    /// FSMs still held after the last call (its round limit was reached).
    batch: Batch<N, C>,
}

impl<N: Fsm, C: Fsm, H: PollHandler<N, C>> InlinePoller<N, C, H> {
    /// Runs rounds until no FSM of the system is scheduled, at most `max_rounds` of them
    /// (`usize::MAX` drains everything, however long other threads keep scheduling work).
    /// Returns whether FSMs are still held or queued, which is possible only when the limit
    /// cut the work short; they keep their place for the next call.
    pub fn poll(&mut self, max_rounds: usize) -> bool {
        for _ in 0..max_rounds {
            // The shutdown sentinel is only sent to poller threads; an inline poller stops
            // when its owner drops it.
            let _ = self.runner.fill(&mut self.batch);
            if self.batch.is_empty() {
                return false;
            }
            self.runner.round(&mut self.batch);
        }
        !self.batch.is_empty() || !self.runner.receiver.is_empty()
    }
}

impl<N: Fsm, C: Fsm, H: PollHandler<N, C>> Drop for InlinePoller<N, C, H> {
    fn drop(&mut self) {
        self.batch.close_all();
    }
}

/// Owns the poller threads of one batch system.
pub struct BatchSystem<N: Fsm, C: Fsm> {
    name_prefix: Option<String>,
    router: Router<N, C>,
    receiver: Receiver<FsmTypes<N, C>>,
    sender: Sender<FsmTypes<N, C>>,
    pool_size: usize,
    max_batch_size: usize,
    reschedule_duration: std::time::Duration,
    workers: Vec<JoinHandle<()>>,
}

impl<N: Fsm, C: Fsm> BatchSystem<N, C> {
    pub fn router(&self) -> &Router<N, C> {
        &self.router
    }

    fn runner<H: PollHandler<N, C>>(&self, handler: H) -> RoundRunner<N, C, H> {
        RoundRunner {
            receiver: self.receiver.clone(),
            scheduler: Scheduler {
                sender: self.sender.clone(),
            },
            handler,
            max_batch_size: self.max_batch_size,
            reschedule_duration: self.reschedule_duration,
            reschedule_toggle: false,
        }
    }

    /// A poller for another thread to run this system's rounds on (see [`InlinePoller`]);
    /// the usual driver of a system with `pool_size = 0`.
    pub fn inline_poller<H: PollHandler<N, C>>(&self, handler: H) -> InlinePoller<N, C, H> {
        InlinePoller {
            batch: Batch::with_capacity(self.max_batch_size),
            runner: self.runner(handler),
        }
    }

    /// Poller threads this system starts in [`BatchSystem::spawn`]; 0 when inline pollers
    /// drive it.
    pub fn pool_size(&self) -> usize {
        self.pool_size
    }

    /// Starts `pool_size` poller threads named `{name_prefix}-{i}` (none when `pool_size` is
    /// 0; the system is then driven by [`InlinePoller`]s).
    pub fn spawn<B>(&mut self, name_prefix: String, mut builder: B)
    where
        B: HandlerBuilder<N, C>,
    {
        for i in 0..self.pool_size {
            let poller = Poller {
                runner: self.runner(builder.build()),
            };
            let handle = std::thread::Builder::new()
                .name(format!("{name_prefix}-{i}"))
                .spawn(move || poller.run())
                .expect("spawn poller thread");
            self.workers.push(handle);
        }
        self.name_prefix = Some(name_prefix);
    }

    /// Stops the pollers, waits for them, and drops every FSM.
    pub fn shutdown(&mut self) {
        let Some(name) = self.name_prefix.take() else {
            return;
        };
        info!("shutting down batch system {name}");
        self.router.clear();
        for _ in 0..self.workers.len() {
            let _ = self.sender.send(FsmTypes::Empty);
        }
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
        // FSMs scheduled after the pollers left are still queued: drop them now.
        while let Ok(t) = self.receiver.try_recv() {
            match t {
                FsmTypes::Normal(fsm, mb) => {
                    mb.close();
                    drop(fsm);
                }
                FsmTypes::Control(fsm, mb) => {
                    mb.close();
                    drop(fsm);
                }
                FsmTypes::Empty => {}
            }
        }
    }
}

impl<N: Fsm, C: Fsm> Drop for BatchSystem<N, C> {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Creates a batch system and its router around a control FSM that owns the receiver of
/// `control_sender`. With `cfg.pool_size = 0` it starts no threads of its own: inline
/// pollers ([`BatchSystem::inline_poller`]) drive it.
pub fn create_system<N: Fsm, C: Fsm>(
    cfg: &Config,
    control_sender: Sender<C::Message>,
    control_fsm: Box<C>,
) -> (Router<N, C>, BatchSystem<N, C>) {
    let (sender, receiver) = crossbeam_channel::unbounded();
    let control_mailbox = BasicMailbox::new(
        MailboxSender::from_sender(control_sender, cfg.mailbox_capacity),
        control_fsm,
    );
    let router = Router::new(
        control_mailbox,
        Scheduler {
            sender: sender.clone(),
        },
    );
    let system = BatchSystem {
        name_prefix: None,
        router: router.clone(),
        receiver,
        sender,
        pool_size: cfg.pool_size,
        max_batch_size: cfg.max_batch_size.max(1),
        reschedule_duration: cfg.reschedule_duration,
        workers: Vec::new(),
    };
    (router, system)
}
