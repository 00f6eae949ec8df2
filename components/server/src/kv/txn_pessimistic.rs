//! The pessimistic half of the transactional API: KvPessimisticLock and
//! KVPessimisticRollback. Each runs its action from the `txn` crate under the latches of its
//! keys (`TxnKv::write_command`), like the other writing commands.
//!
//! A lock request is all-or-nothing (TiKV's `AcquirePessimisticLock` command): the first key
//! that cannot be locked fails the whole request and nothing is written. A key locked by
//! another transaction makes the request wait in that key's FIFO queue (`lock_wait`) until
//! the lock is released on this store, then try again; when its wait ends first it is
//! answered with `KeyError.locked`, and the client resolves that lock (or backs off while it
//! is alive) and sends the request again.
//!
//! While it waits, the wait is reported to the cluster's deadlock detector on PD (as TiKV's
//! lock manager reports to its detector). When the wait would close a cycle of transactions
//! waiting for each other, the request is answered at once with `KeyError.deadlock` (the lock
//! it waited for, the key the cycle closes on, the whole wait chain) and locks nothing; the
//! client gives that transaction up, which releases the others. Without a reachable
//! detector, such waits end by the wait limit as before.

use std::time::{Duration, Instant};

use proto::kvrpcpb::{
    self, Assertion, Context, KeyError, LockInfo, Op, PessimisticLockRequest,
    PessimisticLockResponse, PessimisticRollbackRequest, PessimisticRollbackResponse,
};
use tracing::debug;
use txn::actions::acquire_pessimistic_lock::{acquire_pessimistic_lock, PessimisticLockParams};
use txn::actions::pessimistic_rollback::pessimistic_rollback;

use super::errors::KvError;
use super::lock_wait::{DeadlockFound, LockWaiter, Wake};
use super::metrics::DEADLOCKS;
use super::txn::{check_ts, TxnKv};

impl TxnKv {
    /// Locks every mutation's key for the transaction at `start_version`, checking for
    /// conflicts at `for_update_ts`. With `return_values`, `values` and `not_founds` hold one
    /// entry per mutation, in request order (the value visible at `for_update_ts`).
    ///
    /// Errors (as key errors): `locked`, `deadlock` (waiting would close a cycle: give the
    /// transaction up), `conflict` (retry the statement with a newer for_update_ts),
    /// `already_exist` for a NotExist assertion, `abort` for a rolled-back transaction or a
    /// malformed request (an op other than PessimisticLock, for_update_ts below start_ts, an
    /// empty primary).
    pub async fn pessimistic_lock(
        &self,
        req: PessimisticLockRequest,
    ) -> Result<PessimisticLockResponse, KvError> {
        let keys: Vec<Vec<u8>> = req.mutations.iter().map(|m| m.key.clone()).collect();
        let ctx = self.check(req.context.as_ref(), &keys)?;
        check_ts("start_version", req.start_version)?;
        check_ts("for_update_ts", req.for_update_ts)?;
        if req.mutations.is_empty() {
            return Err(KvError::InvalidArgument(
                "pessimistic lock without mutations".into(),
            ));
        }
        let mut should_not_exist = Vec::with_capacity(req.mutations.len());
        for m in &req.mutations {
            if m.op != Op::PessimisticLock as i32 {
                return Err(KvError::InvalidArgument(format!(
                    "a pessimistic lock request carries op {}, not PessimisticLock",
                    m.op
                )));
            }
            should_not_exist.push(m.assertion == Assertion::NotExist as i32);
        }
        let params = PessimisticLockParams {
            need_value: req.return_values,
            min_commit_ts: req.min_commit_ts,
            ..PessimisticLockParams::new(
                req.primary_lock,
                req.start_version,
                req.for_update_ts,
                req.lock_ttl,
            )
        };
        params.validate()?;
        // A value returned, or an absence asserted, at for_update_ts is a read there: no later
        // async-commit or 1PC commit may land at or below it.
        if params.need_value || should_not_exist.contains(&true) {
            self.cm.update_max_ts(params.for_update_ts)?;
        }
        let need_value = params.need_value;
        let wait = lock_wait_limit(req.wait_timeout, self.cfg.lock_wait_timeout);
        let deadline = Instant::now() + wait;
        let mut waiter: Option<LockWaiter> = None;
        let mut attempts = 0;
        let values = loop {
            attempts += 1;
            let attempt = self
                .try_pessimistic_lock(&ctx, &keys, &params, &should_not_exist)
                .await;
            let info = match attempt {
                Err(KvError::Txn(e))
                    if Instant::now() < deadline && attempts < MAX_LOCK_ATTEMPTS =>
                {
                    match *e {
                        txn::Error::KeyIsLocked(info) => info,
                        other => return Err(KvError::Txn(Box::new(other))),
                    }
                }
                other => break other?,
            };
            match waiter.take() {
                // Queued on this key, and it is still locked: sleep until it is released,
                // the wait turns out to close a deadlock, or time is up.
                Some(mut queued) if queued.raw_key() == info.key.as_slice() => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match queued.wait(info.lock_version, left).await {
                        Wake::Released => {}
                        Wake::TimedOut => {
                            return Err(KvError::Txn(Box::new(txn::Error::KeyIsLocked(info))))
                        }
                        Wake::Deadlock(found) => {
                            DEADLOCKS.inc();
                            debug!(
                                start_ts = req.start_version,
                                lock_ts = info.lock_version,
                                "pessimistic lock request answered with a deadlock"
                            );
                            return Ok(deadlock_response(&info, *found));
                        }
                    }
                }
                // Queue up first, then look again at once: a release between the failed
                // attempt and the queueing would otherwise be missed. A request queued on
                // another key (the one it met before was released, now another is locked)
                // leaves that queue for this one.
                _ => waiter = Some(self.lock_waits.register(&info.key, req.start_version)),
            }
        };
        let mut resp = PessimisticLockResponse::default();
        if need_value {
            resp.not_founds = values.iter().map(Option::is_none).collect();
            resp.values = values.into_iter().map(Option::unwrap_or_default).collect();
        }
        Ok(resp)
    }

    /// One all-or-nothing attempt at locking `keys`: the values (with `need_value`) in order.
    async fn try_pessimistic_lock(
        &self,
        ctx: &Context,
        keys: &[Vec<u8>],
        params: &PessimisticLockParams,
        should_not_exist: &[bool],
    ) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        let (lock_keys, params, not_exist) =
            (keys.to_vec(), params.clone(), should_not_exist.to_vec());
        self.write_command(ctx, keys, move |reader, _region, changes| {
            let mut values = Vec::with_capacity(lock_keys.len());
            for (key, not_exist) in lock_keys.iter().zip(not_exist) {
                values.push(acquire_pessimistic_lock(
                    reader, changes, &params, key, not_exist,
                )?);
            }
            Ok(values)
        })
        .await
    }

    /// Removes the pessimistic locks of the transaction at `start_version` taken at or below
    /// `for_update_ts` from `keys`; other locks and absent locks are left alone, and nothing
    /// else is written (no rollback record: the transaction may still lock again).
    pub async fn pessimistic_rollback(
        &self,
        req: PessimisticRollbackRequest,
    ) -> Result<PessimisticRollbackResponse, KvError> {
        let ctx = self.check(req.context.as_ref(), &req.keys)?;
        check_ts("start_version", req.start_version)?;
        check_ts("for_update_ts", req.for_update_ts)?;
        let (start_ts, for_update_ts) = (req.start_version, req.for_update_ts);
        let keys = req.keys.clone();
        self.write_command(&ctx, &req.keys, move |reader, _region, changes| {
            for key in &keys {
                pessimistic_rollback(reader, changes, key, start_ts, for_update_ts)?;
            }
            Ok(())
        })
        .await?;
        Ok(PessimisticRollbackResponse::default())
    }
}

/// The answer to a lock request whose wait for the lock `info` would close a deadlock:
/// `KeyError.deadlock` and nothing locked (TiKV's `extract_key_error` of its `Deadlock`).
fn deadlock_response(info: &LockInfo, found: DeadlockFound) -> PessimisticLockResponse {
    PessimisticLockResponse {
        errors: vec![KeyError {
            deadlock: Some(kvrpcpb::Deadlock {
                lock_ts: info.lock_version,
                lock_key: info.key.clone(),
                deadlock_key_hash: found.deadlock_key_hash,
                wait_chain: found.wait_chain,
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Attempts of one lock request at most, so its loop always ends even if it keeps being
/// woken and beaten to the lock.
const MAX_LOCK_ATTEMPTS: usize = 1000;

/// How long a request waits for locks: none for a negative `wait_timeout_ms`, the store's
/// `limit` for 0 (what client 0.4 sends), else the request's wait capped at `limit`.
fn lock_wait_limit(wait_timeout_ms: i64, limit: Duration) -> Duration {
    match wait_timeout_ms {
        ..=-1 => Duration::ZERO,
        0 => limit,
        ms => Duration::from_millis(ms as u64).min(limit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_follows_the_request_within_the_store_limit() {
        let limit = Duration::from_secs(1);
        assert_eq!(lock_wait_limit(-1, limit), Duration::ZERO);
        assert_eq!(lock_wait_limit(0, limit), limit);
        assert_eq!(lock_wait_limit(200, limit), Duration::from_millis(200));
        assert_eq!(lock_wait_limit(5_000, limit), limit);
    }
}
