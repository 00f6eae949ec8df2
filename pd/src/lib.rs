//! Shoal's placement driver. It bootstraps the cluster, hands out ids and timestamps, keeps the
//! region tree from store and region heartbeats, and schedules operators (replica repair,
//! leader and region balance, splits at keyspace boundaries), and detects deadlocks between
//! pessimistic transactions' lock waits (`deadlock`). It speaks `pdpb.PD`,
//! `keyspacepb.Keyspace` and `deadlock.Deadlock` over gRPC and a JSON API over HTTP, and keeps
//! its metadata in its own RocksDB.
//!
//! Embedding: `PdServer::start(config).await` returns a `RunningPd` with the bound addresses;
//! `RunningPd::shutdown` stops it and closes its storage.

pub mod cluster;
pub mod config;
pub mod deadlock;
pub mod error;
mod grpc;
pub mod heatmap;
pub mod hex;
mod http;
pub mod id;
pub mod metrics;
pub mod schedule;
mod scheduling;
mod shutdown;
pub mod state;
pub mod storage;
mod streams;
mod tls;
pub mod tso;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

pub use config::{Config, ScheduleConfig};
pub use error::{Error, Result};
pub use shutdown::ShutdownSignal;
pub use state::PdState;

use shutdown::{shutdown_pair, ShutdownTrigger};

/// How long shutdown waits for each server task before abandoning it (a client that never
/// answers the server's goodbye would otherwise hold the gRPC server open).
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts PD servers.
pub struct PdServer;

/// A started PD: its addresses, its state, and the way to stop it.
pub struct RunningPd {
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    client_url: String,
    state: Arc<PdState>,
    trigger: ShutdownTrigger,
    tasks: Vec<JoinHandle<()>>,
}

async fn bind(addr: &str, what: &str) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Transport(format!("cannot listen for {what} on {addr}: {e}")))
}

impl PdServer {
    /// Validates `config`, opens the data dir, binds gRPC and HTTP and starts serving and
    /// scheduling on the current tokio runtime.
    pub async fn start(config: Config) -> Result<RunningPd> {
        config.validate()?;
        let tls = tls::server_config(&config)?;
        let scheme = security::client::scheme(tls.is_some());
        let grpc_listen = config::host_port_of_url(&config.client_urls)?;
        let grpc_listener = bind(&grpc_listen, "gRPC").await?;
        let grpc_addr = grpc_listener.local_addr()?;
        let http_listener = bind(&config.http_addr, "HTTP").await?;
        let http_addr = http_listener.local_addr()?;
        let client_url = if !config.advertise_client_urls.is_empty() {
            format!(
                "{scheme}://{}",
                config::host_port_of_url(&config.advertise_client_urls)?
            )
        } else if grpc_listen.ends_with(":0") {
            format!("{scheme}://{grpc_addr}")
        } else {
            format!("{scheme}://{grpc_listen}")
        };

        let state = Arc::new(PdState::open(&config, client_url.clone())?);
        let (trigger, signal) = shutdown_pair();
        let tasks = vec![
            grpc::serve(
                state.clone(),
                grpc_listener,
                config.max_grpc_message_size,
                http::router(state.clone()),
                signal.clone(),
                tls.clone(),
            ),
            match tls {
                Some(tls) => tls::serve_http(state.clone(), http_listener, tls, signal.clone()),
                None => http::serve(state.clone(), http_listener, signal.clone()),
            },
            spawn_scheduler(state.clone(), signal),
        ];
        info!(%grpc_addr, %http_addr, %client_url, cluster_id = state.cluster_id, "PD serving");
        Ok(RunningPd {
            grpc_addr,
            http_addr,
            client_url,
            state,
            trigger,
            tasks,
        })
    }
}

/// Runs a scheduling round every `schedule-interval` (read each time, so changes apply).
fn spawn_scheduler(state: Arc<PdState>, shutdown: ShutdownSignal) -> JoinHandle<()> {
    tokio::spawn(async move {
        let stop = shutdown.wait();
        tokio::pin!(stop);
        let mut rotation = 0usize;
        loop {
            let interval = state.schedule_config().schedule_interval;
            tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep(interval) => {}
            }
            let tick_state = state.clone();
            let round = rotation;
            // Tree walks and disk writes stay off the async workers.
            match tokio::task::spawn_blocking(move || tick_state.schedule_tick(round)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warn!(%e, "scheduling round failed"),
                Err(e) => error!(%e, "scheduling round panicked"),
            }
            rotation = rotation.wrapping_add(1);
        }
    })
}

impl RunningPd {
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The URL clients are told to use (GetMembers).
    pub fn client_url(&self) -> &str {
        &self.client_url
    }

    pub fn cluster_id(&self) -> u64 {
        self.state.cluster_id
    }

    pub fn state(&self) -> &Arc<PdState> {
        &self.state
    }

    /// The line `shoal-pd` prints once it serves.
    pub fn ready_line(&self) -> String {
        format!("PD_READY grpc={} http={}", self.grpc_addr, self.http_addr)
    }

    /// Stops serving and scheduling, then makes the storage durable and closes it.
    pub async fn shutdown(mut self) -> Result<()> {
        self.trigger.fire();
        for task in self.tasks.drain(..) {
            let abort = task.abort_handle();
            if tokio::time::timeout(STOP_TIMEOUT, task).await.is_err() {
                warn!("a PD task did not stop in time; aborting it");
                abort.abort();
            }
        }
        self.state.storage.close()?;
        info!("PD stopped");
        Ok(())
    }
}

impl Drop for RunningPd {
    fn drop(&mut self) {
        self.trigger.fire();
    }
}
