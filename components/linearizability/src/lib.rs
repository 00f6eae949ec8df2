//! Linearizability checking for histories of a single-key register.
//!
//! A history records, for each operation a client issued on a key, when it was invoked, when
//! it completed (nanoseconds on one clock), what it asked ([`Command`]: read, write,
//! compare-and-swap, delete) and how it ended ([`Outcome`]: `Ok` with the server's
//! [`Response`], `Info` when the client cannot know whether it took effect, `Fail` when it
//! definitely did not). [`check`] decides whether some order of the operations that respects
//! real time is a legal run of a sequential register (Herlihy & Wing's linearizability), with
//! the backtracking search of Wing & Gong ("Testing and verifying concurrent objects", 1993)
//! and the memoization of configurations from Lowe ("Testing for linearizability", 2017), the
//! approach of Jepsen's Knossos checker.
//!
//! Since linearizability is local, a history over many keys is checked one key at a time:
//! [`split_by_key`] and [`check_by_key`] (which runs keys on several threads).
//!
//! Histories can be written to and read from JSON Lines files ([`save_jsonl`],
//! [`load_jsonl`]), so a history that once found a bug can be kept as a regression test.
//! [`generate`] makes linearizable histories of any size and corrupts them on purpose.
//!
//! ```
//! use linearizability::{check, CheckOptions, Operation};
//!
//! // Client 1 writes 1 during [0, 10]; client 2 reads during [5, 20] and sees it.
//! let history = vec![
//!     Operation::write(1, 0, 10, 1u64),
//!     Operation::read(2, 5, 20, Some(1u64)),
//! ];
//! let report = check(&history, &CheckOptions::default()).unwrap();
//! assert!(report.verdict.is_linearizable());
//! ```

mod checker;
pub mod generate;
mod history;
mod keyed;
mod prepare;
mod report;
mod rng;
mod search;

pub use checker::check;
pub use history::{
    load_jsonl, read_jsonl, save_jsonl, write_jsonl, Command, FormatError, HistoryError,
    KeyedOperation, Operation, Outcome, Response, Time,
};
pub use keyed::{check_by_key, check_histories, split_by_key, KeyHistory, KeyReport};
pub use report::{
    CheckOptions, Exhausted, PendingOp, PlacedOp, Report, Stats, Verdict, Violation, ViolationKind,
};

#[cfg(test)]
mod tests;
