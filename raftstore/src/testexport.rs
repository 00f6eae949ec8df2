//! The store's insides that benches and tests drive directly, behind the `testexport` cargo
//! feature (off in production builds): the FSMs and the log writer for micro-benchmarks
//! without a cluster, on-disk state readers for crash tests, and the failpoint names.

pub use crate::fsm::apply::{ApplyControlFsm, ApplyFsm, ApplyPollerBuilder};
pub use crate::fsm::peer::PeerFsm;
pub use crate::fsm::store::StoreFsm;
pub use crate::log_writer::{LogBatchWriter, LogWriter, WriteMsg, WriteTask};
pub use crate::msg::apply::{Apply, ApplyMsg, PendingCmd};
pub use crate::operation::read::delegate::ReadDelegate;
pub use crate::peer::storage::{initial_apply_state, load_region_state, RAFT_INIT_LOG_TERM};
pub use crate::stats::StoreFlow;
pub use crate::worker::disk::disk_space;
pub use crate::worker::disk_monitor::PLACEHOLDER_FILE_NAME;

/// The failpoint names `Cluster` aims at a store (see the crate's `failpoints` feature).
pub mod failpoints {
    pub use crate::failpoints::*;
}

/// Region snapshots end to end (generate, verify, apply), for benches without a cluster.
pub mod region_snapshot {
    pub use crate::region_snapshot::*;
}
