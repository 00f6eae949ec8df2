//! Why a raw request failed, and how each kind of failure reaches the client.

use proto::errorpb;
use thiserror::Error;
use tonic::Status;

/// A failed raw request. Region errors and key errors become fields of the response (never
/// both); the rest become gRPC statuses.
#[derive(Debug, Error)]
pub enum KvError {
    /// The region named in the request cannot serve it (not leader, stale epoch, ...). The
    /// response carries this and nothing else, so the client refreshes its region cache.
    #[error("region error: {}", .0.message)]
    Region(Box<errorpb::Error>),
    /// A problem with one of the request's keys the client should not retry (the response's
    /// `error` string).
    #[error("{0}")]
    Key(String),
    /// Stored data this store cannot decode.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// A malformed request.
    #[error("{0}")]
    InvalidArgument(String),
    /// The storage engine failed.
    #[error("storage: {0}")]
    Internal(String),
    /// A transactional command's failure: a key error for the client (locked, conflict,
    /// already exists, ...), or stored MVCC data that does not decode.
    #[error("{0}")]
    Txn(Box<txn::Error>),
}

impl KvError {
    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            KvError::Region(_) => "region",
            KvError::Key(_) => "key",
            KvError::Corrupt(_) => "corrupt",
            KvError::InvalidArgument(_) => "invalid_argument",
            KvError::Internal(_) => "internal",
            KvError::Txn(_) => "txn",
        }
    }

    /// The gRPC status for an error that has no field in the response it belongs to.
    pub fn into_status(self) -> Status {
        match self {
            KvError::Region(e) => Status::internal(format!("region error: {}", e.message)),
            KvError::Key(msg) | KvError::InvalidArgument(msg) => Status::invalid_argument(msg),
            KvError::Corrupt(msg) => Status::data_loss(format!("corrupt data: {msg}")),
            KvError::Internal(msg) => Status::internal(format!("storage: {msg}")),
            KvError::Txn(e) => Status::internal(e.to_string()),
        }
    }
}

impl From<errorpb::Error> for KvError {
    fn from(e: errorpb::Error) -> Self {
        KvError::Region(Box::new(e))
    }
}

impl From<raftstore::Error> for KvError {
    fn from(e: raftstore::Error) -> Self {
        KvError::Region(Box::new(e.into()))
    }
}

impl From<txn::Error> for KvError {
    fn from(e: txn::Error) -> Self {
        match e {
            txn::Error::Engine(e) => e.into(),
            txn::Error::Corrupt { .. } => KvError::Corrupt(e.to_string()),
            other => KvError::Txn(Box::new(other)),
        }
    }
}

impl From<engine::Error> for KvError {
    fn from(e: engine::Error) -> Self {
        KvError::Internal(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raftstore_errors_become_region_errors() {
        let e: KvError = raftstore::Error::RegionNotFound(7).into();
        match e {
            KvError::Region(r) => assert_eq!(r.region_not_found.unwrap().region_id, 7),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn statuses_carry_the_right_codes() {
        assert_eq!(
            KvError::InvalidArgument("x".into()).into_status().code(),
            tonic::Code::InvalidArgument
        );
        assert_eq!(
            KvError::Corrupt("x".into()).into_status().code(),
            tonic::Code::DataLoss
        );
        assert_eq!(
            KvError::Internal("x".into()).into_status().code(),
            tonic::Code::Internal
        );
    }
}
