//! Moving raft messages and snapshots between stores over gRPC.
//!
//! `client` keeps one `BatchRaft` stream per target store; `snapshot_send` streams snapshot
//! files on a `Snapshot` stream of their own; `connection` holds what both share (addresses,
//! connecting, the transport's tuning); `resolve` finds a store's address; `receive`
//! is the other end of both streams.

pub mod client;
mod connection;
pub mod receive;
pub mod resolve;
pub mod snapshot_send;

pub use client::RaftTransport;
pub use connection::TransportConfig;
pub use resolve::{PdStoreResolver, ResolveError, StoreResolver};
