//! The stores a workload can drive: a Shoal fleet through the official `tikv-client` raw API or
//! its transactions (default keyspace; optimistic, pessimistic, async-commit or 1PC), or an
//! etcd cluster through its v3 gRPC API for a like-for-like comparison. All read
//! linearizably: Shoal by lease or ReadIndex (raw) or at a fresh PD timestamp (txn), etcd by
//! its ReadIndex.

use std::time::{Duration, Instant};

use tikv_client::transaction::Mutation;
use tikv_client::{
    CheckLevel, Config, Key, RawClient, Snapshot, TimestampExt, Transaction, TransactionClient,
    TransactionOptions,
};
use tonic::transport::{Channel, Endpoint};

use super::bank_ledger::{self, TransferPlan};

/// The etcd v3 KV API (the subset in `proto/etcd_kv.proto`).
#[allow(clippy::all)]
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}

use etcdserverpb::kv_client::KvClient;
use etcdserverpb::{PutRequest, RangeRequest};

/// A failed request, with the store's own message.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("connect: {0}")]
    Connect(String),
    #[error("{0}")]
    Request(String),
    #[error("record not found")]
    NotFound,
    /// A transaction lost to a concurrent one (a write conflict, a deadlock, a lock that stayed
    /// in its way). Counted as an abort, apart from errors, and never retried: retrying would
    /// hide the cost of contention.
    #[error("write conflict: {0}")]
    Conflict(String),
    /// The client could not open a connection to the store it sent the request to
    /// (tikv-client's `Error::Grpc`); it keeps sending there, so the runner replaces it
    /// (`ycsb::renew`). Counted as an error.
    #[error("store unreachable: {0}")]
    StoreUnreachable(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Shoal,
    Etcd,
}

impl std::str::FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "shoal" | "tikv" => Ok(Target::Shoal),
            "etcd" => Ok(Target::Etcd),
            other => Err(format!("unknown target {other:?} (shoal, etcd)")),
        }
    }
}

/// The client API a run drives a Shoal fleet through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// One raw request per operation (`RawClient`).
    #[default]
    Raw,
    /// One Percolator transaction per operation (`TransactionClient`): a PD timestamp, then
    /// two-phase commit for writes, in the run's [`TxnMode`].
    Txn,
}

impl Api {
    pub fn name(self) -> &'static str {
        match self {
            Api::Raw => "raw",
            Api::Txn => "txn",
        }
    }

    /// Whether `target` offers this API: etcd is only driven through its plain KV calls.
    pub fn check_target(self, target: Target) -> Result<(), String> {
        match (self, target) {
            (Api::Txn, Target::Etcd) => Err("--api txn needs --target shoal".into()),
            _ => Ok(()),
        }
    }
}

impl std::str::FromStr for Api {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "raw" => Ok(Api::Raw),
            "txn" => Ok(Api::Txn),
            other => Err(format!("unknown api {other:?} (raw, txn)")),
        }
    }
}

/// How transactions take their keys and commit (`--txn-mode`, with `--api txn`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TxnMode {
    /// Reads at the start timestamp; prewrite finds conflicts; then the primary's commit.
    #[default]
    #[serde(rename = "optimistic")]
    Optimistic,
    /// Keys read to be written are locked first (`get_for_update`; blind writes lock as they
    /// write), reading their latest value; prewrite and commit as optimistic ones.
    #[serde(rename = "pessimistic")]
    Pessimistic,
    /// Optimistic, with async commit: the transaction is committed once every prewrite
    /// succeeded, the commits are sent in the background.
    #[serde(rename = "async")]
    AsyncCommit,
    /// Optimistic, trying one-phase commit: a prewrite that reaches a single region commits.
    #[serde(rename = "1pc")]
    OnePc,
}

impl TxnMode {
    pub const ALL: [TxnMode; 4] = [
        TxnMode::Optimistic,
        TxnMode::Pessimistic,
        TxnMode::AsyncCommit,
        TxnMode::OnePc,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TxnMode::Optimistic => "optimistic",
            TxnMode::Pessimistic => "pessimistic",
            TxnMode::AsyncCommit => "async",
            TxnMode::OnePc => "1pc",
        }
    }

    /// The client's options for a read-write transaction of this mode. Dropping one unfinished
    /// is allowed: the bench rolls back what needs it and counts the rest (see `abandon`).
    pub fn options(self) -> TransactionOptions {
        let options = match self {
            TxnMode::Optimistic => TransactionOptions::new_optimistic(),
            TxnMode::Pessimistic => TransactionOptions::new_pessimistic(),
            TxnMode::AsyncCommit => TransactionOptions::new_optimistic().use_async_commit(),
            TxnMode::OnePc => TransactionOptions::new_optimistic().try_one_pc(),
        };
        options.drop_check(CheckLevel::None)
    }

    pub fn is_pessimistic(self) -> bool {
        self == TxnMode::Pessimistic
    }
}

impl std::str::FromStr for TxnMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "optimistic" => Ok(TxnMode::Optimistic),
            "pessimistic" => Ok(TxnMode::Pessimistic),
            "async" | "async-commit" => Ok(TxnMode::AsyncCommit),
            "1pc" | "one-pc" => Ok(TxnMode::OnePc),
            other => Err(format!(
                "unknown txn mode {other:?} (optimistic, pessimistic, async, 1pc)"
            )),
        }
    }
}

impl std::fmt::Display for TxnMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a bank transfer did when it did not fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferOutcome {
    /// The money moved and the transaction committed.
    Moved,
    /// The source account held less than the amount: nothing was written.
    Declined,
}

/// How long each step of a read-modify-write took; a step that did not finish is `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RmwSteps {
    pub read: Option<Duration>,
    pub write: Option<Duration>,
}

/// One connection to the store under test; cheap to clone, one clone per client task.
#[derive(Clone)]
pub enum Backend {
    Shoal(RawClient),
    /// Transactions of one mode.
    ShoalTxn(TransactionClient, TxnMode),
    Etcd(KvClient<Channel>),
}

impl Backend {
    /// Connects to `endpoints` (PD addresses for Shoal, member client URLs for etcd) with the
    /// client of `api` (optimistic transactions for `txn`; see [`Backend::with_txn_mode`]).
    pub async fn connect(
        target: Target,
        api: Api,
        endpoints: &[String],
        timeout: Duration,
    ) -> Result<Backend, BackendError> {
        api.check_target(target).map_err(BackendError::Connect)?;
        match target {
            Target::Shoal => {
                let config = Config::default()
                    .with_default_keyspace()
                    .with_timeout(timeout);
                let connected = match api {
                    Api::Raw => RawClient::new_with_config(endpoints.to_vec(), config)
                        .await
                        .map(Backend::Shoal),
                    Api::Txn => TransactionClient::new_with_config(endpoints.to_vec(), config)
                        .await
                        .map(|c| Backend::ShoalTxn(c, TxnMode::Optimistic)),
                };
                connected.map_err(|e| BackendError::Connect(e.to_string()))
            }
            Target::Etcd => {
                // Requests are spread over the members, as etcd's own client balances them.
                let mut members = Vec::new();
                for url in endpoints {
                    let endpoint = Endpoint::from_shared(url.clone())
                        .map_err(|e| BackendError::Connect(format!("{url}: {e}")))?
                        .timeout(timeout)
                        .connect_timeout(timeout);
                    members.push(endpoint);
                }
                if members.is_empty() {
                    return Err(BackendError::Connect("no etcd endpoint given".into()));
                }
                let mut client = KvClient::new(Channel::balance_list(members.into_iter()));
                // One request up front, so a wrong address fails here and not in every task.
                client
                    .range(RangeRequest {
                        key: b"shoal-bench-probe".to_vec(),
                        limit: 1,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| BackendError::Connect(e.message().to_string()))?;
                Ok(Backend::Etcd(client))
            }
        }
    }

    /// The same connection, running its transactions in `mode` (no change to other APIs).
    pub fn with_txn_mode(self, mode: TxnMode) -> Backend {
        match self {
            Backend::ShoalTxn(c, _) => Backend::ShoalTxn(c, mode),
            other => other,
        }
    }

    /// The mode of its transactions, when it runs transactions.
    pub fn txn_mode(&self) -> Option<TxnMode> {
        match self {
            Backend::ShoalTxn(_, mode) => Some(*mode),
            _ => None,
        }
    }

    /// Reads one record; a missing record is an error (the workload only reads what it wrote).
    pub async fn read(&mut self, key: Vec<u8>) -> Result<Vec<u8>, BackendError> {
        let found = match self {
            Backend::Shoal(c) => c.get(key).await.map_err(shoal_error)?,
            Backend::ShoalTxn(c, _) => Box::pin(txn_read(c, key)).await?,
            Backend::Etcd(c) => c
                .range(RangeRequest {
                    key,
                    ..Default::default()
                })
                .await
                .map_err(request_error)?
                .into_inner()
                .kvs
                .into_iter()
                .next()
                .map(|kv| kv.value),
        };
        found.ok_or(BackendError::NotFound)
    }

    /// Writes one record (insert and update are the same blind write).
    ///
    /// The transactional arms are boxed: a future holds its largest arm inline, and the
    /// runner moves each request's future a few times before polling it, so an inline
    /// transaction (several KiB) would be copied on every raw request too.
    pub async fn write(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<(), BackendError> {
        match self {
            Backend::Shoal(c) => c.put(key, value).await.map_err(shoal_error),
            Backend::ShoalTxn(c, mode) => Box::pin(txn_write(c, *mode, key, value)).await,
            Backend::Etcd(c) => c
                .put(PutRequest {
                    key,
                    value,
                    ..Default::default()
                })
                .await
                .map(|_| ())
                .map_err(request_error),
        }
    }

    /// Reads up to `limit` records from `start` on, in key order; returns how many it got.
    pub async fn scan(&mut self, start: Vec<u8>, limit: u32) -> Result<usize, BackendError> {
        match self {
            Backend::Shoal(c) => c
                .scan(Key::from(start).., limit)
                .await
                .map(|pairs| pairs.len())
                .map_err(shoal_error),
            Backend::ShoalTxn(c, _) => Box::pin(txn_scan(c, start, limit)).await,
            Backend::Etcd(c) => c
                .range(RangeRequest {
                    key: start,
                    range_end: vec![0],
                    limit: limit as i64,
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner().kvs.len())
                .map_err(request_error),
        }
    }

    /// Reads a record and writes it back with `value`, timing each step into `steps`. Through
    /// transactions both steps are one transaction (optimistic: the read at its start
    /// timestamp, the write committed only if nobody wrote the record since; pessimistic: the
    /// read locks the record with `get_for_update`); otherwise a read, then a blind write.
    pub async fn read_modify_write(
        &mut self,
        key: Vec<u8>,
        value: Vec<u8>,
        steps: &mut RmwSteps,
    ) -> Result<(), BackendError> {
        let Backend::ShoalTxn(c, mode) = self else {
            let started = Instant::now();
            self.read(key.clone()).await?;
            steps.read = Some(started.elapsed());
            let started = Instant::now();
            self.write(key, value).await?;
            steps.write = Some(started.elapsed());
            return Ok(());
        };
        let mode = *mode;
        // The read step includes the transaction's start timestamp, as a READ's does.
        let started = Instant::now();
        let mut txn = begin(c, mode).await?;
        let read = read_for_update(&mut txn, mode, key.clone()).await;
        let read = match read {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(BackendError::NotFound),
            Err(e) => Err(e),
        };
        if read.is_ok() {
            steps.read = Some(started.elapsed());
        }
        let started = Instant::now();
        let written = match read {
            Ok(()) => txn.put(key, value).await.map_err(txn_error),
            Err(e) => Err(e),
        };
        finish(&mut txn, mode, 1, written).await?;
        steps.write = Some(started.elapsed());
        Ok(())
    }

    /// One bank transfer as one transaction in the backend's mode: reads both accounts (in key
    /// order; pessimistic transactions lock them with `get_for_update`, so two transfers never
    /// wait on each other in a cycle), moves `amount` if the source holds that much, commits.
    /// A transfer that lost to a concurrent one is a [`BackendError::Conflict`] and is not
    /// retried.
    pub async fn transfer(
        &mut self,
        from: Vec<u8>,
        to: Vec<u8>,
        amount: u64,
    ) -> Result<TransferOutcome, BackendError> {
        let Backend::ShoalTxn(c, mode) = self else {
            return Err(BackendError::Request(
                "the bank runs transactions: it needs --api txn".into(),
            ));
        };
        let mode = *mode;
        let mut txn = begin(c, mode).await?;
        let planned = async {
            let (first, second) = if from <= to {
                (&from, &to)
            } else {
                (&to, &from)
            };
            let a = read_balance(&mut txn, mode, first.clone()).await?;
            let b = read_balance(&mut txn, mode, second.clone()).await?;
            let (from_balance, to_balance) = if from <= to { (a, b) } else { (b, a) };
            let plan = bank_ledger::plan_transfer(from_balance, to_balance, amount);
            if let TransferPlan::Move { from: f, to: t } = plan {
                txn.batch_mutate([
                    Mutation::Put(from.clone().into(), bank_ledger::encode_balance(f)),
                    Mutation::Put(to.clone().into(), bank_ledger::encode_balance(t)),
                ])
                .await
                .map_err(txn_error)?;
            }
            Ok(plan)
        }
        .await;
        match planned {
            Ok(TransferPlan::Move { .. }) => {
                finish(&mut txn, mode, 2, Ok(())).await?;
                Ok(TransferOutcome::Moved)
            }
            Ok(TransferPlan::Declined) => {
                // Nothing to write; a pessimistic transaction releases the locks it took.
                if mode.is_pessimistic() {
                    let _ = txn.rollback().await;
                }
                Ok(TransferOutcome::Declined)
            }
            Err(e) => {
                abandon(&mut txn, mode, 2).await;
                Err(e)
            }
        }
    }

    /// Resolves the locks left on the bank's accounts (by transfers whose rollback failed, or
    /// async-commit ones, which client 0.4's reads do not resolve), the way GC does it: scan
    /// them and settle each through its primary. A lock still within its TTL stays.
    pub async fn clean_up_account_locks(&self, accounts: u64) -> Result<(), BackendError> {
        let Backend::ShoalTxn(c, _) = self else {
            return Ok(());
        };
        let now = c.current_timestamp().await.map_err(txn_error)?;
        let range = Key::from(bank_ledger::account_key(0))
            ..=Key::from(bank_ledger::account_key(accounts.max(1) - 1));
        c.cleanup_locks(range, &now, Default::default())
            .await
            .map(|_| ())
            .map_err(txn_error)
    }

    /// Every bank account `0..accounts` with its balance, read in one snapshot at a fresh
    /// timestamp (paged scans of that snapshot), in key order.
    pub async fn read_accounts(&self, accounts: u64) -> Result<Vec<(u64, u64)>, BackendError> {
        let Backend::ShoalTxn(c, _) = self else {
            return Err(BackendError::Request(
                "the bank runs transactions: it needs --api txn".into(),
            ));
        };
        const PAGE: u32 = 4096;
        let mut snapshot = snapshot(c).await?;
        let last = bank_ledger::account_key(accounts.saturating_sub(1));
        let mut start = bank_ledger::account_key(0);
        let mut found = Vec::new();
        loop {
            let page: Vec<_> = snapshot
                .scan(Key::from(start.clone())..=Key::from(last.clone()), PAGE)
                .await
                .map_err(txn_error)?
                .collect();
            let full = page.len() == PAGE as usize;
            for pair in page {
                let key: Vec<u8> = pair.0.into();
                let n = bank_ledger::account_number(&key).map_err(BackendError::Request)?;
                let balance =
                    bank_ledger::decode_balance(&pair.1).map_err(BackendError::Request)?;
                start = key;
                found.push((n, balance));
            }
            if !full {
                return Ok(found);
            }
            // The next page starts just after the last key read.
            start.push(0);
        }
    }
}

/// [`Backend::read`] through a snapshot at a fresh timestamp.
async fn txn_read(
    client: &TransactionClient,
    key: Vec<u8>,
) -> Result<Option<Vec<u8>>, BackendError> {
    snapshot(client).await?.get(key).await.map_err(txn_error)
}

/// [`Backend::write`] as a transaction of `mode` writing one key.
async fn txn_write(
    client: &TransactionClient,
    mode: TxnMode,
    key: Vec<u8>,
    value: Vec<u8>,
) -> Result<(), BackendError> {
    let mut txn = begin(client, mode).await?;
    let written = txn.put(key, value).await.map_err(txn_error);
    finish(&mut txn, mode, 1, written).await
}

/// [`Backend::scan`] through a snapshot at a fresh timestamp.
async fn txn_scan(
    client: &TransactionClient,
    start: Vec<u8>,
    limit: u32,
) -> Result<usize, BackendError> {
    snapshot(client)
        .await?
        .scan(Key::from(start).., limit)
        .await
        .map(|pairs| pairs.count())
        .map_err(txn_error)
}

/// A read-only snapshot at a fresh timestamp. Reads and scans use it rather than
/// `begin_optimistic` + get + rollback: both cost one PD timestamp and one read RPC (rolling
/// back an optimistic transaction without writes sends nothing), and a snapshot cannot hold
/// anything that needs cleaning up.
async fn snapshot(client: &TransactionClient) -> Result<Snapshot, BackendError> {
    let ts = client.current_timestamp().await.map_err(txn_error)?;
    Ok(client.snapshot(ts, TransactionOptions::new_optimistic().read_only()))
}

/// A read-write transaction of `mode`, which may be dropped unfinished (see [`abandon`]), so
/// the client's default panic on drop cannot turn an error into a crash.
async fn begin(client: &TransactionClient, mode: TxnMode) -> Result<Transaction, BackendError> {
    client
        .begin_with_options(mode.options())
        .await
        .map_err(txn_error)
}

/// Reads `key` to write it later: pessimistic transactions lock it (`get_for_update`, the
/// latest committed value), the others read at their start timestamp.
async fn read_for_update(
    txn: &mut Transaction,
    mode: TxnMode,
    key: Vec<u8>,
) -> Result<Option<Vec<u8>>, BackendError> {
    let read = if mode.is_pessimistic() {
        txn.get_for_update(key).await
    } else {
        txn.get(key).await
    };
    read.map_err(txn_error)
}

/// The balance of a bank account, read for update; a missing account is an error.
async fn read_balance(
    txn: &mut Transaction,
    mode: TxnMode,
    key: Vec<u8>,
) -> Result<u64, BackendError> {
    let value = read_for_update(txn, mode, key)
        .await?
        .ok_or(BackendError::NotFound)?;
    bank_ledger::decode_balance(&value).map_err(BackendError::Request)
}

/// Commits `txn` if its work (`done`) succeeded; otherwise, or when the commit fails, leaves
/// it as [`abandon`] says. `keys` is how many keys it writes.
async fn finish(
    txn: &mut Transaction,
    mode: TxnMode,
    keys: usize,
    done: Result<(), BackendError>,
) -> Result<(), BackendError> {
    if let Err(e) = done {
        abandon(txn, mode, keys).await;
        return Err(e);
    }
    match txn.commit().await {
        // Client 0.4 takes the largest min_commit_ts the prewrites answered as the commit
        // timestamp of an async commit; 0 means a store prewrote without async commit, and the
        // client then "commits" at timestamp 0, which no store accepts: an error, not a success.
        Ok(Some(ts)) if mode == TxnMode::AsyncCommit && ts.version() == 0 => {
            Err(BackendError::Request(
                "async commit: the prewrites answered no min_commit_ts, so nothing committed"
                    .into(),
            ))
        }
        Ok(_) => Ok(()),
        // The primary's commit may have been applied: rolling back could undo a committed
        // secondary, so the locks are left to readers to resolve through the primary.
        Err(e @ tikv_client::Error::UndeterminedError(_)) => Err(txn_error(e)),
        Err(e) => {
            abandon(txn, mode, keys).await;
            Err(txn_error(e))
        }
    }
}

/// Rolls back a failed transaction when it may hold locks (best effort: a lock left behind
/// expires and is resolved by the next reader).
async fn abandon(txn: &mut Transaction, mode: TxnMode, keys: usize) {
    if needs_rollback(mode, keys) {
        let _ = txn.rollback().await;
    }
}

/// Whether a failed transaction of `mode` writing `keys` keys may have left locks. A one-key
/// optimistic transaction cannot: its single prewrite either wrote the lock and then committed
/// or failed and wrote nothing. Pessimistic ones hold the locks they took; a prewrite over
/// several keys may have locked some; an async-commit or 1PC prewrite that a store served as a
/// plain one left its lock.
fn needs_rollback(mode: TxnMode, keys: usize) -> bool {
    !(mode == TxnMode::Optimistic && keys <= 1)
}

fn request_error(e: impl std::fmt::Display) -> BackendError {
    BackendError::Request(e.to_string())
}

/// A failure of the raw client: a store it could not connect to, or anything else.
fn shoal_error(e: tikv_client::Error) -> BackendError {
    match e {
        tikv_client::Error::Grpc(_) => BackendError::StoreUnreachable(e.to_string()),
        e => BackendError::Request(e.to_string()),
    }
}

/// A transactional failure: a lost conflict is an abort, a store the client could not
/// connect to is [`BackendError::StoreUnreachable`], anything else an error.
fn txn_error(e: tikv_client::Error) -> BackendError {
    if matches!(e, tikv_client::Error::Grpc(_)) {
        BackendError::StoreUnreachable(e.to_string())
    } else if is_retryable_conflict(&e) {
        BackendError::Conflict(e.to_string())
    } else {
        BackendError::Request(e.to_string())
    }
}

/// Whether a transaction failed because of a concurrent one, so running it again could
/// succeed: another one wrote one of its keys after it started (write conflict), two
/// pessimistic transactions waited on each other (deadlock), a lock stayed in its way past the
/// client's backoff (among them the lock of a dead transaction whose primary was already
/// rolled back pessimistically, which the client reports as `TxnNotFound` until the lock's
/// TTL runs out, as TiKV's `CheckTxnStatus` does), or the store said the request is
/// retryable. The client reports per-key
/// errors singly, gathered from several requests or inside a failed pessimistic lock; a commit
/// whose outcome is undetermined, a refused request and a timeout are not conflicts.
pub fn is_retryable_conflict(e: &tikv_client::Error) -> bool {
    match e {
        tikv_client::Error::KeyError(k) => {
            k.conflict.is_some()
                || k.deadlock.is_some()
                || k.locked.is_some()
                || k.txn_not_found.is_some()
                || !k.retryable.is_empty()
        }
        tikv_client::Error::ResolveLockError(_) | tikv_client::Error::TxnNotFound(_) => true,
        tikv_client::Error::PessimisticLockError { inner, .. } => is_retryable_conflict(inner),
        tikv_client::Error::MultipleKeyErrors(errors)
        | tikv_client::Error::ExtractedErrors(errors) => errors.iter().any(is_retryable_conflict),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tikv_client::ProtoKeyError;

    #[test]
    fn api_parses_raw_and_txn_only() {
        assert_eq!("raw".parse::<Api>(), Ok(Api::Raw));
        assert_eq!("TXN".parse::<Api>(), Ok(Api::Txn));
        assert!("transaction"
            .parse::<Api>()
            .unwrap_err()
            .contains("raw, txn"));
        assert_eq!(
            Api::default(),
            Api::Raw,
            "existing scripts keep the raw API"
        );
        assert_eq!(Api::Txn.name(), "txn");
        assert_eq!(serde_json::to_value(Api::Txn).unwrap(), "txn");
    }

    #[test]
    fn txn_api_is_only_for_shoal() {
        assert!(Api::Txn.check_target(Target::Shoal).is_ok());
        assert!(Api::Raw.check_target(Target::Etcd).is_ok());
        assert!(Api::Txn.check_target(Target::Etcd).is_err());
    }

    #[test]
    fn txn_modes_parse_and_map_to_client_options() {
        for (text, mode) in [
            ("optimistic", TxnMode::Optimistic),
            ("Pessimistic", TxnMode::Pessimistic),
            ("async", TxnMode::AsyncCommit),
            ("async-commit", TxnMode::AsyncCommit),
            ("1pc", TxnMode::OnePc),
            ("ONE-PC", TxnMode::OnePc),
        ] {
            assert_eq!(text.parse::<TxnMode>(), Ok(mode), "{text}");
        }
        assert!("2pc"
            .parse::<TxnMode>()
            .unwrap_err()
            .contains("optimistic, pessimistic, async, 1pc"));
        assert_eq!(TxnMode::default(), TxnMode::Optimistic);
        for mode in TxnMode::ALL {
            // The name is what the reports show and what parses back.
            assert_eq!(mode.name().parse::<TxnMode>(), Ok(mode));
            assert_eq!(serde_json::to_value(mode).unwrap(), mode.name());
            assert_eq!(mode.to_string(), mode.name());
        }
        let no_check = |o: TransactionOptions| o.drop_check(CheckLevel::None);
        assert_eq!(
            TxnMode::Optimistic.options(),
            no_check(TransactionOptions::new_optimistic())
        );
        assert_eq!(
            TxnMode::Pessimistic.options(),
            no_check(TransactionOptions::new_pessimistic())
        );
        assert!(TxnMode::Pessimistic.options().is_pessimistic());
        assert_eq!(
            TxnMode::AsyncCommit.options(),
            no_check(TransactionOptions::new_optimistic().use_async_commit())
        );
        assert_eq!(
            TxnMode::OnePc.options(),
            no_check(TransactionOptions::new_optimistic().try_one_pc())
        );
        assert!(TxnMode::ALL
            .iter()
            .all(|m| m.is_pessimistic() == (*m == TxnMode::Pessimistic)));
    }

    #[test]
    fn failed_transactions_that_may_hold_locks_are_rolled_back() {
        assert!(!needs_rollback(TxnMode::Optimistic, 1));
        assert!(needs_rollback(TxnMode::Optimistic, 2));
        assert!(needs_rollback(TxnMode::Pessimistic, 1));
        assert!(needs_rollback(TxnMode::AsyncCommit, 1));
        assert!(needs_rollback(TxnMode::OnePc, 1));
    }

    #[test]
    fn lost_conflicts_are_told_from_other_failures() {
        let key_error = |e: ProtoKeyError| tikv_client::Error::KeyError(Box::new(e));
        let conflict = || {
            key_error(ProtoKeyError {
                conflict: Some(Default::default()),
                ..Default::default()
            })
        };
        let locked = || {
            key_error(ProtoKeyError {
                locked: Some(Default::default()),
                ..Default::default()
            })
        };
        let deadlock = key_error(ProtoKeyError {
            deadlock: Some(Default::default()),
            ..Default::default()
        });
        let retryable = key_error(ProtoKeyError {
            retryable: "TxnLockNotFound".into(),
            ..Default::default()
        });
        let aborted = key_error(ProtoKeyError {
            abort: "bad request".into(),
            ..Default::default()
        });
        let primary_gone = key_error(ProtoKeyError {
            txn_not_found: Some(Default::default()),
            ..Default::default()
        });
        assert!(is_retryable_conflict(&conflict()));
        assert!(is_retryable_conflict(&locked()));
        assert!(is_retryable_conflict(
            &tikv_client::Error::MultipleKeyErrors(vec![primary_gone])
        ));
        assert!(is_retryable_conflict(&tikv_client::Error::TxnNotFound(
            Default::default()
        )));
        assert!(is_retryable_conflict(&deadlock));
        assert!(is_retryable_conflict(&retryable));
        assert!(!is_retryable_conflict(&aborted));
        assert!(is_retryable_conflict(
            &tikv_client::Error::ResolveLockError(vec![Default::default()])
        ));
        assert!(is_retryable_conflict(
            &tikv_client::Error::PessimisticLockError {
                inner: Box::new(tikv_client::Error::MultipleKeyErrors(vec![conflict()])),
                success_keys: vec![b"k".to_vec()],
            }
        ));
        assert!(is_retryable_conflict(
            &tikv_client::Error::MultipleKeyErrors(vec![aborted, conflict()])
        ));
        assert!(is_retryable_conflict(&tikv_client::Error::ExtractedErrors(
            vec![tikv_client::Error::MultipleKeyErrors(vec![locked()])]
        )));
        assert!(!is_retryable_conflict(
            &tikv_client::Error::UndeterminedError(Box::new(conflict()))
        ));
        // A store refusing async commit or 1PC is an error, not an abort.
        assert!(!is_retryable_conflict(&tikv_client::Error::OnePcFailure));
        assert!(!is_retryable_conflict(&tikv_client::Error::KvError {
            message: "async-commit and 1PC prewrites are not served".into()
        }));
        assert!(matches!(txn_error(conflict()), BackendError::Conflict(_)));
        assert!(matches!(
            txn_error(tikv_client::Error::Unimplemented),
            BackendError::Request(_)
        ));
    }

    #[tokio::test]
    async fn the_bank_needs_transactions() {
        // A raw client that is never connected to: the bank refuses it before any request.
        let raw = Backend::Etcd(KvClient::new(
            Endpoint::from_static("http://127.0.0.1:9").connect_lazy(),
        ));
        assert_eq!(raw.txn_mode(), None);
        assert_eq!(raw.clone().with_txn_mode(TxnMode::OnePc).txn_mode(), None);
        let mut raw = raw;
        let refused = raw.transfer(b"a".to_vec(), b"b".to_vec(), 1).await;
        assert!(matches!(refused, Err(BackendError::Request(m)) if m.contains("--api txn")));
        assert!(raw.read_accounts(10).await.is_err());
    }
}
