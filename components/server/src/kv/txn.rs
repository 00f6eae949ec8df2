//! The transactional API's shared state and plumbing: every writing command runs as "take the
//! latches of its keys, read a snapshot of the region, run the action, propose its changes as
//! one raft entry, wait until applied, release the latches" (TiKV's scheduler); reads take a
//! snapshot and no latches, after raising the store's max_ts. The RPCs are in `txn_read` and
//! `txn_write`; the rules themselves are in the `txn` crate's actions.

use std::sync::Arc;

use proto::kvrpcpb::Context;
use proto::metapb::Region;
use proto::raft_cmdpb::Request;
use raftstore::{RegionSnapshot, Store};
use txn::concurrency_manager::ConcurrencyManager;
use txn::mvcc::{Key, Modify, MvccReader, MvccTxn};

use engine::{KvSnapshot, CF_LOCK};

use super::errors::KvError;
use super::latched::LatchedRunner;
use super::lock_wait::LockWaitQueues;
use super::max_ts_sync::{spawn_limit_refresh, MaxTsSync, TimestampSource};
use super::raw::ensure_in_region;
use super::{region_cmd, KvConfig};

/// Serves transactional requests on one store.
pub struct TxnKv {
    pub(super) store: Arc<Store>,
    pub(super) cfg: KvConfig,
    pub(super) latched: LatchedRunner,
    pub(super) cm: Arc<ConcurrencyManager>,
    /// Pessimistic lock requests waiting for a lock on this store to be released.
    pub(super) lock_waits: Arc<LockWaitQueues>,
    /// Which leaderships have synced max_ts from PD (async commit and 1PC need it).
    pub(super) max_ts_sync: Arc<MaxTsSync>,
}

impl TxnKv {
    /// `latched` is shared with the raw API: one latch table per store.
    pub fn new(store: Arc<Store>, cfg: KvConfig, latched: LatchedRunner) -> TxnKv {
        TxnKv {
            store,
            cfg,
            latched,
            cm: Arc::new(ConcurrencyManager::default()),
            lock_waits: Arc::new(LockWaitQueues::default()),
            max_ts_sync: Arc::new(MaxTsSync::default()),
        }
    }

    /// Syncs max_ts from `source` (PD's TSO) when a leadership first serves an async-commit
    /// or 1PC prewrite, and keeps max_ts from going more than `cfg.max_ts_drift_allowance`
    /// past the latest of its timestamps (refreshed in the background while this lives);
    /// without a source such prewrites get `MaxTimestampNotSynced` and max_ts is unbounded.
    /// Must be called inside a tokio runtime.
    pub fn set_timestamp_source(&mut self, source: TimestampSource) {
        let allowance = self.cfg.max_ts_drift_allowance;
        self.max_ts_sync = Arc::new(MaxTsSync::new(source.clone(), allowance));
        spawn_limit_refresh(Arc::downgrade(&self.cm), source, allowance);
    }

    /// Checks the context and every key of a request: the cluster's API version and
    /// transactional keys of at most `max_key_size` bytes.
    pub(super) fn check<'k>(
        &self,
        ctx: Option<&Context>,
        keys: impl IntoIterator<Item = &'k Vec<u8>>,
    ) -> Result<Context, KvError> {
        let ctx = *self.cfg.api.check_context(ctx)?;
        for key in keys {
            self.cfg.api.check_txn_key(key, self.cfg.max_key_size)?;
        }
        Ok(ctx)
    }

    /// A consistent snapshot of the context's region (leader lease or ReadIndex).
    pub(super) async fn snapshot(&self, ctx: &Context) -> Result<RegionSnapshot, KvError> {
        region_cmd::snapshot(&self.store, ctx, self.cfg.read_timeout).await
    }

    /// Runs a writing command over the user keys `raw_keys`: their latches are held from
    /// before the snapshot until the changes `action` made are applied, so the command is an
    /// atomic read-modify-write on them. Every key must lie in the region (region error
    /// otherwise). Nothing is proposed when `action` makes no change. Once applied, every lock
    /// the command removed wakes the oldest pessimistic lock request waiting on its key.
    pub(super) async fn write_command<T, F>(
        &self,
        ctx: &Context,
        raw_keys: &[Vec<u8>],
        action: F,
    ) -> Result<T, KvError>
    where
        T: Send + 'static,
        F: FnOnce(&MvccReader<'_, KvSnapshot>, &Region, &mut MvccTxn) -> Result<T, KvError>
            + Send
            + 'static,
    {
        self.write_command_in_term(ctx, raw_keys, move |reader, region, _term, changes| {
            action(reader, region, changes)
        })
        .await
    }

    /// [`Self::write_command`] for an action that also needs the raft term its snapshot was
    /// taken in (the leadership the command runs under).
    pub(super) async fn write_command_in_term<T, F>(
        &self,
        ctx: &Context,
        raw_keys: &[Vec<u8>],
        action: F,
    ) -> Result<T, KvError>
    where
        T: Send + 'static,
        F: FnOnce(&MvccReader<'_, KvSnapshot>, &Region, u64, &mut MvccTxn) -> Result<T, KvError>
            + Send
            + 'static,
    {
        let ctx = *ctx;
        let read_timeout = self.cfg.read_timeout;
        let encoded: Vec<Vec<u8>> = raw_keys
            .iter()
            .map(|k| Key::from_raw(k).into_encoded())
            .collect();
        let lock_waits = self.lock_waits.clone();
        self.latched
            .run(ctx.region_id, encoded.clone(), move |store| async move {
                let snap = region_cmd::snapshot(&store, &ctx, read_timeout).await?;
                for key in &encoded {
                    ensure_in_region(key, &snap.region)?;
                }
                let reader = MvccReader::new(&snap.snapshot);
                let mut changes = MvccTxn::new();
                let answer = action(&reader, &snap.region, snap.term, &mut changes)?;
                let modifies = changes.into_modifies();
                let released: Vec<Vec<u8>> = modifies
                    .iter()
                    .filter_map(|m| match m {
                        Modify::Delete { cf, key } if *cf == CF_LOCK => Some(key.clone()),
                        _ => None,
                    })
                    .collect();
                let requests = modifies.into_iter().map(to_request).collect();
                region_cmd::write_until_answered(&store, &ctx, snap.term, requests).await?;
                for key in released {
                    lock_waits.wake_first(&key);
                }
                Ok(answer)
            })
            .await
    }
}

/// The raft write of one MVCC change.
fn to_request(m: Modify) -> Request {
    match m {
        Modify::Put { cf, key, value } => region_cmd::put(cf, key, value),
        Modify::Delete { cf, key } => region_cmd::delete(cf, key),
    }
}

/// Refuses a zero timestamp, which no PD ever hands out.
pub(super) fn check_ts(name: &str, ts: u64) -> Result<(), KvError> {
    if ts == 0 {
        return Err(KvError::InvalidArgument(format!("{name} must not be 0")));
    }
    Ok(())
}
