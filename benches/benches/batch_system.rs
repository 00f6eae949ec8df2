//! The batch system: how fast pollers drain many FSMs' mailboxes, and what one send+handle
//! round trip costs, each next to a bare crossbeam channel between two threads (the floor).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use batch_system::{
    create_system, mailbox_channel, BasicMailbox, BatchSystem, Config, Fsm, HandleResult,
    HandlerBuilder, MailboxReceiver, PollHandler, Router,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use crossbeam_channel::{Receiver, Sender};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Messages per drain sample, spread evenly over the FSMs.
const MESSAGES: u64 = 65_536;
/// Raftstore's default `messages-per-tick`.
const MESSAGES_PER_TICK: usize = 4096;

#[derive(Debug)]
enum Msg {
    Count,
    /// Answer on the FSM's reply channel.
    Ping,
}

struct Counter {
    receiver: MailboxReceiver<Msg>,
    reply: Sender<()>,
}

impl Fsm for Counter {
    type Message = Msg;
    fn is_stopped(&self) -> bool {
        false
    }
}

struct Control;

impl Fsm for Control {
    type Message = ();
    fn is_stopped(&self) -> bool {
        false
    }
}

/// Counts handled messages and signals `done` when the count crosses `target`.
#[derive(Clone)]
struct Progress {
    handled: Arc<AtomicU64>,
    target: Arc<AtomicU64>,
    done: Sender<()>,
}

impl Progress {
    fn add(&self, n: u64) {
        if n == 0 {
            return;
        }
        let before = self.handled.fetch_add(n, Ordering::AcqRel);
        let target = self.target.load(Ordering::Acquire);
        if before < target && before + n >= target {
            let _ = self.done.send(());
        }
    }
}

struct Handler {
    progress: Progress,
}

impl PollHandler<Counter, Control> for Handler {
    fn begin(&mut self, _batch_size: usize) {}

    fn handle_control(&mut self, _control: &mut Control) -> Option<usize> {
        Some(0)
    }

    fn handle_normal(&mut self, fsm: &mut Counter) -> HandleResult {
        let mut counted = 0;
        for _ in 0..MESSAGES_PER_TICK {
            match fsm.receiver.try_recv() {
                Ok(Msg::Count) => counted += 1,
                Ok(Msg::Ping) => {
                    let _ = fsm.reply.send(());
                }
                Err(_) => break,
            }
        }
        self.progress.add(counted);
        HandleResult::StopAt {
            progress: fsm.receiver.len(),
            skip_end: false,
        }
    }

    fn end(&mut self, _batch: &mut [Option<Box<Counter>>]) {}
}

struct Builder {
    progress: Progress,
}

impl HandlerBuilder<Counter, Control> for Builder {
    type Handler = Handler;
    fn build(&mut self) -> Handler {
        Handler {
            progress: self.progress.clone(),
        }
    }
}

struct System {
    router: Router<Counter, Control>,
    _system: BatchSystem<Counter, Control>,
    progress: Progress,
    done: Receiver<()>,
    reply: Receiver<()>,
}

impl System {
    fn start(pollers: usize, fsms: u64) -> System {
        let cfg = Config {
            pool_size: pollers,
            ..Config::default()
        };
        let (ctl_tx, _ctl_rx) = crossbeam_channel::unbounded();
        let (router, mut system) = create_system(&cfg, ctl_tx, Box::new(Control));
        let (done_tx, done) = crossbeam_channel::unbounded();
        let progress = Progress {
            handled: Arc::default(),
            target: Arc::new(AtomicU64::new(u64::MAX)),
            done: done_tx,
        };
        system.spawn(
            "bench-poller".into(),
            Builder {
                progress: progress.clone(),
            },
        );
        let (reply_tx, reply) = crossbeam_channel::unbounded();
        for id in 0..fsms {
            let (tx, rx) = mailbox_channel(cfg.mailbox_capacity);
            let fsm = Counter {
                receiver: rx,
                reply: reply_tx.clone(),
            };
            router.register(id, BasicMailbox::new(tx, Box::new(fsm)));
        }
        System {
            router,
            _system: system,
            progress,
            done,
            reply,
        }
    }

    /// Sends `total` messages round-robin over `fsms` FSMs and waits until all are handled.
    fn pump(&self, fsms: u64, total: u64) {
        let start = self.progress.handled.load(Ordering::Acquire);
        self.progress.target.store(start + total, Ordering::Release);
        for i in 0..total {
            self.router.force_send(i % fsms, Msg::Count).unwrap();
        }
        self.done.recv().unwrap();
    }
}

fn drain(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch_system/drain");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .throughput(Throughput::Elements(MESSAGES));
    // Two pollers: raftstore's default store-pool-size.
    for fsms in [1u64, 64, 4096] {
        let s = System::start(2, fsms);
        group.bench_with_input(
            BenchmarkId::new("2_pollers_fsms", fsms),
            &fsms,
            |b, &fsms| b.iter(|| s.pump(fsms, MESSAGES)),
        );
    }
    // The floor: one producer, one consumer thread, one unbounded channel.
    let (tx, rx) = crossbeam_channel::unbounded::<u64>();
    let (done_tx, done_rx) = crossbeam_channel::unbounded::<()>();
    let consumer = std::thread::spawn(move || {
        while let Ok(n) = rx.recv() {
            // A marker ends each sample.
            if n == u64::MAX {
                let _ = done_tx.send(());
            }
        }
    });
    group.bench_function("raw_channel", |b| {
        b.iter(|| {
            for i in 0..MESSAGES - 1 {
                tx.send(i).unwrap();
            }
            tx.send(u64::MAX).unwrap();
            done_rx.recv().unwrap();
        })
    });
    drop(tx);
    consumer.join().unwrap();
    group.finish();
}

fn round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch_system/round_trip");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    let s = System::start(2, 1);
    group.bench_function("send_handle_reply", |b| {
        b.iter(|| {
            s.router.force_send(0, Msg::Ping).unwrap();
            s.reply.recv().unwrap();
        })
    });
    // The floor: a ping-pong between two threads over two channels.
    let (ping_tx, ping_rx) = crossbeam_channel::unbounded::<()>();
    let (pong_tx, pong_rx) = crossbeam_channel::unbounded::<()>();
    let echo = std::thread::spawn(move || {
        while ping_rx.recv().is_ok() {
            let _ = pong_tx.send(());
        }
    });
    group.bench_function("raw_channel_ping_pong", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                ping_tx.send(()).unwrap();
                pong_rx.recv().unwrap();
            }
            start.elapsed()
        })
    });
    drop(ping_tx);
    echo.join().unwrap();
    group.finish();
}

criterion_group!(benches, drain, round_trip);
criterion_main!(benches);
