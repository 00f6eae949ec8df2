//! Names of the store's failure-injection points.
//!
//! Each name is a `failpoint!` site, compiled in only with this crate's `failpoints` cargo
//! feature (the macro expands to nothing otherwise). The sites evaluate through the `fail`
//! crate's registry without turning on that crate's own `failpoints` feature, which would also
//! switch on the points inside raft-engine. Tests configure them with
//! `fail::cfg(name, "pause" | "panic" | "sleep(ms)" | ...)` or `fail::cfg_callback`; a real
//! `shoal-server` built with the feature reads them from the `FAILPOINTS` environment variable
//! (`name=action;name=action`). A callback can tell stores apart by the thread it runs on:
//! every store thread is named `<role>-<store id>[-<n>]` (`apply-3-0`, `log-writer-3`,
//! `raftstore-3-1`).

/// Evaluates the failpoint `$name` (a `&str`) when built with the `failpoints` feature: the
/// configured action (pause, panic, sleep, callback...) runs here; `return` is not supported.
macro_rules! failpoint {
    ($name:expr) => {{
        #[cfg(feature = "failpoints")]
        {
            let _ = fail::eval($name, |_| ());
        }
    }};
}
pub(crate) use failpoint;

/// Log writer: a merged batch is about to be written and fsynced.
pub const LOG_WRITER_BEFORE_FSYNC: &str = "log_writer_before_fsync";
/// Log writer: the batch is durable; nothing was sent or acknowledged yet.
pub const LOG_WRITER_AFTER_FSYNC: &str = "log_writer_after_fsync";
/// Log writer: messages that waited for durability went out; peers are not yet told their
/// readies are persisted.
pub const LOG_WRITER_BEFORE_NOTIFY: &str = "log_writer_before_notify";
/// Apply pool: a round's write batch (data and applied indexes) is about to be written.
pub const APPLY_BEFORE_WRITE: &str = "apply_before_write";
/// Apply pool: the write batch is written; no callback has fired and no peer was told.
pub const APPLY_AFTER_WRITE: &str = "apply_after_write";
/// Leader: a region snapshot is about to be generated from a RocksDB snapshot.
pub const SNAPSHOT_GENERATE: &str = "snapshot_generate";
/// Leader: a message carrying a snapshot is about to go to the transport.
pub const SNAPSHOT_SEND: &str = "snapshot_send";
/// Follower: a snapshot message whose files were checked is about to be stepped into raft.
pub const SNAPSHOT_RECEIVE: &str = "snapshot_receive";
/// Region worker: a received snapshot's files are about to be checked (sizes and CRC32).
pub const SNAPSHOT_VERIFY: &str = "snapshot_verify";
/// Follower: the region is marked Applying and its old range cleared in the same batch; the
/// snapshot's files are about to be ingested.
pub const SNAPSHOT_BEFORE_INGEST: &str = "snapshot_before_ingest";
/// Follower: a snapshot raft accepted waits because entries handed to the apply pool earlier
/// are not applied yet (see `Peer::handle_ready`).
pub const SNAPSHOT_APPLY_DEFERRED: &str = "snapshot_apply_deferred";
/// Apply pool: a batch split is about to be executed into the round's write batch.
pub const SPLIT_APPLY: &str = "split_apply";
/// Apply pool: a membership change is about to be executed into the round's write batch.
pub const CONF_CHANGE_APPLY: &str = "conf_change_apply";
/// A removed peer is about to write its tombstone and delete its range and raft log.
pub const REGION_DESTROY: &str = "region_destroy";

/// Every point above, for suites that visit each in turn.
pub const ALL: &[&str] = &[
    LOG_WRITER_BEFORE_FSYNC,
    LOG_WRITER_AFTER_FSYNC,
    LOG_WRITER_BEFORE_NOTIFY,
    APPLY_BEFORE_WRITE,
    APPLY_AFTER_WRITE,
    SNAPSHOT_GENERATE,
    SNAPSHOT_SEND,
    SNAPSHOT_RECEIVE,
    SNAPSHOT_VERIFY,
    SNAPSHOT_BEFORE_INGEST,
    SNAPSHOT_APPLY_DEFERRED,
    SPLIT_APPLY,
    CONF_CHANGE_APPLY,
    REGION_DESTROY,
];
