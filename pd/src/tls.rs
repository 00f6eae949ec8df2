//! PD's TLS: `[security]` loaded once at start, and the HTTP API port served over it.

use std::sync::Arc;

use security::rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::{error, info};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::state::PdState;
use crate::ShutdownSignal;

/// The server TLS config of `[security]`, or `None` when TLS is off. A bad file is an error
/// naming it.
pub(crate) fn server_config(cfg: &Config) -> Result<Option<Arc<ServerConfig>>> {
    let material = security::TlsMaterial::load(&cfg.security).map_err(security_error)?;
    material
        .map(|m| security::server::server_config(&m).map_err(security_error))
        .transpose()
}

fn security_error(e: security::SecurityError) -> Error {
    Error::Config(format!("[security] {e}"))
}

/// Serves the HTTP API on `listener` over TLS (client certificates required) until
/// `shutdown` fires. tonic's server carries the router, as on the gRPC port, so HTTP/1.1
/// and HTTP/2 both work.
pub(crate) fn serve_http(
    state: Arc<PdState>,
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    shutdown: ShutdownSignal,
) -> JoinHandle<()> {
    let app = crate::http::router(state).fallback(crate::http::unknown_path);
    tokio::spawn(async move {
        let result = tonic::transport::Server::builder()
            .accept_http1(true)
            .add_routes(tonic::service::Routes::from(app))
            .serve_with_incoming_shutdown(
                security::server::incoming(listener, tls),
                shutdown.wait(),
            )
            .await;
        match result {
            Ok(()) => info!("HTTPS server stopped"),
            Err(e) => error!(%e, "HTTPS server failed"),
        }
    })
}
