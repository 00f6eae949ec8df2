//! One file per replicated command, each holding every phase of it in order: what the peer
//! proposes, what the apply pool executes, and what the peer does with the result. A command's
//! file opens with the list of its phases.
//!
//! The apply pool's dispatch table (`apply::exec`) calls into the apply halves here; the
//! peer's dispatch of apply results is `operation::committed`.

pub mod compact_log;
pub mod conf_change;
pub mod merge;
pub mod split;
pub mod transfer_leader;
pub mod write;
