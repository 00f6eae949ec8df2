//! Cross-checks against an exhaustive search on small histories, random and generated.

use super::{opts, validate_witness, Op};
use crate::generate::{register_history, GenConfig};
use crate::rng::SplitMix64;
use crate::*;

/// Exhaustive reference: tries every order (and every subset of indeterminate operations).
fn brute_force(h: &[Op]) -> bool {
    fn legal_next(h: &[Op], placed: &[bool], i: usize) -> bool {
        // No unplaced completed operation may have completed before `i` was invoked.
        !h.iter()
            .enumerate()
            .any(|(j, o)| j != i && !placed[j] && o.is_ok() && o.complete < h[i].invoke)
    }
    fn step(op: &Op, s: Option<u64>) -> Option<Option<u64>> {
        match (&op.command, &op.outcome) {
            (Command::Read, Outcome::Ok(Response::Read(v))) => (*v == s).then_some(s),
            (Command::Write(v), _) => Some(Some(*v)),
            (Command::Delete, _) => Some(None),
            (
                Command::Cas { expected, new },
                Outcome::Ok(Response::Cas {
                    previous,
                    succeeded,
                }),
            ) => {
                if *previous != s || *succeeded != (s == *expected) {
                    None
                } else if *succeeded {
                    Some(Some(*new))
                } else {
                    Some(s)
                }
            }
            (Command::Cas { expected, new }, Outcome::Info) => {
                Some(if s == *expected { Some(*new) } else { s })
            }
            _ => None,
        }
    }
    fn dfs(h: &[Op], placed: &mut Vec<bool>, s: Option<u64>) -> bool {
        if h.iter().zip(placed.iter()).all(|(o, &p)| p || !o.is_ok()) {
            return true;
        }
        for i in 0..h.len() {
            if placed[i] || !legal_next(h, placed, i) {
                continue;
            }
            if let Some(next) = step(&h[i], s) {
                placed[i] = true;
                let ok = dfs(h, placed, next);
                placed[i] = false;
                if ok {
                    return true;
                }
            }
        }
        false
    }
    let kept: Vec<Op> = h
        .iter()
        .filter(|o| {
            !matches!(
                (&o.outcome, &o.command),
                (Outcome::Fail, _) | (Outcome::Info, Command::Read)
            )
        })
        .cloned()
        .collect();
    let mut placed = vec![false; kept.len()];
    dfs(&kept, &mut placed, None)
}

fn random_small_history(rng: &mut SplitMix64) -> Vec<Op> {
    let n = 1 + rng.below(7) as usize;
    let value = |rng: &mut SplitMix64| match rng.below(4) {
        0 => None,
        v => Some(v),
    };
    (0..n)
        .map(|p| {
            let invoke = rng.below(20);
            let complete = invoke + rng.below(10);
            let command = match rng.below(4) {
                0 => Command::Read,
                1 => Command::Write(1 + rng.below(3)),
                2 => Command::Cas {
                    expected: value(rng),
                    new: 1 + rng.below(3),
                },
                _ => Command::Delete,
            };
            let outcome = match rng.below(10) {
                0 | 1 => Outcome::Info,
                2 => Outcome::Fail,
                _ => Outcome::Ok(match &command {
                    Command::Read => Response::Read(value(rng)),
                    Command::Write(_) => Response::Write,
                    Command::Delete => Response::Delete,
                    Command::Cas { expected, .. } => {
                        let previous = if rng.chance(0.5) {
                            *expected
                        } else {
                            value(rng)
                        };
                        Response::Cas {
                            previous,
                            succeeded: rng.chance(0.5),
                        }
                    }
                }),
            };
            Op {
                process: p as u64,
                invoke,
                complete,
                command,
                outcome,
            }
        })
        .collect()
}

#[test]
fn agrees_with_exhaustive_search_on_small_random_histories() {
    let mut rng = SplitMix64::new(42);
    let (mut yes, mut no) = (0, 0);
    for case in 0..20_000 {
        let h = random_small_history(&mut rng);
        let expected = brute_force(&h);
        let report = check(&h, &opts()).unwrap();
        match &report.verdict {
            Verdict::Linearizable { witness: Some(w) } => {
                assert!(expected, "case {case}: checker says linearizable: {h:#?}");
                validate_witness(&h, w);
                yes += 1;
            }
            Verdict::NotLinearizable(_) => {
                assert!(
                    !expected,
                    "case {case}: checker says not linearizable: {h:#?}"
                );
                no += 1;
            }
            other => panic!("case {case}: {other}"),
        }
    }
    // Both answers must be well represented for the comparison to mean anything.
    eprintln!("{yes} linearizable, {no} not");
    assert!(yes > 2_000 && no > 2_000, "{yes} linearizable, {no} not");
}

#[test]
fn agrees_with_exhaustive_search_on_mutated_generated_histories() {
    let mut rng = SplitMix64::new(7);
    let (mut yes, mut no) = (0, 0);
    for seed in 0..20_000 {
        let mut h = register_history(&GenConfig {
            ops: 9,
            clients: 2 + seed as usize % 4,
            seed,
            info_rate: 0.3,
            fail_rate: 0.1,
            max_latency: 100,
            max_think: 30,
            ..GenConfig::default()
        });
        // Make one completed read or CAS report something else from the values around.
        let targets: Vec<usize> = (0..h.len()).filter(|&i| h[i].is_ok()).collect();
        if let Some(&i) = targets.get(rng.below(targets.len().max(1) as u64) as usize) {
            let other = match rng.below(4) {
                0 => None,
                _ => Some(1 + rng.below(6)),
            };
            match &mut h[i].outcome {
                Outcome::Ok(Response::Read(v)) => *v = other,
                Outcome::Ok(Response::Cas {
                    previous,
                    succeeded,
                }) => {
                    *previous = other;
                    if rng.chance(0.3) {
                        *succeeded = !*succeeded;
                    }
                }
                _ => {}
            }
        }
        let expected = brute_force(&h);
        match check(&h, &opts()).unwrap().verdict {
            Verdict::Linearizable { witness: Some(w) } => {
                assert!(expected, "seed {seed}: checker says linearizable: {h:#?}");
                validate_witness(&h, &w);
                yes += 1;
            }
            Verdict::NotLinearizable(_) => {
                assert!(
                    !expected,
                    "seed {seed}: checker says not linearizable: {h:#?}"
                );
                no += 1;
            }
            other => panic!("seed {seed}: {other}"),
        }
    }
    assert!(yes > 2_000 && no > 2_000, "{yes} linearizable, {no} not");
}
