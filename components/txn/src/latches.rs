//! Per-key latches that make a read-modify-write atomic on this store: a command holds the
//! latches of its keys across "read a snapshot, decide, write through raft, wait for apply",
//! so no other latched command on the same keys interleaves (TiKV's scheduler latches,
//! `src/storage/txn/latch.rs`). Transactional writes and raw compare-and-swap take them;
//! reads never do.
//!
//! Keys hash into a fixed table of async mutexes; two keys sharing a slot only wait for each
//! other, which keeps memory bounded no matter how many keys are touched. Guards are owned so
//! they can live on a task of their own, past the request that took them.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use tokio::sync::{Mutex, OwnedMutexGuard};

/// Slots in the default latch table.
pub const DEFAULT_SLOTS: usize = 2048;

/// A fixed table of latch slots shared by every command of a store.
pub struct Latches {
    slots: Box<[Arc<Mutex<()>>]>,
}

/// Holds a request's latches until dropped.
pub struct LatchGuard {
    _held: Vec<OwnedMutexGuard<()>>,
}

impl Latches {
    /// A table of `slots` slots (at least one).
    pub fn new(slots: usize) -> Latches {
        Latches {
            slots: (0..slots.max(1))
                .map(|_| Arc::new(Mutex::new(())))
                .collect(),
        }
    }

    fn slot_of(&self, key: &[u8]) -> usize {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        (h.finish() % self.slots.len() as u64) as usize
    }

    /// Waits for the latches of all `keys`. Slots are taken in ascending order, so two
    /// requests over overlapping keys can never wait for each other in a cycle.
    pub async fn acquire<'k>(&self, keys: impl IntoIterator<Item = &'k [u8]>) -> LatchGuard {
        let mut slots: Vec<usize> = keys.into_iter().map(|k| self.slot_of(k)).collect();
        slots.sort_unstable();
        slots.dedup();
        let mut held = Vec::with_capacity(slots.len());
        for slot in slots {
            held.push(self.slots[slot].clone().lock_owned().await);
        }
        LatchGuard { _held: held }
    }
}

impl Default for Latches {
    fn default() -> Self {
        Latches::new(DEFAULT_SLOTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn same_key_waits_for_the_holder() {
        let latches = Arc::new(Latches::new(16));
        let guard = latches.acquire([&b"k"[..]]).await;
        let l2 = latches.clone();
        let waiter = tokio::spawn(async move {
            let _g = l2.acquire([&b"k"[..]]).await;
        });
        // On this single-threaded runtime every yield lets the waiter run; it stays blocked
        // while the latch is held.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!waiter.is_finished());
        drop(guard);
        waiter.await.unwrap();
    }

    #[tokio::test]
    async fn a_batch_may_name_one_key_twice() {
        let latches = Latches::new(4);
        let _g = latches.acquire([&b"a"[..], b"a", b"b"]).await;
    }

    #[tokio::test]
    async fn overlapping_batches_do_not_deadlock() {
        let latches = Arc::new(Latches::new(64));
        let keys: Vec<Vec<u8>> = (0..32u8).map(|i| vec![i]).collect();
        let mut tasks = Vec::new();
        for t in 0..8 {
            let latches = latches.clone();
            let mut mine = keys.clone();
            mine.rotate_left(t * 3);
            tasks.push(tokio::spawn(async move {
                for _ in 0..20 {
                    let _g = latches.acquire(mine.iter().map(|k| k.as_slice())).await;
                    tokio::task::yield_now().await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    }
}
