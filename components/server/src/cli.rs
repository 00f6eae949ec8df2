//! The store process around a [`ServerBuilder`]: flags and config file, logging, the tokio
//! runtime, the ready line, and a clean stop on SIGTERM or SIGINT. `shoal-server` is this with
//! nothing plugged in; a program that embeds the store with its own split policy calls
//! [`run_store_process`] with a closure that adds it (see `examples/custom_split_policy.rs`).

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;
use crate::{Config, Flags, ServerBuilder, ServerHandle};

/// Runs one store process to its end: parses the flags (`shoal-server --help`), loads the
/// config, lets `customize` adjust the builder, serves until SIGTERM or SIGINT, and stops
/// cleanly. Prints `STORE_READY store_id=.. addr=.. status=..` on stdout once serving; logs go
/// to stderr. A panic on any thread aborts the process. Exit codes: 0 after a clean stop, 1 when
/// the store failed, 2 for a bad command line or config.
pub fn run_store_process(customize: impl FnOnce(ServerBuilder) -> ServerBuilder) -> ExitCode {
    let flags = Flags::parse();
    let cfg = match Config::load(&flags) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("shoal-server: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&cfg.log.level, cfg.log.format);
    abort_on_panic();
    match run(cfg, customize) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report_failure(&e);
            ExitCode::FAILURE
        }
    }
}

/// Says once, on stderr, why the store stopped: as an error log line (JSON under
/// `--log-format json`) when the log filter lets errors through, plainly when it does not.
/// Logs go to stderr too, so printing both would repeat it.
fn report_failure(e: &anyhow::Error) {
    if tracing::enabled!(tracing::Level::ERROR) {
        tracing::error!("{}", error_text::chain_text(e.as_ref()));
    } else {
        eprintln!("shoal-server: {}", error_text::chain_text(e.as_ref()));
    }
}

fn run(cfg: Config, customize: impl FnOnce(ServerBuilder) -> ServerBuilder) -> anyhow::Result<()> {
    // Before any of the store's threads exist, so that they all inherit the policy.
    cfg.server
        .cpu_scheduling
        .apply_to_process()
        .context("cannot apply [server] cpu-scheduling")?;
    if cfg.server.cpu_scheduling != crate::cpu_scheduling::CpuScheduling::Normal {
        tracing::info!(policy = ?cfg.server.cpu_scheduling, "threads scheduled by policy");
    }
    let runtime = grpc_runtime(cfg.server.grpc_concurrency)?;
    let result = runtime.block_on(async {
        let handle = customize(ServerHandle::builder(cfg))
            .start()
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

/// The runtime that serves gRPC: with one worker, a current-thread runtime on the calling
/// thread, otherwise `threads` workers named `grpc`.
///
/// Why one worker is not a one-thread multi-thread runtime: that scheduler runs a task woken
/// by the running task next (its LIFO slot), so each finished request's handler wakes the
/// connection task, which writes and flushes that one response before the next handler runs:
/// one `writev` per response frame batch. The current-thread scheduler runs woken tasks in
/// FIFO order, so the connection writes the responses of every handler that finished in one
/// round with one `writev`.
///
/// The one worker yields its core once before it parks ([`yield_before_park`]).
fn grpc_runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = if threads <= 1 {
        let mut builder = tokio::runtime::Builder::new_current_thread();
        builder.on_thread_park(yield_before_park);
        builder
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    builder
        .thread_name("grpc")
        .enable_all()
        .build()
        .context("cannot start the gRPC runtime")
}

/// Runs on the single gRPC worker each time it runs out of tasks, just before it waits in
/// `epoll_wait`. On a machine whose cores are shared by more runnable threads than it has
/// (a store beside its clients, or several stores on one box), the threads this worker
/// serves (clients, raft pollers, the apply thread) are often queued behind it. Yielding lets
/// them run first, and what they send meanwhile is found by the driver's poll without the
/// worker going to sleep and being woken again; on an idle machine the yield returns at once.
/// The raft and apply pollers wait the same way (crossbeam-channel yields before it parks).
fn yield_before_park() {
    std::thread::yield_now();
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
fn init_logging(level: &str, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
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
