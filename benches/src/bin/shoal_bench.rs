//! `shoal-bench`: YCSB core workloads A-F against a Shoal fleet (through the official
//! `tikv-client`, default keyspace) or, for comparison, an etcd cluster.
//!
//! `shoal-bench --workload A --records 100000 --duration 30s --concurrency 64` loads the records,
//! runs the workload and prints a table per phase; `--json` prints one JSON object instead,
//! `--plot run.png` draws throughput and p99 over time. `shoal-bench plot --out all.png a.json
//! b.json` draws several saved runs together, `shoal-bench table a.json b.json` prints them as
//! one markdown table. A run in which any request failed exits with 1.
//!
//! `--api txn` makes every operation (the load's inserts too) one optimistic transaction through
//! `TransactionClient` instead of a raw request. Transactions that lose a write conflict are
//! counted as aborts, apart from errors, and are not retried; aborts alone do not fail the run,
//! since they are what optimistic concurrency does under contention.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use shoal_benches::ycsb::backend::{Api, Backend, Target};
use shoal_benches::ycsb::generator::Distribution;
use shoal_benches::ycsb::plot::draw_timelines;
use shoal_benches::ycsb::report::{markdown_table, Summary};
use shoal_benches::ycsb::runner::{run_phase, with_distribution, Phase, PhaseSpec};
use shoal_benches::ycsb::workload::Workload;
use shoal_benches::ycsb::BenchOutput;

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "shoal-bench",
    about = "YCSB core workloads against a Shoal fleet"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Draws the timelines of saved `--json` outputs into one PNG.
    Plot {
        #[arg(long)]
        out: PathBuf,
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
    },
    /// Prints saved `--json` outputs as one markdown table.
    Table {
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Phases {
    Load,
    Run,
    Both,
}

#[derive(Args)]
struct RunArgs {
    /// Core workload: A (50/50 read/update), B (95/5), C (read only), D (read latest),
    /// E (short scans), F (read-modify-write).
    #[arg(long, default_value = "A", value_parser = parse_workload)]
    workload: Workload,
    /// Which phases to run: the load inserts --records records, the run issues the mix.
    #[arg(long, value_enum, default_value = "both")]
    phase: Phases,
    /// Store to drive: shoal (through PD) or etcd.
    #[arg(long, default_value = "shoal")]
    target: Target,
    /// Shoal client API: raw (one raw request per operation) or txn (one optimistic
    /// transaction per operation: snapshot reads and scans, 2PC writes).
    #[arg(long, default_value = "raw")]
    api: Api,
    /// PD endpoints of the Shoal fleet (comma-separated).
    #[arg(long, default_value = "127.0.0.1:2379", value_delimiter = ',')]
    pd: Vec<String>,
    /// etcd client URLs (comma-separated), with --target etcd.
    #[arg(long, default_value = "http://127.0.0.1:2379", value_delimiter = ',')]
    etcd: Vec<String>,
    #[arg(long, default_value_t = 100_000)]
    records: u64,
    /// Requests in the run phase (stops at whichever of --operations and --duration comes first).
    #[arg(long)]
    operations: Option<u64>,
    /// Length of the run phase, e.g. 30s or 2m (30s when neither limit is given).
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Concurrent async clients.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    #[arg(long, default_value_t = 1024)]
    value_size: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Overrides the workload's request distribution: zipfian, uniform or latest.
    #[arg(long)]
    distribution: Option<Distribution>,
    /// Per-request timeout.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    timeout: Duration,
    /// Prints one JSON object on stdout (the tables then go to stderr).
    #[arg(long)]
    json: bool,
    /// Draws throughput and p99 over time into this PNG.
    #[arg(long)]
    plot: Option<PathBuf>,
}

fn parse_workload(s: &str) -> Result<Workload, String> {
    Workload::core(s).ok_or_else(|| format!("unknown workload {s:?} (A, B, C, D, E or F)"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Plot { out, inputs }) => match read_saved(&inputs) {
            Ok(runs) => match draw_timelines(&out, &runs) {
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
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        None => run(cli.run).await,
    }
}

async fn run(args: RunArgs) -> ExitCode {
    if args.concurrency == 0 || args.records == 0 {
        eprintln!("--concurrency and --records must be at least 1");
        return ExitCode::from(2);
    }
    if let Err(e) = args.api.check_target(args.target) {
        eprintln!("{e}");
        return ExitCode::from(2);
    }
    let endpoints = match args.target {
        Target::Shoal => &args.pd,
        Target::Etcd => &args.etcd,
    };
    let backend = match Backend::connect(args.target, args.api, endpoints, args.timeout).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("cannot reach {}: {e}", endpoints.join(","));
            return ExitCode::from(2);
        }
    };
    let workload = with_distribution(args.workload.clone(), args.distribution);
    let duration = match (args.operations, args.duration) {
        (None, None) => Some(Duration::from_secs(30)),
        (_, d) => d,
    };
    let spec = |phase| PhaseSpec {
        target: serde_json::to_value(args.target)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        api: args.api,
        workload: workload.clone(),
        phase,
        records: args.records,
        operations: args.operations,
        duration,
        concurrency: args.concurrency,
        value_size: args.value_size,
        seed: args.seed,
    };
    let mut output = BenchOutput::default();
    if matches!(args.phase, Phases::Load | Phases::Both) {
        let summary = run_phase(&backend, spec(Phase::Load)).await;
        print_table(&args, &summary.table());
        output.load = Some(summary);
    }
    if matches!(args.phase, Phases::Run | Phases::Both) {
        let summary = run_phase(&backend, spec(Phase::Run)).await;
        print_table(&args, &summary.table());
        output.run = Some(summary);
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
        eprintln!("{aborts} transactions aborted on write conflicts");
    }
    let errors = output.errors();
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

/// The phases saved in `--json` files: the run phase of each, or its load when it has no run.
fn read_saved(inputs: &[PathBuf]) -> Result<Vec<Summary>, ExitCode> {
    let mut runs = Vec::new();
    for path in inputs {
        let parsed = std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|s| serde_json::from_str::<BenchOutput>(&s).map_err(|e| e.to_string()));
        match parsed {
            Ok(o) => runs.extend(o.run.or(o.load)),
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                return Err(ExitCode::from(2));
            }
        }
    }
    Ok(runs)
}
