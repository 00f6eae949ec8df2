//! FSMs and the atomic state that owns an idle FSM.

use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// A state machine driven by the pollers. It owns the receiving end of its mailbox and
/// drains it in the handler.
pub trait Fsm: Send + 'static {
    type Message: Send + 'static;

    /// A stopped FSM is dropped after the current round.
    fn is_stopped(&self) -> bool;
}

const NOTIFIED: usize = 0;
const IDLE: usize = 1;
const DROPPED: usize = 2;

/// Holds an FSM while it is idle. Exactly one thread can take it out (on the first message),
/// and it comes back when the poller releases it.
pub struct FsmState<N> {
    status: AtomicUsize,
    data: AtomicPtr<N>,
}

// SAFETY: the FSM behind the pointer is `Send`, and only the one thread that won `take_fsm`
// touches it until it is released.
unsafe impl<N: Send> Send for FsmState<N> {}
unsafe impl<N: Send> Sync for FsmState<N> {}

impl<N> FsmState<N> {
    pub fn new(fsm: Box<N>) -> FsmState<N> {
        FsmState {
            status: AtomicUsize::new(IDLE),
            data: AtomicPtr::new(Box::into_raw(fsm)),
        }
    }

    /// Takes the FSM if it is idle; `None` if a poller already has it or it was dropped.
    pub fn take_fsm(&self) -> Option<Box<N>> {
        if self
            .status
            .compare_exchange(IDLE, NOTIFIED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return None;
        }
        let p = self.data.swap(ptr::null_mut(), Ordering::AcqRel);
        if p.is_null() {
            // Unreachable by construction: IDLE always holds the FSM.
            return None;
        }
        // SAFETY: `p` came from `Box::into_raw` and winning the CAS gave us sole ownership.
        Some(unsafe { Box::from_raw(p) })
    }

    /// Gives a taken FSM back. If the mailbox was closed meanwhile, the FSM is dropped.
    pub fn release(&self, fsm: Box<N>) {
        let previous = self.data.swap(Box::into_raw(fsm), Ordering::AcqRel);
        debug_assert!(previous.is_null(), "released an FSM that was not taken");
        match self
            .status
            .compare_exchange(NOTIFIED, IDLE, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {}
            Err(DROPPED) => self.free(),
            Err(other) => unreachable!("release in state {other}"),
        }
    }

    /// Marks the FSM dropped: an idle one is freed now, a polled one when it is released.
    pub fn clear(&self) {
        if self.status.swap(DROPPED, Ordering::AcqRel) == IDLE {
            self.free();
        }
    }

    fn free(&self) {
        let p = self.data.swap(ptr::null_mut(), Ordering::AcqRel);
        if !p.is_null() {
            // SAFETY: the pointer came from `Box::into_raw` and is no longer reachable.
            drop(unsafe { Box::from_raw(p) });
        }
    }

    pub fn is_dropped(&self) -> bool {
        self.status.load(Ordering::Acquire) == DROPPED
    }
}

impl<N> Drop for FsmState<N> {
    fn drop(&mut self) {
        self.free();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    use super::*;

    struct Counted(Arc<AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn only_one_taker_and_release_returns_it() {
        let drops = Arc::new(AtomicUsize::new(0));
        let state = FsmState::new(Box::new(Counted(drops.clone())));
        let fsm = state.take_fsm().expect("idle fsm is taken");
        assert!(
            state.take_fsm().is_none(),
            "a taken fsm cannot be taken twice"
        );
        state.release(fsm);
        assert!(state.take_fsm().is_some_and(|f| {
            state.release(f);
            true
        }));
        drop(state);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn clear_while_polled_drops_on_release() {
        let drops = Arc::new(AtomicUsize::new(0));
        let state = FsmState::new(Box::new(Counted(drops.clone())));
        let fsm = state.take_fsm().unwrap();
        state.clear();
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        state.release(fsm);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert!(state.take_fsm().is_none());
    }

    #[test]
    fn clear_while_idle_drops_now() {
        let drops = Arc::new(AtomicUsize::new(0));
        let state = FsmState::new(Box::new(Counted(drops.clone())));
        state.clear();
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert!(state.is_dropped());
    }
}
