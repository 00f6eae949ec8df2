//! Deterministic test data: numbered keys and values derived from the number, so any reader
//! can check a value without remembering what was written.

use std::collections::HashMap;
use std::ops::Range;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use tikv_client::{KvPair, RawClient};

use crate::Fleet;

/// `<prefix><i as 8 digits>`: keys sort in the order of their numbers.
pub fn key(prefix: &str, i: usize) -> Vec<u8> {
    format!("{prefix}{i:08}").into_bytes()
}

/// `len` bytes that depend on `i` (the number repeated, then cut).
pub fn value(i: usize, len: usize) -> Vec<u8> {
    let unit = format!("v{i:08}.");
    unit.bytes().cycle().take(len).collect()
}

/// How long one batch may keep failing (splits, elections) before loading gives up.
pub const BATCH_RETRY_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the helpers below take the raw client for each try: a [`RawClient`] itself (every
/// try through it), or a [`RenewedClient`].
pub trait ClientSource {
    /// The client for the next try; an error fails this try only.
    fn client(&self) -> impl std::future::Future<Output = tikv_client::Result<RawClient>> + Send;

    /// Told of every failed try, before the next one asks for a client.
    fn failed(&self, error: &tikv_client::Error);
}

impl ClientSource for RawClient {
    async fn client(&self) -> tikv_client::Result<RawClient> {
        Ok(self.clone())
    }

    fn failed(&self, _error: &tikv_client::Error) {}
}

/// A raw client replaced by a new one of `fleet` after a try fails to connect to a store.
///
/// tikv-client 0.4 keeps a region's cached leader when it cannot open a connection to that
/// leader's store (`single_shard_handler` returns the connect error of
/// `map_region_to_store` without invalidating the region, unlike an error on an open
/// connection). A client that learned of a leader on a store it had never connected to
/// (from PD, or from a follower's `NotLeader` hint) just before that store died keeps
/// asking the dead store: every later try fails at once with `Error::Grpc`, even after
/// the region has a new leader. A new client asks PD again, which is what an application
/// does with such an error.
pub struct RenewedClient<'a> {
    fleet: &'a Fleet,
    current: std::sync::Mutex<Option<RawClient>>,
}

impl<'a> RenewedClient<'a> {
    /// Starts with `client`, keeping its connections and cache until one of its tries
    /// fails to connect.
    pub fn new(fleet: &'a Fleet, client: &RawClient) -> RenewedClient<'a> {
        RenewedClient {
            fleet,
            current: std::sync::Mutex::new(Some(client.clone())),
        }
    }

    /// The client in use (`None` once dropped after a connect error). A try that panicked
    /// while holding the lock left the slot whole, so a poisoned lock is taken as it is.
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<RawClient>> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ClientSource for RenewedClient<'_> {
    async fn client(&self) -> tikv_client::Result<RawClient> {
        if let Some(client) = self.slot().clone() {
            return Ok(client);
        }
        let client = self
            .fleet
            .raw_client()
            .await
            .map_err(|e| tikv_client::Error::StringError(format!("{e:#}")))?;
        *self.slot() = Some(client.clone());
        Ok(client)
    }

    fn failed(&self, error: &tikv_client::Error) {
        // A connect error (`Error::Grpc`); errors on open connections are `GrpcAPI`, and
        // after those the client finds the leader again by itself.
        if matches!(error, tikv_client::Error::Grpc(_)) {
            *self.slot() = None;
        }
    }
}

/// Writes keys `range` in batches of `batch`, retrying a failed batch (writes are
/// idempotent) until [`BATCH_RETRY_TIMEOUT`].
pub async fn load(
    clients: &impl ClientSource,
    prefix: &str,
    range: Range<usize>,
    batch: usize,
    value_len: usize,
) -> Result<()> {
    let mut start = range.start;
    while start < range.end {
        let end = (start + batch).min(range.end);
        let pairs: Vec<KvPair> = (start..end)
            .map(|i| KvPair::new(key(prefix, i), value(i, value_len)))
            .collect();
        retry_with(
            clients,
            &format!("batch_put {prefix}[{start}..{end})"),
            |client| {
                let pairs = pairs.clone();
                async move { client.batch_put(pairs).await }
            },
        )
        .await?;
        start = end;
    }
    Ok(())
}

/// [`load`]s keys `range` and then [`verify`]s them: the store takes writes and serves them
/// back.
pub async fn load_and_verify(
    clients: &impl ClientSource,
    prefix: &str,
    range: Range<usize>,
    batch: usize,
    value_len: usize,
) -> Result<()> {
    load(clients, prefix, range.clone(), batch, value_len).await?;
    verify(clients, prefix, range, value_len).await
}

/// Reads keys `range` back in batches and checks every value; a failed read is retried.
pub async fn verify(
    clients: &impl ClientSource,
    prefix: &str,
    range: Range<usize>,
    value_len: usize,
) -> Result<()> {
    const CHUNK: usize = 1000;
    let mut start = range.start;
    while start < range.end {
        let end = (start + CHUNK).min(range.end);
        check_batch(clients, prefix, start..end, value_len).await?;
        start = end;
    }
    Ok(())
}

/// Reads `range` with one batch_get (retried on errors) and checks every value.
pub async fn check_batch(
    clients: &impl ClientSource,
    prefix: &str,
    range: Range<usize>,
    value_len: usize,
) -> Result<()> {
    let keys: Vec<Vec<u8>> = range.clone().map(|i| key(prefix, i)).collect();
    let pairs = retry_with(
        clients,
        &format!("batch_get {prefix}[{range:?})"),
        |client| {
            let keys = keys.clone();
            async move { client.batch_get(keys).await }
        },
    )
    .await?;
    let found: HashMap<Vec<u8>, Vec<u8>> = pairs
        .into_iter()
        .map(|p| (Vec::<u8>::from(p.0), p.1))
        .collect();
    for i in range {
        match found.get(&key(prefix, i)) {
            Some(v) if *v == value(i, value_len) => {}
            Some(v) => bail!(
                "key {} has a wrong value {:?}",
                String::from_utf8_lossy(&key(prefix, i)),
                String::from_utf8_lossy(v)
            ),
            None => bail!(
                "key {} is missing",
                String::from_utf8_lossy(&key(prefix, i))
            ),
        }
    }
    Ok(())
}

/// Runs `op` until it succeeds or [`BATCH_RETRY_TIMEOUT`] passes.
pub async fn retry<T, F, Fut>(what: &str, mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = tikv_client::Result<T>>,
{
    let deadline = Instant::now() + BATCH_RETRY_TIMEOUT;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= deadline => {
                bail!("{what} still failing after {BATCH_RETRY_TIMEOUT:?}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Runs `op` with a client from `clients` until it succeeds or [`BATCH_RETRY_TIMEOUT`]
/// passes, telling `clients` of every failure.
pub async fn retry_with<T, F, Fut>(clients: &impl ClientSource, what: &str, op: F) -> Result<T>
where
    F: Fn(RawClient) -> Fut,
    Fut: std::future::Future<Output = tikv_client::Result<T>>,
{
    let op = &op;
    retry(what, move || async move {
        let result = op(clients.client().await?).await;
        if let Err(e) = &result {
            clients.failed(e);
        }
        result
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_number_and_values_depend_on_it() {
        assert!(key("k", 9) < key("k", 10));
        assert_eq!(key("k", 7), b"k00000007");
        assert_eq!(value(3, 12), b"v00000003.v0");
        assert_ne!(value(3, 100), value(4, 100));
        assert_eq!(value(3, 100).len(), 100);
    }
}
