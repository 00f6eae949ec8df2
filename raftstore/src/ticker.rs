//! One timer thread for every peer's one-shot ticks: a hibernated region registers none, so it
//! costs nothing.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::msg::router::RaftRouter;
use crate::msg::{PeerMsg, PeerTick};

/// Fire `tick` at `deadline` into region `region_id`'s mailbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TickRegistration {
    pub deadline: Instant,
    pub region_id: u64,
    pub tick: PeerTick,
}

enum TickerMsg {
    Register(Vec<TickRegistration>),
    Stop,
}

/// Handle to the timer thread.
#[derive(Clone)]
pub struct Ticker {
    sender: Sender<TickerMsg>,
}

impl Ticker {
    /// Starts the timer thread, delivering into `router`.
    pub fn start(router: RaftRouter, name: String) -> std::io::Result<(Ticker, JoinHandle<()>)> {
        let (sender, receiver) = crossbeam_channel::unbounded();
        let handle = std::thread::Builder::new()
            .name(name)
            .spawn(move || run(receiver, router))?;
        Ok((Ticker { sender }, handle))
    }

    pub fn register(&self, ticks: Vec<TickRegistration>) {
        // A closed ticker means the store is stopping; the tick no longer matters.
        let _ = self.sender.send(TickerMsg::Register(ticks));
    }

    pub fn stop(&self) {
        let _ = self.sender.send(TickerMsg::Stop);
    }
}

fn run(receiver: Receiver<TickerMsg>, router: RaftRouter) {
    let mut heap: BinaryHeap<Reverse<TickRegistration>> = BinaryHeap::new();
    loop {
        let now = Instant::now();
        while let Some(Reverse(top)) = heap.peek() {
            if top.deadline > now {
                break;
            }
            let Reverse(t) = heap.pop().expect("peeked");
            // The region may be gone; its tick is simply dropped.
            let _ = router.force_send(t.region_id, PeerMsg::Tick(t.tick));
        }
        let wait = heap
            .peek()
            .map(|Reverse(t)| t.deadline.saturating_duration_since(now))
            .unwrap_or(Duration::from_secs(3600));
        match receiver.recv_timeout(wait) {
            Ok(TickerMsg::Register(ticks)) => heap.extend(ticks.into_iter().map(Reverse)),
            Ok(TickerMsg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}
