//! `shoal-bench`: YCSB core workloads A-F against a Shoal fleet (through the official
//! `tikv-client`, default keyspace) or, for comparison, an etcd cluster.
//!
//! `shoal-bench --workload A --records 100000 --duration 30s --concurrency 64` loads the records,
//! runs the workload and prints a table per phase; `--json` prints one JSON object instead,
//! `--plot run.png` draws throughput and p99 over time. `shoal-bench plot --out all.png a.json
//! b.json` draws several saved runs together, `shoal-bench table a.json b.json` prints them as
//! one markdown table. A run in which any request failed exits with 1.
//!
//! `--api txn` makes every operation (the load's inserts too) one transaction through
//! `TransactionClient` instead of a raw request, in the `--txn-mode` (optimistic by default;
//! pessimistic, async or 1pc). Transactions that lose a conflict are counted as aborts, apart
//! from errors, and are not retried; aborts alone do not fail the run, since they are what
//! concurrency control does under contention.
//!
//! `--workload bank` loads `--accounts` accounts with `--initial-balance` each, then runs
//! transfers (one transaction each, in the `--txn-mode`) and finally reads every account in one
//! snapshot: when they do not add up to the starting total the run exits with 3. A load that
//! could not write every account (locks of a killed earlier run outliving the load's
//! patience) exits with 2 before any transfer.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use shoal_benches::ycsb::backend::{Backend, Target};
use shoal_benches::ycsb::bank::{self, BankResult};
use shoal_benches::ycsb::cli::{Cli, Command, Phases, Plan, RunArgs};
use shoal_benches::ycsb::plot::{draw_named_timelines, draw_timelines};
use shoal_benches::ycsb::renew::{Connect, Renewable};
use shoal_benches::ycsb::report::{markdown_table, Summary};
use shoal_benches::ycsb::runner::{run_phase, with_distribution, Phase, PhaseSpec};
use shoal_benches::ycsb::BenchOutput;

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// How long the bank's final check keeps trying to read every account in one snapshot.
const BANK_CHECK_PATIENCE: Duration = Duration::from_secs(60);

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.run.client_runtime() {
        Ok(runtime) => runtime.block_on(dispatch(cli)),
        Err(e) => {
            eprintln!("cannot start the client runtime: {e}");
            ExitCode::from(2)
        }
    }
}

async fn dispatch(cli: Cli) -> ExitCode {
    match cli.command {
        Some(Command::Plot {
            out,
            labels,
            inputs,
        }) => match read_saved(&inputs) {
            Ok(runs) => match draw_named_timelines(&out, &runs, &labels) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(2)
                }
            },
            Err(code) => code,
        },
        Some(Command::Table { inputs }) => match read_saved(&inputs) {
            Ok(runs) => {
                print!("{}", markdown_table(&runs));
                // Bank runs get their own table too: transfers and aborts per second, check.
                if let Ok(banks) = read_bank_results(&inputs) {
                    if !banks.is_empty() {
                        print!("\n{}", bank::markdown_table(&banks));
                    }
                }
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        None => run(cli.run).await,
    }
}

async fn run(args: RunArgs) -> ExitCode {
    let plan: Plan = match args.plan() {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let endpoints = match args.target {
        Target::Shoal => &args.pd,
        Target::Etcd => &args.etcd,
    };
    let backend = match Backend::connect(args.target, plan.api, endpoints, args.timeout).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("cannot reach {}: {e}", endpoints.join(","));
            return ExitCode::from(2);
        }
    };
    let reconnect: Option<Connect<Backend>> = match args.target {
        Target::Shoal => {
            let (api, endpoints, timeout) = (plan.api, endpoints.clone(), args.timeout);
            Some(Box::new(move || {
                let endpoints = endpoints.clone();
                Box::pin(async move {
                    match Backend::connect(Target::Shoal, api, &endpoints, timeout).await {
                        Ok(b) => Some(b),
                        Err(e) => {
                            eprintln!("replacing the client after a store was unreachable: {e}");
                            None
                        }
                    }
                })
            }))
        }
        Target::Etcd => None,
    };
    let clients = Arc::new(Renewable::new(backend, reconnect));
    let workload = with_distribution(args.workload.clone(), args.distribution);
    let spec = |phase| PhaseSpec {
        target: serde_json::to_value(args.target)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        api: plan.api,
        // The bank's load only sets the stage: plain optimistic transactions write the
        // accounts whatever mode the transfers run in.
        txn_mode: match (phase, plan.bank) {
            (Phase::Load, Some(_)) => plan.txn_mode.map(|_| Default::default()),
            _ => plan.txn_mode,
        },
        bank: plan.bank,
        workload: workload.clone(),
        phase,
        records: plan.records,
        operations: args.operations,
        duration: plan.duration,
        concurrency: args.concurrency,
        value_size: args.value_size,
        seed: args.seed,
        request_limit: plan.request_limit,
    };
    let mut output = BenchOutput::default();
    if matches!(args.phase, Phases::Load | Phases::Both) {
        let summary = run_phase(&clients, spec(Phase::Load)).await;
        print_table(&args, &summary.table());
        let unwritten = summary.errors + summary.aborts;
        output.load = Some(summary);
        if let (Some(bank), true) = (plan.bank, unwritten > 0) {
            // Transfers over a partial bank would end in a check that finds money missing
            // which was never there: stop here and say why.
            eprintln!(
                "the bank's load did not write {unwritten} of its {} accounts (see the \
                 table above); no transfers were run and nothing was checked",
                bank.accounts
            );
            return ExitCode::from(2);
        }
    }
    if matches!(args.phase, Phases::Run | Phases::Both) {
        let summary = run_phase(&clients, spec(Phase::Run)).await;
        print_table(&args, &summary.table());
        output.run = Some(summary);
    }
    // The bank: every account in one snapshot must hold the starting total.
    let mut check_failed = false;
    if let Some(spec) = plan.bank {
        let check = bank::check(&clients.current().1, &spec, BANK_CHECK_PATIENCE).await;
        check_failed = !check.ok;
        let mode = plan.txn_mode.unwrap_or_default().name();
        let result = match &output.run {
            Some(run) => {
                let result = BankResult::from_run(spec, mode, run, Some(check.clone()));
                print_table(&args, &result.line());
                Some(result)
            }
            None => None,
        };
        print_table(&args, &check.line());
        output.bank = result;
    }
    if args.json {
        match serde_json::to_string_pretty(&output) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("cannot encode the results: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if let Some(path) = &args.plot {
        let runs: Vec<_> = output.phases().cloned().collect();
        if let Err(e) = draw_timelines(path, &runs) {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    }
    let aborts = output.aborts();
    if aborts > 0 {
        eprintln!("{aborts} transactions aborted on conflicts");
    }
    let errors = output.errors();
    if check_failed {
        eprintln!("the bank's accounts do not add up to the starting total");
        return ExitCode::from(3);
    }
    if errors > 0 {
        eprintln!("{errors} requests failed");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

fn print_table(args: &RunArgs, table: &str) {
    if args.json {
        eprintln!("{table}");
    } else {
        println!("{table}");
    }
}

fn read_output(path: &PathBuf) -> Result<BenchOutput, String> {
    std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|s| serde_json::from_str::<BenchOutput>(&s).map_err(|e| e.to_string()))
}

/// The phases saved in `--json` files: the run phase of each, or its load when it has no run.
fn read_saved(inputs: &[PathBuf]) -> Result<Vec<Summary>, ExitCode> {
    let mut runs = Vec::new();
    for path in inputs {
        match read_output(path) {
            Ok(o) => runs.extend(o.run.or(o.load)),
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                return Err(ExitCode::from(2));
            }
        }
    }
    Ok(runs)
}

/// The bank results saved in `--json` files (none for YCSB runs).
fn read_bank_results(inputs: &[PathBuf]) -> Result<Vec<BankResult>, String> {
    let mut banks = Vec::new();
    for path in inputs {
        banks.extend(read_output(path)?.bank);
    }
    Ok(banks)
}
