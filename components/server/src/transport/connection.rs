//! What the raft streams and the snapshot sends share: the transport's tuning, the cache of
//! store addresses, the snapshot send slots, and how a connection to a store is opened.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use proto::tikvpb::tikv_client::TikvClient;
use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use tonic::transport::{Channel, ClientTlsConfig};

use super::resolve::StoreResolver;

/// Tuning of the raft transport.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// Most messages in one batch on the stream.
    pub max_batch_messages: usize,
    /// Stop adding messages to a batch beyond this many encoded bytes.
    pub max_batch_bytes: usize,
    /// Time allowed to connect to a store.
    pub connect_timeout: Duration,
    /// First and longest wait between reconnect attempts.
    pub reconnect_base: Duration,
    pub reconnect_cap: Duration,
    /// Largest gRPC message sent.
    pub max_message_size: usize,
    /// Snapshots sent at once; more wait their turn.
    pub snapshot_concurrency: usize,
    /// Longest time one snapshot send may take.
    pub snapshot_timeout: Duration,
    /// TLS to other stores (`https`, the CA and this store's client certificate); `None`
    /// dials plaintext.
    pub tls: Option<ClientTlsConfig>,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            max_batch_messages: 128,
            max_batch_bytes: 4 * 1024 * 1024,
            connect_timeout: Duration::from_secs(3),
            reconnect_base: Duration::from_millis(50),
            reconnect_cap: Duration::from_secs(2),
            max_message_size: 64 * 1024 * 1024,
            snapshot_concurrency: 4,
            snapshot_timeout: Duration::from_secs(600),
            tls: None,
        }
    }
}

/// What the per-store tasks share.
pub(crate) struct Shared {
    pub cfg: TransportConfig,
    pub snap_dir: PathBuf,
    resolver: Arc<dyn StoreResolver>,
    /// Last known address of each store; forgotten when connecting to it fails.
    addrs: Mutex<HashMap<u64, String>>,
    pub snapshot_slots: Semaphore,
    pub runtime: Handle,
}

impl Shared {
    pub(crate) fn new(
        cfg: TransportConfig,
        snap_dir: PathBuf,
        resolver: Arc<dyn StoreResolver>,
        runtime: Handle,
    ) -> Shared {
        Shared {
            snapshot_slots: Semaphore::new(cfg.snapshot_concurrency.max(1)),
            cfg,
            snap_dir,
            resolver,
            addrs: Mutex::new(HashMap::new()),
            runtime,
        }
    }

    /// The store's address, from the cache or the resolver.
    pub(crate) async fn resolve(&self, store_id: u64) -> Result<String, String> {
        if let Some(a) = self.addrs.lock().get(&store_id) {
            return Ok(a.clone());
        }
        let addr = self
            .resolver
            .resolve(store_id)
            .await
            .map_err(|e| e.to_string())?;
        self.addrs.lock().insert(store_id, addr.clone());
        Ok(addr)
    }

    pub(crate) fn forget(&self, store_id: u64) {
        self.addrs.lock().remove(&store_id);
    }

    /// Connects to a store (eagerly, so a dead address fails here).
    pub(crate) async fn connect(&self, store_id: u64) -> Result<TikvClient<Channel>, String> {
        let addr = self.resolve(store_id).await?;
        let result = connect(&addr, &self.cfg).await;
        if result.is_err() {
            self.forget(store_id);
        }
        result
    }
}

async fn connect(addr: &str, cfg: &TransportConfig) -> Result<TikvClient<Channel>, String> {
    let endpoint = crate::tls::endpoint(addr, cfg.tls.as_ref())?
        .connect_timeout(cfg.connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(3))
        .keep_alive_while_idle(true);
    let channel = tokio::time::timeout(cfg.connect_timeout, endpoint.connect())
        .await
        .map_err(|_| format!("connect to {addr} timed out"))?
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    Ok(TikvClient::new(channel)
        .max_encoding_message_size(cfg.max_message_size)
        .max_decoding_message_size(cfg.max_message_size))
}
