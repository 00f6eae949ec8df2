//! Running a read-modify-write under the latches of its keys: the raw API's compare-and-swap
//! and atomic writes, and every transactional write command, take their keys' latches from
//! the same per-store table (`txn::latches`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use raftstore::Store;
use txn::latches::Latches;

use super::errors::KvError;
use super::region_cmd;

/// The store's latch table and how long a request waits for its latched work.
#[derive(Clone)]
pub struct LatchedRunner {
    latches: Arc<Latches>,
    store: Arc<Store>,
    /// How long the request waits for the work; the work itself is not cut short.
    timeout: Duration,
}

impl LatchedRunner {
    pub fn new(store: Arc<Store>, timeout: Duration) -> LatchedRunner {
        LatchedRunner {
            latches: Arc::new(Latches::default()),
            store,
            timeout,
        }
    }

    /// Runs `work` holding the latches of `encoded_keys`, on a task of its own: the latches
    /// are released only when `work` is done, even if this request stops waiting (timeout, or
    /// the client going away), so a write still in flight keeps excluding other latched
    /// requests on its keys. `work` must wait for its writes without a timeout. Errors: a
    /// region error when `timeout` passes first.
    pub async fn run<T, F, Fut>(
        &self,
        region_id: u64,
        encoded_keys: Vec<Vec<u8>>,
        work: F,
    ) -> Result<T, KvError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Store>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, KvError>> + Send + 'static,
    {
        let latches = self.latches.clone();
        let store = self.store.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let _held = latches
                .acquire(encoded_keys.iter().map(Vec::as_slice))
                .await;
            // Nobody waits any more and nothing has been done yet: skip the work.
            if tx.is_closed() {
                return;
            }
            let _ = tx.send(work(store).await);
        });
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(KvError::Internal(
                "a latched request ended without an answer".into(),
            )),
            Err(_) => Err(region_cmd::timed_out(region_id, self.timeout)),
        }
    }
}
