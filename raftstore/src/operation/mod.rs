//! Peer behaviour, one module per feature; each adds methods to `peer::Peer`. Replicated
//! commands (write, split, conf change, compact log, transfer leader) are in `command`, one
//! file per command with every phase; reads in `read`.

pub mod command;
pub mod commit_broadcast;
pub mod committed;
pub mod destroy;
pub mod hibernate;
pub mod message;
pub mod pd_heartbeat;
pub mod pd_operator;
pub mod propose;
pub mod read;
pub mod ready;
pub mod snapshot;
pub mod tick;
