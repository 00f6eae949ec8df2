//! `mvcc --key K`: every MVCC record of one transactional key, from the store leading its
//! region (`tikvpb.Tikv/MvccGetByKey`, a debugging RPC the client library does not have).

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use proto::kvrpcpb::{MvccGetByKeyRequest, MvccInfo, MvccLock, MvccWrite, Op};
use proto::tikvpb::tikv_client::TikvClient;
use tonic::transport::Endpoint;
use tonic::Code;

use crate::commands::txn::op_name;
use crate::keyfmt::{display_txn_store_key, escape, escape_with, shown, txn_store_key, unescape};
use crate::pd_http::{PdAnswered, PdHttp};
use crate::route::{locate_txn_key, Route};

/// How many times the region is looked up and asked before giving up: PD learns of a new
/// leader or a split within a heartbeat, so a few tries cover a leader change.
const ATTEMPTS: u32 = 5;
/// The pause after the n-th failed attempt is n times this.
const BACKOFF: Duration = Duration::from_millis(300);

/// What one attempt came to.
enum Attempt {
    Done(MvccInfo),
    /// Worth another try with a fresh route: a region error, or the store unreachable.
    Retry(String),
    Fail(anyhow::Error),
}

/// Looks the key up in PD, asks its region's leader, and renders the answer. PD lookups are
/// blocking HTTP, so they run outside `runtime`; only the gRPC call runs on it.
pub fn run(
    pd: &PdHttp,
    runtime: &tokio::runtime::Runtime,
    key: &str,
    timeout: Duration,
) -> Result<String> {
    let shown_key = shown(key);
    let raw = unescape(key).context("key")?;
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        if attempt > 1 {
            std::thread::sleep(BACKOFF * (attempt - 1));
        }
        // A region without a leader (an election, a split PD has not heard of) is retried.
        let route = match locate_txn_key(pd, &raw) {
            Ok(route) => route,
            Err(e) if PdAnswered::find(&e).is_some_and(PdAnswered::is_request_error) => {
                return Err(e.context(format!("mvcc {shown_key}")));
            }
            Err(e) => {
                last = format!("{e:#}");
                continue;
            }
        };
        match runtime.block_on(ask(&route, txn_store_key(&raw), timeout)) {
            Attempt::Done(info) => return Ok(render(&raw, &route, &info)),
            Attempt::Retry(why) => last = why,
            Attempt::Fail(e) => return Err(e),
        }
    }
    bail!("mvcc {shown_key}: gave up after {ATTEMPTS} attempts; last: {last}")
}

/// One MvccGetByKey call to the store of `route`.
async fn ask(route: &Route, store_key: Vec<u8>, timeout: Duration) -> Attempt {
    // TLS when the command line gave certificates, as for PD and the official client.
    let tls = crate::tls::material();
    let url = security::client::url(&route.addr, tls.is_some());
    let endpoint = match Endpoint::from_shared(url) {
        Ok(e) => e.connect_timeout(timeout).timeout(timeout),
        Err(e) => return Attempt::Fail(anyhow!("bad store address {:?}: {e}", route.addr)),
    };
    let endpoint = match tls {
        Some(m) => match endpoint.tls_config(security::client::tonic_client_tls(m)) {
            Ok(e) => e,
            Err(e) => return Attempt::Fail(anyhow!("TLS settings for {}: {e}", route.addr)),
        },
        None => endpoint,
    };
    let channel = match endpoint.connect().await {
        Ok(c) => c,
        Err(e) => return Attempt::Retry(format!("cannot reach store at {}: {e}", route.addr)),
    };
    let request = MvccGetByKeyRequest {
        context: Some(route.context()),
        key: store_key,
    };
    let response = match TikvClient::new(channel).mvcc_get_by_key(request).await {
        Ok(r) => r.into_inner(),
        Err(status) if matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded) => {
            return Attempt::Retry(format!("store at {}: {}", route.addr, status.message()))
        }
        Err(status) => {
            return Attempt::Fail(anyhow!(
                "store at {} refused MvccGetByKey: {:?}: {}",
                route.addr,
                status.code(),
                status.message()
            ))
        }
    };
    if let Some(region_error) = response.region_error {
        return Attempt::Retry(format!(
            "region {}: {}",
            route.region_id, region_error.message
        ));
    }
    if !response.error.is_empty() {
        return Attempt::Fail(anyhow!("store at {}: {}", route.addr, response.error));
    }
    Attempt::Done(response.info.unwrap_or_default())
}

/// The report: where the key lives, its lock, then its write records newest first (the
/// order the store sends them).
pub fn render(user_key: &[u8], route: &Route, info: &MvccInfo) -> String {
    let mut out = format!(
        "key: {}\nregion {}, leader peer {} on store {} ({})\n",
        escape(user_key),
        route.region_id,
        route.peer_id,
        route.store_id,
        route.addr
    );
    match &info.lock {
        Some(lock) => out.push_str(&format!("lock: {}\n", lock_fields(lock, info))),
        None => out.push_str("lock: none\n"),
    }
    if info.writes.is_empty() {
        out.push_str("writes: none\n");
    } else {
        out.push_str(&format!("writes: {}, newest first\n", info.writes.len()));
        for write in &info.writes {
            out.push_str(&format!("  {}\n", write_fields(write, info)));
        }
    }
    out
}

fn lock_fields(lock: &MvccLock, info: &MvccInfo) -> String {
    let mut fields = format!(
        "type={} start_ts={} primary={} ttl={}",
        op_name(lock.r#type),
        lock.start_ts,
        display_txn_store_key(&lock.primary, b" ="),
        lock.ttl
    );
    if lock.r#type == Op::Put as i32 {
        fields.push(' ');
        fields.push_str(&value_field(lock.start_ts, &lock.short_value, info));
    }
    if lock.for_update_ts != 0 {
        fields.push_str(&format!(" for_update_ts={}", lock.for_update_ts));
    }
    if lock.use_async_commit {
        fields.push_str(&format!(
            " async_commit secondaries={}",
            lock.secondaries.len()
        ));
    }
    fields
}

fn write_fields(write: &MvccWrite, info: &MvccInfo) -> String {
    let mut fields = format!(
        "commit_ts={} start_ts={} type={}",
        write.commit_ts,
        write.start_ts,
        op_name(write.r#type)
    );
    if write.r#type == Op::Put as i32 {
        fields.push(' ');
        fields.push_str(&value_field(write.start_ts, &write.short_value, info));
    }
    if write.has_overlapped_rollback {
        fields.push_str(" overlapped_rollback");
    }
    fields
}

/// The value a Put written at `start_ts` stands for: inline (escaped, spaces too), or a note
/// when the store found it in CF default (an empty inline value and a long one look alike in
/// the record itself, so the values list decides).
fn value_field(start_ts: u64, short_value: &[u8], info: &MvccInfo) -> String {
    match info.values.iter().find(|v| v.start_ts == start_ts) {
        Some(long) => format!(
            "value=<long value in default CF, {} bytes>",
            long.value.len()
        ),
        None => format!("value={}", escape_with(short_value, b" ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::kvrpcpb::MvccValue;

    fn route() -> Route {
        Route {
            region_id: 2,
            conf_ver: 1,
            version: 1,
            peer_id: 3,
            store_id: 1,
            addr: "127.0.0.1:20160".into(),
        }
    }

    fn write(op: Op, commit_ts: u64, start_ts: u64, short_value: &[u8]) -> MvccWrite {
        MvccWrite {
            r#type: op as i32,
            start_ts,
            commit_ts,
            short_value: short_value.to_vec(),
            has_overlapped_rollback: false,
        }
    }

    #[test]
    fn an_untouched_key_says_so() {
        let text = render(b"k", &route(), &MvccInfo::default());
        assert_eq!(
            text,
            "key: k\nregion 2, leader peer 3 on store 1 (127.0.0.1:20160)\nlock: none\n\
             writes: none\n"
        );
    }

    #[test]
    fn locks_and_writes_are_listed_with_their_values() {
        let mut rolled_back = write(Op::Put, 20, 19, b"");
        rolled_back.has_overlapped_rollback = true;
        let info = MvccInfo {
            lock: Some(MvccLock {
                r#type: Op::Put as i32,
                start_ts: 50,
                primary: b"x\0\0\0k".to_vec(),
                ttl: 3000,
                ..Default::default()
            }),
            writes: vec![
                write(Op::Rollback, 40, 40, b""),
                write(Op::Put, 31, 30, b""),
                write(Op::Del, 21, 20, b""),
                rolled_back,
                write(Op::Put, 11, 10, b"a b"),
            ],
            values: vec![
                MvccValue {
                    start_ts: 50,
                    value: vec![0; 256],
                },
                MvccValue {
                    start_ts: 30,
                    value: vec![0; 300],
                },
            ],
        };
        let text = render(b"k", &route(), &info);
        let lines: Vec<&str> = text.lines().skip(2).collect();
        assert_eq!(
            lines,
            vec![
                "lock: type=Put start_ts=50 primary=k ttl=3000 \
                 value=<long value in default CF, 256 bytes>",
                "writes: 5, newest first",
                "  commit_ts=40 start_ts=40 type=Rollback",
                "  commit_ts=31 start_ts=30 type=Put value=<long value in default CF, 300 bytes>",
                "  commit_ts=21 start_ts=20 type=Delete",
                "  commit_ts=20 start_ts=19 type=Put value= overlapped_rollback",
                "  commit_ts=11 start_ts=10 type=Put value=a\\x20b",
            ]
        );
    }

    #[test]
    fn lock_extras_show_only_when_set() {
        let lock = MvccLock {
            r#type: Op::Lock as i32,
            start_ts: 5,
            primary: b"x\0\0\0p".to_vec(),
            ttl: 10,
            for_update_ts: 6,
            use_async_commit: true,
            secondaries: vec![b"x\0\0\0s".to_vec()],
            ..Default::default()
        };
        assert_eq!(
            lock_fields(&lock, &MvccInfo::default()),
            "type=Lock start_ts=5 primary=p ttl=10 for_update_ts=6 async_commit secondaries=1"
        );
    }
}
