//! The entry point for one key: prepare the history, search, and explain the result.

use std::hash::Hash;
use std::time::Instant;

use crate::history::{Command, HistoryError, Operation, Outcome, Response};
use crate::prepare::{prepare, PrepareResult, Prepared, StateId, ABSENT};
use crate::report::{
    CheckOptions, PendingOp, PlacedOp, Report, Stats, Verdict, Violation, ViolationKind,
};
use crate::search::{Budget, Cause, Deepest, End, Search};

/// How many prefix operations a violation shows with their values.
const TAIL: usize = 8;

/// Checks one key's history of register operations for linearizability.
///
/// `history` is every operation issued on one key, in any order; indices in the result refer
/// to it. The rule is Herlihy & Wing's linearizability (1990), decided by the search of Wing &
/// Gong (1993) with the memoization of Lowe (2017), as in Jepsen's Knossos: the history is
/// linearizable if some order of its operations respects real time (an operation that completed
/// before another was invoked comes first) and is a legal run of the register described at
/// [`Command`], where each `Ok` operation takes effect once between its invoke and completion,
/// each `Info` operation takes effect at most once at any time after its invoke, and `Fail`
/// operations do not take effect. An operation that completes at the instant another is
/// invoked counts as concurrent with it.
///
/// The search stops after [`CheckOptions::max_steps`] steps or [`CheckOptions::max_time`] with
/// [`Verdict::Unknown`]. Memory is about 16 bytes per step (the memo) plus a few words per
/// operation.
///
/// # Errors
/// [`HistoryError`] when an `Ok` operation completes before its invoke or has a response of
/// another command, or the history is too large to index.
pub fn check<V: Clone + Eq + Hash>(
    history: &[Operation<V>],
    opts: &CheckOptions,
) -> Result<Report<V>, HistoryError> {
    let start = Instant::now();
    let mut stats = Stats {
        ops: history.len(),
        ..Stats::default()
    };
    let prepared = match prepare(history)? {
        PrepareResult::Ready(p) => p,
        PrepareResult::Impossible(imp, dropped) => {
            stats.dropped_fail = dropped.fail;
            stats.dropped_info_reads = dropped.info_reads;
            stats.elapsed = start.elapsed();
            let violation = Violation {
                kind: imp.kind,
                op: imp.orig,
                operation: history[imp.orig].clone(),
                prefix: Vec::new(),
                state: None,
                prefix_tail: Vec::new(),
                pending: Vec::new(),
            };
            return Ok(Report {
                verdict: Verdict::NotLinearizable(Box::new(violation)),
                stats,
            });
        }
    };
    stats.searched_ops = prepared.ops.len();
    stats.dropped_fail = prepared.dropped.fail;
    stats.dropped_info_reads = prepared.dropped.info_reads;
    stats.dropped_info_unobservable = prepared.dropped.info_unobservable;

    let mut search = Search::new(&prepared);
    let end = search.run(Budget {
        max_steps: opts.max_steps,
        deadline: opts.max_time.map(|d| (start, d)),
    });
    stats.steps = search.steps;
    stats.memo_entries = search.memo_entries;
    drop(search);

    let verdict = match end {
        End::Linearizable(order) => Verdict::Linearizable {
            witness: opts.witness.then(|| {
                order
                    .into_iter()
                    .map(|i| prepared.ops[i as usize].orig)
                    .collect()
            }),
        },
        End::Exhausted(exhausted, longest_prefix) => Verdict::Unknown {
            exhausted,
            longest_prefix,
        },
        End::Violation(deepest) => {
            Verdict::NotLinearizable(Box::new(explain(history, &prepared, deepest)))
        }
    };
    stats.elapsed = start.elapsed();
    Ok(Report { verdict, stats })
}

/// The register value after `op` takes effect on `s` (`op` was legal there).
fn effect<V: Clone + PartialEq>(op: &Operation<V>, s: Option<V>) -> Option<V> {
    match (&op.command, &op.outcome) {
        (Command::Write(v), _) => Some(v.clone()),
        (Command::Delete, _) => None,
        (
            Command::Cas { new, .. },
            Outcome::Ok(Response::Cas {
                succeeded: true, ..
            }),
        ) => Some(new.clone()),
        (Command::Cas { expected, new }, Outcome::Info) if s == *expected => Some(new.clone()),
        _ => s,
    }
}

/// Builds the violation report from the deepest dead end of the search.
fn explain<V: Clone + PartialEq>(
    history: &[Operation<V>],
    prepared: &Prepared,
    deepest: Deepest,
) -> Violation<V> {
    let ops = &prepared.ops;
    let mut placed = vec![false; ops.len()];
    let mut state: StateId = ABSENT;
    let mut value: Option<V> = None;
    let mut prefix_tail = Vec::new();
    let tail_from = deepest.prefix.len().saturating_sub(TAIL);
    for (k, &i) in deepest.prefix.iter().enumerate() {
        let op = &ops[i as usize];
        placed[i as usize] = true;
        // Every prefix operation was legal where the search placed it.
        state = op.transition.apply(state).unwrap_or(state);
        value = effect(&history[op.orig], value);
        if k >= tail_from {
            prefix_tail.push(PlacedOp {
                index: op.orig,
                operation: history[op.orig].clone(),
                state_after: value.clone(),
            });
        }
    }
    let unplaced_ok = || {
        ops.iter()
            .enumerate()
            .filter(|&(i, o)| !placed[i] && !o.info)
    };
    let culprit = match deepest.cause {
        Cause::Completion(x) => x as usize,
        Cause::Starved => {
            // The unplaced completed operation, completing first, that requires a state other
            // than the current one which no unplaced operation produces.
            let mut producible = vec![false; prepared.n_states];
            for (i, o) in ops.iter().enumerate() {
                if let (false, Some(v)) = (placed[i], o.transition.produces()) {
                    producible[v as usize] = true;
                }
            }
            unplaced_ok()
                .filter(|(_, o)| {
                    o.transition
                        .demands()
                        .is_some_and(|v| v != state && !producible[v as usize])
                })
                .min_by_key(|&(i, o)| (o.complete, i))
                .map_or(0, |(i, _)| i)
        }
    };
    // The window at the dead end: calls up to the first completion of an unplaced operation.
    let window_end = unplaced_ok()
        .map(|(_, o)| o.complete)
        .min()
        .unwrap_or(u64::MAX);
    let pending = ops
        .iter()
        .enumerate()
        .filter(|&(i, o)| !placed[i] && o.invoke <= window_end)
        .map(|(_, o)| PendingOp {
            index: o.orig,
            operation: history[o.orig].clone(),
            legal_after_prefix: o.transition.apply(state).is_some(),
        })
        .collect();
    let op = ops[culprit].orig;
    Violation {
        kind: ViolationKind::NoOrder,
        op,
        operation: history[op].clone(),
        prefix: deepest
            .prefix
            .iter()
            .map(|&i| ops[i as usize].orig)
            .collect(),
        state: value,
        prefix_tail,
        pending,
    }
}
