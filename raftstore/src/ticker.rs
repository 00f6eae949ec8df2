//! One timer thread for every peer's one-shot ticks: a hibernated region registers none, so it
//! costs nothing.
//!
//! Ticks other than the raft clock's are coalesced: each fires at the first multiple of the
//! ticker's grid (the raft base tick, 1 s by default) at or after its deadline, so the
//! background ticks of many regions (PD heartbeats, split checks, log GC, leader waits) fire
//! together. Each firing wakes the ticker and a raft poller, and a poller round handles a
//! batch of them as cheaply as one: at 300,000 regions an idle store's ticker woke ~1,800 times
//! a second before. A tick never fires before its deadline.

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
    /// Starts the timer thread, delivering into `router`; coalescable ticks fire on a grid of
    /// `grid` (see the module docs; zero fires every tick at its exact deadline).
    pub fn start(
        router: RaftRouter,
        name: String,
        grid: Duration,
    ) -> std::io::Result<(Ticker, JoinHandle<()>)> {
        let (sender, receiver) = crossbeam_channel::unbounded();
        let handle = std::thread::Builder::new()
            .name(name)
            .spawn(move || run(receiver, router, TickGrid::new(Instant::now(), grid)))?;
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

/// When coalescable ticks fire: the first instant `origin + k * step` at or after the deadline.
#[derive(Clone, Copy, Debug)]
struct TickGrid {
    origin: Instant,
    step: Duration,
}

impl TickGrid {
    fn new(origin: Instant, step: Duration) -> TickGrid {
        TickGrid { origin, step }
    }

    /// The raft clock keeps its exact period (elections, heartbeats and leases count its
    /// ticks), and a merge pushes on at its own pace; every other tick may wait for the grid.
    fn coalesces(tick: PeerTick) -> bool {
        !matches!(tick, PeerTick::Raft | PeerTick::CheckMerge)
    }

    /// When a tick of kind `tick` due at `deadline` fires: never before `deadline`, at most
    /// one step after it.
    fn fire_at(&self, tick: PeerTick, deadline: Instant) -> Instant {
        let step = self.step.as_nanos();
        if step == 0 || !Self::coalesces(tick) {
            return deadline;
        }
        // A deadline before the origin (impossible from the poller, which registers after
        // start) fires at once: it is already due.
        let Some(since) = deadline.checked_duration_since(self.origin) else {
            return deadline;
        };
        let steps = since.as_nanos().div_ceil(step);
        let offset = steps.saturating_mul(step);
        match u64::try_from(offset) {
            Ok(nanos) => self.origin + Duration::from_nanos(nanos),
            Err(_) => deadline,
        }
    }

    fn entry(&self, t: TickRegistration) -> Reverse<TickRegistration> {
        Reverse(TickRegistration {
            deadline: self.fire_at(t.tick, t.deadline),
            ..t
        })
    }
}

fn run(receiver: Receiver<TickerMsg>, router: RaftRouter, grid: TickGrid) {
    // Ordered by when each tick fires (its deadline moved onto the grid).
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
            Ok(TickerMsg::Register(ticks)) => heap.extend(ticks.into_iter().map(|t| grid.entry(t))),
            Ok(TickerMsg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEP: Duration = Duration::from_secs(1);

    #[test]
    fn background_ticks_fire_on_the_grid_never_early() {
        let origin = Instant::now();
        let grid = TickGrid::new(origin, STEP);
        for ms in [1, 250, 999, 1000, 1001, 600_123] {
            let deadline = origin + Duration::from_millis(ms);
            for tick in [
                PeerTick::PdHeartbeat,
                PeerTick::SplitCheck,
                PeerTick::RaftLogGc,
                PeerTick::AwaitLeader,
            ] {
                let fire = grid.fire_at(tick, deadline);
                assert!(fire >= deadline, "{tick:?} at {ms} ms fired early");
                assert!(
                    fire - deadline < STEP,
                    "{tick:?} at {ms} ms waited a whole step"
                );
                let since = (fire - origin).as_nanos();
                assert_eq!(
                    since % STEP.as_nanos(),
                    0,
                    "{tick:?} at {ms} ms off the grid"
                );
            }
        }
    }

    #[test]
    fn ticks_due_within_one_step_fire_together() {
        let origin = Instant::now();
        let grid = TickGrid::new(origin, STEP);
        let fires: Vec<Instant> = [4_001, 4_300, 4_999, 5_000]
            .into_iter()
            .map(|ms| grid.fire_at(PeerTick::PdHeartbeat, origin + Duration::from_millis(ms)))
            .collect();
        assert!(fires.iter().all(|f| *f == origin + Duration::from_secs(5)));
    }

    #[test]
    fn the_raft_clock_and_merge_checks_keep_their_deadlines() {
        let origin = Instant::now();
        let grid = TickGrid::new(origin, STEP);
        let deadline = origin + Duration::from_millis(1_234);
        assert_eq!(grid.fire_at(PeerTick::Raft, deadline), deadline);
        assert_eq!(grid.fire_at(PeerTick::CheckMerge, deadline), deadline);
    }

    #[test]
    fn a_zero_grid_fires_every_tick_at_its_deadline() {
        let origin = Instant::now();
        let grid = TickGrid::new(origin, Duration::ZERO);
        let deadline = origin + Duration::from_millis(1_234);
        assert_eq!(grid.fire_at(PeerTick::PdHeartbeat, deadline), deadline);
    }
}
