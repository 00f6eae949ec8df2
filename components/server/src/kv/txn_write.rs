//! The writing commands of the transactional API: KvPrewrite, KvCommit, KvBatchRollback,
//! KvTxnHeartBeat, KvCheckTxnStatus, KvCheckSecondaryLocks, KvResolveLock and
//! UnsafeDestroyRange. Each checks its request, then runs its action from the `txn` crate
//! under the latches of its keys (`TxnKv::write_command`).

use std::collections::HashMap;
use std::sync::Arc;

use engine::{CF_DEFAULT, CF_LOCK, CF_WRITE};
use proto::kvrpcpb::{
    BatchRollbackRequest, BatchRollbackResponse, CheckSecondaryLocksRequest,
    CheckSecondaryLocksResponse, CheckTxnStatusRequest, CheckTxnStatusResponse, CommitRequest,
    CommitResponse, Context, LockInfo, Mutation, Op, PrewriteRequest, PrewriteResponse,
    ResolveLockRequest, ResolveLockResponse, TxnHeartBeatRequest, TxnHeartBeatResponse,
    UnsafeDestroyRangeRequest, UnsafeDestroyRangeResponse,
};
use txn::actions::async_commit::prewrite_async;
use txn::actions::check_secondary_locks::{check_secondary_locks, SecondaryLocksStatus};
use txn::actions::check_txn_status::{check_txn_status, CheckTxnStatusParams};
use txn::actions::prewrite::{prewrite_mutations, PrewriteParams};
use txn::actions::{commit, heartbeat, resolve_lock, rollback};
use txn::concurrency_manager::MemoryLockGuard;
use txn::mvcc::{Key, MvccReader};

use super::errors::KvError;
use super::txn::{check_ts, TxnKv};

/// One round of an async-commit or 1PC prewrite.
enum AsyncAttempt {
    /// The leadership of this term has not synced max_ts yet; nothing was done.
    NotSynced(u64),
    /// The prewrite ran and its changes are applied; the memory locks are released when this
    /// is dropped.
    Done {
        errors: Vec<txn::Error>,
        min_commit_ts: u64,
        one_pc_commit_ts: u64,
        _memory_locks: Option<MemoryLockGuard>,
    },
}

/// Locks resolved per latched round of a region-wide ResolveLock (TiKV reads 256 per round).
const RESOLVE_BATCH: usize = 256;
/// Upper bound on rounds of one ResolveLock request, so a request always ends.
const RESOLVE_MAX_ROUNDS: usize = 10_000;

impl TxnKv {
    pub async fn prewrite(&self, req: PrewriteRequest) -> Result<PrewriteResponse, KvError> {
        let keys: Vec<Vec<u8>> = req.mutations.iter().map(|m| m.key.clone()).collect();
        let ctx = self.check(req.context.as_ref(), &keys)?;
        check_ts("start_version", req.start_version)?;
        if req.mutations.is_empty() {
            return Err(KvError::InvalidArgument(
                "prewrite without mutations".into(),
            ));
        }
        // for_update_ts != 0 makes it a pessimistic prewrite: each mutation's action says
        // whether its key must already hold this transaction's pessimistic lock.
        let params = PrewriteParams {
            txn_size: req.txn_size,
            for_update_ts: req.for_update_ts,
            pessimistic_actions: PrewriteParams::pessimistic_actions_from_pb(
                &req.pessimistic_actions,
            )?,
            use_async_commit: req.use_async_commit,
            try_one_pc: req.try_one_pc,
            // Client 0.4 sends the secondaries with every 2PC batch too; only async commit
            // and 1PC use them (reference §1.2).
            secondaries: if req.use_async_commit || req.try_one_pc {
                req.secondaries
            } else {
                Vec::new()
            },
            min_commit_ts: req.min_commit_ts,
            max_commit_ts: req.max_commit_ts,
            ..PrewriteParams::new(req.start_version, req.primary_lock, req.lock_ttl)
        };
        // The transaction's primary and secondaries are keys it will resolve through: they
        // must be keys a transactional request may name.
        for key in std::iter::once(&params.primary).chain(&params.secondaries) {
            self.cfg.api.check_txn_key(key, self.cfg.max_key_size)?;
        }
        // An absence check is a read at start_ts: no async-commit or 1PC commit may land at
        // or below it afterwards (TiKV raises max_ts for Insert and CheckNotExists too).
        let checks_absence = req.mutations.iter().any(|m| {
            m.op == proto::kvrpcpb::Op::Insert as i32
                || m.op == proto::kvrpcpb::Op::CheckNotExists as i32
        });
        if checks_absence {
            self.cm.update_max_ts(params.start_ts)?;
        }
        let mutations = req.mutations;
        if params.use_async_commit || params.try_one_pc {
            return self.prewrite_async(ctx, keys, params, mutations).await;
        }
        let errors = self
            .write_command(&ctx, &keys, move |reader, _region, changes| {
                let outcome = prewrite_mutations(reader, &params, &mutations)?;
                changes.extend(outcome.modifies);
                Ok(outcome.errors)
            })
            .await?;
        Ok(PrewriteResponse {
            errors: errors.iter().filter_map(|e| e.to_key_error()).collect(),
            ..Default::default()
        })
    }

    /// An async-commit or 1PC prewrite: under the keys' latches, on a leadership that has
    /// synced max_ts from PD (synced first if not: the client does not retry
    /// `MaxTimestampNotSynced`), choose the commit timestamp with the keys in the memory lock
    /// table, and keep them there until the write is applied.
    async fn prewrite_async(
        &self,
        ctx: Context,
        keys: Vec<Vec<u8>>,
        params: PrewriteParams,
        mutations: Vec<Mutation>,
    ) -> Result<PrewriteResponse, KvError> {
        // A leadership change between the sync and the prewrite asks for another sync; a
        // few rounds cover any realistic run of elections.
        const SYNC_ROUNDS: usize = 3;
        let params = Arc::new(params);
        let mutations = Arc::new(mutations);
        for _ in 0..SYNC_ROUNDS {
            let (cm, sync) = (self.cm.clone(), self.max_ts_sync.clone());
            let (params, mutations) = (params.clone(), mutations.clone());
            let region_id = ctx.region_id;
            let attempt = self
                .write_command_in_term(&ctx, &keys, move |reader, _region, term, changes| {
                    if !sync.is_synced(region_id, term) {
                        return Ok(AsyncAttempt::NotSynced(term));
                    }
                    let outcome = prewrite_async(reader, &params, &mutations, &cm)?;
                    changes.extend(outcome.modifies);
                    Ok(AsyncAttempt::Done {
                        errors: outcome.errors,
                        min_commit_ts: outcome.min_commit_ts,
                        one_pc_commit_ts: outcome.one_pc_commit_ts,
                        _memory_locks: outcome.memory_locks,
                    })
                })
                .await?;
            match attempt {
                AsyncAttempt::NotSynced(term) => {
                    self.max_ts_sync.sync(&self.cm, region_id, term).await?
                }
                AsyncAttempt::Done {
                    errors,
                    min_commit_ts,
                    one_pc_commit_ts,
                    ..
                } => {
                    return Ok(PrewriteResponse {
                        errors: errors.iter().filter_map(|e| e.to_key_error()).collect(),
                        min_commit_ts,
                        one_pc_commit_ts,
                        ..Default::default()
                    })
                }
            }
        }
        Err(KvError::Region(Box::new(proto::errorpb::Error {
            message: format!(
                "max timestamp of region {} not synced: leadership kept changing",
                ctx.region_id
            ),
            max_timestamp_not_synced: Some(Default::default()),
            ..Default::default()
        })))
    }

    pub async fn commit(&self, req: CommitRequest) -> Result<CommitResponse, KvError> {
        let ctx = self.check(req.context.as_ref(), &req.keys)?;
        check_ts("start_version", req.start_version)?;
        if req.commit_version <= req.start_version {
            return Err(KvError::InvalidArgument(format!(
                "commit_version {} must be above start_version {}",
                req.commit_version, req.start_version
            )));
        }
        let (start_ts, commit_ts) = (req.start_version, req.commit_version);
        let keys = req.keys.clone();
        self.write_command(&ctx, &req.keys, move |reader, _region, changes| {
            for key in &keys {
                commit::commit(reader, changes, key, start_ts, commit_ts)?;
            }
            Ok(())
        })
        .await?;
        Ok(CommitResponse {
            commit_version: commit_ts,
            ..Default::default()
        })
    }

    pub async fn batch_rollback(
        &self,
        req: BatchRollbackRequest,
    ) -> Result<BatchRollbackResponse, KvError> {
        let ctx = self.check(req.context.as_ref(), &req.keys)?;
        check_ts("start_version", req.start_version)?;
        let start_ts = req.start_version;
        let keys = req.keys.clone();
        self.write_command(&ctx, &req.keys, move |reader, _region, changes| {
            for key in &keys {
                rollback::rollback(reader, changes, key, start_ts, false)?;
            }
            Ok(())
        })
        .await?;
        Ok(BatchRollbackResponse::default())
    }

    pub async fn txn_heart_beat(
        &self,
        req: TxnHeartBeatRequest,
    ) -> Result<TxnHeartBeatResponse, KvError> {
        let ctx = self.check(req.context.as_ref(), [&req.primary_lock])?;
        check_ts("start_version", req.start_version)?;
        let (start_ts, advise) = (req.start_version, req.advise_lock_ttl);
        let primary = req.primary_lock.clone();
        let lock_ttl = self
            .write_command(
                &ctx,
                &[req.primary_lock],
                move |reader, _region, changes| {
                    Ok(heartbeat::txn_heart_beat(
                        reader, changes, &primary, start_ts, advise,
                    )?)
                },
            )
            .await?;
        Ok(TxnHeartBeatResponse {
            lock_ttl,
            ..Default::default()
        })
    }

    pub async fn check_txn_status(
        &self,
        req: CheckTxnStatusRequest,
    ) -> Result<CheckTxnStatusResponse, KvError> {
        let ctx = self.check(req.context.as_ref(), [&req.primary_key])?;
        check_ts("lock_ts", req.lock_ts)?;
        // Reference §2.5: the status check counts as a read at each of these timestamps.
        for ts in [req.lock_ts, req.caller_start_ts, req.current_ts] {
            self.cm.update_max_ts(ts)?;
        }
        let params = CheckTxnStatusParams {
            primary_key: req.primary_key.clone(),
            lock_ts: req.lock_ts,
            caller_start_ts: req.caller_start_ts,
            current_ts: req.current_ts,
            rollback_if_not_exist: req.rollback_if_not_exist,
            force_sync_commit: req.force_sync_commit,
            resolving_pessimistic_lock: req.resolving_pessimistic_lock,
            verify_is_primary: req.verify_is_primary,
        };
        let status = self
            .write_command(&ctx, &[req.primary_key], move |reader, _region, changes| {
                Ok(check_txn_status(reader, changes, &params)?)
            })
            .await?;
        let (commit_version, lock_ttl, lock_info) = status.reply();
        Ok(CheckTxnStatusResponse {
            commit_version,
            lock_ttl,
            lock_info,
            action: status.action() as i32,
            ..Default::default()
        })
    }

    pub async fn check_secondary_locks(
        &self,
        req: CheckSecondaryLocksRequest,
    ) -> Result<CheckSecondaryLocksResponse, KvError> {
        let ctx = self.check(req.context.as_ref(), &req.keys)?;
        check_ts("start_version", req.start_version)?;
        self.cm.update_max_ts(req.start_version)?;
        let start_ts = req.start_version;
        let keys = req.keys.clone();
        let status = self
            .write_command(&ctx, &req.keys, move |reader, _region, changes| {
                Ok(check_secondary_locks(reader, changes, &keys, start_ts)?)
            })
            .await?;
        let mut resp = CheckSecondaryLocksResponse::default();
        match status {
            SecondaryLocksStatus::Locked(locks) => resp.locks = locks,
            SecondaryLocksStatus::Committed(ts) => resp.commit_ts = ts,
            SecondaryLocksStatus::RolledBack => {
                resp.locks = vec![rolled_back_marker(start_ts, req.keys.first().cloned())]
            }
        }
        Ok(resp)
    }

    /// Resolves every lock of the named transactions in the region: a read phase finds up
    /// to `RESOLVE_BATCH` of their locks on a snapshot, then a latched write phase commits or
    /// rolls back each that is still there; repeated until none is left (TiKV's
    /// `resolve_lock_readphase` / `resolve_lock`).
    pub async fn resolve_lock(
        &self,
        req: ResolveLockRequest,
    ) -> Result<ResolveLockResponse, KvError> {
        let ctx = self.check(req.context.as_ref(), &req.keys)?;
        let status = txn_status_of(&req)?;
        for _ in 0..RESOLVE_MAX_ROUNDS {
            let snap = self.snapshot(&ctx).await?;
            let reader = MvccReader::new(&snap.snapshot);
            let region_end = snap.region.end_key.clone();
            let found = reader.scan_locks(
                &snap.region.start_key,
                &region_end,
                |lock| status.contains_key(&lock.ts),
                RESOLVE_BATCH,
            )?;
            if found.is_empty() {
                return Ok(ResolveLockResponse::default());
            }
            let raw_keys = found
                .iter()
                .map(|(key, _)| key.to_raw())
                .collect::<Result<Vec<_>, _>>()?;
            let status = status.clone();
            let keys = raw_keys.clone();
            self.write_command(&ctx, &raw_keys, move |reader, _region, changes| {
                for raw in &keys {
                    let key = Key::from_raw(raw);
                    // The lock may have been resolved since the read phase.
                    let Some(lock) = reader.load_lock(&key)? else {
                        continue;
                    };
                    if let Some(commit_ts) = status.get(&lock.ts) {
                        resolve_lock::resolve_lock(reader, changes, &key, &lock, *commit_ts)?;
                    }
                }
                Ok(())
            })
            .await?;
        }
        Err(KvError::Internal(format!(
            "region {} still has locks to resolve after {RESOLVE_MAX_ROUNDS} rounds",
            ctx.region_id
        )))
    }

    /// Deletes every transactional key in `[start_key, end_key)` on this store, in every
    /// data CF, without raft: the client sends it to every store (tests and tooling only, as
    /// TiKV's name says).
    pub async fn unsafe_destroy_range(
        &self,
        req: UnsafeDestroyRangeRequest,
    ) -> Result<UnsafeDestroyRangeResponse, KvError> {
        self.cfg.check_txn_range(&req.start_key, &req.end_key)?;
        if req.start_key.is_empty() || req.end_key.is_empty() || req.start_key >= req.end_key {
            return Err(KvError::InvalidArgument(
                "unsafe_destroy_range needs start_key < end_key, both set".into(),
            ));
        }
        let start = keys::data_key(Key::from_raw(&req.start_key).as_encoded());
        let end = keys::data_key(Key::from_raw(&req.end_key).as_encoded());
        let kv = self.store.kv().clone();
        tokio::task::spawn_blocking(move || {
            let mut wb = kv.write_batch();
            for cf in [CF_DEFAULT, CF_LOCK, CF_WRITE] {
                wb.delete_range_cf(cf, &start, &end)?;
            }
            kv.write(&wb, true)
        })
        .await
        .map_err(|e| KvError::Internal(format!("unsafe_destroy_range task: {e}")))??;
        Ok(UnsafeDestroyRangeResponse::default())
    }
}

/// start_ts -> commit_ts (0 = roll back) of the transactions a ResolveLock names: its
/// `txn_infos`, or else its single `start_version` / `commit_version`.
fn txn_status_of(req: &ResolveLockRequest) -> Result<HashMap<u64, u64>, KvError> {
    let pairs: Vec<(u64, u64)> = if req.txn_infos.is_empty() {
        vec![(req.start_version, req.commit_version)]
    } else {
        req.txn_infos.iter().map(|t| (t.txn, t.status)).collect()
    };
    for (start_ts, commit_ts) in &pairs {
        check_ts("start_version", *start_ts)?;
        if *commit_ts != 0 && commit_ts <= start_ts {
            return Err(KvError::InvalidArgument(format!(
                "commit_version {commit_ts} must be 0 or above start_version {start_ts}"
            )));
        }
    }
    Ok(pairs.into_iter().collect())
}

/// The answer to CheckSecondaryLocks for a region where the transaction is rolled back. TiKV
/// answers with no lock and no commit_ts, and a client that counts the locks against the keys
/// (client-go) reads that as rolled back; client 0.4 does not count, so when another region of
/// the same transaction still reports its locks it commits the transaction at their
/// min_commit_ts, over the rollback, and half of it is lost. One entry with
/// `use_async_commit` unset makes every client fall back to deciding the transaction by its
/// primary alone, as two-phase commit does (client 0.4: `fallback_2pc`, then CheckTxnStatus
/// with `force_sync_commit`), which rolls it back; a client that counts keys still sees fewer
/// locks than keys, or a non-async lock, and rolls back too. It stands for `key` (the first
/// key asked about), at the transaction's start_ts, with type `Rollback`.
fn rolled_back_marker(start_ts: u64, key: Option<Vec<u8>>) -> LockInfo {
    LockInfo {
        key: key.unwrap_or_default(),
        lock_version: start_ts,
        lock_type: Op::Rollback as i32,
        use_async_commit: false,
        ..Default::default()
    }
}
