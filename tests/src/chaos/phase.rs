//! One phase: a workload on fresh hot keys, a nemesis for a while, healing, a final read of
//! every key, and the check of the history. The history, the fault log, the verdicts and the
//! report are written to the phase's output directory.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use linearizability::{save_jsonl, CheckOptions, KeyedOperation, Operation};

use super::analysis::{check, count, count_duplicates, max_write_gap, recovery_times};
use super::fleet::ChaosFleet;
use super::keys::HotKeys;
use super::nemesis::{FaultRecord, Nemesis, NemesisKind, NemesisOptions};
use super::report::{FaultSummary, PhaseReport};
use super::workload::{Clock, Op, Workload, WorkloadOptions};

/// What a phase does.
#[derive(Clone, Debug)]
pub struct PhaseOptions {
    /// Name of the phase: prefix of its keys and of its files.
    pub name: String,
    /// How long the nemesis runs.
    pub duration: Duration,
    /// The clients.
    pub workload: WorkloadOptions,
    /// The faults.
    pub nemesis: NemesisOptions,
    /// Where the phase's files go.
    pub out_dir: PathBuf,
    /// Checker limits.
    pub check: CheckOptions,
    /// How long writes may take to come back after the last heal.
    pub recovery_timeout: Duration,
    /// How long the fleet may take to be fully replicated again after the phase.
    pub health_timeout: Duration,
}

impl PhaseOptions {
    /// A phase named `name` running `kind` for `duration`, with default clients and faults,
    /// writing into `out_dir`.
    pub fn new(name: &str, kind: NemesisKind, duration: Duration, out_dir: &Path) -> Self {
        PhaseOptions {
            name: name.to_string(),
            duration,
            workload: WorkloadOptions {
                keys: HotKeys::new(name, 6),
                ..WorkloadOptions::default()
            },
            nemesis: NemesisOptions {
                kind,
                ..NemesisOptions::default()
            },
            out_dir: out_dir.to_path_buf(),
            check: CheckOptions::default(),
            recovery_timeout: Duration::from_secs(60),
            health_timeout: Duration::from_secs(120),
        }
    }
}

/// Runs one phase on `fleet`. Faults are healed however the phase ends. A problem that is not
/// a verdict (a process that does not come back, writes that do not resume, a fleet that does
/// not heal) lands in the report's `problems`; only a failure to start the clients or to
/// write the files is an error.
pub async fn run_phase(fleet: &mut ChaosFleet, opts: PhaseOptions) -> Result<PhaseReport> {
    std::fs::create_dir_all(&opts.out_dir)
        .with_context(|| format!("cannot create {}", opts.out_dir.display()))?;
    let clock = Clock::start();
    let clients = opts.workload.clients as u64;
    let workload = Workload::start(&fleet.fleet().pd_grpc, opts.workload.clone(), clock).await?;
    let mut problems = Vec::new();
    if !workload
        .wait_for_writes(clients, opts.recovery_timeout)
        .await
    {
        problems.push(format!(
            "fewer than {clients} writes acknowledged in {:?} before any fault",
            opts.recovery_timeout
        ));
    }

    let started = clock.now();
    let mut nemesis = Nemesis::new(opts.nemesis.clone(), opts.workload.keys.clone(), clock);
    let until = Instant::now() + opts.duration;
    if let Err(e) = nemesis.run(fleet, until).await {
        problems.push(format!("nemesis: {e:#}"));
    }
    // Every fault was healed: a process that is not running exited on its own.
    for i in fleet.exited_stores() {
        problems.push(format!(
            "store{} (id {}) exited on its own\n{}",
            i + 1,
            fleet.store_id(i),
            fleet.store_log_tail(i, 30)
        ));
    }
    if !fleet.pd_running() {
        problems.push("PD exited on its own".into());
    }
    // Heal whatever an error or an exit left behind.
    match fleet.heal_all().await {
        Ok(done) => nemesis.log_heal(done),
        Err(e) => problems.push(format!("healing: {e:#}")),
    }
    let healed = clock.now();
    let serving = workload
        .wait_for_writes(clients, opts.recovery_timeout)
        .await;
    if !serving {
        problems.push(format!(
            "fewer than {clients} writes acknowledged within {:?} after the last heal",
            opts.recovery_timeout
        ));
    }
    let stopped = clock.now();
    let recorded = workload.stop().await?;
    let mut ops = recorded.ops;

    if let Err(e) = fleet.wait_healthy(opts.health_timeout).await {
        problems.push(format!("after the phase: {e:#}"));
    }
    match final_reads(fleet, &ops, clock).await {
        Ok(reads) => ops.extend(reads),
        Err(e) => problems.push(format!("final reads: {e:#}")),
    }

    let history_path = opts.out_dir.join(format!("{}.history.jsonl", opts.name));
    save_jsonl(&history_path, &ops)
        .with_context(|| format!("cannot write {}", history_path.display()))?;
    let check_opts = opts.check.clone();
    let checked_ops = ops.clone();
    let verdicts = tokio::task::spawn_blocking(move || check(&checked_ops, &check_opts))
        .await
        .context("checker task")?;

    let faults = nemesis.into_log();
    let recovery = recovery_times(&ops, &faults);
    let report = PhaseReport {
        name: opts.name.clone(),
        nemesis: opts.nemesis.kind.to_string(),
        retries: opts.workload.retries,
        seconds: (stopped - started) as f64 / 1e9,
        clients: opts.workload.clients,
        ops: count(&ops),
        errors: recorded.errors,
        error_examples: recorded.error_examples,
        faults_injected: faults.iter().filter(|f| f.applied).count(),
        faults: faults
            .into_iter()
            .zip(recovery)
            .map(|(fault, r)| FaultSummary {
                fault,
                recovery_ms: r.map(|d| d.as_secs_f64() * 1e3),
            })
            .collect(),
        max_write_gap_ms: max_write_gap(&ops, started, healed).as_secs_f64() * 1e3,
        serving_after_heal: serving,
        verdicts,
        duplicates: count_duplicates(&ops),
        history_path,
        out_dir: opts.out_dir.clone(),
        problems,
    };
    write_files(&report)?;
    Ok(report)
}

/// Reads every key of the history once more through a retrying client, after the faults:
/// every acknowledged write must still be visible there (a retried read changes nothing, so
/// it is recorded as an ordinary read).
async fn final_reads(fleet: &ChaosFleet, ops: &[Op], clock: Clock) -> Result<Vec<Op>> {
    let client = fleet.fleet().raw_client().await?;
    let keys: BTreeSet<&str> = ops.iter().map(|o| o.key.as_str()).collect();
    let mut reads = Vec::new();
    for (n, key) in keys.into_iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let invoke = clock.now();
            match client.get(key.as_bytes().to_vec()).await {
                Ok(value) => {
                    let process = 1_000_000 + n as u64;
                    reads.push(KeyedOperation {
                        key: key.to_string(),
                        op: Operation::read(process, invoke, clock.now(), value),
                    });
                    break;
                }
                Err(e) if Instant::now() >= deadline => {
                    anyhow::bail!("reading {key} after the phase: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
    Ok(reads)
}

/// `<name>.faults.log`, `<name>.verdicts.txt` and `<name>.report.json` next to the history.
fn write_files(report: &PhaseReport) -> Result<()> {
    let dir = &report.out_dir;
    let mut faults = String::new();
    for s in &report.faults {
        let FaultRecord {
            action,
            target,
            injected_at,
            healed_at,
            applied,
            note,
        } = &s.fault;
        let _ = writeln!(
            faults,
            "{:.3}\t{action}\t{target}\tapplied={applied}\thealed={}\trecovery_ms={}\t{note}",
            *injected_at as f64 / 1e9,
            healed_at.map_or("-".into(), |t| format!("{:.3}", t as f64 / 1e9)),
            s.recovery_ms.map_or("-".into(), |ms| format!("{ms:.0}")),
        );
    }
    write(dir, &format!("{}.faults.log", report.name), &faults)?;
    let mut verdicts = String::new();
    for v in &report.verdicts {
        let _ = writeln!(verdicts, "{}\t{}\t{} ops", v.key, v.verdict, v.ops);
        if let Some(detail) = &v.detail {
            for line in detail.lines() {
                let _ = writeln!(verdicts, "    {line}");
            }
        }
    }
    write(dir, &format!("{}.verdicts.txt", report.name), &verdicts)?;
    let json = serde_json::to_string_pretty(report)?;
    write(dir, &format!("{}.report.json", report.name), &json)
}

fn write(dir: &Path, name: &str, text: &str) -> Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
}
