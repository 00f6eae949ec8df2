//! `shoal-chaos`: the long fault suite. For each nemesis it starts a fresh fleet (1 PD and 3
//! stores from the debug binaries next to this one), runs the recorded workload under the
//! nemesis for `--seconds`, heals, checks every key's history for linearizability and writes
//! the history (JSON Lines), the fault log, the verdicts and a report into a results
//! directory. Exits with 1 if any history without client retries is not linearizable or a
//! phase hit a problem (a process that did not come back, writes that did not resume).
//!
//! ```text
//! shoal-chaos [--nemesis kill,stop,transfer,split,membership,pd-restart,partition,clock,mixed]
//!             [--seconds 300] [--clients 16] [--keys 8] [--rotate-keys 60]
//!             [--retries-check true] [--out chaos-results/<time>] [--seed 1]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::Parser;
use shoal_fleet_tests::chaos::clock::libfaketime;
use shoal_fleet_tests::chaos::{run_phase, ChaosFleet, NemesisKind, PhaseOptions, PhaseReport};
use shoal_fleet_tests::netns::StoreNetwork;

/// Jepsen-style fault testing of a real Shoal fleet.
#[derive(Parser, Debug)]
#[command(name = "shoal-chaos")]
struct Args {
    /// Comma-separated nemeses: kill, stop, transfer, split, membership, pd-restart,
    /// partition, clock, mixed (also crash: kill and stop of the leader in turns; none: no faults).
    /// partition needs root (network namespaces) and is skipped without; mixed includes
    /// partitions when it can.
    #[arg(
        long,
        default_value = "kill,stop,transfer,split,membership,pd-restart,partition,clock,mixed"
    )]
    nemesis: String,
    /// Seconds each nemesis runs.
    #[arg(long, default_value_t = 300)]
    seconds: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Hot keys in use at a time.
    #[arg(long, default_value_t = 8)]
    keys: usize,
    /// Move to fresh keys every this many seconds (0: never), so no key's history grows
    /// too long to check.
    #[arg(long, default_value_t = 60)]
    rotate_keys: u64,
    /// Pause between two operations of one client, in milliseconds.
    #[arg(long, default_value_t = 2)]
    think_ms: u64,
    /// Also run the workload with the client's retries on under crashes and pauses, and
    /// count operations applied twice.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    retries_check: bool,
    /// Let the membership nemesis start a decommission before the previous one finished.
    #[arg(long)]
    overlapping_decommissions: bool,
    /// Results directory (default: chaos-results/<unix time>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seed of the clients' and the nemesis' random choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn parse_nemeses(list: &str) -> Result<Vec<NemesisKind>> {
    list.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(str::parse)
        .collect()
}

async fn run_one(
    args: &Args,
    out: &std::path::Path,
    kind: NemesisKind,
    retries: bool,
) -> Result<PhaseReport> {
    let name = if retries {
        format!("{kind}-retries")
    } else {
        kind.to_string()
    };
    let isolated = matches!(
        kind,
        NemesisKind::Partition | NemesisKind::Clock | NemesisKind::Mixed
    ) && StoreNetwork::available();
    println!(
        "== {name}: starting a fleet{}",
        if isolated {
            " (stores in network namespaces)"
        } else {
            ""
        }
    );
    let mut fleet = if isolated {
        ChaosFleet::start_isolated(3).await
    } else {
        ChaosFleet::start(3).await
    }
    .with_context(|| format!("fleet for {name}"))?;
    let mut opts = PhaseOptions::new(&name, kind, Duration::from_secs(args.seconds), out);
    opts.workload.clients = args.clients;
    opts.workload.keys.slots = args.keys.max(1);
    opts.workload.keys.rotate_every =
        (args.rotate_keys > 0).then(|| Duration::from_secs(args.rotate_keys));
    opts.workload.think = Duration::from_millis(args.think_ms);
    opts.workload.retries = retries;
    opts.workload.seed = args.seed;
    if retries {
        opts.workload.op_timeout = Duration::from_secs(10);
    }
    opts.nemesis.seed = args.seed;
    opts.nemesis.max_stores = 8;
    opts.nemesis.overlapping_decommissions = args.overlapping_decommissions;
    println!(
        "== {name}: {} clients on {} keys for {} s; fleet in {}",
        args.clients,
        args.keys,
        args.seconds,
        fleet.fleet().dir().display()
    );
    let report = run_phase(&mut fleet, opts).await?;
    println!("{report}\n");
    if !report.problems.is_empty() || !report.violations().is_empty() {
        println!(
            "== {name}: fleet data and logs kept in {}",
            fleet.keep_dir().display()
        );
    }
    Ok(report)
}

async fn run(args: Args) -> Result<bool> {
    let kinds = parse_nemeses(&args.nemesis)?;
    let out = match &args.out {
        Some(dir) => dir.clone(),
        None => {
            let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
            PathBuf::from("chaos-results").join(now.to_string())
        }
    };
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let out = out.canonicalize()?;
    println!("results in {}", out.display());

    let mut reports = Vec::new();
    for &kind in &kinds {
        if kind == NemesisKind::Partition && !StoreNetwork::available() {
            println!("== partition: skipped (network namespaces need root and `ip`)");
            continue;
        }
        if kind == NemesisKind::Clock && libfaketime().is_none() {
            println!("== clock: skipped (needs libfaketime: the Debian package faketime)");
            continue;
        }
        reports.push(run_one(&args, &out, kind, false).await?);
    }
    if args.retries_check {
        reports.push(run_one(&args, &out, NemesisKind::Crash, true).await?);
    }

    let mut summary = String::new();
    let mut sound = true;
    for r in &reports {
        summary.push_str(&r.summary_line());
        summary.push('\n');
        if !r.retries && !r.violations().is_empty() {
            sound = false;
            for v in r.violations() {
                summary.push_str(&format!(
                    "VIOLATION in {} key {} (history {}):\n{}\n",
                    r.name,
                    v.key,
                    r.history_path.display(),
                    v.detail.as_deref().unwrap_or("")
                ));
            }
        }
        for p in &r.problems {
            sound = false;
            summary.push_str(&format!("PROBLEM in {}: {p}\n", r.name));
        }
        if r.retries {
            summary.push_str(&format!(
                "  with retries on: {} compare-and-swaps saw their own value, {} values \
                 reappeared, {} compare-and-swaps answered \"not swapped\" after swapping\n",
                r.duplicates.cas_saw_own_value,
                r.duplicates.values_reappeared,
                r.duplicates.failed_cas_took_effect
            ));
        }
    }
    std::fs::write(out.join("summary.txt"), &summary)?;
    println!("{summary}results in {}", out.display());
    Ok(sound)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("shoal-chaos: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("shoal-chaos: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nemesis_lists_parse() {
        let kinds = parse_nemeses("kill,stop,pd-restart").unwrap();
        assert_eq!(
            kinds,
            vec![NemesisKind::Kill, NemesisKind::Stop, NemesisKind::PdRestart]
        );
        assert!(parse_nemeses("kill,flood").is_err());
        Args::try_parse_from(["shoal-chaos", "--seconds", "5", "--retries-check", "false"])
            .unwrap();
    }
}
