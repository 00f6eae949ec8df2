//! `shoal-pd`: runs Shoal's placement driver until SIGTERM or SIGINT.
//!
//! Once serving it prints `PD_READY grpc=<host:port> http=<host:port>` on stdout (and writes the
//! same line to `<data-dir>/pd.addr`), so a caller that asked for port 0 learns the ports.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use pd::{Config, PdServer};
use tracing::{error, info};
use tracing_subscriber::EnvFilter;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Shoal's placement driver. Flags override the config file.
#[derive(Debug, Parser)]
#[command(name = "shoal-pd", version, about)]
struct Args {
    /// This member's name.
    #[arg(long)]
    name: Option<String>,
    /// Directory for PD's metadata (required here or in the config file).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// gRPC listen URL, e.g. http://127.0.0.1:2379 (port 0 picks a free port).
    #[arg(long)]
    client_urls: Option<String>,
    /// URL clients should use; defaults to the (bound) client URL.
    #[arg(long)]
    advertise_client_urls: Option<String>,
    /// HTTP API listen address, e.g. 127.0.0.1:2380 (port 0 picks a free port).
    #[arg(long)]
    http_addr: Option<String>,
    /// TOML config file (kebab-case keys; see pd::Config).
    #[arg(long)]
    config: Option<PathBuf>,
    /// CA certificate PEM file (security.ca-path), as PD's `--cacert`.
    #[arg(long = "cacert")]
    ca_path: Option<PathBuf>,
    /// This PD's certificate PEM file (security.cert-path).
    #[arg(long = "cert")]
    cert_path: Option<PathBuf>,
    /// This PD's private key PEM file (security.key-path).
    #[arg(long = "key")]
    key_path: Option<PathBuf>,
    /// Log line format: `text`, or `json` (one object per line, for log aggregation).
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Logs go to stderr; stdout carries only the ready line.
fn init_logging(format: LogFormat) {
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.init(),
    }
}

fn load_config(args: &Args) -> anyhow::Result<Config> {
    let mut cfg = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config file {}", path.display()))?;
            Config::from_toml(&text)
                .with_context(|| format!("cannot parse config file {}", path.display()))?
        }
        None => Config::default(),
    };
    if let Some(v) = &args.name {
        cfg.name = v.clone();
    }
    if let Some(v) = &args.data_dir {
        cfg.data_dir = v.clone();
    }
    if let Some(v) = &args.client_urls {
        cfg.client_urls = v.clone();
    }
    if let Some(v) = &args.advertise_client_urls {
        cfg.advertise_client_urls = v.clone();
    }
    if let Some(v) = &args.http_addr {
        cfg.http_addr = v.clone();
    }
    if let Some(v) = &args.ca_path {
        cfg.security.ca_path = v.clone();
    }
    if let Some(v) = &args.cert_path {
        cfg.security.cert_path = v.clone();
    }
    if let Some(v) = &args.key_path {
        cfg.security.key_path = v.clone();
    }
    cfg.validate().context("invalid configuration")?;
    Ok(cfg)
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r.context("cannot watch SIGINT")?,
    }
    Ok(())
}

fn run(args: Args) -> anyhow::Result<()> {
    let cfg = load_config(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("pd")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let pd = PdServer::start(cfg.clone()).await?;
        let line = pd.ready_line();
        let addr_file = cfg.data_dir.join("pd.addr");
        std::fs::write(&addr_file, format!("{line}\n"))
            .with_context(|| format!("cannot write {}", addr_file.display()))?;
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{line}")?;
            out.flush()?;
        }
        wait_for_signal().await?;
        info!("stop signal received");
        pd.shutdown().await?;
        Ok(())
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(args.log_format);
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report_failure(&e);
            ExitCode::FAILURE
        }
    }
}

/// Says once, on stderr, why PD stopped: as an error log line when the log filter lets
/// errors through, plainly when it does not (logs go to stderr too).
fn report_failure(e: &anyhow::Error) {
    if tracing::enabled!(tracing::Level::ERROR) {
        error!("{}", error_text::chain_text(e.as_ref()));
    } else {
        eprintln!("shoal-pd: {}", error_text::chain_text(e.as_ref()));
    }
}
