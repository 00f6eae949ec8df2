//! One Shoal store as a network service: configuration, node bootstrap against PD, the
//! gRPC server (client API in `kv`, raft streams in `transport`), the status HTTP server and
//! the PD plumbing that feeds raftstore's heartbeats and operators.

#[cfg(feature = "jemalloc")]
pub mod allocator_metrics;
pub mod bootstrap;
pub mod cli;
pub mod coalesced_io;
pub mod config;
pub mod cpu_scheduling;
pub mod dir_lock;
pub mod errors;
pub mod gc_worker;
pub mod kv;
pub mod metrics;
pub mod node;
pub mod operator;
pub mod pd_adapter;
pub mod service;
mod startup;
pub mod status;
pub mod tls;
pub mod transport;

pub use config::{Config, ConfigError, Flags};
pub use errors::ServerError;
pub use service::{ServerBuilder, ServerHandle};
