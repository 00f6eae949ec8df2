//! Deterministic test data: numbered keys and values derived from the number, so any reader
//! can check a value without remembering what was written.

use std::collections::HashMap;
use std::ops::Range;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use tikv_client::{KvPair, RawClient};

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

/// Writes keys `range` in batches of `batch`, retrying a failed batch (writes are
/// idempotent) until [`BATCH_RETRY_TIMEOUT`].
pub async fn load(
    client: &RawClient,
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
        retry(&format!("batch_put {prefix}[{start}..{end})"), || {
            client.batch_put(pairs.clone())
        })
        .await?;
        start = end;
    }
    Ok(())
}

/// Reads keys `range` back in batches and checks every value; a failed read is retried.
pub async fn verify(
    client: &RawClient,
    prefix: &str,
    range: Range<usize>,
    value_len: usize,
) -> Result<()> {
    const CHUNK: usize = 1000;
    let mut start = range.start;
    while start < range.end {
        let end = (start + CHUNK).min(range.end);
        check_batch(client, prefix, start..end, value_len).await?;
        start = end;
    }
    Ok(())
}

/// Reads `range` with one batch_get (retried on errors) and checks every value.
pub async fn check_batch(
    client: &RawClient,
    prefix: &str,
    range: Range<usize>,
    value_len: usize,
) -> Result<()> {
    let keys: Vec<Vec<u8>> = range.clone().map(|i| key(prefix, i)).collect();
    let pairs = retry(&format!("batch_get {prefix}[{range:?})"), || {
        client.batch_get(keys.clone())
    })
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
