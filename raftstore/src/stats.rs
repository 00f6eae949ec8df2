//! Store-wide counters the PD reports are built from: read/write flow, mailbox pressure and
//! when other stores were last heard from. All are cheap to update from any thread.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;

/// Bytes and keys moved, as taken from a counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flow {
    pub bytes: u64,
    pub keys: u64,
}

/// A bytes/keys counter that is read by resetting it.
#[derive(Debug, Default)]
pub struct FlowCounter {
    bytes: AtomicU64,
    keys: AtomicU64,
}

impl FlowCounter {
    pub fn add(&self, bytes: u64, keys: u64) {
        if keys == 0 && bytes == 0 {
            return;
        }
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.keys.fetch_add(keys, Ordering::Relaxed);
    }

    /// What was counted since the last take.
    pub fn take(&self) -> Flow {
        Flow {
            bytes: self.bytes.swap(0, Ordering::Relaxed),
            keys: self.keys.swap(0, Ordering::Relaxed),
        }
    }
}

/// Flow and pressure of a whole store since its last PD report.
#[derive(Debug, Default)]
pub struct StoreFlow {
    pub written: FlowCounter,
    pub read: FlowCounter,
    /// A mailbox refused a command for being full.
    busy: AtomicBool,
}

impl StoreFlow {
    pub fn mark_busy(&self) {
        self.busy.store(true, Ordering::Relaxed);
    }

    /// Whether a mailbox was full since the last call.
    pub fn take_busy(&self) -> bool {
        self.busy.swap(false, Ordering::Relaxed)
    }
}

/// When each other store last pinged this one, and which stores the store heartbeat tick
/// declared unreachable (silent for `store-unreachable-timeout`). Hibernated regions exchange
/// no messages, so a leader judges its sleeping followers by their store's pings, and whether
/// it still reaches a quorum by the unreachable set.
#[derive(Debug, Default)]
pub struct StoreLiveness {
    last_heard: Mutex<HashMap<u64, Instant>>,
    unreachable: Mutex<HashSet<u64>>,
}

impl StoreLiveness {
    /// Records the store heartbeat tick's verdict on `store_id`.
    pub fn set_unreachable(&self, store_id: u64, unreachable: bool) {
        let mut set = self.unreachable.lock();
        if unreachable {
            set.insert(store_id);
        } else {
            set.remove(&store_id);
        }
    }

    /// Whether `store_id` is currently declared unreachable.
    pub fn is_unreachable(&self, store_id: u64) -> bool {
        self.unreachable.lock().contains(&store_id)
    }

    pub fn heard(&self, store_id: u64, at: Instant) {
        let mut map = self.last_heard.lock();
        let e = map.entry(store_id).or_insert(at);
        *e = (*e).max(at);
    }

    pub fn last_heard(&self, store_id: u64) -> Option<Instant> {
        self.last_heard.lock().get(&store_id).copied()
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn flow_counter_resets_on_take() {
        let c = FlowCounter::default();
        c.add(10, 1);
        c.add(5, 2);
        assert_eq!(c.take(), Flow { bytes: 15, keys: 3 });
        assert_eq!(c.take(), Flow::default());
    }

    #[test]
    fn busy_is_reported_once() {
        let f = StoreFlow::default();
        assert!(!f.take_busy());
        f.mark_busy();
        assert!(f.take_busy());
        assert!(!f.take_busy());
    }

    #[test]
    fn liveness_keeps_the_latest_ping() {
        let l = StoreLiveness::default();
        let t = Instant::now();
        assert_eq!(l.last_heard(2), None);
        l.heard(2, t + Duration::from_secs(1));
        l.heard(2, t);
        assert_eq!(l.last_heard(2), Some(t + Duration::from_secs(1)));
    }
}
