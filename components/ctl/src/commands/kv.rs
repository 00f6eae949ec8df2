//! Key-value commands through the official client, in the default keyspace (API V2).

use std::ops::Bound;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tikv_client::{BoundRange, Key, RawClient};

use crate::cli::ScanArgs;
use crate::keyfmt::{escape, key_value_line, shown, unescape};

/// Connects a raw client to the PD at `pd` (gRPC `host:port`).
/// With `api_version` 2 the client addresses the default keyspace; with 1, keys as given.
pub async fn connect(pd: &str, timeout: Duration, api_version: u8) -> Result<RawClient> {
    let config = crate::tls::tikv_config().with_timeout(timeout);
    let config = if api_version == 1 {
        config
    } else {
        config.with_default_keyspace()
    };
    within_connect_deadline(
        pd,
        timeout,
        RawClient::new_with_config(vec![pd.to_string()], config),
    )
    .await
}

/// Awaits a client's connection to PD for at most `timeout`: the client puts no deadline on
/// its first calls to PD, so a PD that accepts connections but does not answer (paused,
/// overloaded) would hold the command forever. Errors name PD and what happened.
pub async fn within_connect_deadline<C>(
    pd: &str,
    timeout: Duration,
    connecting: impl std::future::Future<Output = tikv_client::Result<C>>,
) -> Result<C> {
    match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(anyhow!("cannot connect to PD at {pd}: {e}")),
        Err(_) => Err(anyhow!(
            "cannot connect to PD at {pd}: no answer within {}s (--timeout); it accepts \
             connections but does not serve them",
            timeout.as_secs_f64()
        )),
    }
}

/// The largest gRPC answer the official client takes: tonic's default decoding limit, which
/// `tikv-client` 0.4 keeps (4 MiB). Stores accept larger values (up to their raft entry
/// limit), which this client then cannot read back.
pub const CLIENT_ANSWER_LIMIT: usize = 4 * 1024 * 1024;

/// Whether the client refused an answer larger than [`CLIENT_ANSWER_LIMIT`] (tonic reports
/// it as `OutOfRange`, "message length too large", possibly inside the client's own error
/// wrappers, hence the text).
pub fn answer_too_large(e: &tikv_client::Error) -> bool {
    e.to_string().contains("message length too large")
}

pub async fn get(client: &RawClient, key: &str) -> Result<String> {
    let shown_key = shown(key);
    let raw = unescape(key).context("key")?;
    let value = client.get(raw.clone()).await.map_err(|e| {
        if answer_too_large(&e) {
            anyhow!(
                "get {shown_key}: the value is larger than the {} MiB answers shoal-ctl's client \
                 takes ({e})",
                CLIENT_ANSWER_LIMIT >> 20
            )
        } else {
            anyhow!("get {shown_key}: {e}")
        }
    })?;
    match value {
        Some(value) => Ok(format!("{}\n", key_value_line(&raw, &value))),
        None => Err(anyhow!("key {} not found", escape(&raw))),
    }
}

pub async fn put(client: &RawClient, key: &str, value: &str, ttl: Option<u64>) -> Result<String> {
    let shown_key = shown(key);
    let raw = unescape(key).context("key")?;
    let value = unescape(value).context("value")?;
    let done = match ttl {
        Some(secs) => client.put_with_ttl(raw.clone(), value, secs).await,
        None => client.put(raw.clone(), value).await,
    };
    done.map_err(|e| anyhow!("put {shown_key}: {e}"))?;
    Ok(put_notice(ttl))
}

/// What `put` prints: a TTL of 0 seconds is no TTL at all (TiKV's rule), so it says so.
fn put_notice(ttl: Option<u64>) -> String {
    match ttl {
        Some(0) => "OK (a TTL of 0 means the key does not expire)\n".to_string(),
        Some(secs) => format!("OK (expires in {secs}s)\n"),
        None => "OK\n".to_string(),
    }
}

pub async fn delete(client: &RawClient, key: &str) -> Result<String> {
    let shown_key = shown(key);
    let raw = unescape(key).context("key")?;
    client
        .delete(raw)
        .await
        .map_err(|e| anyhow!("delete {shown_key}: {e}"))?;
    Ok("OK\n".to_string())
}

/// The range a scan covers: `[from, to)`, unbounded where absent. A `to` before `from` is
/// refused (PD's HTTP API answers such a range with 400 too); `to` equal to `from` is the
/// empty range.
pub fn scan_range(from: Option<&str>, to: Option<&str>) -> Result<BoundRange> {
    let from = match from {
        Some(k) => unescape(k).context("--from")?,
        None => Vec::new(),
    };
    let end = match to {
        Some(k) => {
            let to = unescape(k).context("--to")?;
            if to < from {
                bail!("--to is before --from: the range holds no key");
            }
            Bound::Excluded(Key::from(to))
        }
        None => Bound::Unbounded,
    };
    Ok(BoundRange::new(Bound::Included(Key::from(from)), end))
}

/// Client scans beyond one per row kept that one `scan` command may make. Each round after
/// the first starts past the last key printed and must add rows, and a page halves at most
/// 10 times, so the bound only stops a client that keeps answering with rows outside the
/// range.
const MAX_SCAN_ROUNDS: usize = 64;

/// Rows asked of the client in one scan round at first. A round whose answer the client
/// refuses as too large ([`answer_too_large`]) is asked again with half as many rows, down to
/// one, so values of any size the client can read at all are scanned.
pub const SCAN_PAGE: u32 = 1024;

/// The rows to ask for in the next round when the client refused the answer to a round
/// that asked for `asked` rows as too large; `None` when a single row was already too large.
pub fn smaller_page(asked: u32) -> Option<u32> {
    (asked > 1).then_some(asked / 2)
}

/// The end an unbounded V1 scan is given: the largest key the store accepts (its 8 KiB key
/// limit, all `0xff`), above every other key. Client 0.4 covers only the first region of an
/// unbounded V1 scan but crosses regions in a bounded one.
const V1_SCAN_END: [u8; 8192] = [0xff; 8192];

/// One scanned row: the key and, unless only keys were asked for, its value.
type Row = (Vec<u8>, Option<Vec<u8>>);

/// Prints the pairs (or keys) of `[from, to)`, at most `limit`, in key order, each once.
///
/// `tikv-client` 0.4 in an API V1 cluster can answer a bounded scan that reaches the last
/// region with rows from the start of the key space again (keys outside the range, keys
/// twice), and an unbounded one with the first region's rows only. So in V1 an unbounded scan
/// ends at [`V1_SCAN_END`], rows outside the range or not after the last kept key are
/// dropped, and the scan continues past the last kept key until `limit` rows are kept or a
/// round adds none.
pub async fn scan(client: &RawClient, args: &ScanArgs, api_version: u8) -> Result<String> {
    let start = match args.from.as_deref() {
        Some(k) => unescape(k).context("--from")?,
        None => Vec::new(),
    };
    let end = match args.to.as_deref() {
        Some(k) => Some(unescape(k).context("--to")?),
        None if api_version == 1 => Some(V1_SCAN_END.to_vec()),
        None => None,
    };
    if args.to.is_some() && end.as_deref().is_some_and(|end| end < start.as_slice()) {
        bail!("--to is before --from: the range holds no key");
    }
    let limit = args.limit as usize;
    let mut rows: Vec<Row> = Vec::new();
    let mut next = start;
    let mut page = SCAN_PAGE;
    for _ in 0..limit + MAX_SCAN_ROUNDS {
        let want = (limit - rows.len()).min(page as usize);
        let range = BoundRange::new(
            Bound::Included(Key::from(next.clone())),
            end.clone()
                .map_or(Bound::Unbounded, |e| Bound::Excluded(Key::from(e))),
        );
        let batch = match scan_round(client, range, want as u32, args.keys_only).await {
            Ok(batch) => batch,
            Err(e) if answer_too_large(&e) => {
                page = smaller_page(want as u32).ok_or_else(|| {
                    anyhow!("scan: a single value is larger than the client takes: {e}")
                })?;
                continue;
            }
            Err(e) => return Err(anyhow!("scan: {e}")),
        };
        let kept = new_rows_in_range(batch, &next, end.as_deref(), want);
        let Some((last, _)) = kept.last() else {
            break;
        };
        next = successor(last);
        rows.extend(kept);
        if rows.len() >= limit {
            break;
        }
    }
    let mut out = String::new();
    for (key, value) in rows {
        match value {
            Some(value) => out.push_str(&key_value_line(&key, &value)),
            None => out.push_str(&crate::keyfmt::escape_with(&key, b"=")),
        }
        out.push('\n');
    }
    Ok(out)
}

/// One client scan of `range`, at most `limit` rows.
async fn scan_round(
    client: &RawClient,
    range: BoundRange,
    limit: u32,
    keys_only: bool,
) -> std::result::Result<Vec<Row>, tikv_client::Error> {
    if keys_only {
        let keys = client.scan_keys(range, limit).await?;
        Ok(keys.into_iter().map(|k| (k.into(), None)).collect())
    } else {
        let pairs = client.scan(range, limit).await?;
        Ok(pairs.into_iter().map(|p| (p.0.into(), Some(p.1))).collect())
    }
}

/// The rows of `batch` inside `[from, to)` (`to` None: unbounded), each key after the one
/// before it, at most `limit`: what is left of a scan's answer once rows repeated or outside
/// the range are dropped.
fn new_rows_in_range(batch: Vec<Row>, from: &[u8], to: Option<&[u8]>, limit: usize) -> Vec<Row> {
    let mut kept: Vec<Row> = Vec::new();
    for row in batch {
        let key = row.0.as_slice();
        let in_range = key >= from && to.is_none_or(|to| key < to);
        let after_last = kept.last().is_none_or(|(last, _)| key > last.as_slice());
        if in_range && after_last {
            kept.push(row);
            if kept.len() == limit {
                break;
            }
        }
    }
    kept
}

/// The smallest key after `key`.
fn successor(key: &[u8]) -> Vec<u8> {
    let mut next = key.to_vec();
    next.push(0);
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PD that accepts connections and never answers (a paused process) ends the command
    /// with an error after `--timeout` instead of holding it forever.
    #[tokio::test]
    async fn a_pd_that_never_answers_fails_the_connection_after_the_timeout() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let pd = listener.local_addr().unwrap().to_string();
        // Accepted connections are held open, unanswered, until the test ends.
        let held = std::thread::spawn(move || {
            let mut open = Vec::new();
            listener.set_nonblocking(true).unwrap();
            for _ in 0..400 {
                if let Ok((conn, _)) = listener.accept() {
                    open.push(conn);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            open.len()
        });
        let raw = connect(&pd, Duration::from_secs(1), 2).await;
        let message = raw.err().expect("no client from a silent PD").to_string();
        assert!(message.contains("no answer within 1s"), "{message}");
        let txn = crate::commands::txn::connect(&pd, Duration::from_secs(1), 2).await;
        let message = txn.err().expect("no client from a silent PD").to_string();
        assert!(message.contains("no answer within 1s"), "{message}");
        assert!(held.join().unwrap() > 0, "the client reached the listener");
    }

    fn row(key: &[u8]) -> Row {
        (key.to_vec(), Some(b"v".to_vec()))
    }

    fn keys(rows: &[Row]) -> Vec<&[u8]> {
        rows.iter().map(|r| r.0.as_slice()).collect()
    }

    #[test]
    fn a_zero_ttl_is_reported_as_no_expiry() {
        assert_eq!(put_notice(None), "OK\n");
        assert_eq!(put_notice(Some(5)), "OK (expires in 5s)\n");
        assert!(put_notice(Some(0)).contains("does not expire"));
    }

    #[test]
    fn rows_outside_the_range_or_repeated_are_dropped() {
        // A client 0.4 answer that started over from the beginning of the key space.
        let batch = vec![
            row(b"\xff\xff\xff\xff\xff\xff\xff\xff\xffa"),
            row(b"a"),
            row(b"m"),
            row(b"m"),
            row(b"\xff\xff\xff\xff\xff\xff\xff\xff\xffb"),
            row(b"z"),
        ];
        let kept = new_rows_in_range(batch.clone(), b"m", Some(b"y"), 10);
        assert_eq!(keys(&kept), vec![b"m".as_slice()]);
        let kept = new_rows_in_range(batch.clone(), b"\xff\xff", None, 10);
        assert_eq!(
            keys(&kept),
            vec![
                b"\xff\xff\xff\xff\xff\xff\xff\xff\xffa".as_slice(),
                b"\xff\xff\xff\xff\xff\xff\xff\xff\xffb".as_slice()
            ]
        );
        // An unbounded scan answered with its rows, then the same rows again.
        let repeated = vec![row(b"a"), row(b"m"), row(b"z"), row(b"a"), row(b"m")];
        let kept = new_rows_in_range(repeated, b"", None, 10);
        assert_eq!(keys(&kept), vec![b"a", b"m", b"z"]);
        let ordered = vec![row(b"a"), row(b"b"), row(b"c")];
        assert_eq!(
            keys(&new_rows_in_range(ordered, b"", None, 2)),
            vec![b"a", b"b"]
        );
        assert_eq!(successor(b"a"), b"a\0");
    }

    #[test]
    fn a_page_refused_as_too_large_halves_down_to_one_row() {
        let mut pages = vec![SCAN_PAGE];
        while let Some(next) = smaller_page(*pages.last().unwrap()) {
            pages.push(next);
        }
        assert_eq!(pages.len(), 11, "{pages:?}");
        assert_eq!(pages.last(), Some(&1));
        assert_eq!(smaller_page(3), Some(1));
        // The client's own wrapper around the gRPC status tonic reports.
        let refused = tikv_client::Error::InternalError {
            message: "status: OutOfRange, message: \"Error, message length too large: found \
                      5000005 bytes, the limit is: 4194304 bytes\""
                .to_string(),
        };
        assert!(answer_too_large(&tikv_client::Error::MultipleKeyErrors(
            vec![refused]
        )));
        assert!(!answer_too_large(&tikv_client::Error::Unimplemented));
    }

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
        // A reversed range is refused; an empty one is not.
        let err = scan_range(Some("b"), Some("a")).unwrap_err().to_string();
        assert!(err.contains("--to is before --from"), "{err}");
        assert!(scan_range(Some("a"), Some("a")).is_ok());
    }
}
