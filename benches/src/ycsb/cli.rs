//! The command line of `shoal-bench`, and how its flags combine into what a run does.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use super::backend::{Api, Target, TxnMode};
use super::bank::BankSpec;
use super::generator::Distribution;
use super::workload::Workload;

#[derive(Parser, Debug)]
#[command(
    name = "shoal-bench",
    version,
    about = "YCSB core workloads and a bank of transfers against a Shoal fleet"
)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Draws the timelines of saved `--json` outputs into one PNG.
    Plot {
        #[arg(long)]
        out: PathBuf,
        /// Legend names for the inputs, in order (comma-separated; default: store, API,
        /// workload and phase of each).
        #[arg(long, value_delimiter = ',')]
        labels: Vec<String>,
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
    },
    /// Prints saved `--json` outputs as one markdown table.
    Table {
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Phases {
    Load,
    Run,
    Both,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Core workload: A (50/50 read/update), B (95/5), C (read only), D (read latest),
    /// E (short scans), F (read-modify-write); or bank (transfers between --accounts
    /// accounts, each one transaction, checked to keep the total at the end).
    #[arg(long, default_value = "A", value_parser = parse_workload)]
    pub workload: Workload,
    /// Which phases to run: the load inserts --records records (the bank: writes its
    /// accounts), the run issues the mix.
    #[arg(long, value_enum, default_value = "both")]
    pub phase: Phases,
    /// Store to drive: shoal (through PD) or etcd.
    #[arg(long, default_value = "shoal")]
    pub target: Target,
    /// Shoal client API: raw (one raw request per operation) or txn (one transaction per
    /// operation: snapshot reads and scans, 2PC writes). Default: raw; txn for the bank.
    #[arg(long)]
    pub api: Option<Api>,
    /// How --api txn transactions run: optimistic, pessimistic (reads before a write lock
    /// with get_for_update), async (async commit) or 1pc (one-phase commit).
    #[arg(long, env = "SHOAL_BENCH_TXN_MODE")]
    pub txn_mode: Option<TxnMode>,
    /// PD endpoints of the Shoal fleet (comma-separated).
    #[arg(long, default_value = "127.0.0.1:2379", value_delimiter = ',')]
    pub pd: Vec<String>,
    /// etcd client URLs (comma-separated), with --target etcd.
    #[arg(long, default_value = "http://127.0.0.1:2379", value_delimiter = ',')]
    pub etcd: Vec<String>,
    #[arg(long, default_value_t = 100_000)]
    pub records: u64,
    /// Bank accounts (--workload bank).
    #[arg(long, default_value_t = 1000)]
    pub accounts: u64,
    /// What each bank account holds after the load.
    #[arg(long, default_value_t = 1000)]
    pub initial_balance: u64,
    /// Each transfer moves a random amount from 1 to this.
    #[arg(long, default_value_t = 100)]
    pub max_transfer: u64,
    /// Requests in the run phase (stops at whichever of --operations and --duration comes
    /// first); at least 1.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub operations: Option<u64>,
    /// Length of the run phase, e.g. 30s or 2m (30s when neither limit is given).
    #[arg(long, value_parser = parse_positive_duration)]
    pub duration: Option<Duration>,
    /// Concurrent async clients.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Bytes of each record's value (at most 4,128,768: 4 MiB less 64 KiB, so that a read's
    /// answer fits in the 4 MiB gRPC messages the official client takes; workload E's scans
    /// of up to 100 records need values 100 times smaller).
    #[arg(long, default_value_t = 1024, value_parser = parse_value_size)]
    pub value_size: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Overrides the workload's request distribution: zipfian, uniform or latest.
    #[arg(long)]
    pub distribution: Option<Distribution>,
    /// Per-request timeout (a whole operation, retries included, is given up after six).
    #[arg(long, value_parser = parse_positive_duration, default_value = "10s")]
    pub timeout: Duration,
    /// Prints one JSON object on stdout (the tables then go to stderr).
    #[arg(long)]
    pub json: bool,
    /// Draws throughput and p99 over time into this PNG.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Threads that run the client tasks and the client library's connections: 1 runs them
    /// on one thread (tokio's current-thread scheduler), more use a multi-thread scheduler
    /// with that many workers. The bench shares the machine with the system under test, so
    /// every cycle it spends per request is one the servers do not get: on two shared cores,
    /// one thread spent about 13 % less client CPU per YCSB-C read than two and served about
    /// 20 % more reads.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub client_threads: u16,
}

impl RunArgs {
    /// The async runtime the run's clients use (see `--client-threads`).
    pub fn client_runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        let mut builder = if self.client_threads == 1 {
            let mut b = tokio::runtime::Builder::new_current_thread();
            // As the stores' gRPC worker does: the servers this thread waits on are often
            // queued behind it on a shared machine; yielding before it parks lets them run, and
            // their answers are then found without a sleep and a wake-up.
            b.on_thread_park(std::thread::yield_now);
            b
        } else {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(usize::from(self.client_threads));
            b
        };
        builder.enable_all().build()
    }
}

/// A duration such as `500ms` or `2m`; zero is refused (no request finishes in no time, and
/// a run of no time measures nothing).
fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d.is_zero() => Err("must be more than zero".to_string()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

/// The largest `--value-size`: a read's answer (the value plus key and framing) must fit in
/// the 4 MiB gRPC messages `tikv-client` 0.4 accepts (tonic's default decoding limit), or
/// every read of the run fails.
pub const MAX_VALUE_SIZE: usize = 4 * 1024 * 1024 - 64 * 1024;

fn parse_value_size(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|e| format!("{e}"))?;
    if n > MAX_VALUE_SIZE {
        return Err(format!(
            "at most {MAX_VALUE_SIZE} bytes: the client reads answers of at most 4 MiB"
        ));
    }
    Ok(n)
}

fn parse_workload(s: &str) -> Result<Workload, String> {
    Workload::named(s).ok_or_else(|| format!("unknown workload {s:?} (A, B, C, D, E, F or bank)"))
}

/// What the flags ask for, checked for combinations that make no sense.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub api: Api,
    /// `Some` exactly when the run goes through transactions.
    pub txn_mode: Option<TxnMode>,
    pub bank: Option<BankSpec>,
    /// Records to load and draw from (the bank's accounts for the bank).
    pub records: u64,
    /// The run phase's length: --duration, or 30 s when no limit was given.
    pub duration: Option<Duration>,
    /// A whole request's limit, client retries included.
    pub request_limit: Duration,
}

impl RunArgs {
    pub fn plan(&self) -> Result<Plan, String> {
        if self.concurrency == 0 {
            return Err("--concurrency must be at least 1".into());
        }
        let is_bank = self.workload.is_bank();
        let api = self
            .api
            .unwrap_or(if is_bank { Api::Txn } else { Api::Raw });
        api.check_target(self.target)?;
        if is_bank && api != Api::Txn {
            return Err("--workload bank runs transactions: it needs --api txn".into());
        }
        let txn_mode = match (api, self.txn_mode) {
            (Api::Txn, mode) => Some(mode.unwrap_or_default()),
            // The default is accepted (and ignored), so one setting can serve raw and txn runs.
            (_, None | Some(TxnMode::Optimistic)) => None,
            (_, Some(mode)) => {
                return Err(format!("--txn-mode {mode} needs --api txn"));
            }
        };
        let bank = if is_bank {
            let spec = BankSpec {
                accounts: self.accounts,
                initial_balance: self.initial_balance,
                max_transfer: self.max_transfer,
            };
            spec.validate()?;
            Some(spec)
        } else {
            None
        };
        let records = bank.map_or(self.records, |b| b.accounts);
        if records == 0 {
            return Err("--records must be at least 1".into());
        }
        // The chart is drawn after the run: a directory that is not there fails now, not then.
        if let Some(dir) = self.plot.as_deref().and_then(|p| p.parent()) {
            if !dir.as_os_str().is_empty() && !dir.is_dir() {
                return Err(format!(
                    "--plot: directory {} does not exist",
                    dir.display()
                ));
            }
        }
        let duration = match (self.operations, self.duration) {
            (None, None) => Some(Duration::from_secs(30)),
            (_, d) => d,
        };
        Ok(Plan {
            api,
            txn_mode,
            bank,
            records,
            duration,
            request_limit: self.timeout.saturating_mul(6),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<RunArgs, clap::Error> {
        let mut argv = vec!["shoal-bench"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).map(|c| c.run)
    }

    #[test]
    fn values_must_fit_in_a_client_answer() {
        assert_eq!(parse(&[]).unwrap().value_size, 1024);
        let max = MAX_VALUE_SIZE.to_string();
        assert_eq!(
            parse(&["--value-size", &max]).unwrap().value_size,
            MAX_VALUE_SIZE
        );
        let over = (MAX_VALUE_SIZE + 1).to_string();
        let err = parse(&["--value-size", &over]).unwrap_err().to_string();
        assert!(err.contains("4 MiB"), "{err}");
        assert!(parse(&["--value-size", "x"]).is_err());
    }

    fn plan(args: &[&str]) -> Result<Plan, String> {
        parse(args).map_err(|e| e.to_string())?.plan()
    }

    #[test]
    fn a_run_that_cannot_finish_is_refused_before_it_starts() {
        assert!(parse(&["--operations", "0"]).is_err());
        assert!(plan(&["--operations", "1"]).is_ok());
        let err = plan(&["--plot", "/no/such/dir/x.png"]).unwrap_err();
        assert!(err.contains("/no/such/dir"), "{err}");
        assert!(plan(&["--plot", "x.png"]).is_ok());
        let version = Cli::try_parse_from(["shoal-bench", "--version"]).unwrap_err();
        assert_eq!(version.kind(), clap::error::ErrorKind::DisplayVersion);
    }

    #[test]
    fn defaults_stay_raw_ycsb_a() {
        let p = plan(&[]).unwrap();
        assert_eq!((p.api, p.txn_mode, p.bank), (Api::Raw, None, None));
        assert_eq!(p.records, 100_000);
        assert_eq!(p.duration, Some(Duration::from_secs(30)));
        assert_eq!(p.request_limit, Duration::from_secs(60));
        assert_eq!(parse(&[]).unwrap().workload.name, "A");
        let p = plan(&["--operations", "10"]).unwrap();
        assert_eq!(p.duration, None);
    }

    #[test]
    fn txn_modes_go_with_the_txn_api() {
        let p = plan(&["--api", "txn"]).unwrap();
        assert_eq!(p.txn_mode, Some(TxnMode::Optimistic));
        for (flag, mode) in [
            ("optimistic", TxnMode::Optimistic),
            ("pessimistic", TxnMode::Pessimistic),
            ("async", TxnMode::AsyncCommit),
            ("1pc", TxnMode::OnePc),
        ] {
            let p = plan(&["--api", "txn", "--txn-mode", flag]).unwrap();
            assert_eq!((p.api, p.txn_mode), (Api::Txn, Some(mode)), "{flag}");
        }
        let e = plan(&["--api", "txn", "--txn-mode", "2pc"]).unwrap_err();
        assert!(e.contains("optimistic, pessimistic, async, 1pc"), "{e}");
        // The raw API takes no mode but the default one, which it ignores.
        assert_eq!(plan(&["--txn-mode", "optimistic"]).unwrap().txn_mode, None);
        let e = plan(&["--txn-mode", "pessimistic"]).unwrap_err();
        assert!(e.contains("needs --api txn"), "{e}");
        let e = plan(&["--target", "etcd", "--api", "txn"]).unwrap_err();
        assert!(e.contains("--target shoal"), "{e}");
    }

    #[test]
    fn the_bank_runs_transactions_over_its_accounts() {
        let p = plan(&["--workload", "bank"]).unwrap();
        assert_eq!(p.api, Api::Txn);
        assert_eq!(p.txn_mode, Some(TxnMode::Optimistic));
        assert_eq!(
            p.bank,
            Some(BankSpec {
                accounts: 1000,
                initial_balance: 1000,
                max_transfer: 100,
            })
        );
        assert_eq!(p.records, 1000, "the load writes the accounts");
        let p = plan(&[
            "--workload",
            "BANK",
            "--accounts",
            "10",
            "--initial-balance",
            "50",
            "--max-transfer",
            "5",
            "--txn-mode",
            "pessimistic",
            "--records",
            "99",
        ])
        .unwrap();
        let bank = p.bank.unwrap();
        assert_eq!(
            (bank.accounts, bank.initial_balance, bank.max_transfer),
            (10, 50, 5)
        );
        assert_eq!((p.records, p.txn_mode), (10, Some(TxnMode::Pessimistic)));
        let e = plan(&["--workload", "bank", "--api", "raw"]).unwrap_err();
        assert!(e.contains("needs --api txn"), "{e}");
        let e = plan(&["--workload", "bank", "--accounts", "1"]).unwrap_err();
        assert!(e.contains("--accounts"), "{e}");
        let e = plan(&["--workload", "bank", "--target", "etcd"]).unwrap_err();
        assert!(e.contains("--target shoal"), "{e}");
        let e = plan(&["--workload", "G"]).unwrap_err();
        assert!(e.contains("A, B, C, D, E, F or bank"), "{e}");
    }

    #[test]
    fn subcommands_still_parse() {
        let cli = Cli::try_parse_from(["shoal-bench", "table", "a.json", "b.json"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Table { inputs }) if inputs.len() == 2));
        let cli = Cli::try_parse_from(["shoal-bench", "plot", "--out", "x.png", "a.json"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Plot { .. })));
    }

    #[test]
    fn zero_timeouts_and_durations_are_refused() {
        for flag in ["--timeout", "--duration"] {
            assert!(parse(&[flag, "0s"]).is_err(), "{flag} 0s");
            assert!(parse(&[flag, "0ms"]).is_err(), "{flag} 0ms");
            assert!(parse(&[flag, "soon"]).is_err(), "{flag} soon");
            assert!(parse(&[flag, "250ms"]).is_ok(), "{flag} 250ms");
        }
    }

    #[test]
    fn clients_run_on_one_thread_unless_told_otherwise() {
        let one = parse(&[]).unwrap().client_runtime().unwrap();
        assert_eq!(one.metrics().num_workers(), 1);
        assert_eq!(
            one.handle().runtime_flavor(),
            tokio::runtime::RuntimeFlavor::CurrentThread
        );
        let three = parse(&["--client-threads", "3"]).unwrap();
        let rt = three.client_runtime().unwrap();
        assert_eq!(
            rt.handle().runtime_flavor(),
            tokio::runtime::RuntimeFlavor::MultiThread
        );
        assert_eq!(rt.metrics().num_workers(), 3);
        assert!(parse(&["--client-threads", "0"]).is_err());
    }
}
