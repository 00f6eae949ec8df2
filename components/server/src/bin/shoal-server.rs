//! `shoal-server`: one store process. Prints `STORE_READY store_id=.. addr=.. status=..` on
//! stdout once it serves; SIGTERM or SIGINT stop it cleanly (exit 0).

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use server::{Config, Flags, ServerHandle};
use tracing_subscriber::EnvFilter;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let flags = Flags::parse();
    let cfg = match Config::load(&flags) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("shoal-server: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&cfg.log.level);
    abort_on_panic();
    match run(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("shoal-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cfg: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cfg.server.grpc_concurrency)
        .thread_name("grpc")
        .enable_all()
        .build()
        .context("cannot start the gRPC runtime")?;
    let result = runtime.block_on(async {
        let handle = ServerHandle::start(cfg)
            .await
            .context("store failed to start")?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", handle.ready_line()).context("cannot write to stdout")?;
        out.flush().context("cannot write to stdout")?;
        drop(out);
        let signal = wait_for_signal().await?;
        tracing::info!(signal, "shutting down");
        handle.shutdown().await;
        Ok(())
    });
    // Connection tasks of other stores' streams may linger; the store is already stopped.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

async fn wait_for_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

/// Logs go to stderr; stdout carries only the ready line.
fn init_logging(level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// A panic on any thread (a raft poller, the log writer) must not leave a half-alive store
/// behind: log it and abort the process.
fn abort_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        tracing::error!("panic: {info}; aborting");
        std::process::abort();
    }));
}
