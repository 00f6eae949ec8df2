//! Assembles a running store: data directory, PD, identity, raftstore, the gRPC server
//! (client API and raft streams), the status server and the PD heartbeat plumbing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pd_client::PdClient;
use proto::metapb::{self, StoreState};
use proto::tikvpb::tikv_server::TikvServer;
use raftstore::store::StoreDeps;
use raftstore::{SplitPolicy, Store};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::{Stream, StreamExt};
use tracing::{info, warn};

use crate::bootstrap;
use crate::config::Config;
use crate::dir_lock::DirLock;
use crate::errors::ServerError;
use crate::kv::{KvConfig, KvService};
use crate::node::{self, DataDirs};
use crate::operator;
use crate::pd_adapter::PdAdapter;
use crate::status::{self, StatusSource};
use crate::transport::{PdStoreResolver, RaftTransport, TransportConfig};

/// How long shutdown waits for in-flight gRPC calls (raft streams never finish on their own).
const GRPC_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for PD's split ids.
const SPLIT_ID_TIMEOUT: Duration = Duration::from_secs(10);

/// A background server: the signal that stops it and the task serving.
type Running<T> = (oneshot::Sender<()>, JoinHandle<T>);

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
    _lock: DirLock,
}

async fn bind(what: &'static str, addr: &str) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind {
            what,
            addr: addr.to_string(),
            source,
        })
}

/// The address to advertise: the configured one, else the bound one.
fn advertised(configured: &str, bound: SocketAddr) -> String {
    if configured.is_empty() {
        bound.to_string()
    } else {
        configured.to_string()
    }
}

/// The status address PD records: the bound one, with the advertised host when bound to
/// every interface.
fn advertised_status(bound: SocketAddr, advertise_addr: &str) -> String {
    if !bound.ip().is_unspecified() {
        return bound.to_string();
    }
    match advertise_addr.rsplit_once(':') {
        Some((host, _)) => format!("{host}:{}", bound.port()),
        None => bound.to_string(),
    }
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

    async fn start_with(
        cfg: Config,
        split_policy: Option<Arc<dyn SplitPolicy>>,
    ) -> Result<ServerHandle, ServerError> {
        cfg.validate()?;
        let started = Instant::now();
        let raft_cfg = cfg.raftstore_config()?;
        let dirs = DataDirs::new(&cfg.storage.data_dir);
        dirs.create()?;
        let lock = DirLock::acquire(&dirs.root)?;
        cfg.write_effective(&dirs.root)?;
        let (kv, raft_engine) = {
            let dirs = dirs.clone();
            tokio::task::spawn_blocking(move || dirs.open_engines())
                .await
                .map_err(|e| ServerError::Engine(engine::Error::Io(std::io::Error::other(e))))??
        };

        let pd = node::connect_pd(&cfg.pd).await?;
        let store_id = bootstrap::ensure_store_id(&kv, &pd, &dirs.root).await?;

        let grpc_listener = bind("gRPC address", &cfg.server.addr).await?;
        let grpc_addr = local_addr(&grpc_listener, "gRPC address")?;
        let advertise_addr = advertised(&cfg.server.advertise_addr, grpc_addr);
        let status_listener = bind("status address", &cfg.server.status_addr).await?;
        let status_addr = local_addr(&status_listener, "status address")?;

        let store_meta = metapb::Store {
            id: store_id,
            address: advertise_addr.clone(),
            state: StoreState::Up as i32,
            version: env!("CARGO_PKG_VERSION").to_string(),
            peer_address: advertise_addr.clone(),
            status_address: advertised_status(status_addr, &advertise_addr),
            start_timestamp: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
            deploy_path: dirs.root.display().to_string(),
            ..Default::default()
        };
        bootstrap::ensure_cluster(&kv, &raft_engine, &pd, &store_meta).await?;
        match pd.put_store(store_meta.clone()).await {
            Ok(()) => {}
            Err(pd_client::Error::Pd {
                kind: proto::pdpb::ErrorType::StoreTombstone,
                message,
            }) => return Err(ServerError::StoreTombstone { store_id, message }),
            Err(e) => return Err(e.into()),
        }

        let runtime = tokio::runtime::Handle::current();
        let snap_dir = raftstore::snap::snap_dir(&kv);
        let transport = Arc::new(RaftTransport::new(
            TransportConfig {
                max_message_size: cfg.server.max_grpc_message_size,
                ..TransportConfig::default()
            },
            snap_dir.clone(),
            Arc::new(PdStoreResolver::new(pd.clone())),
            runtime.clone(),
        ));
        let (heartbeats, operator_steps) = pd.region_heartbeats();
        let adapter = Arc::new(PdAdapter::new(
            pd.clone(),
            runtime.clone(),
            heartbeats,
            SPLIT_ID_TIMEOUT,
        ));
        let store = {
            let deps = StoreDeps {
                pd: adapter,
                split_policy,
            };
            tokio::task::spawn_blocking(move || {
                Store::start(raft_cfg, kv, raft_engine, transport, deps)
            })
            .await
            .map_err(|e| ServerError::Engine(engine::Error::Io(std::io::Error::other(e))))??
        };
        let store = Arc::new(store);
        let operators = tokio::spawn(operator::dispatch_operators(store.clone(), operator_steps));

        let kv_service = KvService::new(store.clone(), snap_dir, KvConfig::default());
        let max_msg = cfg.server.max_grpc_message_size;
        let (grpc_stop, grpc_stopped) = oneshot::channel::<()>();
        let grpc_server = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(10)))
            .http2_keepalive_timeout(Some(Duration::from_secs(3)))
            .add_service(
                TikvServer::new(kv_service)
                    .max_decoding_message_size(max_msg)
                    .max_encoding_message_size(max_msg),
            )
            .serve_with_incoming_shutdown(nodelay_incoming(grpc_listener), async {
                let _ = grpc_stopped.await;
            });
        let grpc_task = tokio::spawn(grpc_server);

        let (status_stop, status_stopped) = oneshot::channel::<()>();
        let source = Arc::new(StatusSource {
            store: store.clone(),
            cluster_id: pd.cluster_id(),
            address: advertise_addr.clone(),
            started,
        });
        let status_task = tokio::spawn(status::serve(status_listener, source, async {
            let _ = status_stopped.await;
        }));

        info!(
            store_id,
            cluster_id = pd.cluster_id(),
            addr = %advertise_addr,
            status = %status_addr,
            "store serving"
        );
        Ok(ServerHandle {
            store_id,
            cluster_id: pd.cluster_id(),
            advertise_addr,
            grpc_addr,
            status_addr,
            store,
            pd,
            grpc: Some((grpc_stop, grpc_task)),
            status: Some((status_stop, status_task)),
            operators,
            _lock: lock,
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

fn local_addr(l: &TcpListener, what: &'static str) -> Result<SocketAddr, ServerError> {
    l.local_addr().map_err(|source| ServerError::Bind {
        what,
        addr: "bound socket".into(),
        source,
    })
}

/// Accepted connections with Nagle's algorithm off. tonic's own `tcp_nodelay` only applies to
/// listeners it binds itself; without this, a small response waits for the client's delayed
/// ACK (~40 ms on Linux) whenever an earlier segment is still unacknowledged.
fn nodelay_incoming(
    listener: TcpListener,
) -> impl Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    TcpListenerStream::new(listener).map(|conn| {
        let conn = conn?;
        conn.set_nodelay(true)?;
        Ok(conn)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_connections_have_nagle_off() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut incoming = Box::pin(nodelay_incoming(listener));
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let accepted = incoming.next().await.unwrap().unwrap();
        assert!(accepted.nodelay().unwrap());
    }
}
