//! The client handle: the current leader connection, the retry loop every request goes
//! through, and rediscovery after failures.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use tokio::runtime::Handle;
use tracing::{info, warn};

use crate::backoff::Backoff;
use crate::config::Config;
use crate::discovery::{self, Leader, PdStub};
use crate::errors::{Error, Result};
use crate::header::{self, HasHeader};

/// First and longest wait between attempts of one request.
const RETRY_BASE: Duration = Duration::from_millis(100);
const RETRY_CAP: Duration = Duration::from_secs(2);

/// A connection to PD's leader, shared by clones.
#[derive(Clone)]
pub struct PdClient {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) cfg: Config,
    /// The configured endpoints as URLs.
    endpoints: Vec<String>,
    pub(crate) cluster_id: u64,
    leader: RwLock<Leader>,
    /// Bumped on every successful rediscovery, so concurrent failures reconnect once.
    generation: AtomicU64,
    reconnecting: tokio::sync::Mutex<()>,
    /// Where background tasks (the heartbeat stream) run.
    pub(crate) runtime: Handle,
}

impl std::fmt::Debug for PdClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PdClient")
            .field("cluster_id", &self.inner.cluster_id)
            .field("leader", &self.leader_url())
            .finish()
    }
}

impl PdClient {
    /// Finds PD's leader through the configured endpoints and learns the cluster id. Must
    /// be called inside a tokio runtime, which later runs the client's background tasks.
    pub async fn connect(cfg: Config) -> Result<PdClient> {
        let endpoints = cfg
            .endpoints
            .iter()
            .map(|e| discovery::normalize(e, cfg.tls.is_some()))
            .collect::<Result<Vec<_>>>()?;
        let (cluster_id, leader) = discovery::discover(&endpoints, &cfg, None).await?;
        Ok(PdClient {
            inner: Arc::new(Inner {
                cfg,
                endpoints,
                cluster_id,
                leader: RwLock::new(leader),
                generation: AtomicU64::new(0),
                reconnecting: tokio::sync::Mutex::new(()),
                runtime: Handle::current(),
            }),
        })
    }

    /// The id of the cluster PD serves.
    pub fn cluster_id(&self) -> u64 {
        self.inner.cluster_id
    }

    /// The URL of the PD member requests currently go to.
    pub fn leader_url(&self) -> String {
        self.inner.leader.read().url.clone()
    }

    pub fn config(&self) -> &Config {
        &self.inner.cfg
    }

    /// The leader's stub and the generation it belongs to.
    pub(crate) fn current(&self) -> (u64, PdStub) {
        let leader = self.inner.leader.read();
        (
            self.inner.generation.load(Ordering::Acquire),
            leader.stub.clone(),
        )
    }

    /// Rediscovers the leader unless someone already did since `seen_generation`.
    pub(crate) async fn reconnect(&self, seen_generation: u64) -> Result<()> {
        let _guard = self.inner.reconnecting.lock().await;
        if self.inner.generation.load(Ordering::Acquire) != seen_generation {
            return Ok(());
        }
        // Known members first (the leader may have moved), then the configured endpoints.
        let mut urls = self.inner.leader.read().member_urls.clone();
        for e in &self.inner.endpoints {
            if !urls.contains(e) {
                urls.push(e.clone());
            }
        }
        let (_, leader) =
            discovery::discover(&urls, &self.inner.cfg, Some(self.inner.cluster_id)).await?;
        info!(leader = %leader.url, "pd leader reconnected");
        *self.inner.leader.write() = leader;
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Runs one request against the leader: bounded by the request timeout, header errors
    /// mapped, and retried after rediscovery when the failure looks transient.
    pub(crate) async fn call<R, F, Fut>(&self, method: &'static str, mut make: F) -> Result<R>
    where
        R: HasHeader,
        F: FnMut(PdStub) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<R>, tonic::Status>>,
    {
        let limit = self.inner.cfg.retry_limit.max(1);
        let timeout = self.inner.cfg.request_timeout;
        let mut backoff = Backoff::new(RETRY_BASE, RETRY_CAP);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (generation, stub) = self.current();
            let result = match tokio::time::timeout(timeout, make(stub)).await {
                Err(_) => Err(Error::Timeout {
                    method,
                    after: timeout,
                }),
                Ok(Err(status)) => Err(Error::Grpc(status)),
                Ok(Ok(resp)) => header::check(resp.into_inner()),
            };
            match result {
                Err(e) if e.is_retryable() && attempt < limit => {
                    warn!(method, attempt, error = %e, "pd request failed, retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                    if let Err(re) = self.reconnect(generation).await {
                        warn!(method, error = %re, "pd rediscovery failed");
                    }
                }
                other => return other,
            }
        }
    }
}
