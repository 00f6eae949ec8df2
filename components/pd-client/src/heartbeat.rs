//! The region heartbeat stream: one long-lived bidi stream to PD's leader, reopened with
//! backoff whenever it breaks. While it is down only the latest heartbeat of each region is
//! kept, and those go out first once it is back.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use proto::pdpb::{ErrorType, RegionHeartbeatRequest, RegionHeartbeatResponse};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::client::PdClient;
use crate::header::request_header;

const RECONNECT_BASE: Duration = Duration::from_millis(100);
const RECONNECT_CAP: Duration = Duration::from_secs(3);

/// Hands region heartbeats to the stream task. Cheap to clone; the stream ends when every
/// sender is dropped.
#[derive(Clone, Debug)]
pub struct RegionHeartbeatSender {
    tx: UnboundedSender<RegionHeartbeatRequest>,
    cluster_id: u64,
    sessions: Arc<AtomicU32>,
}

impl RegionHeartbeatSender {
    /// Queues a heartbeat (stamping the cluster id); never blocks.
    pub fn send(&self, mut req: RegionHeartbeatRequest) {
        req.header = request_header(self.cluster_id);
        if self.tx.send(req).is_err() {
            debug!("region heartbeat stream is gone");
        }
    }

    /// How many times the stream has been opened so far (0 before the first; wraps around).
    /// A new value means a PD that may not have heard the reports sent before: PD ties a
    /// stream to a store only when a region report arrives on it.
    pub fn session(&self) -> u32 {
        self.sessions.load(Ordering::Acquire)
    }
}

pub(crate) fn start(
    client: PdClient,
) -> (
    RegionHeartbeatSender,
    UnboundedReceiver<RegionHeartbeatResponse>,
) {
    let (req_tx, req_rx) = mpsc::unbounded_channel();
    let (resp_tx, resp_rx) = mpsc::unbounded_channel();
    let sessions = Arc::new(AtomicU32::new(0));
    let sender = RegionHeartbeatSender {
        tx: req_tx,
        cluster_id: client.cluster_id(),
        sessions: sessions.clone(),
    };
    let runtime = client.inner.runtime.clone();
    runtime.spawn(run(client, req_rx, resp_tx, sessions));
    (sender, resp_rx)
}

/// Latest heartbeat per region, kept while the stream is down.
type Pending = BTreeMap<u64, RegionHeartbeatRequest>;

fn region_id(req: &RegionHeartbeatRequest) -> u64 {
    req.region.as_ref().map_or(0, |r| r.id)
}

/// Why one connected session of the stream ended.
enum SessionEnd {
    /// Every sender is gone: the task is done.
    SendersGone,
    /// The stream broke; reconnect.
    Broken,
}

async fn run(
    client: PdClient,
    mut req_rx: UnboundedReceiver<RegionHeartbeatRequest>,
    resp_tx: UnboundedSender<RegionHeartbeatResponse>,
    sessions: Arc<AtomicU32>,
) {
    let mut pending = Pending::new();
    let mut backoff = Backoff::new(RECONNECT_BASE, RECONNECT_CAP);
    loop {
        let (generation, mut stub) = client.current();
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let open_timeout = client.config().connect_timeout + client.config().request_timeout;
        let opened = tokio::time::timeout(
            open_timeout,
            stub.region_heartbeat(UnboundedReceiverStream::new(out_rx)),
        )
        .await;
        match opened {
            Ok(Ok(resp)) => {
                let opened = sessions.fetch_add(1, Ordering::AcqRel).wrapping_add(1);
                info!(session = opened, "region heartbeat stream open");
                backoff.reset();
                for (_, req) in std::mem::take(&mut pending) {
                    let _ = out_tx.send(req);
                }
                let inbound = resp.into_inner();
                match session(&mut req_rx, &out_tx, inbound, &resp_tx, &mut pending).await {
                    SessionEnd::SendersGone => return,
                    SessionEnd::Broken => {}
                }
            }
            Ok(Err(status)) => warn!(%status, "cannot open region heartbeat stream"),
            Err(_) => warn!(after = ?open_timeout, "opening region heartbeat stream timed out"),
        }
        // Wait before reconnecting, still taking heartbeats so senders never block.
        let wait = tokio::time::sleep(backoff.next_delay());
        tokio::pin!(wait);
        loop {
            tokio::select! {
                _ = &mut wait => break,
                req = req_rx.recv() => match req {
                    Some(req) => { pending.insert(region_id(&req), req); }
                    None => return,
                },
            }
        }
        if let Err(e) = client.reconnect(generation).await {
            warn!(error = %e, "pd rediscovery for the heartbeat stream failed");
        }
    }
}

/// Pumps heartbeats out and responses in until the stream breaks or the senders are gone.
async fn session(
    req_rx: &mut UnboundedReceiver<RegionHeartbeatRequest>,
    out_tx: &UnboundedSender<RegionHeartbeatRequest>,
    mut inbound: tonic::Streaming<RegionHeartbeatResponse>,
    resp_tx: &UnboundedSender<RegionHeartbeatResponse>,
    pending: &mut Pending,
) -> SessionEnd {
    loop {
        tokio::select! {
            req = req_rx.recv() => match req {
                Some(req) => {
                    if let Err(lost) = out_tx.send(req) {
                        pending.insert(region_id(&lost.0), lost.0);
                        return SessionEnd::Broken;
                    }
                }
                None => return SessionEnd::SendersGone,
            },
            msg = inbound.message() => match msg {
                Ok(Some(resp)) => deliver(resp, resp_tx),
                Ok(None) => {
                    warn!("pd closed the region heartbeat stream");
                    return SessionEnd::Broken;
                }
                Err(status) => {
                    warn!(%status, "region heartbeat stream broke");
                    return SessionEnd::Broken;
                }
            },
        }
    }
}

fn deliver(resp: RegionHeartbeatResponse, resp_tx: &UnboundedSender<RegionHeartbeatResponse>) {
    if let Some(err) = resp.header.as_ref().and_then(|h| h.error.as_ref()) {
        let kind = ErrorType::try_from(err.r#type).unwrap_or(ErrorType::Unknown);
        if kind != ErrorType::Ok {
            warn!(?kind, message = %err.message, region_id = resp.region_id, "pd heartbeat error");
            return;
        }
    }
    // Nobody listening is fine: the store may not act on operators.
    let _ = resp_tx.send(resp);
}
