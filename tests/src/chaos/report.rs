//! The measurements of one phase (one nemesis over one workload), printed and saved.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use super::analysis::{Duplicates, KeyVerdict, OpCounts};
use super::nemesis::FaultRecord;

/// A fault with the time writes took to come back after it.
#[derive(Clone, Debug, Serialize)]
pub struct FaultSummary {
    /// The fault.
    #[serde(flatten)]
    pub fault: FaultRecord,
    /// From its heal to the first acknowledged write invoked after it, in ms.
    pub recovery_ms: Option<f64>,
}

/// Everything measured in one phase.
#[derive(Clone, Debug, Serialize)]
pub struct PhaseReport {
    /// The phase's name (also the prefix of its keys and files).
    pub name: String,
    /// The nemesis.
    pub nemesis: String,
    /// Whether the clients retried (the default backoff) or sent each request once.
    pub retries: bool,
    /// How long the workload ran, in seconds.
    pub seconds: f64,
    /// Concurrent clients.
    pub clients: usize,
    /// Operations by outcome and kind.
    pub ops: OpCounts,
    /// Client errors by kind.
    pub errors: BTreeMap<String, u64>,
    /// The first message of each error kind.
    pub error_examples: BTreeMap<String, String>,
    /// Faults actually injected.
    pub faults_injected: usize,
    /// Every fault, injected or refused.
    pub faults: Vec<FaultSummary>,
    /// The longest time without an acknowledged write while the nemesis ran, in ms.
    pub max_write_gap_ms: f64,
    /// Whether writes were acknowledged again after the last heal.
    pub serving_after_heal: bool,
    /// Verdict per key.
    pub verdicts: Vec<KeyVerdict>,
    /// Signs of operations applied more than once.
    pub duplicates: Duplicates,
    /// The history file (JSON Lines of `KeyedOperation<String>`).
    pub history_path: PathBuf,
    /// The directory with the phase's files.
    pub out_dir: PathBuf,
    /// What went wrong besides the verdicts: a process that did not come back, writes that
    /// did not resume, a fleet that did not heal.
    pub problems: Vec<String>,
}

impl PhaseReport {
    /// Keys whose history is not linearizable.
    pub fn violations(&self) -> Vec<&KeyVerdict> {
        self.verdicts.iter().filter(|v| v.is_violation()).collect()
    }

    /// Keys the checker could not decide.
    pub fn unknown(&self) -> Vec<&KeyVerdict> {
        self.verdicts.iter().filter(|v| v.is_unknown()).collect()
    }

    /// Recovery times of the injected faults that have one, in ms.
    pub fn recoveries_ms(&self) -> Vec<f64> {
        self.faults
            .iter()
            .filter(|f| f.fault.applied)
            .filter_map(|f| f.recovery_ms)
            .collect()
    }

    /// One line: ops, faults, verdicts, recovery.
    pub fn summary_line(&self) -> String {
        let rec = self.recoveries_ms();
        let max_rec = rec.iter().copied().fold(0.0, f64::max);
        let mean_rec = if rec.is_empty() {
            0.0
        } else {
            rec.iter().sum::<f64>() / rec.len() as f64
        };
        let linearizable = self
            .verdicts
            .iter()
            .filter(|v| v.verdict == "linearizable")
            .count();
        format!(
            "{:<12} retries={:<5} ops ok/info/fail {}/{}/{}  faults {}  keys linearizable \
             {}/{} (violations {}, unknown {})  recovery mean {:.0} ms max {:.0} ms  \
             max write gap {:.0} ms  duplicates {}",
            self.name,
            self.retries,
            self.ops.ok,
            self.ops.info,
            self.ops.fail,
            self.faults_injected,
            linearizable,
            self.verdicts.len(),
            self.violations().len(),
            self.unknown().len(),
            mean_rec,
            max_rec,
            self.max_write_gap_ms,
            self.duplicates.total()
        )
    }
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

impl fmt::Display for PhaseReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "== phase {} (nemesis {}, {} clients, retries {}, {:.1} s)",
            self.name, self.nemesis, self.clients, self.retries, self.seconds
        )?;
        let o = &self.ops;
        writeln!(
            f,
            "ops: {} ok, {} info, {} fail ({} reads, {} writes, {} cas of which {} swapped)",
            o.ok, o.info, o.fail, o.reads, o.writes, o.cas, o.cas_swapped
        )?;
        if !self.errors.is_empty() {
            let errors: Vec<String> = self
                .errors
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            writeln!(f, "client errors: {}", errors.join(", "))?;
            for (kind, example) in &self.error_examples {
                writeln!(f, "  e.g. {kind}: {example}")?;
            }
        }
        writeln!(f, "faults injected: {}", self.faults_injected)?;
        for s in &self.faults {
            let fault = &s.fault;
            let healed = fault
                .healed_at
                .map(|t| format!(" healed {:.3}s", secs(t)))
                .unwrap_or_default();
            let recovery = s
                .recovery_ms
                .map(|ms| format!(" recovery {ms:.0} ms"))
                .unwrap_or_default();
            let refused = if fault.applied { "" } else { " (not applied)" };
            let note = if fault.note.is_empty() {
                String::new()
            } else {
                format!(" [{}]", fault.note)
            };
            writeln!(
                f,
                "  {:>8.3}s {} {}{refused}{healed}{recovery}{note}",
                secs(fault.injected_at),
                fault.action,
                fault.target
            )?;
        }
        writeln!(
            f,
            "max write gap: {:.0} ms; serving after heal: {}",
            self.max_write_gap_ms, self.serving_after_heal
        )?;
        writeln!(
            f,
            "duplicate applications: {} cas saw their own value, {} values reappeared, \
             {} refused cas had swapped",
            self.duplicates.cas_saw_own_value,
            self.duplicates.values_reappeared,
            self.duplicates.failed_cas_took_effect
        )?;
        for v in &self.verdicts {
            writeln!(
                f,
                "  key {:<28} {:>6} ops  {}  ({} steps, {} ms)",
                v.key, v.ops, v.verdict, v.steps, v.check_ms
            )?;
            if let Some(detail) = &v.detail {
                for line in detail.lines() {
                    writeln!(f, "      {line}")?;
                }
            }
        }
        for p in &self.problems {
            writeln!(f, "PROBLEM: {p}")?;
        }
        write!(f, "history: {}", self.history_path.display())
    }
}
