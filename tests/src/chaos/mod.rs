//! Jepsen-style fault testing on real processes.
//!
//! Concurrent clients read, write and compare-and-swap a few hot keys through the official
//! client ([`workload`]) while a nemesis ([`nemesis`]) kills, pauses, restarts and reshapes the
//! fleet ([`fleet`]). Every operation is recorded with its invoke and completion time on one
//! monotonic clock; after the faults are healed the history of each key is checked for
//! linearizability with the `linearizability` crate ([`analysis`]). [`phase::run_phase`] runs
//! one nemesis and returns its measurements ([`report::PhaseReport`]).
//!
//! An operation that timed out or ended with an error that does not prove it was never
//! applied is recorded as indeterminate (`Outcome::Info`); only region errors the store
//! returns before proposing anything count as failed ([`classify`]).

pub mod analysis;
pub mod classify;
pub mod clock;
pub mod fleet;
pub mod keys;
pub mod nemesis;
pub mod phase;
pub mod report;
pub mod workload;

pub use fleet::ChaosFleet;
pub use keys::HotKeys;
pub use nemesis::NemesisKind;
pub use phase::{run_phase, PhaseOptions};
pub use report::PhaseReport;
pub use workload::{Clock, Workload, WorkloadOptions};
