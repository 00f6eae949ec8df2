//! Aiming the store's failpoints (`raftstore::failpoints`) at one store of an in-process
//! cluster. Failpoints are process-wide, so the callbacks here act only on threads of the chosen
//! store, recognised by name (`apply-3-0`, `log-writer-3`, `raftstore-3-1`). They take effect
//! only when the store is built with the `failpoints` feature; tests using them hold a
//! `fail::FailScenario` so they run one at a time.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::wait::wait_until;

/// The store the calling thread works for, from the thread's name: the first all-digit
/// `-`-separated part (`apply-3-0` -> 3, `log-writer-3` -> 3). None for other threads.
pub fn current_store_id() -> Option<u64> {
    let thread = std::thread::current();
    store_id_of_thread(thread.name()?)
}

fn store_id_of_thread(name: &str) -> Option<u64> {
    name.split('-')
        .find(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))?
        .parse()
        .ok()
}

#[derive(Default)]
struct GateState {
    open: bool,
}

/// Holds every thread of one store that reaches a failpoint until the gate opens (or is
/// dropped). Other stores pass through.
pub struct Gate {
    point: &'static str,
    state: Arc<(Mutex<GateState>, Condvar)>,
    held: Arc<AtomicUsize>,
    /// Names of the threads held so far.
    held_threads: Arc<Mutex<Vec<String>>>,
}

impl Gate {
    /// Starts holding `store_id`'s threads at `point`.
    pub fn hold(point: &'static str, store_id: u64) -> Gate {
        let state: Arc<(Mutex<GateState>, Condvar)> = Arc::default();
        let held = Arc::new(AtomicUsize::new(0));
        let held_threads: Arc<Mutex<Vec<String>>> = Arc::default();
        let (s, h, names) = (state.clone(), held.clone(), held_threads.clone());
        fail::cfg_callback(point, move || {
            if current_store_id() != Some(store_id) {
                return;
            }
            let (lock, cvar) = &*s;
            let mut st = lock.lock();
            if st.open {
                return;
            }
            let name = std::thread::current().name().unwrap_or("").to_string();
            names.lock().push(name);
            h.fetch_add(1, Ordering::SeqCst);
            while !st.open {
                cvar.wait(&mut st);
            }
        })
        .expect("configure failpoint");
        Gate {
            point,
            state,
            held,
            held_threads,
        }
    }

    /// Names of the threads held so far (`raftstore-3-0`, `region-3`...).
    pub fn held_threads(&self) -> Vec<String> {
        self.held_threads.lock().clone()
    }

    /// Waits until at least one thread is held.
    pub fn wait_held(&self, timeout: Duration) -> bool {
        wait_until(timeout, || self.held.load(Ordering::SeqCst) > 0)
    }

    /// Lets every held thread go and stops holding new ones.
    pub fn open(&self) {
        fail::remove(self.point);
        let (lock, cvar) = &*self.state;
        lock.lock().open = true;
        cvar.notify_all();
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.open();
    }
}

/// Records whether a thread of `store_id` reached `point`.
pub fn watch(point: &'static str, store_id: u64) -> Arc<AtomicBool> {
    let hit = Arc::new(AtomicBool::new(false));
    let h = hit.clone();
    fail::cfg_callback(point, move || {
        if current_store_id() == Some(store_id) {
            h.store(true, Ordering::SeqCst);
        }
    })
    .expect("configure failpoint");
    hit
}

/// Crashes the first thread of `store_id` that reaches `point`: it panics there, so the step
/// it was taking never completes (the rest of the store goes on until the test stops it, as
/// the other threads of a crashing process would for a moment). Returns whether it fired.
pub fn crash_at(point: &'static str, store_id: u64) -> Arc<AtomicBool> {
    let fired = Arc::new(AtomicBool::new(false));
    let f = fired.clone();
    fail::cfg_callback(point, move || {
        if current_store_id() == Some(store_id) && !f.swap(true, Ordering::SeqCst) {
            panic!("failpoint {point}: crashing store {store_id} here");
        }
    })
    .expect("configure failpoint");
    fired
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_threads_are_recognised_by_name() {
        assert_eq!(store_id_of_thread("apply-3-0"), Some(3));
        assert_eq!(store_id_of_thread("log-writer-12"), Some(12));
        assert_eq!(store_id_of_thread("raftstore-2-1"), Some(2));
        assert_eq!(store_id_of_thread("main"), None);
    }
}
