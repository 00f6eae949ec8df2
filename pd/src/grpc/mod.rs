//! PD's gRPC server: `pdpb.PD`, `keyspacepb.Keyspace` and the cluster's deadlock detector
//! (`deadlock.Deadlock`) over plain HTTP/2, and on the same address the HTTP JSON API
//! (`/pd/api/v1/...`, `/metrics`) over HTTP/1.1 or HTTP/2, as PD serves both on its client
//! URL: requests are routed by path (gRPC methods live under `/<package>.<Service>/`).

mod deadlock_service;
mod header;
mod keyspace_service;
mod pd_service;
mod streams;

use std::sync::Arc;

use proto::deadlock::deadlock_server::DeadlockServer;
use proto::keyspacepb::keyspace_server::KeyspaceServer;
use proto::pdpb::pd_server::PdServer as PdGrpcServer;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::StreamExt;
use tonic::service::Routes;
use tracing::{error, info};

pub use deadlock_service::DeadlockService;
pub use keyspace_service::KeyspaceService;
pub use pd_service::PdService;

use crate::deadlock::Detector;
use crate::state::PdState;
use crate::ShutdownSignal;

/// Serves gRPC, and `http` (the JSON API's router), on `listener` until `shutdown` fires;
/// over TLS with client certificates required when `tls` is given.
pub fn serve(
    state: Arc<PdState>,
    listener: TcpListener,
    max_message_size: usize,
    http: axum::Router,
    shutdown: ShutdownSignal,
    tls: Option<Arc<security::rustls::ServerConfig>>,
) -> JoinHandle<()> {
    let pd = PdGrpcServer::new(PdService::new(state.clone(), shutdown.clone()))
        .max_decoding_message_size(max_message_size)
        .max_encoding_message_size(max_message_size);
    // The wait-for graph lives as long as this server: a restarted PD starts empty, and the
    // waits it forgot end by their stores' lock-wait timeouts.
    let deadlock = DeadlockServer::new(DeadlockService::new(
        Arc::new(Detector::default()),
        state.metrics.clone(),
        shutdown.clone(),
    ))
    .max_decoding_message_size(max_message_size)
    .max_encoding_message_size(max_message_size);
    let keyspace = KeyspaceServer::new(KeyspaceService::new(state))
        .max_decoding_message_size(max_message_size)
        .max_encoding_message_size(max_message_size);
    let routes = Routes::new(pd)
        .add_service(keyspace)
        .add_service(deadlock)
        .into_axum_router()
        .merge(http)
        .fallback(crate::http::unknown_path);
    let server = tonic::transport::Server::builder()
        .accept_http1(true)
        .add_routes(Routes::from(routes));
    tokio::spawn(async move {
        let result = match tls {
            Some(tls) => {
                let incoming = security::server::incoming(listener, tls);
                server
                    .serve_with_incoming_shutdown(incoming, shutdown.wait())
                    .await
            }
            None => {
                // Small request/response exchanges (TSO, heartbeats) must not wait for Nagle.
                let incoming = TcpListenerStream::new(listener).map(|conn| {
                    let conn = conn?;
                    conn.set_nodelay(true)?;
                    Ok::<_, std::io::Error>(conn)
                });
                server
                    .serve_with_incoming_shutdown(incoming, shutdown.wait())
                    .await
            }
        };
        match result {
            Ok(()) => info!("gRPC server stopped"),
            Err(e) => error!(%e, "gRPC server failed"),
        }
    })
}
