//! Unit tests on hand-made and generated histories.

mod exhaustive;

use std::time::Duration;

use crate::generate::{corrupt_read_stale, corrupt_read_unwritten, register_history, GenConfig};
use crate::*;

type Op = Operation<u64>;

fn opts() -> CheckOptions {
    CheckOptions {
        threads: 1,
        ..CheckOptions::default()
    }
}

fn verdict(h: &[Op]) -> Verdict<u64> {
    check(h, &opts()).expect("valid history").verdict
}

/// Asserts the history is linearizable and that the witness is a legal, real-time-respecting
/// order containing every completed operation.
fn assert_linearizable(h: &[Op]) -> Vec<usize> {
    let v = verdict(h);
    let Verdict::Linearizable {
        witness: Some(order),
    } = v
    else {
        panic!("expected linearizable, got {v}");
    };
    validate_witness(h, &order);
    order
}

fn assert_violation(h: &[Op]) -> Violation<u64> {
    match verdict(h) {
        Verdict::NotLinearizable(v) => *v,
        other => panic!("expected a violation, got {other}"),
    }
}

/// Replays `order` on a sequential register and checks real-time order.
fn validate_witness(h: &[Op], order: &[usize]) {
    let mut seen = vec![false; h.len()];
    let mut state: Option<u64> = None;
    let mut max_invoke = 0;
    for &i in order {
        assert!(!seen[i], "operation {i} placed twice");
        seen[i] = true;
        let op = &h[i];
        assert!(!matches!(op.outcome, Outcome::Fail), "failed op {i} placed");
        if op.is_ok() {
            assert!(
                op.complete >= max_invoke,
                "op {i} completed at {} before an earlier-placed op was invoked at {max_invoke}",
                op.complete
            );
        }
        max_invoke = max_invoke.max(op.invoke);
        match (&op.command, &op.outcome) {
            (Command::Read, Outcome::Ok(Response::Read(v))) => assert_eq!(*v, state, "op {i}"),
            (Command::Write(v), _) => state = Some(*v),
            (Command::Delete, _) => state = None,
            (
                Command::Cas { expected, new },
                Outcome::Ok(Response::Cas {
                    previous,
                    succeeded,
                }),
            ) => {
                assert_eq!(*previous, state, "op {i}");
                assert_eq!(*succeeded, state == *expected, "op {i}");
                if *succeeded {
                    state = Some(*new);
                }
            }
            (Command::Cas { expected, new }, Outcome::Info) => {
                if state == *expected {
                    state = Some(*new);
                }
            }
            (c, o) => panic!("op {i}: unexpected {c:?} / {o:?} in witness"),
        }
    }
    for (i, op) in h.iter().enumerate() {
        assert!(
            !op.is_ok() || seen[i],
            "completed op {i} missing from witness"
        );
    }
}

#[test]
fn empty_and_sequential_histories_are_linearizable() {
    assert_linearizable(&[]);
    let h = vec![
        Op::read(1, 0, 1, None),
        Op::write(1, 2, 3, 1),
        Op::read(2, 4, 5, Some(1)),
        Op::write(1, 6, 7, 2),
        Op::read(2, 8, 9, Some(2)),
        Op::delete(1, 10, 11),
        Op::read(2, 12, 13, None),
        Op::cas(1, 14, 15, None, 3, None, true),
        Op::read(2, 16, 17, Some(3)),
    ];
    assert_eq!(assert_linearizable(&h), (0..h.len()).collect::<Vec<_>>());
}

#[test]
fn read_overlapping_a_write_may_see_either_value() {
    // Write [0, 10]; read [5, 15] sees the new value or the old one.
    for observed in [Some(1), None] {
        assert_linearizable(&[Op::write(1, 0, 10, 1), Op::read(2, 5, 15, observed)]);
        // Read invoked first this time.
        assert_linearizable(&[Op::read(2, 0, 10, observed), Op::write(1, 5, 15, 1)]);
    }
    // Touching intervals (completion == invoke) count as concurrent.
    assert_linearizable(&[Op::read(2, 0, 10, Some(1)), Op::write(1, 10, 20, 1)]);
}

#[test]
fn stale_read_after_completed_write_is_illegal() {
    let h = vec![
        Op::write(1, 0, 10, 1),
        Op::write(1, 20, 30, 2),
        Op::read(2, 40, 50, Some(1)),
    ];
    let v = assert_violation(&h);
    assert_eq!(v.kind, ViolationKind::NoOrder);
    assert_eq!(v.op, 2);
    assert_eq!(v.prefix, vec![0, 1]);
    assert_eq!(v.state, Some(2));
    assert_eq!(v.pending.len(), 1);
    assert!(!v.pending[0].legal_after_prefix);
    let text = v.to_string();
    assert!(text.contains("operation #2 cannot be linearized"), "{text}");
    assert!(text.contains("Some(2)"), "{text}");
}

#[test]
fn read_before_any_write_completes_cannot_see_a_later_write() {
    // Write invoked only after the read completed.
    let h = vec![Op::read(2, 0, 10, Some(1)), Op::write(1, 20, 30, 1)];
    assert_eq!(assert_violation(&h).op, 0);
}

#[test]
fn read_of_a_value_never_written_is_illegal() {
    let h = vec![Op::write(1, 0, 10, 1), Op::read(2, 5, 15, Some(9))];
    let v = assert_violation(&h);
    assert_eq!(v.kind, ViolationKind::UnwrittenValue);
    assert_eq!(v.op, 1);
    assert!(v.to_string().contains("no operation writes"));
}

#[test]
fn concurrent_writes_order_is_fixed_by_reads() {
    // Two writes in flight during [0, 100]; reads see 2 then 1: order w2, w1.
    let mut h = vec![
        Op::write(1, 0, 100, 1),
        Op::write(2, 0, 100, 2),
        Op::read(3, 10, 20, Some(2)),
        Op::read(3, 30, 40, Some(1)),
    ];
    assert_eq!(assert_linearizable(&h), vec![1, 2, 0, 3]);
    // Seeing 2 again afterwards would need a third write.
    h.push(Op::read(3, 50, 60, Some(2)));
    let v = assert_violation(&h);
    assert_eq!(v.op, 4);
    assert_eq!(v.state, Some(1));
}

#[test]
fn cas_success_and_failure_follow_the_register() {
    let h = vec![
        Op::write(1, 0, 10, 1),
        Op::cas(1, 20, 30, Some(1), 2, Some(1), true),
        Op::cas(2, 40, 50, Some(1), 3, Some(2), false),
        Op::read(3, 60, 70, Some(2)),
        Op::delete(1, 80, 90),
        Op::cas(2, 100, 110, None, 4, None, true),
        Op::cas(2, 120, 130, None, 5, Some(4), false),
        Op::read(3, 140, 150, Some(4)),
    ];
    assert_linearizable(&h);
}

#[test]
fn cas_that_failed_although_expected_matched_is_illegal() {
    // Reported as failed with previous == expected: contradicts itself.
    let h = vec![
        Op::write(1, 0, 10, 1),
        Op::cas(2, 20, 30, Some(1), 2, Some(1), false),
    ];
    let v = assert_violation(&h);
    assert_eq!(v.kind, ViolationKind::InconsistentCas);
    assert_eq!(v.op, 1);
    // Reported as failed with a previous value that the register cannot hold then.
    let h = vec![
        Op::write(1, 0, 10, 5),
        Op::write(1, 20, 30, 1),
        Op::cas(2, 40, 50, Some(9), 2, Some(5), false),
    ];
    assert_eq!(assert_violation(&h).op, 2);
    // Reported as succeeded although the register held another value.
    let h = vec![
        Op::write(1, 0, 10, 1),
        Op::write(1, 20, 30, 3),
        Op::cas(2, 40, 50, Some(1), 2, Some(1), true),
    ];
    assert_eq!(assert_violation(&h).op, 2);
    // Succeeded, but previous differs from expected.
    let h = vec![
        Op::write(1, 0, 10, 1),
        Op::cas(2, 20, 30, Some(1), 2, Some(3), true),
    ];
    assert_eq!(assert_violation(&h).kind, ViolationKind::InconsistentCas);
}

#[test]
fn successful_cas_needs_its_expected_value() {
    // The CAS from 1 to 2 can happen before the write of 3 (they overlap) but then 3 is what
    // remains, so a later read of 2 is illegal; a read of 3 is fine.
    let mut h = vec![
        Op::write(1, 0, 10, 1),
        Op::write(1, 20, 40, 3),
        Op::cas(2, 30, 50, Some(1), 2, Some(1), true),
        Op::read(3, 60, 70, Some(3)),
    ];
    assert_linearizable(&h);
    h[3] = Op::read(3, 60, 70, Some(2));
    // CAS after write 3 is impossible (expects 1), so 2 must be overwritten by 3.
    assert_eq!(assert_violation(&h).op, 3);
}

#[test]
fn indeterminate_write_that_must_have_happened() {
    let h = vec![
        Op::info(1, 0, 10, Command::Write(7)),
        Op::read(2, 100, 110, Some(7)),
    ];
    assert_eq!(assert_linearizable(&h), vec![0, 1]);
    // It can even land after the client gave up and after a later write.
    let h = vec![
        Op::info(1, 0, 10, Command::Write(7)),
        Op::write(2, 20, 30, 8),
        Op::read(3, 40, 50, Some(7)),
    ];
    assert_eq!(assert_linearizable(&h), vec![1, 0, 2]);
}

#[test]
fn indeterminate_write_that_must_not_have_happened() {
    let h = vec![
        Op::info(1, 0, 10, Command::Write(7)),
        Op::read(2, 100, 110, None),
    ];
    assert_eq!(assert_linearizable(&h), vec![1]);
    let report = check(&h, &opts()).unwrap();
    assert_eq!(report.stats.dropped_info_unobservable, 1);
}

#[test]
fn indeterminate_write_takes_effect_at_most_once() {
    // Seen, then gone with nothing that could delete it.
    let h = vec![
        Op::info(1, 0, 10, Command::Write(7)),
        Op::read(2, 20, 30, Some(7)),
        Op::write(3, 40, 50, 8),
        Op::read(2, 60, 70, Some(7)),
    ];
    assert_eq!(assert_violation(&h).op, 3);
    // Nor can it land before it was invoked.
    let h = vec![
        Op::read(2, 0, 10, Some(7)),
        Op::info(1, 20, 30, Command::Write(7)),
    ];
    assert_eq!(assert_violation(&h).op, 0);
}

#[test]
fn indeterminate_cas() {
    let base = || {
        vec![
            Op::write(1, 0, 10, 1),
            Op::info(
                2,
                20,
                25,
                Command::Cas {
                    expected: Some(1),
                    new: 2,
                },
            ),
        ]
    };
    for observed in [1, 2] {
        let mut h = base();
        h.push(Op::read(3, 30, 40, Some(observed)));
        assert_linearizable(&h);
    }
    // Chained: an indeterminate write of 5 and an indeterminate CAS 5 -> 6 explain a read of 6.
    let h = vec![
        Op::info(1, 0, 5, Command::Write(5)),
        Op::info(
            2,
            10,
            15,
            Command::Cas {
                expected: Some(5),
                new: 6,
            },
        ),
        Op::read(3, 20, 30, Some(6)),
    ];
    assert_eq!(assert_linearizable(&h), vec![0, 1, 2]);
    // The register held 3 from before the CAS was invoked until the read: the CAS cannot fire.
    let h = vec![
        Op::write(1, 0, 10, 1),
        Op::write(1, 12, 15, 3),
        Op::info(
            2,
            20,
            25,
            Command::Cas {
                expected: Some(1),
                new: 2,
            },
        ),
        Op::read(3, 30, 40, Some(2)),
    ];
    assert_eq!(assert_violation(&h).op, 3);
}

#[test]
fn indeterminate_reads_and_failed_operations_are_dropped() {
    let h = vec![
        Op::write(1, 0, 10, 1),
        Op::info(2, 5, 50, Command::Read),
        Op::fail(3, 20, 30, Command::Write(5)),
        Op::read(4, 40, 50, Some(1)),
    ];
    let report = check(&h, &opts()).unwrap();
    assert!(report.verdict.is_linearizable());
    assert_eq!(report.stats.dropped_info_reads, 1);
    assert_eq!(report.stats.dropped_fail, 1);
    assert_eq!(report.stats.searched_ops, 2);
    // A failed write cannot be observed.
    let h = vec![
        Op::fail(3, 0, 10, Command::Write(5)),
        Op::read(4, 20, 30, Some(5)),
    ];
    assert_eq!(assert_violation(&h).kind, ViolationKind::UnwrittenValue);
}

#[test]
fn delete_makes_the_key_absent() {
    let mut h = vec![
        Op::write(1, 0, 10, 1),
        Op::delete(1, 20, 30),
        Op::read(2, 40, 50, None),
    ];
    assert_linearizable(&h);
    h[2] = Op::read(2, 40, 50, Some(1));
    assert_eq!(assert_violation(&h).op, 2);
}

#[test]
fn malformed_histories_are_errors() {
    let h = vec![Op::write(1, 10, 5, 1)];
    assert_eq!(
        check(&h, &opts()).unwrap_err(),
        HistoryError::CompletedBeforeInvoked {
            index: 0,
            invoke: 10,
            complete: 5
        }
    );
    let h = vec![Op {
        process: 1,
        invoke: 0,
        complete: 1,
        command: Command::Read,
        outcome: Outcome::Ok(Response::Write),
    }];
    assert!(matches!(
        check(&h, &opts()).unwrap_err(),
        HistoryError::ResponseMismatch { index: 0, .. }
    ));
    // An Info operation's completion time is not used.
    let h = vec![Op::info(1, 10, 0, Command::Write(1))];
    assert!(verdict(&h).is_linearizable());
}

fn generated(ops: usize, clients: usize, seed: u64, info_rate: f64) -> Vec<Op> {
    register_history(&GenConfig {
        ops,
        clients,
        seed,
        info_rate,
        fail_rate: info_rate / 2.0,
        ..GenConfig::default()
    })
}

#[test]
fn generated_histories_are_linearizable() {
    for seed in 0..40 {
        let clients = 2 + (seed as usize % 15);
        let info_rate = [0.0, 0.02, 0.1][seed as usize % 3];
        let h = generated(300, clients, seed, info_rate);
        let report = check(&h, &opts()).unwrap();
        let Verdict::Linearizable { witness: Some(w) } = &report.verdict else {
            panic!("seed {seed}: {}", report.verdict);
        };
        validate_witness(&h, w);
    }
}

#[test]
fn generated_histories_with_one_corrupted_read_are_not() {
    for seed in 0..40 {
        let clients = 2 + (seed as usize % 15);
        let info_rate = [0.0, 0.02, 0.1][seed as usize % 3];
        let h = generated(300, clients, seed, info_rate);

        let mut bad = h.clone();
        let i = corrupt_read_unwritten(&mut bad).expect("a read to corrupt");
        let v = assert_violation(&bad);
        assert_eq!(
            (v.kind, v.op),
            (ViolationKind::UnwrittenValue, i),
            "seed {seed}"
        );

        let mut bad = h.clone();
        let i = corrupt_read_stale(&mut bad).expect("a read to corrupt");
        let v = assert_violation(&bad);
        assert_eq!(v.kind, ViolationKind::NoOrder, "seed {seed}");
        // The search can get stuck at the stale read or at an operation it forced out of order,
        // but never after the read completed.
        assert!(bad[v.op].complete <= bad[i].complete, "seed {seed}: {v}");
    }
}

#[test]
fn ten_thousand_operations() {
    let h = generated(10_000, 16, 7, 0.01);
    let report = check(&h, &opts()).unwrap();
    let Verdict::Linearizable { witness: Some(w) } = &report.verdict else {
        panic!("{}", report.verdict);
    };
    validate_witness(&h, w);
    assert_eq!(report.stats.ops, 10_000);

    let mut bad = h.clone();
    let i = corrupt_read_stale(&mut bad).unwrap();
    let v = assert_violation(&bad);
    assert!(bad[v.op].complete <= bad[i].complete);
}

#[test]
fn budget_exhaustion_gives_unknown() {
    let h = generated(2_000, 8, 3, 0.0);
    let steps = CheckOptions {
        max_steps: Some(100),
        ..opts()
    };
    match check(&h, &steps).unwrap().verdict {
        Verdict::Unknown {
            exhausted: Exhausted::Steps(100),
            longest_prefix,
        } => assert!(longest_prefix > 0 && longest_prefix <= 100),
        other => panic!("{other}"),
    }
    let time = CheckOptions {
        max_time: Some(Duration::ZERO),
        ..opts()
    };
    assert!(matches!(
        check(&h, &time).unwrap().verdict,
        Verdict::Unknown {
            exhausted: Exhausted::Time(_),
            ..
        }
    ));
}

#[test]
fn witness_can_be_left_out() {
    let h = generated(100, 4, 1, 0.0);
    let o = CheckOptions {
        witness: false,
        ..opts()
    };
    assert_eq!(
        check(&h, &o).unwrap().verdict,
        Verdict::Linearizable { witness: None }
    );
}

#[test]
fn jsonl_round_trip() {
    let h = generated(200, 5, 11, 0.1);
    let mut buf = Vec::new();
    write_jsonl(&h, &mut buf).unwrap();
    let back: Vec<Op> = read_jsonl(&buf[..]).unwrap();
    assert_eq!(back, h);

    let text = r#"
# a hand-written history: write then a read that sees it
{"process":1,"invoke":0,"complete":10,"command":{"write":[104,105]},"outcome":{"ok":"write"}}
{"process":2,"invoke":20,"complete":30,"command":"read","outcome":{"ok":{"read":[104,105]}}}
{"process":3,"invoke":40,"complete":50,"command":{"cas":{"expected":null,"new":[1]}},"outcome":{"ok":{"cas":{"previous":[104,105],"succeeded":false}}}}
{"process":4,"invoke":60,"complete":70,"command":"delete","outcome":"info"}
"#;
    let h: Vec<Operation> = read_jsonl(text.as_bytes()).unwrap();
    assert_eq!(h[1], Operation::read(2, 20, 30, Some(b"hi".to_vec())));
    assert!(check(&h, &opts()).unwrap().verdict.is_linearizable());

    let err = read_jsonl::<Op, _>("\n{\"process\":1}\n".as_bytes()).unwrap_err();
    assert!(matches!(err, FormatError::Json { line: 2, .. }), "{err}");

    // Keyed operations put the key beside the operation's fields.
    let k = KeyedOperation {
        key: "k1".to_string(),
        op: Op::write(1, 0, 1, 5),
    };
    let line = serde_json::to_string(&k).unwrap();
    assert!(line.starts_with(r#"{"key":"k1","process":1"#), "{line}");
    assert_eq!(
        serde_json::from_str::<KeyedOperation<String, u64>>(&line).unwrap(),
        k
    );
}

#[test]
fn byte_string_values() {
    let h: Vec<Operation> = generated(500, 6, 5, 0.05)
        .into_iter()
        .map(|o| o.map_values(|v| v.to_be_bytes().to_vec()))
        .collect();
    assert!(check(&h, &opts()).unwrap().verdict.is_linearizable());
}

#[test]
fn keys_are_checked_separately_and_in_parallel() {
    let mut all: Vec<KeyedOperation<u32, u64>> = Vec::new();
    for key in 0..6u32 {
        let mut h = generated(400, 5, 100 + u64::from(key), 0.02);
        if key == 3 {
            corrupt_read_unwritten(&mut h).unwrap();
        }
        all.extend(h.into_iter().map(|op| KeyedOperation { key, op }));
    }
    // Interleave keys, as a real multi-key history would be.
    all.sort_by_key(|k| (k.op.invoke, k.key));
    let bad_index = all
        .iter()
        .position(|k| matches!(k.op.outcome, Outcome::Ok(Response::Read(Some(u64::MAX)))))
        .unwrap();
    let reports = check_by_key(
        &all,
        &CheckOptions {
            threads: 3,
            ..CheckOptions::default()
        },
    );
    assert_eq!(reports.len(), 6);
    for r in &reports {
        let report = r.result.as_ref().unwrap();
        if r.key == 3 {
            let v = report.verdict.violation().expect("key 3 is corrupted");
            assert_eq!(v.op, bad_index);
            assert_eq!(all[v.op].key, 3);
        } else {
            let Verdict::Linearizable { witness: Some(w) } = &report.verdict else {
                panic!("key {}: {}", r.key, report.verdict);
            };
            assert!(w.iter().all(|&i| all[i].key == r.key));
        }
    }
    let split = split_by_key(all.iter().cloned());
    assert_eq!(split.len(), 6);
    assert!(split
        .iter()
        .all(|k| k.indices.iter().all(|&i| all[i].key == k.key)));
}

#[test]
fn history_errors_name_the_multi_key_index() {
    let all = vec![
        KeyedOperation {
            key: 'a',
            op: Op::write(1, 0, 1, 1),
        },
        KeyedOperation {
            key: 'b',
            op: Op::write(1, 0, 1, 1),
        },
        KeyedOperation {
            key: 'b',
            op: Op::read(1, 9, 2, Some(1)),
        },
    ];
    let reports = check_by_key(&all, &opts());
    assert!(reports[0].result.is_ok());
    assert!(matches!(
        reports[1].result,
        Err(HistoryError::CompletedBeforeInvoked { index: 2, .. })
    ));
}
