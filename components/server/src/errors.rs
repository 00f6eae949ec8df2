//! Why a store cannot start or keep running.

use std::path::PathBuf;

use crate::config::ConfigError;
use crate::dir_lock::LockError;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("cannot create {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("storage: {0}")]
    Engine(#[from] engine::Error),
    #[error("raftstore: {0}")]
    Raftstore(#[from] raftstore::Error),
    #[error("pd: {0}")]
    Pd(Box<pd_client::Error>),
    #[error("pd did not answer within {timeout:?}: {last_error}")]
    PdUnreachable {
        timeout: std::time::Duration,
        last_error: String,
    },
    #[error(
        "data directory {data_dir} belongs to cluster {local}, PD serves cluster {pd}; \
         point the store at its own PD or use an empty data directory"
    )]
    ClusterMismatch {
        data_dir: PathBuf,
        local: u64,
        pd: u64,
    },
    #[error("PD refuses store {store_id}: it is a tombstone (removed from the cluster)")]
    StoreTombstone { store_id: u64 },
    /// The store's `storage.api-version` is not the one the cluster was bootstrapped with.
    #[error("PD refuses this store: {message}")]
    ApiVersionMismatch { message: String },
    #[error("cannot bind {what} {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: String,
        source: std::io::Error,
    },
    #[error("gRPC server: {0}")]
    Grpc(#[from] tonic::transport::Error),
}

impl From<pd_client::Error> for ServerError {
    fn from(e: pd_client::Error) -> Self {
        ServerError::Pd(Box::new(e))
    }
}
