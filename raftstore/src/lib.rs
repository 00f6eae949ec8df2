//! The raftstore: many regions per store, each a raft group driven through raft-rs's
//! `RawNode` on a batch system of pollers, with a group-committing log writer and an apply
//! pool.

pub mod apply;
pub mod bootstrap;
pub mod config;
pub mod context;
pub mod errors;
pub mod failpoints;
pub mod fsm;
pub mod invariant;
pub mod log_writer;
pub mod metrics;
pub mod msg;
pub mod operation;
pub mod pd_client;
pub mod peer;
pub mod pending_split;
pub mod poller;
pub mod snap;
pub mod split_policy;
mod startup;
pub mod stats;
pub mod store;
pub mod store_meta;
pub mod ticker;
pub mod transport;
pub mod util;
pub mod worker;

pub use config::Config;
pub use errors::{Error, Result};
pub use msg::{Callback, CmdResponse};
pub use pd_client::{PdClient, SplitIds};
pub use split_policy::SplitPolicy;
pub use store::Store;
pub use transport::Transport;
