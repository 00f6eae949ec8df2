//! Pessimistic lock requests that wait for a lock to go (TiKV's lock manager: its waiter
//! manager, plus the client of its deadlock detector): a request that meets another
//! transaction's lock registers in the FIFO queue of that key and sleeps until the lock is
//! released on this store, its wait turns out to close a deadlock, or its wait ends.
//! A release wakes the oldest waiter only; it retries, and if it takes the lock the next ones
//! keep waiting for that transaction in turn.
//!
//! While a waiter sleeps, its wait (`txn` waits for `wait_for_txn` on this key) is reported
//! to the cluster's deadlock detector on PD (`deadlock_client`), and withdrawn when the sleep
//! ends however it ends. When the detector finds that the wait closes a cycle it answers, and
//! the waiter is woken with `Wake::Deadlock` so its request can give up at once instead of
//! waiting out its limit (TiKV's `WaiterManager::handle_deadlock`). Without a detector (or
//! while PD is unreachable) waits simply go undetected and end by their limit.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use proto::deadlock::WaitForEntry;
use tokio::sync::oneshot;
use txn::mvcc::Key;

use super::deadlock_client::DetectorClient;
use super::metrics::LOCK_WAITERS;
pub use super::wait_for::DeadlockFound;
use super::wait_for::{key_hash, DeadlockSink};

/// Why a waiter's sleep ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Wake {
    /// The lock was released on this store: try again.
    Released,
    /// The wait would close a cycle of waiting transactions: give up.
    Deadlock(Box<DeadlockFound>),
    /// The wait limit passed first.
    TimedOut,
}

/// One queued waiter.
struct Queued {
    id: u64,
    /// The waiting transaction (start_ts).
    txn: u64,
    /// The transaction whose lock it currently sleeps on (0 before its first sleep): a
    /// deadlock answer must name this very wait to wake it.
    wait_for_txn: u64,
    wake: oneshot::Sender<Wake>,
}

/// The waiters of one key, oldest first.
type WaitQueue = VecDeque<Queued>;

/// The wait queues of one store, keyed by encoded user key, and the client of the deadlock
/// detector their waits are reported to.
#[derive(Default)]
pub struct LockWaitQueues {
    queues: Mutex<HashMap<Vec<u8>, WaitQueue>>,
    next_id: AtomicU64,
    /// Set once when the store starts serving; absent in tests without PD.
    detector: OnceLock<DetectorClient>,
}

/// One registered waiter; dropping it leaves the queue.
pub struct LockWaiter {
    queues: Arc<LockWaitQueues>,
    /// The encoded user key, the queue's name.
    key: Vec<u8>,
    /// The user key as the request carried it, for the detector and the answer.
    raw_key: Vec<u8>,
    key_hash: u64,
    txn: u64,
    id: u64,
    woken: oneshot::Receiver<Wake>,
}

impl LockWaitQueues {
    /// Reports every later wait to `detector`. Only the first detector set is kept; false
    /// when one was already set.
    pub fn set_detector(&self, detector: DetectorClient) -> bool {
        self.detector.set(detector).is_ok()
    }

    /// Queues a waiter of transaction `txn` behind the others on user key `raw_key`.
    /// Register before the attempt that may meet the lock, so a release between that attempt
    /// and the wait is not missed.
    pub fn register(self: &Arc<Self>, raw_key: &[u8], txn: u64) -> LockWaiter {
        let key = Key::from_raw(raw_key).into_encoded();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.queues
            .lock()
            .entry(key.clone())
            .or_default()
            .push_back(Queued {
                id,
                txn,
                wait_for_txn: 0,
                wake: tx,
            });
        LOCK_WAITERS.inc();
        LockWaiter {
            queues: self.clone(),
            key,
            raw_key: raw_key.to_vec(),
            key_hash: key_hash(raw_key),
            txn,
            id,
            woken: rx,
        }
    }

    /// A lock on `encoded_key` was released here: wakes its oldest waiter still listening.
    pub fn wake_first(&self, encoded_key: &[u8]) {
        let mut queues = self.queues.lock();
        let Some(queue) = queues.get_mut(encoded_key) else {
            return;
        };
        while let Some(queued) = queue.pop_front() {
            LOCK_WAITERS.dec();
            if queued.wake.send(Wake::Released).is_ok() {
                break;
            }
        }
        if queue.is_empty() {
            queues.remove(encoded_key);
        }
    }

    /// The detector found that the wait `entry` (as this store reported it) closes a cycle:
    /// wakes that waiter with the deadlock and takes it out of its queue. False when no
    /// waiter sleeps on that wait any more (it was woken or gave up meanwhile).
    pub fn wake_deadlocked(&self, entry: &WaitForEntry, found: DeadlockFound) -> bool {
        let key = Key::from_raw(&entry.key).into_encoded();
        let mut queues = self.queues.lock();
        let Some(queue) = queues.get_mut(&key) else {
            return false;
        };
        let Some(at) = queue
            .iter()
            .position(|q| q.txn == entry.txn && q.wait_for_txn == entry.wait_for_txn)
        else {
            return false;
        };
        let queued = queue.remove(at).expect("position is in the queue");
        LOCK_WAITERS.dec();
        if queue.is_empty() {
            queues.remove(&key);
        }
        queued.wake.send(Wake::Deadlock(Box::new(found))).is_ok()
    }

    /// Notes that waiter `id` on `key` now sleeps on the lock of `wait_for_txn`.
    fn set_wait_for(&self, key: &[u8], id: u64, wait_for_txn: u64) {
        if let Some(queued) = self
            .queues
            .lock()
            .get_mut(key)
            .and_then(|q| q.iter_mut().find(|q| q.id == id))
        {
            queued.wait_for_txn = wait_for_txn;
        }
    }

    /// Waiters queued on `encoded_key`.
    #[cfg(test)]
    pub fn waiting_on(&self, encoded_key: &[u8]) -> usize {
        self.queues.lock().get(encoded_key).map_or(0, VecDeque::len)
    }
}

/// A wait reported to the detector; withdrawn when dropped, so it is withdrawn however the
/// sleep ends, even when the request itself is dropped mid-wait.
struct ReportedWait<'a> {
    detector: &'a DetectorClient,
    entry: WaitForEntry,
}

impl Drop for ReportedWait<'_> {
    fn drop(&mut self) {
        self.detector
            .clean_up_wait_for(std::mem::take(&mut self.entry));
    }
}

impl LockWaiter {
    /// The user key this waiter is queued on.
    pub fn raw_key(&self) -> &[u8] {
        &self.raw_key
    }

    /// Sleeps until woken or `limit` passes, waiting for the lock of transaction
    /// `wait_for_txn`; the wait is reported to the deadlock detector meanwhile.
    pub async fn wait(&mut self, wait_for_txn: u64, limit: Duration) -> Wake {
        self.queues.set_wait_for(&self.key, self.id, wait_for_txn);
        let _reported = self.queues.detector.get().map(|detector| {
            let entry = WaitForEntry {
                txn: self.txn,
                wait_for_txn,
                key_hash: self.key_hash,
                key: self.raw_key.clone(),
                ..Default::default()
            };
            detector.detect(entry.clone());
            ReportedWait { detector, entry }
        });
        match tokio::time::timeout(limit, &mut self.woken).await {
            Ok(Ok(wake)) => wake,
            // The sender is gone only once this waiter left its queue without being told
            // why; trying again is always safe.
            Ok(Err(_)) => Wake::Released,
            Err(_) => Wake::TimedOut,
        }
    }
}

impl Drop for LockWaiter {
    fn drop(&mut self) {
        let mut queues = self.queues.queues.lock();
        if let Some(queue) = queues.get_mut(&self.key) {
            let before = queue.len();
            queue.retain(|q| q.id != self.id);
            if queue.len() < before {
                LOCK_WAITERS.dec();
            }
            if queue.is_empty() {
                queues.remove(&self.key);
            }
        }
    }
}

impl DeadlockSink for LockWaitQueues {
    fn wake_deadlocked(&self, entry: &WaitForEntry, found: DeadlockFound) -> bool {
        LockWaitQueues::wake_deadlocked(self, entry, found)
    }
}

#[cfg(test)]
mod tests {
    use proto::deadlock::{DeadlockRequest, DeadlockRequestType};

    use super::*;

    fn enc(raw: &[u8]) -> Vec<u8> {
        Key::from_raw(raw).into_encoded()
    }

    #[tokio::test]
    async fn releases_wake_waiters_one_at_a_time_in_arrival_order() {
        let queues = Arc::new(LockWaitQueues::default());
        let mut first = queues.register(b"k", 10);
        let mut second = queues.register(b"k", 11);
        assert_eq!(queues.waiting_on(&enc(b"k")), 2);
        queues.wake_first(&enc(b"k"));
        assert_eq!(first.wait(5, Duration::from_secs(60)).await, Wake::Released);
        assert_eq!(queues.waiting_on(&enc(b"k")), 1);
        queues.wake_first(&enc(b"k"));
        assert_eq!(
            second.wait(5, Duration::from_secs(60)).await,
            Wake::Released
        );
        assert_eq!(queues.waiting_on(&enc(b"k")), 0);
    }

    #[tokio::test]
    async fn a_waiter_that_left_is_skipped_and_an_unwoken_one_times_out() {
        let queues = Arc::new(LockWaitQueues::default());
        let gone = queues.register(b"k", 10);
        let mut stays = queues.register(b"k", 11);
        drop(gone);
        assert_eq!(queues.waiting_on(&enc(b"k")), 1);
        let mut other_key = queues.register(b"other", 12);
        queues.wake_first(&enc(b"k"));
        assert_eq!(stays.wait(5, Duration::from_secs(60)).await, Wake::Released);
        assert_eq!(
            other_key.wait(5, Duration::from_millis(1)).await,
            Wake::TimedOut
        );
    }

    /// The requests the detector client was asked to send, as (type, txn, wait_for_txn).
    fn sent(
        requests: &mut tokio::sync::mpsc::Receiver<DeadlockRequest>,
    ) -> Vec<(DeadlockRequestType, u64, u64)> {
        let mut out = Vec::new();
        while let Ok(req) = requests.try_recv() {
            let tp = req.tp();
            let entry = req.entry.expect("an entry");
            assert_eq!(entry.key_hash, key_hash(&entry.key));
            out.push((tp, entry.txn, entry.wait_for_txn));
        }
        out
    }

    #[tokio::test]
    async fn a_deadlock_wakes_only_the_wait_it_names_and_every_wait_is_withdrawn() {
        let queues = Arc::new(LockWaitQueues::default());
        let (detector, mut requests) = DetectorClient::for_test();
        assert!(queues.set_detector(detector));
        let mut older = queues.register(b"k", 10);
        let mut waiter = queues.register(b"k", 11);

        // Nobody sleeps on the wait of 11 for 5 yet: an answer for it wakes nobody.
        let entry = |txn, wait_for_txn| WaitForEntry {
            txn,
            wait_for_txn,
            key: b"k".to_vec(),
            ..Default::default()
        };
        let found = DeadlockFound {
            deadlock_key_hash: 7,
            wait_chain: vec![entry(5, 11), entry(11, 5)],
        };
        assert!(!queues.wake_deadlocked(&entry(11, 5), found.clone()));

        let sleeping = tokio::spawn(async move {
            let wake = waiter.wait(5, Duration::from_secs(60)).await;
            (wake, waiter)
        });
        // Once the wait is reported it can be answered.
        let detect = requests.recv().await.expect("the wait is reported");
        assert_eq!(detect.tp(), DeadlockRequestType::Detect);
        assert_eq!(
            detect.entry,
            Some(WaitForEntry {
                key_hash: key_hash(b"k"),
                ..entry(11, 5)
            })
        );
        assert!(queues.wake_deadlocked(&entry(11, 5), found.clone()));
        let (wake, waiter) = sleeping.await.unwrap();
        assert_eq!(wake, Wake::Deadlock(Box::new(found)));
        // The deadlocked waiter left the queue; the older one still waits there.
        assert_eq!(queues.waiting_on(&enc(b"k")), 1);
        assert_eq!(waiter.raw_key(), b"k");
        drop(waiter);
        assert_eq!(
            older.wait(6, Duration::from_millis(1)).await,
            Wake::TimedOut
        );
        assert_eq!(
            sent(&mut requests),
            vec![
                (DeadlockRequestType::CleanUpWaitFor, 11, 5),
                (DeadlockRequestType::Detect, 10, 6),
                (DeadlockRequestType::CleanUpWaitFor, 10, 6),
            ]
        );
    }
}
