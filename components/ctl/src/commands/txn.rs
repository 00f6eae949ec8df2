//! `txn get/put/delete/scan` and `locks`: the transactional API through the official client,
//! in the default keyspace. Each command is one optimistic transaction: reads use a fresh
//! snapshot and roll back, writes commit.

use std::ops::Bound;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use tikv_client::{
    BoundRange, CheckLevel, Key, ProtoLockInfo, Transaction, TransactionClient, TransactionOptions,
};

use crate::cli::{LocksArgs, ScanArgs};
use crate::commands::kv::{answer_too_large, scan_range, smaller_page, SCAN_PAGE};
use crate::keyfmt::{escape, escape_with, key_value_line, shown, unescape};

/// Connects a transaction client to the PD at `pd` (gRPC `host:port`).
/// With `api_version` 2 the client addresses the default keyspace; with 1, keys as given.
pub async fn connect(pd: &str, timeout: Duration, api_version: u8) -> Result<TransactionClient> {
    let config = crate::tls::tikv_config().with_timeout(timeout);
    let config = if api_version == 1 {
        config
    } else {
        config.with_default_keyspace()
    };
    let connecting = TransactionClient::new_with_config(vec![pd.to_string()], config);
    crate::commands::kv::within_connect_deadline(pd, timeout, connecting).await
}

/// A new optimistic transaction. Dropping it unfinished only warns: an error path that
/// returns early (a failed commit among them) must end the command, not panic.
async fn begin(client: &TransactionClient) -> Result<Transaction> {
    client
        .begin_with_options(TransactionOptions::new_optimistic().drop_check(CheckLevel::Warn))
        .await
        .map_err(|e| anyhow!("cannot start a transaction: {e}"))
}

/// Ends a read-only transaction: a rollback, which for reads only releases the client side.
async fn finish_read(txn: &mut Transaction) -> Result<()> {
    txn.rollback()
        .await
        .map_err(|e| anyhow!("rolling back the read transaction: {e}"))
}

pub async fn get(client: &TransactionClient, key: &str) -> Result<String> {
    let shown_key = shown(key);
    let raw = unescape(key).context("key")?;
    let mut txn = begin(client).await?;
    let value = txn
        .get(raw.clone())
        .await
        .map_err(|e| anyhow!("txn get {shown_key}: {e}"))?;
    finish_read(&mut txn).await?;
    match value {
        Some(value) => Ok(format!("{}\n", key_value_line(&raw, &value))),
        None => Err(anyhow!("key {} not found", escape(&raw))),
    }
}

pub async fn put(client: &TransactionClient, key: &str, value: &str) -> Result<String> {
    let shown_key = shown(key);
    let raw = unescape(key).context("key")?;
    let value = unescape(value).context("value")?;
    let mut txn = begin(client).await?;
    txn.put(raw, value)
        .await
        .map_err(|e| anyhow!("txn put {shown_key}: {e}"))?;
    commit(&mut txn, "put", key).await
}

pub async fn delete(client: &TransactionClient, key: &str) -> Result<String> {
    let shown_key = shown(key);
    let raw = unescape(key).context("key")?;
    let mut txn = begin(client).await?;
    txn.delete(raw)
        .await
        .map_err(|e| anyhow!("txn delete {shown_key}: {e}"))?;
    commit(&mut txn, "delete", key).await
}

/// Commits a one-write transaction; a conflict (or any other failure) is the command's error,
/// which says whether the write is known not to have happened.
async fn commit(txn: &mut Transaction, what: &str, key: &str) -> Result<String> {
    let shown_key = shown(key);
    txn.commit().await.map_err(|e| {
        if refused_before_commit(&e) {
            anyhow!("txn {what} {shown_key} was not committed (nothing was written): {e}")
        } else {
            anyhow!(
                "txn {what} {shown_key} failed and may or may not have been committed: {e}\n\
                 (the store did not answer; its lock, if one was left, is resolved by the next \
                 read of the key after its TTL: check with `txn get`)"
            )
        }
    })?;
    Ok("OK\n".to_string())
}

/// Whether a failed commit was refused by the stores, so nothing of it is visible or left
/// behind: a key error (a write conflict, a lock that could not be resolved, the commit's
/// own lock rolled back by another reader) ends the transaction with its locks rolled back.
/// A transport failure or an exhausted retry is not such an answer: the commit request may
/// have been applied, or a prewrite lock left for readers to resolve (Percolator).
fn refused_before_commit(e: &tikv_client::Error) -> bool {
    use tikv_client::Error as E;
    match e {
        E::KeyError(_)
        | E::ResolveLockError(_)
        | E::DuplicateKeyInsertion
        | E::OnePcFailure
        | E::PessimisticLockError { .. }
        | E::TxnNotFound(_) => true,
        E::MultipleKeyErrors(errors) | E::ExtractedErrors(errors) => {
            !errors.is_empty() && errors.iter().all(refused_before_commit)
        }
        _ => false,
    }
}

/// One scanned row of `txn scan`: the key and, unless only keys were asked for, its value.
type TxnRow = (Key, Option<Vec<u8>>);

/// Prints the pairs (or keys) of `[from, to)` one snapshot holds, at most `limit`, in key
/// order.
pub async fn scan(client: &TransactionClient, args: &ScanArgs) -> Result<String> {
    let range = scan_range(args.from.as_deref(), args.to.as_deref())?;
    let (mut next, end) = range.into_keys();
    let mut txn = begin(client).await?;
    let mut out = String::new();
    let mut left = args.limit;
    let mut page = SCAN_PAGE;
    // Pages of one snapshot, each starting past the last key printed, so no answer
    // outgrows what the client takes (see `kv::SCAN_PAGE`).
    while left > 0 {
        let want = left.min(page);
        let range = BoundRange::new(
            Bound::Included(next.clone()),
            end.clone().map_or(Bound::Unbounded, Bound::Excluded),
        );
        let answer: std::result::Result<Vec<TxnRow>, _> = if args.keys_only {
            txn.scan_keys(range, want)
                .await
                .map(|keys| keys.map(|k| (k, None)).collect())
        } else {
            txn.scan(range, want)
                .await
                .map(|pairs| pairs.map(|p| (p.0, Some(p.1))).collect())
        };
        let rows = match answer {
            Ok(rows) => rows,
            Err(e) if answer_too_large(&e) => {
                page = smaller_page(want).ok_or_else(|| {
                    anyhow!("txn scan: a single value is larger than the client takes: {e}")
                })?;
                continue;
            }
            Err(e) => return Err(anyhow!("txn scan: {e}")),
        };
        let Some((last, _)) = rows.last() else {
            break;
        };
        let mut after_last: Vec<u8> = last.clone().into();
        after_last.push(0);
        next = Key::from(after_last);
        let full = rows.len() as u32 == want;
        left = left.saturating_sub(rows.len() as u32);
        for (key, value) in rows {
            let key: Vec<u8> = key.into();
            match value {
                Some(value) => out.push_str(&key_value_line(&key, &value)),
                None => out.push_str(&escape_with(&key, b"=")),
            }
            out.push('\n');
        }
        if !full {
            break;
        }
    }
    finish_read(&mut txn).await?;
    Ok(out)
}

/// The range `locks` looks at: one key, or `[from, to)`.
pub fn locks_range(args: &LocksArgs) -> Result<BoundRange> {
    match &args.key {
        Some(key) => {
            let key = Key::from(unescape(key).context("key")?);
            Ok(BoundRange::from(key.clone()..=key))
        }
        None => scan_range(args.from.as_deref(), args.to.as_deref()),
    }
}

/// The locks of transactions started at or before the current timestamp, in key order.
pub async fn locks(client: &TransactionClient, args: &LocksArgs) -> Result<String> {
    let range = locks_range(args)?;
    let now = client
        .current_timestamp()
        .await
        .map_err(|e| anyhow!("getting a timestamp from PD: {e}"))?;
    let mut locks = client
        .scan_locks(&now, range, args.limit)
        .await
        .map_err(|e| anyhow!("scanning locks: {e}"))?;
    // The client asks every region for up to `limit` locks and concatenates the answers.
    locks.sort_by(|a, b| a.key.cmp(&b.key));
    locks.truncate(args.limit as usize);
    Ok(locks.iter().map(lock_line).collect())
}

/// One lock as `key=K primary=P start_ts=N ttl=MS type=T`; keys escaped with spaces and `=`
/// as `\xNN` so the line splits on spaces.
pub fn lock_line(lock: &ProtoLockInfo) -> String {
    format!(
        "key={} primary={} start_ts={} ttl={} type={}\n",
        escape_with(&lock.key, b" ="),
        escape_with(&lock.primary_lock, b" ="),
        lock.lock_version,
        lock.lock_ttl,
        op_name(lock.lock_type)
    )
}

/// The name of a `kvrpcpb.Op` as the commands print it (`Del` as `Delete`).
pub fn op_name(op: i32) -> String {
    use proto::kvrpcpb::Op;
    match Op::try_from(op) {
        Ok(Op::Del) => "Delete".to_string(),
        Ok(op) => op.as_str_name().to_string(),
        Err(_) => format!("Unknown({op})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_refusals_say_nothing_was_written() {
        use tikv_client::Error as E;
        let conflict = || E::KeyError(Box::default());
        assert!(refused_before_commit(&conflict()));
        assert!(refused_before_commit(&E::ResolveLockError(vec![])));
        assert!(refused_before_commit(&E::MultipleKeyErrors(vec![
            conflict(),
            conflict()
        ])));
        // A store that did not answer, or a region error the client gave up on: the commit
        // may have been applied.
        let unanswered = || E::Io(std::io::ErrorKind::ConnectionRefused.into());
        assert!(!refused_before_commit(&unanswered()));
        assert!(!refused_before_commit(&E::UndeterminedError(Box::new(
            conflict()
        ))));
        assert!(!refused_before_commit(&E::RegionError(Box::default())));
        assert!(!refused_before_commit(&E::MultipleKeyErrors(vec![
            conflict(),
            unanswered()
        ])));
        assert!(!refused_before_commit(&E::MultipleKeyErrors(vec![])));
    }

    fn locks_args(key: Option<&str>, from: Option<&str>, to: Option<&str>) -> LocksArgs {
        LocksArgs {
            key: key.map(String::from),
            from: from.map(String::from),
            to: to.map(String::from),
            limit: 10,
        }
    }

    #[test]
    fn one_key_is_a_closed_range_of_itself() {
        let (start, end) = locks_range(&locks_args(Some("k"), None, None))
            .unwrap()
            .into_keys();
        assert_eq!(Vec::<u8>::from(start), b"k");
        // An inclusive end travels as the next key.
        assert_eq!(end.map(Vec::<u8>::from), Some(b"k\0".to_vec()));
        let (start, end) = locks_range(&locks_args(None, Some("a"), None))
            .unwrap()
            .into_keys();
        assert_eq!(Vec::<u8>::from(start), b"a");
        assert!(end.is_none());
        assert!(locks_range(&locks_args(Some("\\x"), None, None)).is_err());
    }

    #[test]
    fn lock_lines_escape_keys_and_name_the_type() {
        let lock = ProtoLockInfo {
            key: b"a b".to_vec(),
            primary_lock: b"p=1".to_vec(),
            lock_version: 42,
            lock_ttl: 3000,
            lock_type: proto::kvrpcpb::Op::Put as i32,
            ..Default::default()
        };
        assert_eq!(
            lock_line(&lock),
            "key=a\\x20b primary=p\\x3d1 start_ts=42 ttl=3000 type=Put\n"
        );
        assert_eq!(op_name(proto::kvrpcpb::Op::Del as i32), "Delete");
        assert_eq!(op_name(proto::kvrpcpb::Op::Rollback as i32), "Rollback");
        assert_eq!(op_name(99), "Unknown(99)");
    }
}
