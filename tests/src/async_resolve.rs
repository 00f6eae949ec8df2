//! Deciding and resolving an async-commit transaction by hand, the way a resolver that uses
//! every answer does (client-go's lock resolver). Client 0.4's `cleanup_locks` computes the
//! commit timestamp from the secondaries' locks alone and leaves out the primary's
//! `min_commit_ts`; when the primary's region answered the largest one, the store refuses to
//! commit the primary below it (that would move the commit under reads already served) and
//! the transaction stays locked however often it is cleaned up. Tests whose clients leave
//! async-commit transactions behind resolve them with this instead.

use anyhow::{bail, Result};
use proto::kvrpcpb::{CheckSecondaryLocksRequest, CheckTxnStatusRequest, ResolveLockRequest};

use crate::fleet::Fleet;
use crate::keyspace::{txn_store_key, TXN_PREFIX};
use crate::txn_by_hand::send_to_leader;

/// How a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnFate {
    Committed(u64),
    RolledBack,
}

/// The user key of a transactional key as stores and lock scans report it (keyspace prefix
/// included).
pub fn user_key(store_key: &[u8]) -> &[u8] {
    store_key.strip_prefix(TXN_PREFIX).unwrap_or(store_key)
}

/// What one secondary says.
enum Secondary {
    Locked { min_commit_ts: u64 },
    Committed(u64),
    RolledBack,
}

/// Decides the transaction at `start_ts` whose primary is user key `primary` and resolves
/// `lock_key` (a user key holding one of its locks) and, for an undecided async-commit
/// transaction, its primary and every secondary. `now` is a fresh PD timestamp: a 2PC primary
/// lock that expired before it is rolled back. Returns `None` for a 2PC transaction still
/// alive (nothing to decide yet). Errors: a store that answered a region or key error (a
/// leader moving, say); the caller retries.
pub async fn resolve_txn_of_lock(
    fleet: &Fleet,
    lock_key: &[u8],
    primary: &[u8],
    start_ts: u64,
    now: u64,
) -> Result<Option<TxnFate>> {
    let status = send_to_leader(fleet, primary, |context, mut store| {
        let request = CheckTxnStatusRequest {
            context: Some(context),
            primary_key: txn_store_key(primary),
            lock_ts: start_ts,
            caller_start_ts: 0,
            current_ts: now,
            rollback_if_not_exist: true,
            ..Default::default()
        };
        async move {
            store
                .kv_check_txn_status(request)
                .await
                .map(tonic::Response::into_inner)
        }
    })
    .await?;
    if status.region_error.is_some() || status.error.is_some() {
        bail!("CheckTxnStatus: {status:?}");
    }
    if status.commit_version != 0 {
        let fate = TxnFate::Committed(status.commit_version);
        resolve_keys(fleet, &[lock_key.to_vec()], start_ts, fate).await?;
        return Ok(Some(fate));
    }
    let Some(lock) = status.lock_info.filter(|_| status.lock_ttl != 0) else {
        resolve_keys(fleet, &[lock_key.to_vec()], start_ts, TxnFate::RolledBack).await?;
        return Ok(Some(TxnFate::RolledBack));
    };
    if !lock.use_async_commit {
        return Ok(None);
    }
    let secondaries: Vec<Vec<u8>> = lock
        .secondaries
        .iter()
        .map(|k| user_key(k).to_vec())
        .collect();
    let mut commit_ts = lock.min_commit_ts;
    let mut decided = None;
    for key in &secondaries {
        match check_secondary(fleet, key, start_ts).await? {
            Secondary::Locked { min_commit_ts } => commit_ts = commit_ts.max(min_commit_ts),
            Secondary::Committed(ts) => {
                decided = Some(TxnFate::Committed(ts));
                break;
            }
            Secondary::RolledBack => {
                decided = Some(TxnFate::RolledBack);
                break;
            }
        }
    }
    let fate = decided.unwrap_or(TxnFate::Committed(commit_ts));
    let mut keys = secondaries;
    keys.push(primary.to_vec());
    resolve_keys(fleet, &keys, start_ts, fate).await?;
    Ok(Some(fate))
}

/// CheckSecondaryLocks of one key. A rolled-back key answers no lock, or a lock that is not
/// async-commit.
async fn check_secondary(fleet: &Fleet, key: &[u8], start_ts: u64) -> Result<Secondary> {
    let resp = send_to_leader(fleet, key, |context, mut store| {
        let request = CheckSecondaryLocksRequest {
            context: Some(context),
            keys: vec![txn_store_key(key)],
            start_version: start_ts,
        };
        async move {
            store
                .kv_check_secondary_locks(request)
                .await
                .map(tonic::Response::into_inner)
        }
    })
    .await?;
    if resp.region_error.is_some() || resp.error.is_some() {
        bail!("CheckSecondaryLocks: {resp:?}");
    }
    if resp.commit_ts != 0 {
        return Ok(Secondary::Committed(resp.commit_ts));
    }
    Ok(match resp.locks.first() {
        Some(lock) if lock.use_async_commit => Secondary::Locked {
            min_commit_ts: lock.min_commit_ts,
        },
        _ => Secondary::RolledBack,
    })
}

/// ResolveLock of each user key in `keys` (one request per key, to its region's leader).
async fn resolve_keys(fleet: &Fleet, keys: &[Vec<u8>], start_ts: u64, fate: TxnFate) -> Result<()> {
    let commit_version = match fate {
        TxnFate::Committed(ts) => ts,
        TxnFate::RolledBack => 0,
    };
    for key in keys {
        let resp = send_to_leader(fleet, key, |context, mut store| {
            let request = ResolveLockRequest {
                context: Some(context),
                start_version: start_ts,
                commit_version,
                keys: vec![txn_store_key(key)],
                ..Default::default()
            };
            async move {
                store
                    .kv_resolve_lock(request)
                    .await
                    .map(tonic::Response::into_inner)
            }
        })
        .await?;
        if resp.region_error.is_some() || resp.error.is_some() {
            bail!("ResolveLock: {resp:?}");
        }
    }
    Ok(())
}
