//! The `deadlock.Deadlock` service: the cluster's one deadlock detector (`crate::deadlock`),
//! fed by every store's Detect stream. As TiKV's detector does, a stream is answered only
//! for the Detect requests that would close a cycle; clean-ups are never answered.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use proto::deadlock::deadlock_server::Deadlock;
use proto::deadlock::{
    DeadlockRequest, DeadlockRequestType, DeadlockResponse, WaitForEntriesRequest,
    WaitForEntriesResponse,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info};

use crate::deadlock::Detector;
use crate::metrics::Metrics;
use crate::ShutdownSignal;

/// Deadlock answers a stream may queue; the store reads them as they come.
const ANSWER_QUEUE: usize = 256;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

pub struct DeadlockService {
    detector: Arc<Detector>,
    metrics: Arc<Metrics>,
    shutdown: ShutdownSignal,
}

impl DeadlockService {
    pub fn new(
        detector: Arc<Detector>,
        metrics: Arc<Metrics>,
        shutdown: ShutdownSignal,
    ) -> DeadlockService {
        DeadlockService {
            detector,
            metrics,
            shutdown,
        }
    }
}

/// Applies one request to the graph; the answer when it is a Detect that closes a cycle.
pub fn handle(
    detector: &Detector,
    metrics: &Metrics,
    req: DeadlockRequest,
) -> Option<DeadlockResponse> {
    let Some(entry) = req.entry else {
        debug!(tp = req.tp, "deadlock request without an entry ignored");
        return None;
    };
    match DeadlockRequestType::try_from(req.tp) {
        Ok(DeadlockRequestType::Detect) => {
            let found = detector.detect(&entry)?;
            metrics.deadlocks.inc();
            info!(
                txn = entry.txn,
                wait_for_txn = entry.wait_for_txn,
                cycle = found.wait_chain.len(),
                "deadlock detected"
            );
            // On the wire the chain leaves out the request's own entry, which is `entry`
            // (kvproto's DeadlockResponse); the store puts it back at the end.
            let mut wait_chain = found.wait_chain;
            wait_chain.pop();
            Some(DeadlockResponse {
                entry: Some(entry),
                deadlock_key_hash: found.key_hash,
                wait_chain,
            })
        }
        Ok(DeadlockRequestType::CleanUpWaitFor) => {
            detector.clean_up_wait_for(entry.txn, entry.wait_for_txn, entry.key_hash);
            None
        }
        Ok(DeadlockRequestType::CleanUp) => {
            detector.clean_up(entry.txn);
            None
        }
        Err(_) => {
            debug!(tp = req.tp, "unknown deadlock request type ignored");
            None
        }
    }
}

#[tonic::async_trait]
impl Deadlock for DeadlockService {
    async fn get_wait_for_entries(
        &self,
        _request: Request<WaitForEntriesRequest>,
    ) -> Result<Response<WaitForEntriesResponse>, Status> {
        self.metrics
            .grpc_requests
            .with_label_values(&["GetWaitForEntries"])
            .inc();
        Ok(Response::new(WaitForEntriesResponse {
            entries: self.detector.entries(),
        }))
    }

    type DetectStream = BoxStream<DeadlockResponse>;

    async fn detect(
        &self,
        request: Request<Streaming<DeadlockRequest>>,
    ) -> Result<Response<Self::DetectStream>, Status> {
        self.metrics
            .grpc_requests
            .with_label_values(&["Detect"])
            .inc();
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(ANSWER_QUEUE);
        let (detector, metrics) = (self.detector.clone(), self.metrics.clone());
        let stop = self.shutdown.clone().wait();
        // Requests are read on a task of their own so the graph is updated as they arrive,
        // whether or not the store is reading answers at that moment.
        tokio::spawn(async move {
            tokio::pin!(stop);
            loop {
                let item = tokio::select! {
                    _ = &mut stop => break,
                    item = inbound.next() => item,
                };
                let req = match item {
                    Some(Ok(req)) => req,
                    Some(Err(status)) => {
                        debug!(%status, "deadlock detect stream broke");
                        break;
                    }
                    None => break,
                };
                if let Some(answer) = handle(&detector, &metrics, req) {
                    if tx.send(Ok(answer)).await.is_err() {
                        break;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

#[cfg(test)]
mod tests {
    use proto::deadlock::WaitForEntry;

    use super::*;

    fn request(
        tp: DeadlockRequestType,
        txn: u64,
        wait_for_txn: u64,
        key_hash: u64,
    ) -> DeadlockRequest {
        DeadlockRequest {
            tp: tp as i32,
            entry: Some(WaitForEntry {
                txn,
                wait_for_txn,
                key_hash,
                ..Default::default()
            }),
        }
    }

    #[test]
    fn only_a_detect_closing_a_cycle_is_answered_with_the_other_edges() {
        let (detector, metrics) = (Detector::default(), Metrics::new());
        let detect = DeadlockRequestType::Detect;
        assert!(handle(&detector, &metrics, request(detect, 1, 2, 20)).is_none());
        assert!(handle(&detector, &metrics, request(detect, 2, 3, 30)).is_none());
        let answer = handle(&detector, &metrics, request(detect, 3, 1, 10)).expect("deadlock");
        let entry = answer.entry.expect("the request's entry");
        assert_eq!((entry.txn, entry.wait_for_txn, entry.key_hash), (3, 1, 10));
        assert_eq!(answer.deadlock_key_hash, 30);
        let chain: Vec<_> = answer
            .wait_chain
            .iter()
            .map(|e| (e.txn, e.wait_for_txn))
            .collect();
        assert_eq!(chain, vec![(1, 2), (2, 3)]);
        assert_eq!(metrics.deadlocks.get(), 1);
        assert!(metrics.render().contains("shoal_pd_deadlocks_total 1"));

        // Clean-ups are not answered; after them the same wait is no deadlock.
        let clean = DeadlockRequestType::CleanUpWaitFor;
        assert!(handle(&detector, &metrics, request(clean, 2, 3, 30)).is_none());
        assert!(handle(&detector, &metrics, request(detect, 3, 1, 10)).is_none());
        let clean_all = DeadlockRequestType::CleanUp;
        assert!(handle(&detector, &metrics, request(clean_all, 3, 0, 0)).is_none());
        assert_eq!(detector.entries().len(), 1);
        // A request without an entry or of an unknown type changes nothing.
        let empty = DeadlockRequest { tp: 0, entry: None };
        assert!(handle(&detector, &metrics, empty).is_none());
        let mut unknown = request(detect, 2, 1, 1);
        unknown.tp = 9;
        assert!(handle(&detector, &metrics, unknown).is_none());
        assert_eq!(detector.entries().len(), 1);
    }
}
