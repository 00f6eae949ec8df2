//! Histories kept as files under `tests/histories/`, one `KeyedOperation<String>` (byte-string
//! values) per line: every key of a `linearizable-*.jsonl` file must check linearizable, and
//! some key of a `violation-*.jsonl` file must not.

use std::path::{Path, PathBuf};

use linearizability::generate::{corrupt_read_stale, register_history, GenConfig};
use linearizability::{
    check, check_by_key, load_jsonl, save_jsonl, CheckOptions, KeyedOperation, Operation,
};

fn histories() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/histories");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    files
}

#[test]
fn stored_histories_keep_their_verdicts() {
    let opts = CheckOptions {
        threads: 1,
        ..CheckOptions::default()
    };
    let files = histories();
    assert!(files.len() >= 5, "{files:?}");
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let ops: Vec<KeyedOperation<String>> =
            load_jsonl(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let reports = check_by_key(&ops, &opts);
        let verdicts: Vec<_> = reports
            .iter()
            .map(|r| {
                let report = r.result.as_ref().unwrap_or_else(|e| panic!("{name}: {e}"));
                (r.key.clone(), report.verdict.clone())
            })
            .collect();
        if name.starts_with("linearizable-") {
            for (key, v) in &verdicts {
                assert!(v.is_linearizable(), "{name} key {key}: {v}");
            }
        } else if name.starts_with("violation-") {
            assert!(
                verdicts.iter().any(|(_, v)| v.is_violation()),
                "{name}: {verdicts:?}"
            );
            assert!(verdicts.iter().all(|(_, v)| !v.is_unknown()), "{name}");
        } else {
            panic!("{name}: name must start with linearizable- or violation-");
        }
    }
}

#[test]
fn saved_history_reads_back_with_the_same_verdict() {
    let mut h: Vec<Operation> = register_history(&GenConfig {
        ops: 2_000,
        clients: 8,
        seed: 99,
        info_rate: 0.05,
        ..GenConfig::default()
    })
    .into_iter()
    .map(|o| o.map_values(|v| v.to_string().into_bytes()))
    .collect();
    let path = std::env::temp_dir().join(format!("linearizability-{}.jsonl", std::process::id()));
    let opts = CheckOptions::default();
    for corrupt in [false, true] {
        if corrupt {
            let mut numbers: Vec<Operation<u64>> = h
                .iter()
                .cloned()
                .map(|o| o.map_values(|v| String::from_utf8(v).unwrap().parse().unwrap()))
                .collect();
            corrupt_read_stale(&mut numbers).unwrap();
            h = numbers
                .into_iter()
                .map(|o| o.map_values(|v| v.to_string().into_bytes()))
                .collect();
        }
        save_jsonl(&path, &h).unwrap();
        let back: Vec<Operation> = load_jsonl(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(back, h);
        let (a, b) = (check(&h, &opts).unwrap(), check(&back, &opts).unwrap());
        assert_eq!(a.verdict, b.verdict);
        assert_eq!(a.verdict.is_violation(), corrupt, "{}", a.verdict);
    }
}
