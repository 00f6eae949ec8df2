//! A counting FSM used by the tests and the benchmark.

// Each user of this module needs a different part of it.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use batch_system::*;
use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

#[derive(Debug)]
pub enum Msg {
    /// Record this value.
    Value(u64),
    /// Stop the FSM.
    Stop,
    /// Block the poller until the sender side is dropped.
    Block(Receiver<()>),
}

pub struct Counter {
    pub id: u64,
    pub receiver: MailboxReceiver<Msg>,
    pub seen: Arc<Mutex<Vec<(u64, u64)>>>,
    pub handled: Arc<AtomicUsize>,
    pub drops: Arc<AtomicUsize>,
    pub record: bool,
    pub stopped: bool,
}

impl Fsm for Counter {
    type Message = Msg;
    fn is_stopped(&self) -> bool {
        self.stopped
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

pub struct Control {
    pub receiver: Receiver<u64>,
    pub seen: Arc<Mutex<Vec<u64>>>,
}

impl Fsm for Control {
    type Message = u64;
    fn is_stopped(&self) -> bool {
        false
    }
}

pub struct Handler {
    pub rounds_seen: Arc<Mutex<Vec<usize>>>,
    pub handled_in_round: usize,
}

impl PollHandler<Counter, Control> for Handler {
    fn begin(&mut self, _batch_size: usize) {
        self.handled_in_round = 0;
    }

    fn handle_control(&mut self, control: &mut Control) -> Option<usize> {
        while let Ok(v) = control.receiver.try_recv() {
            control.seen.lock().push(v);
        }
        Some(0)
    }

    fn handle_normal(&mut self, fsm: &mut Counter) -> HandleResult {
        self.handled_in_round += 1;
        for _ in 0..64 {
            match fsm.receiver.try_recv() {
                Ok(Msg::Value(v)) => {
                    if fsm.record {
                        fsm.seen.lock().push((fsm.id, v));
                    }
                    fsm.handled.fetch_add(1, Ordering::SeqCst);
                }
                Ok(Msg::Block(gate)) => {
                    let _ = gate.recv();
                }
                Ok(Msg::Stop) => {
                    fsm.stopped = true;
                    return HandleResult::StopAt {
                        progress: 0,
                        skip_end: false,
                    };
                }
                Err(_) => break,
            }
        }
        if fsm.receiver.is_empty() {
            HandleResult::StopAt {
                progress: 0,
                skip_end: false,
            }
        } else {
            HandleResult::KeepProcessing
        }
    }

    fn end(&mut self, batch: &mut [Option<Box<Counter>>]) {
        // Every FSM handled this round is visible here.
        let present = batch.iter().filter(|f| f.is_some()).count();
        self.rounds_seen.lock().push(present);
    }
}

pub struct Builder {
    pub rounds_seen: Arc<Mutex<Vec<usize>>>,
}

impl HandlerBuilder<Counter, Control> for Builder {
    type Handler = Handler;
    fn build(&mut self) -> Handler {
        Handler {
            rounds_seen: self.rounds_seen.clone(),
            handled_in_round: 0,
        }
    }
}

pub struct TestSystem {
    pub router: Router<Counter, Control>,
    pub system: BatchSystem<Counter, Control>,
    pub control_seen: Arc<Mutex<Vec<u64>>>,
    pub seen: Arc<Mutex<Vec<(u64, u64)>>>,
    pub handled: Arc<AtomicUsize>,
    pub drops: Arc<AtomicUsize>,
    pub rounds_seen: Arc<Mutex<Vec<usize>>>,
    pub capacity: usize,
}

impl TestSystem {
    pub fn new(pool_size: usize, capacity: usize) -> TestSystem {
        let (ctl_tx, ctl_rx): (Sender<u64>, Receiver<u64>) = crossbeam_channel::unbounded();
        let control_seen = Arc::new(Mutex::new(Vec::new()));
        let cfg = Config {
            pool_size,
            mailbox_capacity: capacity,
            ..Config::default()
        };
        let (router, mut system) = create_system(
            &cfg,
            ctl_tx,
            Box::new(Control {
                receiver: ctl_rx,
                seen: control_seen.clone(),
            }),
        );
        let rounds_seen = Arc::new(Mutex::new(Vec::new()));
        system.spawn(
            "test-poller".into(),
            Builder {
                rounds_seen: rounds_seen.clone(),
            },
        );
        TestSystem {
            router,
            system,
            control_seen,
            seen: Arc::default(),
            handled: Arc::default(),
            drops: Arc::default(),
            rounds_seen,
            capacity,
        }
    }

    pub fn add_fsm(&self, id: u64, record: bool) {
        let (tx, rx) = mailbox_channel(self.capacity);
        let fsm = Counter {
            id,
            receiver: rx,
            seen: self.seen.clone(),
            handled: self.handled.clone(),
            drops: self.drops.clone(),
            record,
            stopped: false,
        };
        self.router
            .register(id, BasicMailbox::new(tx, Box::new(fsm)));
    }
}

pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    f()
}
