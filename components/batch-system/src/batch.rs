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

struct Poller<N: Fsm, C: Fsm, H: PollHandler<N, C>> {
    receiver: Receiver<FsmTypes<N, C>>,
    scheduler: Scheduler<N, C>,
    handler: H,
    max_batch_size: usize,
    reschedule_duration: std::time::Duration,
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

impl<N: Fsm, C: Fsm, H: PollHandler<N, C>> Poller<N, C, H> {
    fn run(mut self) {
        let mut batch = Batch {
            fsms: Vec::with_capacity(self.max_batch_size),
            mailboxes: Vec::with_capacity(self.max_batch_size),
            since: Vec::with_capacity(self.max_batch_size),
            results: Vec::with_capacity(self.max_batch_size),
            control: None,
        };
        let mut reschedule_toggle = false;
        loop {
            if batch.is_empty() {
                self.handler.pause();
                match self.receiver.recv() {
                    Ok(t) => {
                        if !batch.push(t) {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
            let mut stop = false;
            while batch.len() < self.max_batch_size {
                match self.receiver.try_recv() {
                    Ok(t) => {
                        if !batch.push(t) {
                            stop = true;
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
            if stop {
                break;
            }
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
                        let hot = now.saturating_duration_since(batch.since[i])
                            >= self.reschedule_duration;
                        if hot {
                            // Move only every other hot FSM so they do not all travel together.
                            reschedule_toggle = !reschedule_toggle;
                            if reschedule_toggle {
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
        // Shutting down: FSMs still held are dropped with their mailboxes closed.
        for (fsm, mb) in batch.fsms.drain(..).zip(batch.mailboxes.drain(..)) {
            mb.close();
            drop(fsm);
        }
        if let Some((c, mb)) = batch.control.take() {
            mb.close();
            drop(c);
        }
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

    /// Starts `pool_size` poller threads named `{name_prefix}-{i}`.
    pub fn spawn<B>(&mut self, name_prefix: String, mut builder: B)
    where
        B: HandlerBuilder<N, C>,
    {
        for i in 0..self.pool_size {
            let poller = Poller {
                receiver: self.receiver.clone(),
                scheduler: Scheduler {
                    sender: self.sender.clone(),
                },
                handler: builder.build(),
                max_batch_size: self.max_batch_size,
                reschedule_duration: self.reschedule_duration,
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
/// `control_sender`.
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
        pool_size: cfg.pool_size.max(1),
        max_batch_size: cfg.max_batch_size.max(1),
        reschedule_duration: cfg.reschedule_duration,
        workers: Vec::new(),
    };
    (router, system)
}
