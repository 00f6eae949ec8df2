//! What a recorded history says: linearizability per key, operation counts, duplicate
//! applications (with a retrying client) and how fast writes came back after each fault.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use linearizability::{
    check_by_key, CheckOptions, Command, KeyedOperation, Outcome, Response, Verdict,
};
use serde::Serialize;

use super::nemesis::FaultRecord;
use super::workload::Op;

/// The verdict for one key.
#[derive(Clone, Debug, Serialize)]
pub struct KeyVerdict {
    /// The key.
    pub key: String,
    /// Operations recorded on it.
    pub ops: usize,
    /// `linearizable`, `NOT LINEARIZABLE`, `unknown` or `bad history`.
    pub verdict: String,
    /// The violation (or why the check could not decide), in full.
    pub detail: Option<String>,
    /// Search steps the checker took.
    pub steps: u64,
    /// How long the check of this key took.
    pub check_ms: u128,
}

impl KeyVerdict {
    /// Whether the checker proved the key's history not linearizable.
    pub fn is_violation(&self) -> bool {
        self.verdict == "NOT LINEARIZABLE"
    }

    /// Whether the checker gave up.
    pub fn is_unknown(&self) -> bool {
        self.verdict == "unknown"
    }
}

/// Checks every key of `ops`. Values are shown as text (they are ASCII).
pub fn check(ops: &[Op], opts: &CheckOptions) -> Vec<KeyVerdict> {
    let text: Vec<KeyedOperation<String, String>> = ops
        .iter()
        .map(|o| KeyedOperation {
            key: o.key.clone(),
            op: o
                .op
                .clone()
                .map_values(|v| String::from_utf8_lossy(&v).into_owned()),
        })
        .collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for o in ops {
        *counts.entry(o.key.as_str()).or_default() += 1;
    }
    check_by_key(&text, opts)
        .into_iter()
        .map(|r| {
            let n = counts.get(r.key.as_str()).copied().unwrap_or(0);
            match r.result {
                Ok(report) => {
                    let (verdict, detail) = match &report.verdict {
                        Verdict::Linearizable { .. } => ("linearizable", None),
                        Verdict::NotLinearizable(v) => ("NOT LINEARIZABLE", Some(v.to_string())),
                        Verdict::Unknown { .. } => ("unknown", Some(report.verdict.to_string())),
                    };
                    KeyVerdict {
                        key: r.key,
                        ops: n,
                        verdict: verdict.into(),
                        detail,
                        steps: report.stats.steps,
                        check_ms: report.stats.elapsed.as_millis(),
                    }
                }
                Err(e) => KeyVerdict {
                    key: r.key,
                    ops: n,
                    verdict: "bad history".into(),
                    detail: Some(e.to_string()),
                    steps: 0,
                    check_ms: 0,
                },
            }
        })
        .collect()
}

/// Operations by outcome and kind.
#[derive(Clone, Debug, Default, Serialize)]
pub struct OpCounts {
    /// Completed with an answer.
    pub ok: usize,
    /// Indeterminate.
    pub info: usize,
    /// Certainly not applied.
    pub fail: usize,
    /// Reads (any outcome).
    pub reads: usize,
    /// Blind writes (any outcome).
    pub writes: usize,
    /// Compare-and-swaps (any outcome).
    pub cas: usize,
    /// Compare-and-swaps that answered "swapped".
    pub cas_swapped: usize,
}

/// Counts `ops`.
pub fn count(ops: &[Op]) -> OpCounts {
    let mut c = OpCounts::default();
    for o in ops {
        match &o.op.outcome {
            Outcome::Ok(r) => {
                c.ok += 1;
                if matches!(
                    r,
                    Response::Cas {
                        succeeded: true,
                        ..
                    }
                ) {
                    c.cas_swapped += 1;
                }
            }
            Outcome::Info => c.info += 1,
            Outcome::Fail => c.fail += 1,
        }
        match o.op.command {
            Command::Read => c.reads += 1,
            Command::Write(_) => c.writes += 1,
            Command::Cas { .. } => c.cas += 1,
            Command::Delete => {}
        }
    }
    c
}

/// Signs that one client operation was applied more than once.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Duplicates {
    /// Compare-and-swaps that answered "not swapped" with their own (unique) new value as the
    /// previous value: an earlier attempt had swapped, and a retry found its result.
    pub cas_saw_own_value: usize,
    /// Values that were present (read, found by a compare-and-swap, or written), then
    /// replaced by another value present strictly later, then present again strictly later
    /// still: written twice.
    pub values_reappeared: usize,
    /// Compare-and-swaps that answered "not swapped" (with another operation's value as the
    /// previous one) although their own (unique) new value was present for another
    /// operation: an earlier attempt had swapped, another client then wrote, and the retry
    /// found that client's value.
    pub failed_cas_took_effect: usize,
}

impl Duplicates {
    /// Both counts together.
    pub fn total(&self) -> usize {
        self.cas_saw_own_value + self.values_reappeared + self.failed_cas_took_effect
    }
}

/// Counts duplicate applications in `ops` (values are unique per operation).
pub fn count_duplicates(ops: &[Op]) -> Duplicates {
    let mut d = Duplicates::default();
    // Per key: (invoke, complete, value) of every moment a value was present: answered
    // reads, the value a compare-and-swap found (and wrote, if it swapped), acknowledged
    // writes. Each happened at some instant between invoke and complete.
    type Observation<'a> = (u64, u64, Option<&'a [u8]>);
    let mut observed: HashMap<&str, Vec<Observation<'_>>> = HashMap::new();
    // Per key: the new values of compare-and-swaps that answered "not swapped" with a value
    // other than their own.
    let mut refused: HashMap<&str, Vec<&[u8]>> = HashMap::new();
    for o in ops {
        let mut seen = Vec::with_capacity(2);
        match (&o.op.command, &o.op.outcome) {
            (Command::Read, Outcome::Ok(Response::Read(v))) => seen.push(v.as_deref()),
            (Command::Write(v), Outcome::Ok(Response::Write)) => seen.push(Some(v.as_slice())),
            (
                Command::Cas { new, .. },
                Outcome::Ok(Response::Cas {
                    previous,
                    succeeded,
                }),
            ) => {
                if !succeeded {
                    if previous.as_deref() == Some(new.as_slice()) {
                        d.cas_saw_own_value += 1;
                    } else {
                        refused.entry(o.key.as_str()).or_default().push(new);
                    }
                }
                seen.push(previous.as_deref());
                if *succeeded {
                    seen.push(Some(new.as_slice()));
                }
            }
            _ => continue,
        };
        let list = observed.entry(o.key.as_str()).or_default();
        for v in seen {
            list.push((o.op.invoke, o.op.complete, v));
        }
    }
    for (key, news) in &refused {
        let Some(obs) = observed.get(key) else {
            continue;
        };
        let present: HashSet<&[u8]> = obs.iter().filter_map(|o| o.2).collect();
        d.failed_cas_took_effect += news.iter().filter(|n| present.contains(*n)).count();
    }
    for obs in observed.values_mut() {
        d.values_reappeared += reappeared(obs);
    }
    d
}

/// How many values in `obs` ((invoke, complete, value) of one key) were present, then
/// replaced by a different value present strictly later, then present again strictly later.
fn reappeared(obs: &mut [(u64, u64, Option<&[u8]>)]) -> usize {
    obs.sort_by_key(|o| o.0);
    // suffix[i]: over obs[i..], the smallest completion (c1, of value v1) and the smallest
    // completion among values other than v1 (c2, of value v2).
    type Best<'a> = (u64, Option<Option<&'a [u8]>>, u64, Option<Option<&'a [u8]>>);
    let mut suffix: Vec<Best<'_>> = vec![(u64::MAX, None, u64::MAX, None); obs.len() + 1];
    for i in (0..obs.len()).rev() {
        let (mut c1, mut v1, mut c2, mut v2) = suffix[i + 1];
        let (_, c, v) = obs[i];
        if v1 == Some(v) {
            c1 = c1.min(c);
        } else if v2 == Some(v) {
            c2 = c2.min(c);
            if c2 < c1 {
                std::mem::swap(&mut c1, &mut c2);
                std::mem::swap(&mut v1, &mut v2);
            }
        } else if c < c1 {
            (c2, v2) = (c1, v1);
            (c1, v1) = (c, Some(v));
        } else if c < c2 {
            (c2, v2) = (c, Some(v));
        }
        suffix[i] = (c1, v1, c2, v2);
    }
    // For each value: its first completion and last invocation.
    let mut span: HashMap<&[u8], (u64, u64)> = HashMap::new();
    for (invoke, complete, v) in obs.iter() {
        if let Some(v) = v {
            let s = span.entry(v).or_insert((u64::MAX, 0));
            s.0 = s.0.min(*complete);
            s.1 = s.1.max(*invoke);
        }
    }
    span.into_iter()
        .filter(|(value, (first_done, last_start))| {
            if first_done >= last_start {
                return false;
            }
            // Observations invoked after the first completion of the value...
            let from = obs.partition_point(|o| o.0 <= *first_done);
            let (c1, v1, c2, _) = suffix[from];
            // ...of another value, completed before its last invocation.
            let other = if v1 == Some(Some(*value)) { c2 } else { c1 };
            other < *last_start
        })
        .count()
}

/// Completion times of acknowledged writes (puts and swapped compare-and-swaps), sorted.
fn acked_writes(ops: &[Op]) -> Vec<(u64, u64)> {
    let mut w: Vec<(u64, u64)> = ops
        .iter()
        .filter(|o| {
            matches!(
                o.op.outcome,
                Outcome::Ok(Response::Write)
                    | Outcome::Ok(Response::Cas {
                        succeeded: true,
                        ..
                    })
            )
        })
        .map(|o| (o.op.invoke, o.op.complete))
        .collect();
    w.sort_by_key(|(_, complete)| *complete);
    w
}

/// For each fault: the time from its heal (or injection, when nothing was healed) to the
/// completion of the first acknowledged write invoked after it.
pub fn recovery_times(ops: &[Op], faults: &[FaultRecord]) -> Vec<Option<Duration>> {
    let writes = acked_writes(ops);
    faults
        .iter()
        .map(|f| {
            let from = f.healed_at.unwrap_or(f.injected_at);
            writes
                .iter()
                .filter(|(invoke, _)| *invoke >= from)
                .map(|(_, complete)| *complete)
                .min()
                .map(|done| Duration::from_nanos(done - from))
        })
        .collect()
}

/// The longest time between two consecutive acknowledged writes between `from` and `to`.
pub fn max_write_gap(ops: &[Op], from: u64, to: u64) -> Duration {
    let mut last = from;
    let mut gap = 0;
    for (_, complete) in acked_writes(ops) {
        if complete < from || complete > to {
            continue;
        }
        gap = gap.max(complete - last);
        last = complete;
    }
    Duration::from_nanos(gap.max(to.saturating_sub(last)))
}

#[cfg(test)]
mod tests {
    use linearizability::Operation;

    use super::*;

    fn op(key: &str, op: Operation<Vec<u8>>) -> Op {
        KeyedOperation {
            key: key.into(),
            op,
        }
    }

    fn v(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    #[test]
    fn a_clean_history_checks_and_counts() {
        let h = vec![
            op("k", Operation::write(1, 0, 10, v("a"))),
            op("k", Operation::read(2, 20, 30, Some(v("a")))),
            op(
                "k",
                Operation::cas(1, 40, 50, Some(v("a")), v("b"), Some(v("a")), true),
            ),
            op("k", Operation::info(2, 60, 70, Command::Write(v("c")))),
            op("j", Operation::fail(3, 0, 5, Command::Write(v("d")))),
        ];
        let verdicts = check(&h, &CheckOptions::default());
        assert_eq!(verdicts.len(), 2);
        assert!(verdicts.iter().all(|k| k.verdict == "linearizable"));
        let c = count(&h);
        assert_eq!((c.ok, c.info, c.fail, c.cas_swapped), (3, 1, 1, 1));
        assert_eq!(count_duplicates(&h).total(), 0);
        let fault = FaultRecord {
            action: "kill".into(),
            target: String::new(),
            injected_at: 5,
            healed_at: Some(15),
            applied: true,
            note: String::new(),
        };
        assert_eq!(
            recovery_times(&h, &[fault]),
            vec![Some(Duration::from_nanos(35))]
        );
        assert_eq!(max_write_gap(&h, 0, 100), Duration::from_nanos(50));
    }

    #[test]
    fn reappearances_match_a_brute_force_count() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let values: Vec<Vec<u8>> = (0..5u8).map(|i| vec![b'a' + i]).collect();
        for _ in 0..300 {
            let mut obs: Vec<(u64, u64, Option<&[u8]>)> = (0..rng.gen_range(0..12))
                .map(|_| {
                    let invoke = rng.gen_range(0..100);
                    let v = rng.gen_range(0..=values.len());
                    let value = values.get(v).map(|v| v.as_slice());
                    (invoke, invoke + rng.gen_range(0..30), value)
                })
                .collect();
            let brute = values
                .iter()
                .filter(|v| {
                    let v = Some(v.as_slice());
                    obs.iter().filter(|a| a.2 == v).any(|a| {
                        obs.iter()
                            .filter(|c| c.2 == v)
                            .any(|c| obs.iter().any(|b| b.2 != v && b.0 > a.1 && b.1 < c.0))
                    })
                })
                .count();
            assert_eq!(reappeared(&mut obs), brute, "{obs:?}");
        }
    }

    #[test]
    fn a_refused_swap_whose_value_was_read_is_counted() {
        // The chaos run's pattern: process 2's swap to c applied on its first attempt,
        // process 4 then wrote d, and the retry answered "not swapped, previous d". Process 3
        // read c in between, a value no acknowledged operation wrote.
        let h = vec![
            op("k", Operation::write(1, 0, 10, v("a"))),
            op(
                "k",
                Operation::cas(2, 15, 100, Some(v("a")), v("c"), Some(v("d")), false),
            ),
            op("k", Operation::read(3, 20, 30, Some(v("c")))),
            op("k", Operation::write(4, 40, 50, v("d"))),
            op(
                "k",
                Operation::cas(5, 60, 70, Some(v("x")), v("e"), Some(v("d")), false),
            ),
        ];
        let d = count_duplicates(&h);
        assert_eq!(d.failed_cas_took_effect, 1);
        assert_eq!((d.cas_saw_own_value, d.values_reappeared), (0, 0));
        assert!(check(&h, &CheckOptions::default())[0].is_violation());
    }

    #[test]
    fn duplicates_and_violations_are_found() {
        // The write of b was applied twice (before and after the swap to c), and the CAS to
        // d found its own value after a retry.
        let h = vec![
            op("k", Operation::write(1, 0, 10, v("a"))),
            op("k", Operation::write(2, 15, 100, v("b"))),
            op("k", Operation::read(3, 20, 30, Some(v("b")))),
            op(
                "k",
                Operation::cas(3, 35, 40, Some(v("b")), v("c"), Some(v("b")), true),
            ),
            op("k", Operation::read(3, 60, 70, Some(v("b")))),
            op(
                "k",
                Operation::cas(4, 80, 90, Some(v("x")), v("d"), Some(v("d")), false),
            ),
        ];
        let d = count_duplicates(&h);
        assert_eq!((d.cas_saw_own_value, d.values_reappeared), (1, 1));
        assert_eq!(d.failed_cas_took_effect, 0);
        let verdicts = check(&h, &CheckOptions::default());
        assert!(verdicts[0].is_violation(), "{verdicts:?}");
        assert!(verdicts[0].detail.is_some());
    }
}
