//! Pessimistic lock requests that wait for a lock to go (TiKV's lock manager, without its
//! deadlock detector): a request that meets another transaction's lock registers in the FIFO
//! queue of that key and sleeps until the lock is released on this store or its wait ends.
//! A release wakes the oldest waiter only; it retries, and if it takes the lock the next ones
//! keep waiting for that transaction in turn.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::metrics::LOCK_WAITERS;

/// The waiters of one key, oldest first: (waiter id, how to wake it).
type WaitQueue = VecDeque<(u64, oneshot::Sender<()>)>;

/// The wait queues of one store, keyed by encoded user key.
#[derive(Default)]
pub struct LockWaitQueues {
    queues: Mutex<HashMap<Vec<u8>, WaitQueue>>,
    next_id: AtomicU64,
}

/// One registered waiter; dropping it leaves the queue.
pub struct LockWaiter {
    queues: Arc<LockWaitQueues>,
    key: Vec<u8>,
    id: u64,
    woken: oneshot::Receiver<()>,
}

impl LockWaitQueues {
    /// Queues a waiter behind the others on `encoded_key`. Register before the attempt that
    /// may meet the lock, so a release between that attempt and the wait is not missed.
    pub fn register(self: &Arc<Self>, encoded_key: Vec<u8>) -> LockWaiter {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.queues
            .lock()
            .entry(encoded_key.clone())
            .or_default()
            .push_back((id, tx));
        LOCK_WAITERS.inc();
        LockWaiter {
            queues: self.clone(),
            key: encoded_key,
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
        while let Some((_, tx)) = queue.pop_front() {
            LOCK_WAITERS.dec();
            if tx.send(()).is_ok() {
                break;
            }
        }
        if queue.is_empty() {
            queues.remove(encoded_key);
        }
    }

    /// Waiters queued on `encoded_key`.
    #[cfg(test)]
    pub fn waiting_on(&self, encoded_key: &[u8]) -> usize {
        self.queues.lock().get(encoded_key).map_or(0, VecDeque::len)
    }
}

impl LockWaiter {
    /// Sleeps until woken or `limit` passes; true when woken by a release.
    pub async fn wait(&mut self, limit: Duration) -> bool {
        matches!(
            tokio::time::timeout(limit, &mut self.woken).await,
            Ok(Ok(()))
        )
    }
}

impl Drop for LockWaiter {
    fn drop(&mut self) {
        let mut queues = self.queues.queues.lock();
        if let Some(queue) = queues.get_mut(&self.key) {
            let before = queue.len();
            queue.retain(|(id, _)| *id != self.id);
            if queue.len() < before {
                LOCK_WAITERS.dec();
            }
            if queue.is_empty() {
                queues.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn releases_wake_waiters_one_at_a_time_in_arrival_order() {
        let queues = Arc::new(LockWaitQueues::default());
        let mut first = queues.register(b"k".to_vec());
        let mut second = queues.register(b"k".to_vec());
        assert_eq!(queues.waiting_on(b"k"), 2);
        queues.wake_first(b"k");
        assert!(first.wait(Duration::from_secs(60)).await);
        assert_eq!(queues.waiting_on(b"k"), 1);
        queues.wake_first(b"k");
        assert!(second.wait(Duration::from_secs(60)).await);
        assert_eq!(queues.waiting_on(b"k"), 0);
    }

    #[tokio::test]
    async fn a_waiter_that_left_is_skipped_and_an_unwoken_one_times_out() {
        let queues = Arc::new(LockWaitQueues::default());
        let gone = queues.register(b"k".to_vec());
        let mut stays = queues.register(b"k".to_vec());
        drop(gone);
        assert_eq!(queues.waiting_on(b"k"), 1);
        let mut other_key = queues.register(b"other".to_vec());
        queues.wake_first(b"k");
        assert!(stays.wait(Duration::from_secs(60)).await);
        assert!(!other_key.wait(Duration::from_millis(1)).await);
    }
}
