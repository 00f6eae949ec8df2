//! PD's typed errors and how each one is reported on the wire.

use proto::pdpb::{self, ErrorType};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("the cluster is not bootstrapped")]
    NotBootstrapped,
    #[error("the cluster is already bootstrapped")]
    AlreadyBootstrapped,
    #[error("store {0} is tombstone")]
    StoreTombstone(u64),
    #[error("store {0} not found")]
    StoreNotFound(u64),
    #[error("region not found: {0}")]
    RegionNotFound(String),
    #[error("stale region: {0}")]
    StaleRegion(String),
    #[error("invalid request: {0}")]
    InvalidArgument(String),
    #[error("not found: {0}")]
    EntryNotFound(String),
    #[error("request is for cluster {request}, this PD serves cluster {actual}")]
    ClusterIdMismatch { request: u64, actual: u64 },
    #[error("invalid config: {0}")]
    Config(String),
    #[error("storage: {0}")]
    Storage(#[from] engine::Error),
    #[error("stored {what} is corrupt: {detail}")]
    Corrupt { what: String, detail: String },
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("network: {0}")]
    Transport(String),
    #[error("PD is shutting down")]
    ShuttingDown,
    /// Decommissioning the store would leave fewer Up stores than a region needs replicas, so
    /// its peers could never move and it would stay Offline for good (PD's
    /// `checkReplicaBeforeOfflineStore`).
    #[error(
        "cannot decommission store {store_id}: {up_after} Up store(s) would be left, and each \
         region needs {max_replicas} replicas (max-replicas); add a store first"
    )]
    StoresNotEnough {
        store_id: u64,
        up_after: usize,
        max_replicas: u64,
    },
    /// A store configured with another `storage.api-version` than the cluster's.
    #[error(
        "store {store_id} is configured with storage.api-version = {store}, but this cluster \
         was bootstrapped with API V{cluster}; a cluster serves one API version for its whole \
         life: set storage.api-version = {cluster} on the store (or use a new cluster)"
    )]
    ApiVersionMismatch {
        store_id: u64,
        store: u32,
        cluster: u32,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The error type a client sees in `ResponseHeader.error`.
    pub fn error_type(&self) -> ErrorType {
        match self {
            Error::NotBootstrapped => ErrorType::NotBootstrapped,
            Error::AlreadyBootstrapped => ErrorType::AlreadyBootstrapped,
            Error::ApiVersionMismatch { .. } => ErrorType::IncompatibleVersion,
            Error::StoreTombstone(_) => ErrorType::StoreTombstone,
            Error::RegionNotFound(_) => ErrorType::RegionNotFound,
            Error::StaleRegion(_) => ErrorType::StaleRegion,
            Error::InvalidArgument(_) | Error::Config(_) | Error::StoresNotEnough { .. } => {
                ErrorType::InvalidValue
            }
            Error::StoreNotFound(_) | Error::EntryNotFound(_) => ErrorType::EntryNotFound,
            Error::ClusterIdMismatch { .. }
            | Error::Storage(_)
            | Error::Corrupt { .. }
            | Error::Io(_)
            | Error::Transport(_)
            | Error::ShuttingDown => ErrorType::Unknown,
        }
    }

    /// The wire form of this error.
    pub fn to_pb(&self) -> pdpb::Error {
        pdpb::Error {
            r#type: self.error_type() as i32,
            message: self.to_string(),
        }
    }

    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        self.error_type().as_str_name()
    }
}
