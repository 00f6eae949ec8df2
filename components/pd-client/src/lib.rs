//! An async client of the placement driver for stores and tools.
//!
//! It finds PD's leader through `GetMembers`, stamps every request with the cluster id,
//! turns header errors into typed errors, and survives PD restarts by rediscovering the
//! leader with backoff. Region heartbeats travel on one long-lived stream that reconnects by
//! itself.

// The public error keeps `tonic::Status` unboxed so callers can match on it directly.
#![allow(clippy::result_large_err)]

mod backoff;
mod client;
mod config;
mod discovery;
mod errors;
mod header;
mod heartbeat;
mod rpc;

pub use backoff::Backoff;
pub use client::PdClient;
pub use config::Config;
pub use errors::{Error, Result};
pub use heartbeat::RegionHeartbeatSender;
