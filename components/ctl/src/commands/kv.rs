//! Key-value commands through the official client, in the default keyspace (API V2).

use std::ops::Bound;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use tikv_client::{BoundRange, Key, RawClient};

use crate::cli::ScanArgs;
use crate::keyfmt::{escape, key_value_line, unescape};

/// Connects a raw client to the PD at `pd` (gRPC `host:port`).
/// With `api_version` 2 the client addresses the default keyspace; with 1, keys as given.
pub async fn connect(pd: &str, timeout: Duration, api_version: u8) -> Result<RawClient> {
    let config = crate::tls::tikv_config().with_timeout(timeout);
    let config = if api_version == 1 {
        config
    } else {
        config.with_default_keyspace()
    };
    RawClient::new_with_config(vec![pd.to_string()], config)
        .await
        .map_err(|e| anyhow!("cannot connect to PD at {pd}: {e}"))
}

pub async fn get(client: &RawClient, key: &str) -> Result<String> {
    let raw = unescape(key)?;
    let value = client
        .get(raw.clone())
        .await
        .map_err(|e| anyhow!("get {key:?}: {e}"))?;
    match value {
        Some(value) => Ok(format!("{}\n", key_value_line(&raw, &value))),
        None => Err(anyhow!("key {} not found", escape(&raw))),
    }
}

pub async fn put(client: &RawClient, key: &str, value: &str, ttl: Option<u64>) -> Result<String> {
    let raw = unescape(key)?;
    let value = unescape(value).context("value")?;
    let done = match ttl {
        Some(secs) => client.put_with_ttl(raw.clone(), value, secs).await,
        None => client.put(raw.clone(), value).await,
    };
    done.map_err(|e| anyhow!("put {key:?}: {e}"))?;
    Ok(match ttl {
        Some(secs) => format!("OK (expires in {secs}s)\n"),
        None => "OK\n".to_string(),
    })
}

pub async fn delete(client: &RawClient, key: &str) -> Result<String> {
    let raw = unescape(key)?;
    client
        .delete(raw)
        .await
        .map_err(|e| anyhow!("delete {key:?}: {e}"))?;
    Ok("OK\n".to_string())
}

/// The range a scan covers: `[from, to)`, unbounded where absent.
pub fn scan_range(from: Option<&str>, to: Option<&str>) -> Result<BoundRange> {
    let start = match from {
        Some(k) => Bound::Included(Key::from(unescape(k)?)),
        None => Bound::Included(Key::EMPTY),
    };
    let end = match to {
        Some(k) => Bound::Excluded(Key::from(unescape(k)?)),
        None => Bound::Unbounded,
    };
    Ok(BoundRange::new(start, end))
}

pub async fn scan(client: &RawClient, args: &ScanArgs) -> Result<String> {
    let range = scan_range(args.from.as_deref(), args.to.as_deref())?;
    let mut out = String::new();
    if args.keys_only {
        let keys = client
            .scan_keys(range, args.limit)
            .await
            .map_err(|e| anyhow!("scan: {e}"))?;
        for key in keys {
            let key: Vec<u8> = key.into();
            out.push_str(&crate::keyfmt::escape_with(&key, b"="));
            out.push('\n');
        }
    } else {
        let pairs = client
            .scan(range, args.limit)
            .await
            .map_err(|e| anyhow!("scan: {e}"))?;
        for pair in pairs {
            let key: Vec<u8> = pair.0.into();
            out.push_str(&key_value_line(&key, &pair.1));
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_range_is_half_open_and_unbounded_where_absent() {
        let range = scan_range(Some("a"), Some("b\\x00")).unwrap();
        let (start, end) = range.into_keys();
        assert_eq!(Vec::<u8>::from(start), b"a");
        assert_eq!(end.map(Vec::<u8>::from), Some(b"b\0".to_vec()));

        let (start, end) = scan_range(None, None).unwrap().into_keys();
        assert!(start.is_empty());
        assert!(end.is_none());
        assert!(scan_range(Some("\\q"), None).is_err());
    }
}
