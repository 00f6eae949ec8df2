//! Options and results of a check.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::history::Operation;

/// Limits and choices for a check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckOptions {
    /// Most search steps (attempts to linearize one operation) per key before giving up with
    /// [`Verdict::Unknown`]. Also bounds the memo table, which holds at most one 16-byte entry
    /// per step (with hash-table overhead, up to about 40 bytes per step at peak: some 0.8 GB
    /// for 20 million steps). A step takes roughly 0.3 to 1 microsecond. `None`: no limit.
    pub max_steps: Option<u64>,
    /// Most wall-clock time per key before giving up with [`Verdict::Unknown`]. `None`: no
    /// limit.
    pub max_time: Option<Duration>,
    /// Whether a linearizable verdict carries one linearization order.
    pub witness: bool,
    /// Worker threads for [`crate::check_by_key`]; 0 uses the machine's available parallelism.
    pub threads: usize,
}

impl Default for CheckOptions {
    /// 20 million steps and 60 seconds per key, a witness, all cores.
    fn default() -> Self {
        CheckOptions {
            max_steps: Some(20_000_000),
            max_time: Some(Duration::from_secs(60)),
            witness: true,
            threads: 0,
        }
    }
}

/// The result of checking one key's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report<V> {
    /// The answer.
    pub verdict: Verdict<V>,
    /// What the check did.
    pub stats: Stats,
}

/// Whether a history is linearizable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict<V> {
    /// Some order of the operations, consistent with real time, is a legal sequential history
    /// of the register.
    Linearizable {
        /// One such order, as indices into the checked history, when
        /// [`CheckOptions::witness`] is set. Every completed operation appears; indeterminate
        /// operations appear where they took effect, and those that need not have taken effect
        /// are left out.
        witness: Option<Vec<usize>>,
    },
    /// No such order exists.
    NotLinearizable(Box<Violation<V>>),
    /// The budget ran out before the search decided.
    Unknown {
        /// Which limit was reached.
        exhausted: Exhausted,
        /// Length of the longest linearizable prefix found before giving up.
        longest_prefix: usize,
    },
}

impl<V> Verdict<V> {
    /// True for [`Verdict::Linearizable`].
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Verdict::Linearizable { .. })
    }

    /// True for [`Verdict::NotLinearizable`].
    pub fn is_violation(&self) -> bool {
        matches!(self, Verdict::NotLinearizable(_))
    }

    /// True for [`Verdict::Unknown`].
    pub fn is_unknown(&self) -> bool {
        matches!(self, Verdict::Unknown { .. })
    }

    /// The violation, if any.
    pub fn violation(&self) -> Option<&Violation<V>> {
        match self {
            Verdict::NotLinearizable(v) => Some(v),
            _ => None,
        }
    }
}

/// The budget limit that ended a search.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Exhausted {
    /// [`CheckOptions::max_steps`] steps were taken.
    Steps(u64),
    /// [`CheckOptions::max_time`] passed.
    Time(Duration),
}

/// Why a history is not linearizable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ViolationKind {
    /// A completed operation observed (or a successful CAS expected) a value that no
    /// operation in the history writes.
    UnwrittenValue,
    /// A completed CAS whose response contradicts itself: succeeded with `previous` different
    /// from `expected`, or failed with `previous` equal to `expected`.
    InconsistentCas,
    /// The search tried every order consistent with real time and none is legal; `op` is the
    /// completed operation that could not be placed after the longest linearizable prefix
    /// found.
    NoOrder,
}

/// An explanation of why a history is not linearizable.
///
/// For [`ViolationKind::NoOrder`] it describes the deepest point the search reached: the
/// longest prefix it could linearize, the register value after it, and the operation that no
/// continuation can place: either its completion came first, or it requires a value that the
/// register does not hold and no remaining operation can write. For the other kinds the prefix
/// is empty: the operation is wrong in itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation<V> {
    /// What kind of violation.
    pub kind: ViolationKind,
    /// Index (in the checked history) of the operation that could not be placed.
    pub op: usize,
    /// That operation.
    pub operation: Operation<V>,
    /// The longest linearizable prefix found, as history indices in linearization order.
    pub prefix: Vec<usize>,
    /// The register value after `prefix` (`None`: absent).
    pub state: Option<V>,
    /// The last (at most 8) operations of `prefix`, with the value after each.
    pub prefix_tail: Vec<PlacedOp<V>>,
    /// Operations invoked but not yet placed at that point (up to the first completion of an
    /// unplaced operation), in invoke order; `op` is among them if it was already invoked.
    pub pending: Vec<PendingOp<V>>,
}

/// An operation of a linearizable prefix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacedOp<V> {
    /// Index in the checked history.
    pub index: usize,
    /// The operation.
    pub operation: Operation<V>,
    /// The register value after it took effect.
    pub state_after: Option<V>,
}

/// An operation that was invoked but not placed where the search got stuck.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingOp<V> {
    /// Index in the checked history.
    pub index: usize,
    /// The operation.
    pub operation: Operation<V>,
    /// Whether its reported result is legal in the register value after the prefix (if so,
    /// every order that placed it there failed later).
    pub legal_after_prefix: bool,
}

/// Counters of one check.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Operations in the checked history.
    pub ops: usize,
    /// Operations the search ran on.
    pub searched_ops: usize,
    /// `Fail` operations dropped.
    pub dropped_fail: usize,
    /// `Info` reads dropped.
    pub dropped_info_reads: usize,
    /// `Info` writes, deletes and CASes dropped because no completed operation could observe
    /// their effect (they are taken to happen after everything else).
    pub dropped_info_unobservable: usize,
    /// Search steps taken (attempts to linearize one operation).
    pub steps: u64,
    /// Configurations (linearized set, register value) remembered.
    pub memo_entries: usize,
    /// Wall-clock time of the check.
    pub elapsed: Duration,
}

impl<V> Violation<V> {
    /// The same violation with every history index mapped through `f`.
    pub(crate) fn map_indices(&mut self, f: &impl Fn(usize) -> usize) {
        self.op = f(self.op);
        for i in &mut self.prefix {
            *i = f(*i);
        }
        for p in &mut self.prefix_tail {
            p.index = f(p.index);
        }
        for p in &mut self.pending {
            p.index = f(p.index);
        }
    }
}

impl<V> Verdict<V> {
    /// The same verdict with every history index mapped through `f`.
    pub(crate) fn map_indices(&mut self, f: &impl Fn(usize) -> usize) {
        match self {
            Verdict::Linearizable {
                witness: Some(order),
            } => order.iter_mut().for_each(|i| *i = f(*i)),
            Verdict::NotLinearizable(v) => v.map_indices(f),
            _ => {}
        }
    }
}

impl<V: fmt::Debug> fmt::Display for Violation<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ViolationKind::UnwrittenValue => {
                return write!(
                    f,
                    "operation #{} observed a value that no operation writes: {}",
                    self.op, self.operation
                )
            }
            ViolationKind::InconsistentCas => {
                return write!(
                    f,
                    "operation #{} is a CAS whose response contradicts itself: {}",
                    self.op, self.operation
                )
            }
            ViolationKind::NoOrder => {}
        }
        writeln!(
            f,
            "operation #{} cannot be linearized: {}",
            self.op, self.operation
        )?;
        writeln!(
            f,
            "longest linearizable prefix: {} operations, leaving the register at {:?}",
            self.prefix.len(),
            self.state
        )?;
        if !self.prefix_tail.is_empty() {
            writeln!(f, "  its last operations:")?;
            for p in &self.prefix_tail {
                writeln!(
                    f,
                    "    #{} {}  => {:?}",
                    p.index, p.operation, p.state_after
                )?;
            }
        }
        writeln!(f, "operations invoked but not placed at that point:")?;
        const SHOWN: usize = 24;
        for p in self.pending.iter().take(SHOWN) {
            let legal = if p.legal_after_prefix {
                "legal here, dead end later"
            } else {
                "illegal here"
            };
            writeln!(f, "    #{} {}  ({legal})", p.index, p.operation)?;
        }
        if self.pending.len() > SHOWN {
            writeln!(f, "    ... and {} more", self.pending.len() - SHOWN)?;
        }
        Ok(())
    }
}

impl<V: fmt::Debug> fmt::Display for Verdict<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Linearizable { .. } => write!(f, "linearizable"),
            Verdict::NotLinearizable(v) => write!(f, "not linearizable: {v}"),
            Verdict::Unknown {
                exhausted,
                longest_prefix,
            } => write!(
                f,
                "unknown: budget exhausted ({exhausted:?}) after a linearizable prefix of {longest_prefix} operations"
            ),
        }
    }
}
