//! The two streaming RPCs: TSO (answers in request order) and region heartbeats (answers are
//! operator steps, which the scheduler may also push at any time).

use std::future;
use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use proto::pdpb::{
    RegionHeartbeatRequest, RegionHeartbeatResponse, Timestamp, TsoRequest, TsoResponse,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};
use tracing::debug;

use super::header::{error_header, ok_header};
use crate::state::PdState;
use crate::ShutdownSignal;

/// Responses a heartbeat stream may queue before new steps for it are dropped (and re-sent
/// later).
const HEARTBEAT_QUEUE: usize = 1024;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Answers each TSO request in order until the client closes the stream or PD shuts down.
pub fn tso(
    state: Arc<PdState>,
    inbound: Streaming<TsoRequest>,
    shutdown: ShutdownSignal,
) -> BoxStream<TsoResponse> {
    let stream = inbound
        .take_until(shutdown.wait())
        // A broken request stream ends the response stream.
        .scan((), |_, item| future::ready(item.ok()))
        .map(move |req| tso_response(&state, &req))
        .map(Ok);
    Box::pin(stream)
}

fn tso_response(state: &PdState, req: &TsoRequest) -> TsoResponse {
    let result = state
        .check_header(req.header.as_ref())
        .and_then(|()| state.tso.next(req.count));
    match result {
        Ok(ts) => {
            state.metrics.tso_timestamps.inc_by(u64::from(req.count));
            TsoResponse {
                header: ok_header(state.cluster_id),
                count: req.count,
                timestamp: Some(Timestamp {
                    physical: ts.physical as i64,
                    logical: ts.logical as i64,
                    suffix_bits: 0,
                }),
            }
        }
        Err(err) => {
            debug!(%err, "timestamp request failed");
            TsoResponse {
                header: error_header(state.cluster_id, &err),
                count: 0,
                timestamp: None,
            }
        }
    }
}

/// Reads a store's region heartbeats on a task of its own and answers with operator steps.
/// The stream is registered under the reporting store so the scheduler can push steps to it.
pub fn region_heartbeat(
    state: Arc<PdState>,
    mut inbound: Streaming<RegionHeartbeatRequest>,
    shutdown: ShutdownSignal,
) -> BoxStream<RegionHeartbeatResponse> {
    let (tx, rx) = mpsc::channel(HEARTBEAT_QUEUE);
    let stream_id = state.streams.new_stream_id();
    let stop = shutdown.clone().wait();
    tokio::spawn(async move {
        tokio::pin!(stop);
        let mut store_id = None;
        loop {
            let item = tokio::select! {
                _ = &mut stop => break,
                item = inbound.next() => item,
            };
            let req = match item {
                Some(Ok(req)) => req,
                Some(Err(status)) => {
                    debug!(%status, "region heartbeat stream broke");
                    break;
                }
                None => break,
            };
            if let Some(leader) = req.leader {
                if store_id != Some(leader.store_id) {
                    if let Some(old) = store_id {
                        state.streams.unregister(old, stream_id);
                    }
                    state
                        .streams
                        .register(leader.store_id, stream_id, tx.clone());
                    store_id = Some(leader.store_id);
                }
            }
            let reply = match state.handle_region_heartbeat(&req) {
                Ok(reply) => reply,
                Err(err) => {
                    debug!(%err, "region heartbeat refused");
                    Some(RegionHeartbeatResponse {
                        header: error_header(state.cluster_id, &err),
                        ..Default::default()
                    })
                }
            };
            if let Some(resp) = reply {
                if tx.send(Ok(resp)).await.is_err() {
                    break;
                }
            }
        }
        if let Some(store) = store_id {
            state.streams.unregister(store, stream_id);
        }
    });
    Box::pin(ReceiverStream::new(rx).take_until(shutdown.wait()))
}
