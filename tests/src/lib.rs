//! Harness for fleet tests: real `shoal-pd` and `shoal-server` processes on 127.0.0.1 with
//! temporary data directories, driven through the official `tikv-client` and PD's HTTP API.
//!
//! Every child process is killed when its [`Fleet`] is dropped (also on a panic, after the
//! tail of every log is printed) and, as a last resort, by the kernel when the test process
//! dies.

pub mod async_resolve;
pub mod binaries;
pub mod chaos;
pub mod configs;
pub mod data;
pub mod fleet;
pub mod keyspace;
pub mod netns;
pub mod pd_api;
pub mod pd_grpc;
pub mod ports;
pub mod process;
pub mod route;
pub mod spawn;
pub mod tls;
pub mod txn_by_hand;
pub mod txn_split;
pub mod wait;

pub use fleet::{Fleet, FleetOptions, StoreNode};
pub use pd_api::{region_json, store_json, PdApi};
pub use wait::{wait_for, wait_ok, wait_until, wait_until_async};
