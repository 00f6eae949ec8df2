//! Measures how fast the checker decides generated register histories.
//!
//! ```text
//! cargo run --release -p linearizability --example check_speed -- \
//!     [--ops 10000] [--clients 5,10,20] [--info-rate 0.01] [--seed 1] [--keys 4]
//! ```
//!
//! For each client count it generates one linearizable single-key history, checks it, then
//! checks a copy with one stale read (which must be found not linearizable), and prints
//! operations checked per second. Finally it checks `--keys` such histories as one multi-key
//! history on all cores.

use std::time::Instant;

use linearizability::generate::{corrupt_read_stale, register_history, GenConfig};
use linearizability::{check, check_by_key, CheckOptions, KeyedOperation, Operation, Report};

struct Args {
    ops: usize,
    clients: Vec<usize>,
    info_rate: f64,
    seed: u64,
    keys: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        ops: 10_000,
        clients: vec![5, 10, 20],
        info_rate: 0.01,
        seed: 1,
        keys: 4,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--ops" => args.ops = parse(&flag, &value),
            "--clients" => args.clients = value.split(',').map(|c| parse(&flag, c)).collect(),
            "--info-rate" => args.info_rate = parse(&flag, &value),
            "--seed" => args.seed = parse(&flag, &value),
            "--keys" => args.keys = parse(&flag, &value),
            _ => panic!("unknown flag {flag}"),
        }
    }
    args
}

fn parse<T: std::str::FromStr>(flag: &str, value: &str) -> T {
    value
        .parse()
        .unwrap_or_else(|_| panic!("bad value {value:?} for {flag}"))
}

fn history(args: &Args, clients: usize, seed: u64) -> Vec<Operation<u64>> {
    register_history(&GenConfig {
        ops: args.ops,
        clients,
        seed,
        info_rate: args.info_rate,
        fail_rate: args.info_rate / 2.0,
        ..GenConfig::default()
    })
}

/// Byte-string values, as a client of the store would record them.
fn to_bytes(h: Vec<Operation<u64>>) -> Vec<Operation> {
    h.into_iter()
        .map(|o| o.map_values(|v| format!("value-{v}").into_bytes()))
        .collect()
}

fn line(label: &str, report: &Report<Vec<u8>>) {
    let s = &report.stats;
    let secs = s.elapsed.as_secs_f64();
    let verdict = match &report.verdict {
        v if v.is_linearizable() => "linearizable",
        v if v.is_violation() => "NOT linearizable",
        _ => "unknown",
    };
    println!(
        "{label:<28} {verdict:<17} {:>8} ops {:>10.1} ms {:>12.0} ops/s  steps {:>9}  memo {:>9}  searched {}",
        s.ops,
        secs * 1e3,
        s.ops as f64 / secs,
        s.steps,
        s.memo_entries,
        s.searched_ops,
    );
}

fn main() {
    let args = parse_args();
    let opts = CheckOptions::default();
    println!(
        "{} ops per history, info rate {}, seed {}",
        args.ops, args.info_rate, args.seed
    );
    for &clients in &args.clients {
        let h = history(&args, clients, args.seed);
        let mut bad = h.clone();
        let report = check(&to_bytes(h), &opts).expect("valid history");
        line(&format!("{clients} clients"), &report);

        if corrupt_read_stale(&mut bad).is_some() {
            let report = check(&to_bytes(bad), &opts).expect("valid history");
            line(&format!("{clients} clients, stale read"), &report);
        }
    }

    if args.keys > 0 {
        let clients = *args.clients.last().unwrap_or(&10);
        let mut all = Vec::new();
        for key in 0..args.keys {
            let h = to_bytes(history(&args, clients, args.seed + key as u64));
            all.extend(h.into_iter().map(|op| KeyedOperation { key, op }));
        }
        all.sort_by_key(|k| (k.op.invoke, k.key));
        let start = Instant::now();
        let reports = check_by_key(&all, &opts);
        let secs = start.elapsed().as_secs_f64();
        let linearizable = reports
            .iter()
            .filter(|r| r.result.as_ref().is_ok_and(|r| r.verdict.is_linearizable()))
            .count();
        println!(
            "{} keys x {} ops, {clients} clients each, all cores: {linearizable}/{} linearizable, {:.1} ms, {:.0} ops/s",
            args.keys,
            args.ops,
            reports.len(),
            secs * 1e3,
            all.len() as f64 / secs
        );
    }
}
