//! Turns a history into the compact form the search runs on: values interned to small integers,
//! each operation reduced to a transition of the register model, dropped operations removed,
//! and the rest sorted by invoke time.

use std::collections::HashMap;
use std::hash::Hash;

use crate::history::{Command, HistoryError, Operation, Outcome, Response, Time};
use crate::report::ViolationKind;

/// Interned register state: 0 is absent, `k > 0` is the `k`-th distinct value.
pub(crate) type StateId = u32;

/// The absent state (also the initial state).
pub(crate) const ABSENT: StateId = 0;

/// One operation as a transition of the register model: `apply(s)` is the state after it takes
/// effect in state `s`, or `None` if it cannot take effect there with the result it reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Transition {
    /// Completed read that observed the state.
    Read(StateId),
    /// Write or delete (completed or indeterminate).
    Write(StateId),
    /// Completed CAS that succeeded.
    Cas { expected: StateId, new: StateId },
    /// Completed CAS that failed having observed `previous` (which differs from its expected).
    CasFailed { previous: StateId },
    /// Indeterminate CAS: swaps if the state matches, does nothing otherwise.
    CasInfo { expected: StateId, new: StateId },
    /// A completed operation whose response contradicts the model in every state (a CAS that
    /// succeeded with `previous != expected`, or failed with `previous == expected`).
    Never,
}

impl Transition {
    /// The state after this operation takes effect in state `s`, if it can.
    #[inline]
    pub(crate) fn apply(self, s: StateId) -> Option<StateId> {
        match self {
            Transition::Read(v) => (s == v).then_some(s),
            Transition::Write(v) => Some(v),
            Transition::Cas { expected, new } => (s == expected).then_some(new),
            Transition::CasFailed { previous } => (s == previous).then_some(s),
            Transition::CasInfo { expected, new } => Some(if s == expected { new } else { s }),
            Transition::Never => None,
        }
    }

    /// True for completed operations that never change the state when they can take effect.
    #[inline]
    pub(crate) fn is_read_only(self) -> bool {
        matches!(self, Transition::Read(_) | Transition::CasFailed { .. })
    }

    /// The state a completed operation requires to take effect, if it requires one.
    pub(crate) fn demands(self) -> Option<StateId> {
        match self {
            Transition::Read(v) => Some(v),
            Transition::Cas { expected, .. } => Some(expected),
            Transition::CasFailed { previous } => Some(previous),
            _ => None,
        }
    }

    /// The state an operation may produce, if it writes.
    pub(crate) fn produces(self) -> Option<StateId> {
        match self {
            Transition::Write(v) => Some(v),
            Transition::Cas { new, .. } | Transition::CasInfo { new, .. } => Some(new),
            _ => None,
        }
    }

    /// The same transition with the state it produces replaced by `to`.
    fn with_product(self, to: StateId) -> Self {
        match self {
            Transition::Write(_) => Transition::Write(to),
            Transition::Cas { expected, .. } => Transition::Cas { expected, new: to },
            Transition::CasInfo { expected, .. } => Transition::CasInfo { expected, new: to },
            t => t,
        }
    }
}

/// One operation kept for the search.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SearchOp {
    /// Index in the caller's history.
    pub orig: usize,
    pub transition: Transition,
    /// Indeterminate: need not be placed, has no completion.
    pub info: bool,
    pub invoke: Time,
    /// Completion time; `Time::MAX` for indeterminate operations.
    pub complete: Time,
}

/// Counts of operations removed before the search.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Dropped {
    pub fail: usize,
    pub info_reads: usize,
    pub info_unobservable: usize,
}

/// A history ready for the search.
pub(crate) struct Prepared {
    /// Kept operations in invoke order (ties by history index).
    pub ops: Vec<SearchOp>,
    /// Number of states, including the one that stands for every unobservable value.
    pub n_states: usize,
    pub dropped: Dropped,
}

/// Why preparation already decided the history is not linearizable.
pub(crate) struct Impossible {
    pub kind: ViolationKind,
    /// History index of the operation.
    pub orig: usize,
}

/// Largest history the search can index (entries are `u32`, two per operation, plus a head).
pub(crate) const MAX_OPS: usize = (u32::MAX as usize - 2) / 2;

struct Interner<'a, V> {
    ids: HashMap<&'a V, StateId>,
    values: Vec<&'a V>,
}

impl<'a, V: Eq + Hash> Interner<'a, V> {
    fn id(&mut self, v: Option<&'a V>) -> StateId {
        let Some(v) = v else { return ABSENT };
        if let Some(&id) = self.ids.get(v) {
            return id;
        }
        self.values.push(v);
        let id = self.values.len() as StateId;
        self.ids.insert(v, id);
        id
    }
}

fn command_name<V>(c: &Command<V>) -> &'static str {
    match c {
        Command::Read => "read",
        Command::Write(_) => "write",
        Command::Cas { .. } => "cas",
        Command::Delete => "delete",
    }
}

fn response_name<V>(r: &Response<V>) -> &'static str {
    match r {
        Response::Read(_) => "read",
        Response::Write => "write",
        Response::Cas { .. } => "cas",
        Response::Delete => "delete",
    }
}

/// A prepared history, or the operation that already shows it is not linearizable.
pub(crate) enum PrepareResult {
    Ready(Prepared),
    Impossible(Impossible, Dropped),
}

/// Validates and compiles `history`.
pub(crate) fn prepare<V: Eq + Hash>(
    history: &[Operation<V>],
) -> Result<PrepareResult, HistoryError> {
    if history.len() > MAX_OPS {
        return Err(HistoryError::TooLarge {
            len: history.len(),
            max: MAX_OPS,
        });
    }
    let mut interner = Interner {
        ids: HashMap::new(),
        values: Vec::new(),
    };
    let mut dropped = Dropped::default();
    let mut ops = Vec::with_capacity(history.len());
    for (index, op) in history.iter().enumerate() {
        let transition = match &op.outcome {
            Outcome::Fail => {
                dropped.fail += 1;
                continue;
            }
            Outcome::Info => match &op.command {
                Command::Read => {
                    dropped.info_reads += 1;
                    continue;
                }
                Command::Write(v) => Transition::Write(interner.id(Some(v))),
                Command::Delete => Transition::Write(ABSENT),
                Command::Cas { expected, new } => Transition::CasInfo {
                    expected: interner.id(expected.as_ref()),
                    new: interner.id(Some(new)),
                },
            },
            Outcome::Ok(response) => {
                if op.complete < op.invoke {
                    return Err(HistoryError::CompletedBeforeInvoked {
                        index,
                        invoke: op.invoke,
                        complete: op.complete,
                    });
                }
                match (&op.command, response) {
                    (Command::Read, Response::Read(v)) => Transition::Read(interner.id(v.as_ref())),
                    (Command::Write(v), Response::Write) => Transition::Write(interner.id(Some(v))),
                    (Command::Delete, Response::Delete) => Transition::Write(ABSENT),
                    (
                        Command::Cas { expected, new },
                        Response::Cas {
                            previous,
                            succeeded,
                        },
                    ) => {
                        let expected = interner.id(expected.as_ref());
                        let previous = interner.id(previous.as_ref());
                        let new = interner.id(Some(new));
                        match (*succeeded, previous == expected) {
                            (true, true) => Transition::Cas { expected, new },
                            (false, false) => Transition::CasFailed { previous },
                            _ => Transition::Never,
                        }
                    }
                    (command, response) => {
                        return Err(HistoryError::ResponseMismatch {
                            index,
                            command: command_name(command),
                            response: response_name(response),
                        })
                    }
                }
            }
        };
        let info = matches!(op.outcome, Outcome::Info);
        ops.push(SearchOp {
            orig: index,
            transition,
            info,
            invoke: op.invoke,
            complete: if info { Time::MAX } else { op.complete },
        });
    }
    ops.sort_by_key(|o| (o.invoke, o.orig));
    let n_states = interner.values.len() + 1;

    if let Some(impossible) = find_impossible(&ops, n_states) {
        return Ok(PrepareResult::Impossible(impossible, dropped));
    }
    let before = ops.len();
    let mut ops = drop_unobservable_info(ops, n_states);
    dropped.info_unobservable = before - ops.len();
    merge_unobserved(&mut ops, n_states);
    Ok(PrepareResult::Ready(Prepared {
        ops,
        n_states: n_states + 1,
        dropped,
    }))
}

/// The first (by invoke time) completed operation that no ordering can satisfy: a CAS whose
/// response contradicts itself, or one that observed a value no operation could have written.
fn find_impossible(ops: &[SearchOp], n_states: usize) -> Option<Impossible> {
    let mut producible = vec![false; n_states];
    producible[ABSENT as usize] = true;
    for op in ops {
        if let Some(v) = op.transition.produces() {
            producible[v as usize] = true;
        }
    }
    ops.iter().filter(|o| !o.info).find_map(|op| {
        let kind = match op.transition {
            Transition::Never => ViolationKind::InconsistentCas,
            t => match t.demands() {
                Some(v) if !producible[v as usize] => ViolationKind::UnwrittenValue,
                _ => return None,
            },
        };
        Some(Impossible {
            kind,
            orig: op.orig,
        })
    })
}

/// Removes indeterminate operations whose effect no operation could observe.
///
/// An indeterminate write (or CAS) of value `v` is kept only if some completed operation that
/// requires state `v` completes at or after the write's invoke time, or some kept indeterminate
/// CAS expects `v` (computed to a fixpoint). A removed operation can always be placed after
/// everything else (indeterminate operations have no completion and can take effect in any
/// state): in any linearization, the states it and the other removed operations produce are
/// observed by no completed operation, so taking them out leaves every completed operation
/// legal. This keeps the search from trying the (usually many) timed-out writes nobody read.
fn drop_unobservable_info(ops: Vec<SearchOp>, n_states: usize) -> Vec<SearchOp> {
    // Latest completion time of an operation that requires each state; Time::MAX once a kept
    // indeterminate CAS expects it.
    let mut demanded_until: Vec<Option<Time>> = vec![None; n_states];
    for op in ops.iter().filter(|o| !o.info) {
        if let Some(v) = op.transition.demands() {
            let slot = &mut demanded_until[v as usize];
            *slot = Some(slot.map_or(op.complete, |t| t.max(op.complete)));
        }
    }
    let mut keep: Vec<bool> = ops.iter().map(|o| !o.info).collect();
    loop {
        let mut changed = false;
        for (i, op) in ops.iter().enumerate() {
            if keep[i] {
                continue;
            }
            let Some(v) = op.transition.produces() else {
                continue;
            };
            if demanded_until[v as usize].is_some_and(|t| t >= op.invoke) {
                keep[i] = true;
                changed = true;
                if let Transition::CasInfo { expected, .. } = op.transition {
                    demanded_until[expected as usize] = Some(Time::MAX);
                }
            }
        }
        if !changed {
            break;
        }
    }
    ops.into_iter()
        .zip(keep)
        .filter_map(|(op, k)| k.then_some(op))
        .collect()
}

/// Maps every value that no operation can observe to one extra state, `n_states`.
///
/// A value is observable if a completed operation requires it (a read of it, a successful CAS
/// expecting it, a failed CAS reporting it) or a kept indeterminate CAS expects it. The model's
/// behaviour only depends on whether the state equals such values, so all other values are
/// interchangeable; merging them lets orders that differ only in which unobserved value was
/// written meet in the memo.
fn merge_unobserved(ops: &mut [SearchOp], n_states: usize) {
    let unobserved = n_states as StateId;
    let mut observable = vec![false; n_states];
    observable[ABSENT as usize] = true;
    for op in ops.iter() {
        match op.transition {
            Transition::CasInfo { expected, .. } => observable[expected as usize] = true,
            t if !op.info => {
                if let Some(v) = t.demands() {
                    observable[v as usize] = true;
                }
            }
            _ => {}
        }
    }
    for op in ops.iter_mut() {
        if let Some(v) = op.transition.produces() {
            if !observable[v as usize] {
                op.transition = op.transition.with_product(unobserved);
            }
        }
    }
}
