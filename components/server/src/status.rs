//! The status HTTP server: `GET /metrics` (Prometheus text) and `GET /status` (JSON).

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use prometheus::Encoder;
use raftstore::Store;
use serde::Serialize;

/// What `/status` reports.
pub struct StatusSource {
    pub store: Arc<Store>,
    pub cluster_id: u64,
    pub address: String,
    pub started: Instant,
}

/// The body of `GET /status`.
#[derive(Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct StatusReport {
    pub store_id: u64,
    pub cluster_id: u64,
    pub address: String,
    pub version: String,
    pub uptime_secs: u64,
    pub region_count: usize,
    pub leader_count: usize,
}

impl StatusSource {
    pub fn report(&self) -> StatusReport {
        let meta = self.store.meta().lock();
        StatusReport {
            store_id: self.store.store_id(),
            cluster_id: self.cluster_id,
            address: self.address.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_secs: self.started.elapsed().as_secs(),
            region_count: meta.region_count(),
            leader_count: meta.leader_count(),
        }
    }
}

pub fn router(source: Arc<StatusSource>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .with_state(source)
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    source: Arc<StatusSource>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(source))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serves over TLS (client certificates required, see `security::server`) until `shutdown`
/// resolves. tonic's server carries the router: it speaks HTTP/1.1 and HTTP/2 over the TLS
/// connections as the plaintext server does over TCP.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    source: Arc<StatusSource>,
    tls: Arc<security::rustls::ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tonic::transport::Server::builder()
        .accept_http1(true)
        .add_routes(tonic::service::Routes::from(router(source)))
        .serve_with_incoming_shutdown(security::server::incoming(listener, tls), shutdown)
        .await
        .map_err(std::io::Error::other)
}

/// Adds the process's CPU seconds, resident and virtual memory, open files and threads
/// (`process_*`) to the default registry, once per process (several stores in one test
/// process share it), and says whether they are there. On Linux the `prometheus` crate's
/// `process` feature usually registers the same collector in the default registry first;
/// that is not a failure.
fn process_metrics_registered() -> bool {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *REGISTERED.get_or_init(|| {
        let collector = process_metrics::ProcessMetrics::for_self();
        match prometheus::register(Box::new(collector)) {
            Ok(()) | Err(prometheus::Error::AlreadyReg) => true,
            Err(e) => {
                tracing::warn!("process metrics unavailable: {e}");
                false
            }
        }
    })
}

async fn metrics() -> impl IntoResponse {
    process_metrics_registered();
    let encoder = prometheus::TextEncoder::new();
    let mut body = Vec::new();
    match encoder.encode(&prometheus::gather(), &mut body) {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, encoder.format_type().to_string())],
            body,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain".to_string())],
            e.to_string().into_bytes(),
        ),
    }
}

async fn status(State(source): State<Arc<StatusSource>>) -> Json<StatusReport> {
    Json(source.report())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_metrics_are_registered_once_without_complaint() {
        assert!(process_metrics_registered());
        assert!(process_metrics_registered());
        let cpu = prometheus::gather()
            .into_iter()
            .filter(|f| f.get_name() == "process_cpu_seconds_total")
            .count();
        assert_eq!(cpu, 1, "process_cpu_seconds_total gathered {cpu} times");
    }
}
