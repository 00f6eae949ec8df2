//! Peer behaviour, one module per feature.

pub mod committed;
pub mod compact_log;
pub mod conf_change;
pub mod destroy;
pub mod hibernate;
pub mod message;
pub mod pd_heartbeat;
pub mod pd_operator;
pub mod propose;
pub mod propose_batch;
pub mod read;
pub mod ready;
pub mod snapshot;
pub mod split;
pub mod tick;
pub mod transfer_leader;
