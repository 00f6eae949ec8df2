//! The stores a workload can drive: a Shoal fleet through the official `tikv-client` raw API
//! (default keyspace), or an etcd cluster through its v3 gRPC API for a like-for-like comparison.
//! Both read linearizably: Shoal by lease or ReadIndex, etcd by its ReadIndex.

use std::time::Duration;

use tikv_client::{Config, Key, RawClient};
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

/// One connection to the store under test; cheap to clone, one clone per client task.
#[derive(Clone)]
pub enum Backend {
    Shoal(RawClient),
    Etcd(KvClient<Channel>),
}

impl Backend {
    /// Connects to `endpoints` (PD addresses for Shoal, member client URLs for etcd).
    pub async fn connect(
        target: Target,
        endpoints: &[String],
        timeout: Duration,
    ) -> Result<Backend, BackendError> {
        match target {
            Target::Shoal => {
                let config = Config::default()
                    .with_default_keyspace()
                    .with_timeout(timeout);
                RawClient::new_with_config(endpoints.to_vec(), config)
                    .await
                    .map(Backend::Shoal)
                    .map_err(|e| BackendError::Connect(e.to_string()))
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
}

fn request_error(e: impl std::fmt::Display) -> BackendError {
    BackendError::Request(e.to_string())
}
