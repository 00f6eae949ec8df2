//! What can go wrong talking to PD.

use std::time::Duration;

use proto::pdpb::ErrorType;

/// A failed PD request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// PD answered with a gRPC error status.
    #[error("pd rpc failed: {0}")]
    Grpc(tonic::Status),
    /// No connection could be made or kept.
    #[error("pd transport: {0}")]
    Transport(String),
    /// PD answered with an error in the response header.
    #[error("pd refused the request ({kind:?}): {message}")]
    Pd { kind: ErrorType, message: String },
    /// `Bootstrap` on a cluster that already has one.
    #[error("the cluster is already bootstrapped")]
    AlreadyBootstrapped,
    /// A request that needs a bootstrapped cluster.
    #[error("the cluster is not bootstrapped")]
    NotBootstrapped,
    /// No configured endpoint led to a PD leader.
    #[error("no pd leader reachable: {0}")]
    NoLeader(String),
    /// An endpoint answered for a different cluster than the one this client joined.
    #[error("pd at {endpoint} serves cluster {got}, expected cluster {expected}")]
    ClusterMismatch {
        endpoint: String,
        expected: u64,
        got: u64,
    },
    /// An endpoint string that is not `host:port` or `http://host:port`.
    #[error("invalid pd endpoint {0:?}")]
    InvalidEndpoint(String),
    /// A request got no answer in time.
    #[error("pd request {method} timed out after {after:?}")]
    Timeout {
        method: &'static str,
        after: Duration,
    },
    /// A response lacks a field the protocol requires.
    #[error("pd response to {method} lacks {field}")]
    MissingField {
        method: &'static str,
        field: &'static str,
    },
    /// PD knows no store with this id.
    #[error("store {0} not found")]
    StoreNotFound(u64),
    /// PD knows no region holding this key.
    #[error("no region holds key {0:?}")]
    RegionNotFound(Vec<u8>),
    /// The client has no configured endpoints.
    #[error("no pd endpoints configured")]
    NoEndpoints,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Whether trying again after reconnecting may succeed: PD restarting, a dropped
    /// connection or a request lost in flight.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Grpc(s) => matches!(
                s.code(),
                tonic::Code::Unavailable
                    | tonic::Code::Unknown
                    | tonic::Code::Cancelled
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::Aborted
            ),
            Error::Transport(_) | Error::Timeout { .. } | Error::NoLeader(_) => true,
            _ => false,
        }
    }

    /// The error a response header's error stands for.
    pub(crate) fn from_header(kind: ErrorType, message: String) -> Error {
        match kind {
            ErrorType::AlreadyBootstrapped => Error::AlreadyBootstrapped,
            ErrorType::NotBootstrapped => Error::NotBootstrapped,
            _ => Error::Pd { kind, message },
        }
    }
}

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Self {
        Error::Grpc(s)
    }
}

impl From<tonic::transport::Error> for Error {
    fn from(e: tonic::transport::Error) -> Self {
        Error::Transport(e.to_string())
    }
}
