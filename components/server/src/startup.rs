//! The steps of a store's start, in order, each with what it hands to the next:
//!
//! 1. `open_data_dir`: create and lock the data directory, record the effective config, open
//!    the KV engine and the raft log.
//! 2. `join_cluster`: connect to PD, get (or recover) the store id, bind the gRPC and status
//!    listeners, bootstrap the cluster if nobody has, and register the store with PD.
//! 3. `start_store`: the raft transport, the PD adapter, and `raftstore::Store::start` with
//!    the split policy; PD's operator steps are dispatched to the store from here on.
//! 4. The GC worker (`gc_worker`), then `serve_grpc` and `serve_status`: the client API and
//!    raft streams, then `/metrics` and `/status`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use engine::{KvEngine, RaftLogEngine};
use pd_client::PdClient;
use proto::metapb::{self, StoreState};
use proto::tikvpb::tikv_server::TikvServer;
use raftstore::StoreDeps;
use raftstore::{SplitPolicy, Store};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::{Stream, StreamExt};

use crate::bootstrap;
use crate::coalesced_io::CoalescedIo;
use crate::config::Config;
use crate::dir_lock::DirLock;
use crate::errors::ServerError;
use crate::kv::{KvConfig, KvService};
use crate::node::{self, DataDirs};
use crate::operator;
use crate::pd_adapter::PdAdapter;
use crate::status::{self, StatusSource};
use crate::tls::StoreTls;
use crate::transport::{PdStoreResolver, RaftTransport, TransportConfig};

/// Longest wait for PD's split ids.
const SPLIT_ID_TIMEOUT: Duration = Duration::from_secs(10);

/// A background server: the signal that stops it and the task serving.
pub(crate) type Running<T> = (oneshot::Sender<()>, JoinHandle<T>);

/// Step 1's result: the locked data directory and its open engines.
pub(crate) struct OpenDataDir {
    pub dirs: DataDirs,
    /// Held for the store's lifetime, so a second process cannot open the same directory.
    pub lock: DirLock,
    pub engines: (KvEngine, RaftLogEngine),
}

/// Step 2's result: the store's identity in the cluster and its bound listeners.
pub(crate) struct ClusterMember {
    pub pd: PdClient,
    pub store_id: u64,
    pub grpc_listener: TcpListener,
    pub grpc_addr: SocketAddr,
    /// The address other stores and clients dial.
    pub advertise_addr: String,
    pub status_listener: TcpListener,
    pub status_addr: SocketAddr,
    /// `[security]` loaded: TLS on every port and link, or `None` for plaintext.
    pub tls: Option<StoreTls>,
}

/// Step 1: the data directory, created, locked and opened. Errors: the directory cannot be
/// created or is locked by another process; the engines do not open.
pub(crate) async fn open_data_dir(cfg: &Config) -> Result<OpenDataDir, ServerError> {
    let dirs = DataDirs::new(&cfg.storage.data_dir);
    dirs.create()?;
    let lock = DirLock::acquire(&dirs.root)?;
    cfg.write_effective(&dirs.root)?;
    let engines = {
        let dirs = dirs.clone();
        let kv_options = cfg.rocksdb.clone();
        let raft_options = cfg.raft_engine.clone();
        tokio::task::spawn_blocking(move || dirs.open_engines(&kv_options, &raft_options))
            .await
            .map_err(|e| ServerError::Engine(engine::Error::Io(std::io::Error::other(e))))??
    };
    Ok(OpenDataDir {
        dirs,
        lock,
        engines,
    })
}

/// Step 2: PD knows the store and where to reach it. Errors: PD unreachable, a data
/// directory of another cluster, an address that cannot be bound, a store PD has removed
/// (`StoreTombstone`).
pub(crate) async fn join_cluster(
    cfg: &Config,
    data: &OpenDataDir,
) -> Result<ClusterMember, ServerError> {
    let (kv, raft_engine) = &data.engines;
    let tls = StoreTls::load(cfg)?;
    let pd = node::connect_pd(&cfg.pd, tls.as_ref().map(|t| t.client.clone())).await?;
    let store_id = bootstrap::ensure_store_id(kv, &pd, &data.dirs.root).await?;

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
        deploy_path: data.dirs.root.display().to_string(),
        ..Default::default()
    };
    let api = cfg.storage.api()?;
    bootstrap::ensure_cluster(kv, raft_engine, &pd, &store_meta, api.version_number()).await?;
    match pd.put_store(store_meta, api.version_number()).await {
        Ok(()) => {}
        Err(pd_client::Error::Pd {
            kind: proto::pdpb::ErrorType::IncompatibleVersion,
            message,
        }) => return Err(ServerError::ApiVersionMismatch { message }),
        Err(pd_client::Error::Pd {
            kind: proto::pdpb::ErrorType::StoreTombstone,
            ..
        }) => return Err(ServerError::StoreTombstone { store_id }),
        Err(e) => return Err(e.into()),
    }
    Ok(ClusterMember {
        pd,
        store_id,
        grpc_listener,
        grpc_addr,
        advertise_addr,
        status_listener,
        status_addr,
        tls,
    })
}

/// Step 3: the raftstore on the engines, talking to other stores over gRPC and to PD through
/// the adapter; returns it with the task that hands PD's operator steps to it.
pub(crate) async fn start_store(
    cfg: &Config,
    raft_cfg: raftstore::Config,
    (kv, raft_engine): (KvEngine, RaftLogEngine),
    pd: &PdClient,
    split_policy: Option<Arc<dyn SplitPolicy>>,
    tls: Option<&StoreTls>,
) -> Result<(Arc<Store>, JoinHandle<()>), ServerError> {
    let runtime = tokio::runtime::Handle::current();
    let transport = Arc::new(RaftTransport::new(
        TransportConfig {
            max_message_size: cfg.server.max_grpc_message_size,
            tls: tls.map(|t| t.client.clone()),
            ..TransportConfig::default()
        },
        raftstore::snap::snap_dir(&kv),
        Arc::new(PdStoreResolver::new(pd.clone())),
        runtime.clone(),
    ));
    let (heartbeats, operator_steps) = pd.region_heartbeats();
    let deps = StoreDeps {
        pd: Arc::new(PdAdapter::new(
            pd.clone(),
            runtime,
            heartbeats,
            SPLIT_ID_TIMEOUT,
        )),
        split_policy,
    };
    let store = tokio::task::spawn_blocking(move || {
        Store::start(raft_cfg, kv, raft_engine, transport, deps)
    })
    .await
    .map_err(|e| ServerError::Engine(engine::Error::Io(std::io::Error::other(e))))??;
    let store = Arc::new(store);
    let operators = tokio::spawn(operator::dispatch_operators(store.clone(), operator_steps));
    Ok((store, operators))
}

/// Step 4a: the client API and the raft streams on the gRPC listener; pessimistic lock waits
/// are reported to the deadlock detector on PD's leader.
pub(crate) fn serve_grpc(
    cfg: &Config,
    store: Arc<Store>,
    pd: &PdClient,
    listener: TcpListener,
    tls: Option<&StoreTls>,
) -> Running<Result<(), tonic::transport::Error>> {
    let snap_dir = raftstore::snap::snap_dir(store.kv());
    let detector_pd = pd.clone();
    let tso_pd = pd.clone();
    let kv_cfg = KvConfig {
        lock_wait_timeout: cfg.pessimistic_txn.wait_for_lock_timeout,
        max_ts_drift_allowance: cfg.storage.max_ts_drift_allowance,
        // `Config::validate` refused an unknown version before the store started.
        api: cfg.storage.api().unwrap_or_default(),
        ..KvConfig::default()
    };
    let kv_service = KvService::new(store, snap_dir, kv_cfg)
        .with_deadlock_detector(
            Arc::new(move || detector_pd.leader_url()),
            tls.map(|t| t.client.clone()),
        )
        .with_timestamp_source(Arc::new(move || {
            let pd = tso_pd.clone();
            Box::pin(async move {
                let ts = pd.get_timestamp().await.map_err(|e| e.to_string())?;
                let physical = u64::try_from(ts.physical).map_err(|e| e.to_string())?;
                let logical = u64::try_from(ts.logical).map_err(|e| e.to_string())?;
                Ok(txn::compose_ts(physical, logical))
            })
        }));
    let max_msg = cfg.server.max_grpc_message_size;
    let (stop, stopped) = oneshot::channel::<()>();
    let router = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(Duration::from_secs(3)))
        .add_service(
            TikvServer::new(kv_service)
                .max_decoding_message_size(max_msg)
                .max_encoding_message_size(max_msg),
        );
    let stopped = async {
        let _ = stopped.await;
    };
    let task = match tls {
        Some(tls) => tokio::spawn(
            router.serve_with_incoming_shutdown(
                security::server::incoming(listener, tls.server.clone())
                    .map(|conn| conn.map(CoalescedIo::new)),
                stopped,
            ),
        ),
        None => {
            tokio::spawn(router.serve_with_incoming_shutdown(nodelay_incoming(listener), stopped))
        }
    };
    (stop, task)
}

/// Step 4b: `/metrics` and `/status` on the status listener.
pub(crate) fn serve_status(
    source: StatusSource,
    listener: TcpListener,
    tls: Option<&StoreTls>,
) -> Running<std::io::Result<()>> {
    let (stop, stopped) = oneshot::channel::<()>();
    let stopped = async {
        let _ = stopped.await;
    };
    let source = Arc::new(source);
    let task = match tls {
        Some(tls) => tokio::spawn(status::serve_tls(
            listener,
            source,
            tls.server.clone(),
            stopped,
        )),
        None => tokio::spawn(status::serve(listener, source, stopped)),
    };
    (stop, task)
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

fn local_addr(l: &TcpListener, what: &'static str) -> Result<SocketAddr, ServerError> {
    l.local_addr().map_err(|source| ServerError::Bind {
        what,
        addr: "bound socket".into(),
        source,
    })
}

/// Accepted connections with Nagle's algorithm off, their writes gathered per scheduler pass
/// ([`CoalescedIo`]). tonic's own `tcp_nodelay` only applies to listeners it binds itself;
/// without this, a small response waits for the client's delayed ACK (~40 ms on Linux)
/// whenever an earlier segment is still unacknowledged.
fn nodelay_incoming(
    listener: TcpListener,
) -> impl Stream<Item = std::io::Result<CoalescedIo<tokio::net::TcpStream>>> {
    TcpListenerStream::new(listener).map(|conn| {
        let conn = conn?;
        conn.set_nodelay(true)?;
        Ok(CoalescedIo::new(conn))
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
        assert!(accepted.with_inner(|c| c.nodelay()).unwrap());
    }
}
