//! What the lock waiters (`lock_wait`) and the deadlock detector's client
//! (`deadlock_client`) share: how a waited-for key is hashed, the detector's answer, and the
//! side that takes that answer to the waiter it names.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use proto::deadlock::WaitForEntry;

/// A stable 64-bit hash of a user key, the `key_hash` of this store's waits. Only this
/// store compares the hashes it sends (a clean-up must name the hash its detect used) and
/// they travel back to the client as labels, so std's SipHash with its fixed zero keys
/// suffices.
pub fn key_hash(raw_key: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    raw_key.hash(&mut h);
    h.finish()
}

/// The detector's answer for a wait that closes a cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadlockFound {
    /// The hash of the key, held by the waiting transaction, that the cycle closes on.
    pub deadlock_key_hash: u64,
    /// The waits of the cycle in order, ending with this waiter's own.
    pub wait_chain: Vec<WaitForEntry>,
}

/// Where deadlock answers go: the store's lock waiters.
pub trait DeadlockSink: Send + Sync {
    /// The detector found that the wait `entry` (as this store reported it) closes a cycle:
    /// wakes that waiter with the deadlock. False when no waiter sleeps on that wait any
    /// more.
    fn wake_deadlocked(&self, entry: &WaitForEntry, found: DeadlockFound) -> bool;
}
