//! Assembles a running store: data directory, PD, identity, raftstore, the gRPC server
//! (client API and raft streams), the status server and the PD heartbeat plumbing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pd_client::PdClient;
use raftstore::{SplitPolicy, Store};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::Config;
use crate::dir_lock::DirLock;
use crate::errors::ServerError;
use crate::gc_worker::{self, GcConfig};
use crate::startup::{self, Running};
use crate::status::StatusSource;

/// How long shutdown waits for in-flight gRPC calls (raft streams never finish on their own).
const GRPC_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A serving store. Dropping it without `shutdown` leaves the store to stop on drop.
pub struct ServerHandle {
    pub store_id: u64,
    pub cluster_id: u64,
    /// The address other stores and clients dial.
    pub advertise_addr: String,
    /// Where the gRPC server is bound.
    pub grpc_addr: SocketAddr,
    /// Where the status server is bound.
    pub status_addr: SocketAddr,
    store: Arc<Store>,
    pd: PdClient,
    grpc: Option<Running<Result<(), tonic::transport::Error>>>,
    status: Option<Running<std::io::Result<()>>>,
    operators: JoinHandle<()>,
    gc_worker: JoinHandle<()>,
    _lock: DirLock,
}

/// Sets up a store before it starts: its config, and what a program embedding the store can
/// plug in (a split policy of its own instead of the built-in one the config names).
///
/// ```no_run
/// # async fn run(cfg: server::Config, policy: std::sync::Arc<dyn raftstore::SplitPolicy>)
/// # -> Result<(), server::ServerError> {
/// let handle = server::ServerHandle::builder(cfg).split_policy(policy).start().await?;
/// println!("{}", handle.ready_line());
/// # Ok(()) }
/// ```
pub struct ServerBuilder {
    cfg: Config,
    split_policy: Option<Arc<dyn SplitPolicy>>,
}

impl ServerBuilder {
    /// Leaders ask `policy` where their regions should split, instead of the config's
    /// `[raftstore.split-policy]`.
    pub fn split_policy(mut self, policy: Arc<dyn SplitPolicy>) -> ServerBuilder {
        self.split_policy = Some(policy);
        self
    }

    /// Starts the store. Runs inside the tokio runtime that will serve gRPC; returns once
    /// the store serves. Errors: a bad config, a data directory in use or of another cluster,
    /// PD unreachable, an address that cannot be bound, engines that do not open.
    pub async fn start(self) -> Result<ServerHandle, ServerError> {
        ServerHandle::start_with(self.cfg, self.split_policy).await
    }
}

impl ServerHandle {
    /// A builder for a store as `cfg` describes (see [`ServerBuilder`]).
    pub fn builder(cfg: Config) -> ServerBuilder {
        ServerBuilder {
            cfg,
            split_policy: None,
        }
    }

    /// Starts a store as `cfg` describes, with the built-in split policy it names. Runs
    /// inside the tokio runtime that will serve gRPC; returns once the store serves.
    pub async fn start(cfg: Config) -> Result<ServerHandle, ServerError> {
        ServerHandle::builder(cfg).start().await
    }

    /// Brings the store up in named steps (see `startup`): open the data directory, join
    /// the cluster, start the raftstore, then serve gRPC and status.
    async fn start_with(
        cfg: Config,
        split_policy: Option<Arc<dyn SplitPolicy>>,
    ) -> Result<ServerHandle, ServerError> {
        cfg.validate()?;
        let started = Instant::now();
        crate::metrics::register_unlabelled();
        crate::kv::metrics::register_unlabelled();
        let raft_cfg = cfg.raftstore_config()?;
        let data = startup::open_data_dir(&cfg).await?;
        let member = startup::join_cluster(&cfg, &data).await?;
        let (store, operators) = startup::start_store(
            &cfg,
            raft_cfg,
            data.engines,
            &member.pd,
            split_policy,
            member.tls.as_ref(),
        )
        .await?;
        let gc_worker = gc_worker::spawn(
            store.clone(),
            member.pd.clone(),
            GcConfig {
                poll_interval: cfg.gc.poll_interval,
                batch_keys: cfg.gc.batch_keys,
                request_timeout: cfg.pd.request_timeout,
                api: cfg.storage.api()?,
            },
        );
        let grpc = startup::serve_grpc(
            &cfg,
            store.clone(),
            &member.pd,
            member.grpc_listener,
            member.tls.as_ref(),
        );
        let status = startup::serve_status(
            StatusSource {
                store: store.clone(),
                cluster_id: member.pd.cluster_id(),
                address: member.advertise_addr.clone(),
                started,
            },
            member.status_listener,
            member.tls.as_ref(),
        );
        info!(
            store_id = member.store_id,
            cluster_id = member.pd.cluster_id(),
            addr = %member.advertise_addr,
            status = %member.status_addr,
            "store serving"
        );
        Ok(ServerHandle {
            store_id: member.store_id,
            cluster_id: member.pd.cluster_id(),
            advertise_addr: member.advertise_addr,
            grpc_addr: member.grpc_addr,
            status_addr: member.status_addr,
            store,
            pd: member.pd,
            grpc: Some(grpc),
            status: Some(status),
            operators,
            gc_worker,
            _lock: data.lock,
        })
    }

    /// The line a supervisor waits for once the store serves.
    pub fn ready_line(&self) -> String {
        format!(
            "STORE_READY store_id={} addr={} status={}",
            self.store_id, self.advertise_addr, self.status_addr
        )
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn pd(&self) -> &PdClient {
        &self.pd
    }

    /// Stops accepting gRPC calls, stops the store (its threads finish their work and the
    /// engines stay consistent on disk), then the status server.
    pub async fn shutdown(mut self) {
        if let Some((stop, task)) = self.grpc.take() {
            let _ = stop.send(());
            match tokio::time::timeout(GRPC_DRAIN_TIMEOUT, task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => warn!(error = %e, "gRPC server ended with an error"),
                Ok(Err(e)) => warn!(error = %e, "gRPC server task failed"),
                Err(_) => info!("gRPC streams still open after the drain timeout; closing"),
            }
        }
        self.operators.abort();
        self.gc_worker.abort();
        let store = self.store.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || store.stop()).await {
            warn!(error = %e, "stopping the store failed");
        }
        if let Some((stop, task)) = self.status.take() {
            let _ = stop.send(());
            if let Ok(Ok(Err(e))) = tokio::time::timeout(GRPC_DRAIN_TIMEOUT, task).await {
                warn!(error = %e, "status server ended with an error");
            }
        }
        info!(store_id = self.store_id, "store stopped");
    }
}
