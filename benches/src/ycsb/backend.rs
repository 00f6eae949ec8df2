//! The stores a workload can drive: a Shoal fleet through the official `tikv-client` raw API or
//! its optimistic transactions (default keyspace), or an etcd cluster through its v3 gRPC API
//! for a like-for-like comparison. All read linearizably: Shoal by lease or ReadIndex (raw) or
//! at a fresh PD timestamp (txn), etcd by its ReadIndex.

use std::time::{Duration, Instant};

use tikv_client::{
    CheckLevel, Config, Key, RawClient, Snapshot, Transaction, TransactionClient,
    TransactionOptions,
};
use tonic::transport::{Channel, Endpoint};

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
    /// An optimistic transaction lost a write conflict to a concurrent one. Counted as an
    /// abort, apart from errors, and never retried: retrying would hide the cost of contention.
    #[error("write conflict: {0}")]
    Conflict(String),
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
    /// One optimistic Percolator transaction per operation (`TransactionClient`): a PD
    /// timestamp, then two-phase commit for writes.
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
    ShoalTxn(TransactionClient),
    Etcd(KvClient<Channel>),
}

impl Backend {
    /// Connects to `endpoints` (PD addresses for Shoal, member client URLs for etcd) with the
    /// client of `api`.
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
                        .map(Backend::ShoalTxn),
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

    /// Reads one record; a missing record is an error (the workload only reads what it wrote).
    pub async fn read(&mut self, key: Vec<u8>) -> Result<Vec<u8>, BackendError> {
        let found = match self {
            Backend::Shoal(c) => c.get(key).await.map_err(request_error)?,
            Backend::ShoalTxn(c) => snapshot(c).await?.get(key).await.map_err(txn_error)?,
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
    pub async fn write(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<(), BackendError> {
        match self {
            Backend::Shoal(c) => c.put(key, value).await.map_err(request_error),
            Backend::ShoalTxn(c) => {
                let mut txn = begin(c).await?;
                txn.put(key, value).await.map_err(txn_error)?;
                txn.commit().await.map(|_| ()).map_err(txn_error)
            }
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
                .map_err(request_error),
            Backend::ShoalTxn(c) => snapshot(c)
                .await?
                .scan(Key::from(start).., limit)
                .await
                .map(|pairs| pairs.count())
                .map_err(txn_error),
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
    /// transactions both steps are one transaction (the read at its start timestamp, the write
    /// committed only if nobody wrote the record since); otherwise a read, then a blind write.
    pub async fn read_modify_write(
        &mut self,
        key: Vec<u8>,
        value: Vec<u8>,
        steps: &mut RmwSteps,
    ) -> Result<(), BackendError> {
        let Backend::ShoalTxn(c) = self else {
            let started = Instant::now();
            self.read(key.clone()).await?;
            steps.read = Some(started.elapsed());
            let started = Instant::now();
            self.write(key, value).await?;
            steps.write = Some(started.elapsed());
            return Ok(());
        };
        // The read step includes the transaction's start timestamp, as a READ's does.
        let started = Instant::now();
        let mut txn = begin(c).await?;
        txn.get(key.clone())
            .await
            .map_err(txn_error)?
            .ok_or(BackendError::NotFound)?;
        steps.read = Some(started.elapsed());
        let started = Instant::now();
        txn.put(key, value).await.map_err(txn_error)?;
        txn.commit().await.map_err(txn_error)?;
        steps.write = Some(started.elapsed());
        Ok(())
    }
}

/// A read-only snapshot at a fresh timestamp. Reads and scans use it rather than
/// `begin_optimistic` + get + rollback: both cost one PD timestamp and one read RPC (rolling
/// back an optimistic transaction without writes sends nothing), and a snapshot cannot hold
/// anything that needs cleaning up.
async fn snapshot(client: &TransactionClient) -> Result<Snapshot, BackendError> {
    let ts = client.current_timestamp().await.map_err(txn_error)?;
    Ok(client.snapshot(ts, TransactionOptions::new_optimistic().read_only()))
}

/// An optimistic transaction that may be dropped unfinished: after a failed read nothing was
/// written, and after a failed commit there is nothing a rollback could safely undo here (a
/// one-key prewrite that failed left no lock; a lock whose commit failed is resolved by
/// readers), so the client's default panic on drop would only turn an error into a crash.
async fn begin(client: &TransactionClient) -> Result<Transaction, BackendError> {
    client
        .begin_with_options(TransactionOptions::new_optimistic().drop_check(CheckLevel::None))
        .await
        .map_err(txn_error)
}

fn request_error(e: impl std::fmt::Display) -> BackendError {
    BackendError::Request(e.to_string())
}

/// A transactional failure: a write conflict is an abort, anything else an error.
fn txn_error(e: tikv_client::Error) -> BackendError {
    if is_write_conflict(&e) {
        BackendError::Conflict(e.to_string())
    } else {
        BackendError::Request(e.to_string())
    }
}

/// Whether a transaction failed because another one wrote one of its keys after it started.
/// The client reports per-key errors singly or gathered from several requests; a commit whose
/// outcome is undetermined is not a conflict.
pub fn is_write_conflict(e: &tikv_client::Error) -> bool {
    match e {
        tikv_client::Error::KeyError(k) => k.conflict.is_some(),
        tikv_client::Error::MultipleKeyErrors(errors)
        | tikv_client::Error::ExtractedErrors(errors) => errors.iter().any(is_write_conflict),
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
    fn write_conflicts_are_told_from_other_failures() {
        let conflict = || {
            tikv_client::Error::KeyError(Box::new(ProtoKeyError {
                conflict: Some(Default::default()),
                ..Default::default()
            }))
        };
        let locked = || {
            tikv_client::Error::KeyError(Box::new(ProtoKeyError {
                locked: Some(Default::default()),
                ..Default::default()
            }))
        };
        assert!(is_write_conflict(&conflict()));
        assert!(!is_write_conflict(&locked()));
        assert!(is_write_conflict(&tikv_client::Error::MultipleKeyErrors(
            vec![locked(), conflict()]
        )));
        assert!(is_write_conflict(&tikv_client::Error::ExtractedErrors(
            vec![tikv_client::Error::MultipleKeyErrors(vec![conflict()])]
        )));
        assert!(!is_write_conflict(&tikv_client::Error::UndeterminedError(
            Box::new(conflict())
        )));
        assert!(matches!(txn_error(conflict()), BackendError::Conflict(_)));
        assert!(matches!(
            txn_error(tikv_client::Error::Unimplemented),
            BackendError::Request(_)
        ));
    }
}
