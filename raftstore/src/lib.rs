//! The raftstore: many regions per store, each a raft group driven through raft-rs's
//! `RawNode` on a batch system of pollers, with a group-committing log writer and an apply
//! pool.
//!
//! # The API
//!
//! A store is a [`Store`], started on two engines with a [`Config`] (the `[raftstore]` section
//! of the store's TOML file), a [`Transport`] to the other stores and a [`PdClient`]
//! ([`StoreDeps`]). Commands go in through [`Store::propose`] with a [`Callback`] that gets a
//! [`CmdResponse`]; raft messages from other stores through [`Store::on_raft_message`]. Users
//! extend it with a [`SplitPolicy`]. [`bootstrap`] writes a new store's identity and first
//! region; [`snap`] names the snapshot files the transport moves. Everything else
//! is private; benches and tests reach some insides through the `testexport` module (the
//! `testexport` cargo feature).
//!
//! # Where things live
//!
//! | folder / file | holds |
//! |---|---|
//! | `store.rs`, `startup.rs` | the running store and its start-up steps |
//! | `peer/` | a region's peer: its **state** (raft group, storage, proposals, statistics) |
//! | `operation/` | the peer's **behaviour**, one file per feature, as `impl Peer` blocks |
//! | `operation/command/` | one file per replicated command (write, split, conf change, compact log, transfer leader), every phase from propose to apply result |
//! | `operation/read/` | every read path: lease, local reader, ReadIndex, the read delegate |
//! | `fsm/` | thin **thread shells**: the peer, store and apply FSMs the batch system polls |
//! | `apply/` | the apply pool's dispatch table (`exec`) |
//! | `msg/` | every message that crosses threads, beside the routers that carry it |
//! | `log_writer.rs`, `poller.rs`, `ticker.rs` | the raft threads: group commit, poller rounds, ticks |
//! | `worker/` | background threads: split check, PD reports, disk monitor, raft-log GC |
//! | `store_meta.rs` | the store-wide region map shared by all peers |
//! | `config.rs`, `errors.rs`, `invariant.rs`, `failpoints.rs`, `metrics.rs` | settings, errors, enforced invariants, fault injection, metrics |
//!
//! **Where new code goes**: state a peer keeps goes in `peer/`; what a peer does with it goes
//! in `operation/` (a new replicated command gets its own file in `operation/command/`, with
//! its apply half beside its propose half and a line in `apply::exec`'s dispatch); a new
//! message goes in `msg/`; `fsm/` only routes messages to `operation/` and stays thin. No two
//! modules may import each other (`tests/tests/module_circles.rs` checks the workspace).
//!
//! # A write, from the server to the callback
//!
//! 1. The server's KV service calls [`Store::propose`] with a `Put` and a [`Callback`].
//! 2. It is not a read, so the [`RaftRouter`] puts it in the region's peer mailbox.
//! 3. A raft poller drains the mailbox, packs consecutive writes into one command
//!    (`operation::command::write`) and `operation::propose` checks epoch, leadership, disk
//!    space and size, proposes it to raft-rs, and queues the callback (`peer::proposal`).
//! 4. At the end of the round the peer takes raft-rs's `Ready` (`operation::ready`): appends
//!    go to followers at once, new entries and hard state go to the log writer.
//! 5. The log writer (`log_writer`) writes many peers' entries to raft-engine with one fsync.
//! 6. Once a quorum holds the entry, raft-rs reports it committed in a later `Ready`.
//! 7. `operation::committed` matches it with its callback and sends both to the apply pool.
//! 8. The apply FSM (`fsm::apply`) runs `apply::exec`, which puts the data into one RocksDB
//!    batch per round with each region's applied index (`command::write::exec_writes`).
//! 9. Once the batch is written, the callback is invoked: the client has its answer.
//! 10. The apply result goes back to the peer, which advances its applied index.

mod apply;
pub mod bootstrap;
mod config;
mod context;
mod errors;
#[cfg_attr(
    not(any(feature = "testexport", feature = "failpoints")),
    allow(dead_code)
)]
mod failpoints;
mod fsm;
mod invariant;
mod log_writer;
mod metrics;
mod msg;
mod operation;
mod pd_client;
mod peer;
mod pending_split;
mod poller;
mod region_snapshot;
mod split_policy;
mod startup;
mod stats;
mod store;
mod store_meta;
#[cfg(feature = "testexport")]
pub mod testexport;
mod ticker;
mod transport;
mod util;
mod worker;

pub use config::{Config, LoadSplitConfig, SplitPolicyConfig, MAX_DURATION_SETTING};
pub use engine::SplitPieces;
pub use errors::{Error, Result};
pub use msg::router::RaftRouter;
pub use msg::{Callback, CmdResponse, PeerMsg, RaftCommand, RegionSnapshot, StoreMsg};
pub use pd_client::{PdClient, SplitIds};
pub use split_policy::{SplitCheckInput, SplitCheckTrigger, SplitPolicy};
pub use store::{Store, StoreDeps};
pub use store_meta::StoreMeta;
pub use transport::Transport;
pub use util::check_key_in_region;

/// Snapshot files as the transport moves them between stores: where a store keeps them,
/// their names, and the description inside raft's snapshot message that lists them.
pub mod snap {
    pub use crate::region_snapshot::{decode, file_name, files, snap_dir};
}

// The store-internal macros, usable as `crate::enforce!` and `crate::failpoint!` everywhere.
use failpoints::failpoint;
use invariant::enforce;
