//! The store's side of deadlock detection: one `deadlock.Deadlock/Detect` stream from this
//! store to the cluster's detector on PD (TiKV's lock manager keeps the same kind of stream
//! to its detector leader). Waiters report their waits through it (`Detect` when a sleep
//! starts, `CleanUpWaitFor` when it ends); the detector answers only the waits that would
//! close a cycle, and those answers wake the waiter concerned with `Wake::Deadlock`.
//!
//! Detection is best-effort by design: while PD is unreachable, or the stream is being
//! re-established (with backoff, at PD's current leader URL), requests are dropped and waits
//! go undetected, which only means a deadlock lasts until the lock-wait timeout (1 s) as it
//! did without a detector. A wait reported to a PD that then restarted is forgotten there;
//! it too ends by its timeout, and the client's retry reports it again.

use std::sync::{Arc, Weak};
use std::time::Duration;

use pd_client::Backoff;
use proto::deadlock::deadlock_client::DeadlockClient as DetectorGrpc;
use proto::deadlock::{DeadlockRequest, DeadlockRequestType, DeadlockResponse, WaitForEntry};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::ClientTlsConfig;
use tracing::{debug, info, warn};

use super::metrics::{DEADLOCK_DETECTOR_CONNECTED, DEADLOCK_REQUESTS_DROPPED};
#[cfg(test)]
use super::wait_for::key_hash;
use super::wait_for::{DeadlockFound, DeadlockSink};

/// Where the detector is now: PD's current leader URL (`http://host:port`), asked again on
/// every reconnect so a moved leader is followed.
pub type DetectorUrl = Arc<dyn Fn() -> String + Send + Sync>;

/// Requests waiting to go out; past this the detector is behind and requests are dropped.
const REQUEST_QUEUE: usize = 4096;
/// Longest wait for the connection and for the stream to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// First and longest pause between reconnect attempts.
const RECONNECT_BASE: Duration = Duration::from_millis(100);
const RECONNECT_CAP: Duration = Duration::from_secs(2);

/// Sends waits to the detector; cheap to clone, never blocks.
#[derive(Clone)]
pub struct DetectorClient {
    requests: mpsc::Sender<DeadlockRequest>,
}

/// Why a detect stream could not be opened or ended.
#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error("invalid detector address {0:?}")]
    InvalidUrl(String),
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Rpc(#[from] tonic::Status),
    #[error("the detector closed the stream")]
    Closed,
}

impl DetectorClient {
    /// Starts the stream task on the current tokio runtime. Deadlock answers wake waiters of
    /// `queues`; the task ends once the client and all its clones are dropped, or `queues`
    /// is.
    /// `tls` (PD's CA and this store's client certificate) is used when PD speaks TLS.
    pub fn start(
        url: DetectorUrl,
        tls: Option<ClientTlsConfig>,
        queues: Weak<dyn DeadlockSink>,
    ) -> DetectorClient {
        let (tx, rx) = mpsc::channel(REQUEST_QUEUE);
        tokio::spawn(run(url, tls, rx, queues));
        DetectorClient { requests: tx }
    }

    /// A client whose requests land in the returned receiver, for tests.
    #[cfg(test)]
    pub fn for_test() -> (DetectorClient, mpsc::Receiver<DeadlockRequest>) {
        let (tx, rx) = mpsc::channel(REQUEST_QUEUE);
        (DetectorClient { requests: tx }, rx)
    }

    /// Reports that `entry.txn` now waits for `entry.wait_for_txn` on `entry.key`.
    pub fn detect(&self, entry: WaitForEntry) {
        self.send(DeadlockRequestType::Detect, entry);
    }

    /// Withdraws a wait reported with `detect`.
    pub fn clean_up_wait_for(&self, entry: WaitForEntry) {
        self.send(DeadlockRequestType::CleanUpWaitFor, entry);
    }

    fn send(&self, tp: DeadlockRequestType, entry: WaitForEntry) {
        let req = DeadlockRequest {
            tp: tp as i32,
            entry: Some(entry),
        };
        if self.requests.try_send(req).is_err() {
            // Full (the detector is behind) or the task is gone (shutting down): the wait
            // goes undetected, and an unwithdrawn wait expires on the detector.
            DEADLOCK_REQUESTS_DROPPED.inc();
        }
    }
}

/// Keeps one detect stream open, reconnecting with backoff, until the store lets go.
async fn run(
    url: DetectorUrl,
    tls: Option<ClientTlsConfig>,
    mut requests: mpsc::Receiver<DeadlockRequest>,
    queues: Weak<dyn DeadlockSink>,
) {
    let mut backoff = Backoff::new(RECONNECT_BASE, RECONNECT_CAP);
    // Warn when the detector is lost (or not there at start), not on every failed attempt
    // while it stays away.
    let mut connected = true;
    loop {
        let target = url();
        let stream = stream_until_broken(
            &target,
            tls.as_ref(),
            &mut requests,
            &queues,
            &mut connected,
        );
        match stream.await {
            Ok(()) => return,
            Err(e) => {
                DEADLOCK_DETECTOR_CONNECTED.set(0);
                if connected {
                    warn!(detector = %target, error = %e,
                        "deadlock detector unreachable; lock waits go undetected until it is back");
                    backoff.reset();
                } else {
                    debug!(detector = %target, error = %e, "deadlock detector still unreachable");
                }
                connected = false;
            }
        }
        // Requests arriving during the pause could not be sent anyway: drop them rather
        // than send stale waits later.
        let pause = tokio::time::sleep(backoff.next_delay());
        tokio::pin!(pause);
        loop {
            tokio::select! {
                _ = &mut pause => break,
                req = requests.recv() => match req {
                    Some(_) => DEADLOCK_REQUESTS_DROPPED.inc(),
                    None => return,
                },
            }
        }
    }
}

/// Opens a detect stream to `url` (setting `connected` once it is open) and pumps requests
/// out and answers in until the stream breaks (an error) or the store lets go (`Ok`).
async fn stream_until_broken(
    url: &str,
    tls: Option<&ClientTlsConfig>,
    requests: &mut mpsc::Receiver<DeadlockRequest>,
    queues: &Weak<dyn DeadlockSink>,
    connected: &mut bool,
) -> Result<(), StreamError> {
    let endpoint = crate::tls::endpoint(url, tls)
        .map_err(|_| StreamError::InvalidUrl(url.to_string()))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(3))
        .keep_alive_while_idle(true);
    let channel = tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect())
        .await
        .map_err(|_| StreamError::Timeout(CONNECT_TIMEOUT))?
        .map_err(|e| StreamError::Connect(e.to_string()))?;
    let (out, out_rx) = mpsc::channel(REQUEST_QUEUE);
    let mut inbound = tokio::time::timeout(
        CONNECT_TIMEOUT,
        DetectorGrpc::new(channel).detect(ReceiverStream::new(out_rx)),
    )
    .await
    .map_err(|_| StreamError::Timeout(CONNECT_TIMEOUT))??
    .into_inner();
    *connected = true;
    DEADLOCK_DETECTOR_CONNECTED.set(1);
    info!(detector = %url, "deadlock detector connected");
    loop {
        tokio::select! {
            req = requests.recv() => {
                let Some(req) = req else { return Ok(()) };
                out.send(req).await.map_err(|_| StreamError::Closed)?;
            }
            answer = inbound.message() => {
                let answer = answer?.ok_or(StreamError::Closed)?;
                let Some(queues) = queues.upgrade() else { return Ok(()) };
                deliver(queues.as_ref(), answer);
            }
        }
    }
}

/// Wakes the waiter a deadlock answer names, with the whole cycle: the detector sends the
/// other waits of the cycle and the waiter's own wait apart (kvproto's DeadlockResponse),
/// and the client expects the chain to end with it (TiKV appends it the same way).
fn deliver(queues: &dyn DeadlockSink, answer: DeadlockResponse) {
    let Some(entry) = answer.entry else {
        debug!("deadlock answer without its entry ignored");
        return;
    };
    let mut wait_chain = answer.wait_chain;
    wait_chain.push(entry.clone());
    let found = DeadlockFound {
        deadlock_key_hash: answer.deadlock_key_hash,
        wait_chain,
    };
    if !queues.wake_deadlocked(&entry, found) {
        debug!(
            txn = entry.txn,
            wait_for_txn = entry.wait_for_txn,
            "deadlock answer for a wait that already ended"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use parking_lot::Mutex;
    use proto::deadlock::WaitForEntriesRequest;
    use tokio::task::JoinHandle;

    use super::super::lock_wait::{LockWaitQueues, Wake};
    use super::*;

    async fn start_pd(dir: &std::path::Path) -> pd::RunningPd {
        let cfg = pd::Config {
            data_dir: dir.to_path_buf(),
            client_urls: "http://127.0.0.1:0".into(),
            http_addr: "127.0.0.1:0".into(),
            ..Default::default()
        };
        pd::PdServer::start(cfg).await.expect("PD starts")
    }

    /// Whether PD's detector lists the wait of `txn` for `wait_for_txn`.
    async fn listed(pd_url: &str, txn: u64, wait_for_txn: u64) -> bool {
        let Ok(mut pd) = DetectorGrpc::connect(pd_url.to_string()).await else {
            return false;
        };
        pd.get_wait_for_entries(WaitForEntriesRequest {})
            .await
            .is_ok_and(|resp| {
                resp.into_inner()
                    .entries
                    .iter()
                    .any(|e| (e.txn, e.wait_for_txn) == (txn, wait_for_txn))
            })
    }

    /// Starts a wait of `txn` for `wait_for_txn` on `key` and returns it once PD's detector
    /// lists it. A wait reported while the stream was still (re)connecting was dropped, so
    /// it is started again until one gets through.
    async fn wait_reported(
        queues: &Arc<LockWaitQueues>,
        pd_url: &str,
        (txn, wait_for_txn, key): (u64, u64, &[u8]),
    ) -> JoinHandle<Wake> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let mut waiter = queues.register(key, txn);
            let wait =
                tokio::spawn(
                    async move { waiter.wait(wait_for_txn, Duration::from_secs(60)).await },
                );
            let attempt_ends = Instant::now() + Duration::from_secs(1);
            while Instant::now() < attempt_ends {
                if listed(pd_url, txn, wait_for_txn).await {
                    return wait;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            wait.abort();
        }
        panic!("the wait of {txn} for {wait_for_txn} never reached the detector");
    }

    /// Two transactions, each waiting for the other's key: the second wait is answered as a
    /// deadlock with the whole cycle, the first keeps waiting until released.
    async fn deadlock_between(queues: &Arc<LockWaitQueues>, pd_url: &str, a: u64, b: u64) {
        let first = wait_reported(queues, pd_url, (a, b, b"held-by-b")).await;
        let mut second = queues.register(b"held-by-a", b);
        let wake = second.wait(a, Duration::from_secs(60)).await;
        let Wake::Deadlock(found) = wake else {
            panic!("expected a deadlock, got {wake:?}");
        };
        assert_eq!(found.deadlock_key_hash, key_hash(b"held-by-b"));
        let chain: Vec<_> = found
            .wait_chain
            .iter()
            .map(|e| (e.txn, e.wait_for_txn, e.key.clone()))
            .collect();
        assert_eq!(
            chain,
            vec![(a, b, b"held-by-b".to_vec()), (b, a, b"held-by-a".to_vec())]
        );
        queues.wake_first(&txn::mvcc::Key::from_raw(b"held-by-b").into_encoded());
        assert_eq!(first.await.unwrap(), Wake::Released);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waits_closing_a_cycle_on_pd_are_answered_and_a_restarted_pd_is_found_again() {
        let dir = tempfile::tempdir().unwrap();
        // Nothing listens there: the client starts without a detector and keeps trying.
        let url = Arc::new(Mutex::new("http://127.0.0.1:1".to_string()));
        let queues = Arc::new(LockWaitQueues::default());
        let current = url.clone();
        let detector = DetectorClient::start(
            Arc::new(move || current.lock().clone()),
            None,
            Arc::downgrade(&(queues.clone() as Arc<dyn DeadlockSink>)),
        );
        assert!(queues.set_detector(detector));

        let pd = start_pd(&dir.path().join("pd1")).await;
        *url.lock() = pd.client_url().to_string();
        deadlock_between(&queues, pd.client_url(), 10, 20).await;
        // Withdrawn waits leave nothing behind on the detector.
        let until = Instant::now() + Duration::from_secs(10);
        while listed(pd.client_url(), 10, 20).await {
            assert!(Instant::now() < until, "the ended wait is still listed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        // PD goes away and another comes up elsewhere: the stream follows it.
        pd.shutdown().await.unwrap();
        let pd = start_pd(&dir.path().join("pd2")).await;
        *url.lock() = pd.client_url().to_string();
        deadlock_between(&queues, pd.client_url(), 30, 40).await;
        pd.shutdown().await.unwrap();
    }

    #[test]
    fn key_hashes_are_stable() {
        assert_eq!(key_hash(b"k"), key_hash(b"k"));
        assert_ne!(key_hash(b"k"), key_hash(b"l"));
    }
}
