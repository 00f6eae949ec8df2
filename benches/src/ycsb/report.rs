//! The result of a phase: per operation type count, throughput, latency percentiles, errors and
//! transaction aborts, rendered as a table or one JSON object. Runs saved before the `api`,
//! `txn_mode` and `aborts` fields existed still load (as raw or optimistic runs without aborts).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::recorder::{TaskStats, TimelinePoint};
use super::workload::Operation;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OperationSummary {
    pub count: u64,
    pub ops_per_sec: f64,
    pub avg_us: f64,
    pub p50_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub errors: u64,
    /// Transactions of this type aborted by a write conflict (not among `errors`).
    #[serde(default)]
    pub aborts: u64,
}

impl OperationSummary {
    /// Average, p50, p95, p99 and p99.9 in milliseconds with two decimals.
    fn latencies_ms(&self) -> [String; 5] {
        let ms = |us: f64| format!("{:.2}", us / 1000.0);
        [
            ms(self.avg_us),
            ms(self.p50_us as f64),
            ms(self.p95_us as f64),
            ms(self.p99_us as f64),
            ms(self.p999_us as f64),
        ]
    }
}

/// Everything a phase measured, with the parameters needed to reproduce it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    #[serde(flatten)]
    pub params: RunParameters,
    pub elapsed_secs: f64,
    /// Successful requests.
    pub total_ops: u64,
    pub ops_per_sec: f64,
    pub errors: u64,
    /// Transactions aborted by write conflicts: neither successes nor errors.
    #[serde(default)]
    pub aborts: u64,
    pub operations: BTreeMap<String, OperationSummary>,
    pub timeline: Vec<TimelinePoint>,
    /// The first few error messages, so a failed run says why.
    pub first_errors: Vec<String>,
    /// The first few abort messages, so a run says what its transactions lost to.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub first_aborts: Vec<String>,
}

/// What was run, with which settings: enough to run it again.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunParameters {
    pub target: String,
    /// The client API (`raw` or `txn`); runs saved before there was a choice were raw.
    #[serde(default = "raw_api")]
    pub api: String,
    /// How the transactions ran (`optimistic`, `pessimistic`, `async`, `1pc`); absent for the
    /// raw API and in txn runs saved before there was a choice (which were optimistic).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub txn_mode: Option<String>,
    pub workload: String,
    pub phase: String,
    pub distribution: String,
    pub records: u64,
    pub concurrency: usize,
    pub value_size: usize,
    pub seed: u64,
}

fn raw_api() -> String {
    "raw".to_string()
}

impl RunParameters {
    /// The API as tables and charts show it: `raw`, `txn`, or `txn pessimistic` and the like.
    pub fn api_label(&self) -> String {
        match &self.txn_mode {
            Some(mode) => format!("{} {mode}", self.api),
            None => self.api.clone(),
        }
    }
}

impl Summary {
    pub fn new(
        params: RunParameters,
        stats: &TaskStats,
        elapsed_secs: f64,
        timeline: Vec<TimelinePoint>,
        first_errors: Vec<String>,
    ) -> Summary {
        let secs = elapsed_secs.max(1e-9);
        let mut operations = BTreeMap::new();
        for op in Operation::ALL {
            let h = &stats.latencies[op.index()];
            let errors = stats.errors[op.index()];
            let aborts = stats.aborts[op.index()];
            if h.is_empty() && errors == 0 && aborts == 0 {
                continue;
            }
            let at = |q: f64| {
                if h.is_empty() {
                    0
                } else {
                    h.value_at_quantile(q)
                }
            };
            operations.insert(
                op.name().to_string(),
                OperationSummary {
                    count: h.len(),
                    ops_per_sec: h.len() as f64 / secs,
                    avg_us: if h.is_empty() { 0.0 } else { h.mean() },
                    p50_us: at(0.50),
                    p95_us: at(0.95),
                    p99_us: at(0.99),
                    p999_us: at(0.999),
                    max_us: if h.is_empty() { 0 } else { h.max() },
                    errors,
                    aborts,
                },
            );
        }
        let total_ops = stats.succeeded;
        let errors = stats.errors.iter().sum();
        let aborts = stats.aborts.iter().sum();
        Summary {
            params,
            elapsed_secs,
            total_ops,
            ops_per_sec: total_ops as f64 / secs,
            errors,
            aborts,
            operations,
            timeline,
            first_errors,
            first_aborts: Vec::new(),
        }
    }

    /// The same summary with the first abort messages.
    pub fn with_first_aborts(mut self, first_aborts: Vec<String>) -> Summary {
        self.first_aborts = first_aborts;
        self
    }

    /// A fixed-width table, one row per operation type, plus the run's total.
    pub fn table(&self) -> String {
        let mut out = String::new();
        // The bank's records are its accounts, holding balances rather than sized values.
        let data = if self.params.workload == "bank" {
            format!("{} accounts", self.params.records)
        } else {
            format!(
                "{} records, {}-byte values",
                self.params.records, self.params.value_size
            )
        };
        let _ = writeln!(
            out,
            "{} ({} api) workload {} ({}), {} distribution: {data}, {} clients, {:.1} s",
            self.params.target,
            self.params.api_label(),
            self.params.workload,
            self.params.phase,
            self.params.distribution,
            self.params.concurrency,
            self.elapsed_secs
        );
        let _ = writeln!(
            out,
            "{:<18} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7}",
            "operation",
            "count",
            "ops/s",
            "avg ms",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "p99.9 ms",
            "errors",
            "aborts"
        );
        for (name, s) in &self.operations {
            let latencies: String = s
                .latencies_ms()
                .iter()
                .map(|l| format!(" {l:>9}"))
                .collect();
            let _ = writeln!(
                out,
                "{:<18} {:>10} {:>10.0}{latencies} {:>7} {:>7}",
                name, s.count, s.ops_per_sec, s.errors, s.aborts
            );
        }
        let _ = writeln!(
            out,
            "{:<18} {:>10} {:>10.0} {:>59} {:>7}",
            "TOTAL", self.total_ops, self.ops_per_sec, self.errors, self.aborts
        );
        for e in &self.first_errors {
            let _ = writeln!(out, "  error: {e}");
        }
        for a in &self.first_aborts {
            let _ = writeln!(out, "  abort: {a}");
        }
        out
    }
}

/// Several runs as one markdown table: a row per run with its total throughput, then a row per
/// operation type with its latency percentiles (milliseconds).
pub fn markdown_table(runs: &[Summary]) -> String {
    let mut out = String::new();
    out.push_str(
        "| store | api | workload | operation | ops/s | avg ms | p50 ms | p95 ms | p99 ms | p99.9 ms | errors | aborts |\n",
    );
    out.push_str("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for run in runs {
        let params = &run.params;
        let workload = match params.phase.as_str() {
            "load" => "load".to_string(),
            _ => params.workload.clone(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | **all** | **{:.0}** | | | | | | {} | {} |",
            params.target,
            params.api_label(),
            workload,
            run.ops_per_sec,
            run.errors,
            run.aborts
        );
        for (name, s) in &run.operations {
            let latencies = s.latencies_ms().join(" | ");
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:.0} | {latencies} | {} | {} |",
                params.target,
                params.api_label(),
                workload,
                name,
                s.ops_per_sec,
                s.errors,
                s.aborts
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ycsb::recorder::{Failure, Recorder};
    use std::time::Duration;

    fn params() -> RunParameters {
        RunParameters {
            target: "shoal".into(),
            api: "raw".into(),
            txn_mode: None,
            workload: "A".into(),
            phase: "run".into(),
            distribution: "zipfian".into(),
            records: 1000,
            concurrency: 4,
            value_size: 100,
            seed: 1,
        }
    }

    #[test]
    fn summary_counts_rates_and_percentiles() {
        let r = Recorder::new();
        let mut stats = TaskStats::default();
        for i in 1..=1000u64 {
            r.record(
                &mut stats,
                Operation::Read,
                Duration::from_micros(i),
                Ok(()),
            );
        }
        for _ in 0..10 {
            r.record(
                &mut stats,
                Operation::Update,
                Duration::from_micros(500),
                Ok(()),
            );
        }
        r.record(
            &mut stats,
            Operation::Update,
            Duration::ZERO,
            Err("timeout".into()),
        );
        let s = Summary::new(params(), &stats, 2.0, Vec::new(), r.first_errors());
        assert_eq!(s.total_ops, 1010);
        assert_eq!(s.ops_per_sec, 505.0);
        assert_eq!(s.errors, 1);
        let read = &s.operations["READ"];
        assert_eq!(read.count, 1000);
        assert!((499..=501).contains(&read.p50_us));
        assert!((989..=991).contains(&read.p99_us));
        assert_eq!(read.max_us, 1000);
        assert_eq!(s.operations["UPDATE"].errors, 1);
        assert!(!s.operations.contains_key("SCAN"));

        let table = s.table();
        assert!(table.contains("READ") && table.contains("UPDATE") && table.contains("TOTAL"));
        assert!(table.contains("error: UPDATE: timeout"));

        let md = markdown_table(std::slice::from_ref(&s));
        assert!(
            md.contains("| shoal | raw | A | **all** | **505** |"),
            "{md}"
        );
        assert!(
            md.contains("| shoal | raw | A | READ | 500 | 0.50 | 0.50 |"),
            "{md}"
        );

        let json = serde_json::to_string(&s).unwrap();
        let back: Summary = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn read_modify_writes_count_once_in_the_total() {
        let r = Recorder::new();
        let mut stats = TaskStats::default();
        // 5 plain reads and 3 read-modify-writes, whose steps are timed on their own rows.
        for _ in 0..5 {
            r.record(
                &mut stats,
                Operation::Read,
                Duration::from_micros(10),
                Ok(()),
            );
        }
        for _ in 0..3 {
            stats.record_step(Operation::Read, Duration::from_micros(10));
            stats.record_step(Operation::Update, Duration::from_micros(10));
            r.record(
                &mut stats,
                Operation::ReadModifyWrite,
                Duration::from_micros(20),
                Ok(()),
            );
        }
        let mut p = params();
        p.workload = "F".into();
        let s = Summary::new(p, &stats, 1.0, Vec::new(), Vec::new());
        assert_eq!(s.total_ops, 8);
        assert_eq!(s.operations["READ"].count, 8);
        assert_eq!(s.operations["UPDATE"].count, 3);
        assert_eq!(s.operations["READ-MODIFY-WRITE"].count, 3);
    }

    #[test]
    fn the_api_and_aborts_are_reported() {
        let r = Recorder::new();
        let mut stats = TaskStats::default();
        r.record(
            &mut stats,
            Operation::Update,
            Duration::from_micros(900),
            Ok(()),
        );
        let abort = Err(Failure::Abort("write conflict".into()));
        r.record(&mut stats, Operation::Update, Duration::ZERO, abort);
        let mut p = params();
        p.api = "txn".into();
        let s = Summary::new(p, &stats, 1.0, Vec::new(), r.first_errors())
            .with_first_aborts(r.first_aborts());
        assert_eq!((s.total_ops, s.errors, s.aborts), (1, 0, 1));
        assert_eq!(s.first_aborts, vec!["UPDATE: write conflict".to_string()]);
        assert!(s.table().contains("  abort: UPDATE: write conflict"));
        assert_eq!(s.operations["UPDATE"].aborts, 1);

        let table = s.table();
        assert!(
            table.starts_with("shoal (txn api) workload A (run)"),
            "{table}"
        );
        let total = table.lines().find(|l| l.starts_with("TOTAL")).unwrap();
        assert!(serde_json::to_value(&s).unwrap()["first_aborts"].is_array());
        assert!(total.ends_with("      0       1"), "{total:?}");

        let raw = Summary::new(params(), &stats, 1.0, Vec::new(), Vec::new());
        let md = markdown_table(&[raw, s]);
        assert!(
            md.contains("| shoal | raw | A | **all** | **1** | | | | | | 0 | 1 |"),
            "{md}"
        );
        assert!(md.contains("| shoal | txn | A | UPDATE | 1 |"), "{md}");
    }

    #[test]
    fn the_txn_mode_is_reported() {
        let r = Recorder::new();
        let mut stats = TaskStats::default();
        r.record(
            &mut stats,
            Operation::Update,
            Duration::from_micros(900),
            Ok(()),
        );
        let mut p = params();
        p.api = "txn".into();
        p.txn_mode = Some("pessimistic".into());
        let s = Summary::new(p, &stats, 1.0, Vec::new(), Vec::new());
        assert!(
            s.table()
                .starts_with("shoal (txn pessimistic api) workload A (run)"),
            "{}",
            s.table()
        );
        let md = markdown_table(std::slice::from_ref(&s));
        assert!(
            md.contains("| shoal | txn pessimistic | A | **all** | **1** |"),
            "{md}"
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["api"], "txn");
        assert_eq!(json["txn_mode"], "pessimistic");
        let back: Summary = serde_json::from_value(json).unwrap();
        assert_eq!(back, s);
        // Raw runs say nothing of a mode.
        let raw = Summary::new(params(), &stats, 1.0, Vec::new(), Vec::new());
        assert!(serde_json::to_value(&raw)
            .unwrap()
            .get("txn_mode")
            .is_none());
    }

    #[test]
    fn runs_saved_before_the_api_choice_load_as_raw() {
        let old = r#"{
            "target": "shoal", "workload": "C", "phase": "run", "distribution": "zipfian",
            "records": 10, "concurrency": 1, "value_size": 1, "seed": 0,
            "elapsed_secs": 1.0, "total_ops": 5, "ops_per_sec": 5.0, "errors": 0,
            "operations": {"READ": {"count": 5, "ops_per_sec": 5.0, "avg_us": 1.0,
                "p50_us": 1, "p95_us": 1, "p99_us": 1, "p999_us": 1, "max_us": 1,
                "errors": 0}},
            "timeline": [{"t": 1.0, "ops_per_sec": 5.0, "p99_us": 1, "errors": 0}],
            "first_errors": []
        }"#;
        let s: Summary = serde_json::from_str(old).unwrap();
        assert_eq!(s.params.api, "raw");
        assert_eq!(s.params.txn_mode, None);
        assert_eq!(s.aborts, 0);
        assert_eq!(s.operations["READ"].aborts, 0);
        assert_eq!(s.timeline[0].aborts, 0);
    }
}
