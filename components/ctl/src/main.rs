//! `shoal-ctl`: inspect and operate a Shoal cluster.

mod cli;
mod commands;
mod human;
mod keyfmt;
mod model;
mod pd_http;
mod table;
mod views;

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Parser;

use cli::{Cli, Command, StoreCommand};
use commands::{inspect, kv, operator, store};
use pd_http::PdHttp;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(text) => {
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (`| head`) is not worth an error message.
            let _ = stdout.write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<String> {
    let pd = PdHttp::new(&cli.pd_http);
    match &cli.command {
        Command::Cluster => inspect::cluster(&pd),
        Command::Region(args) => inspect::region(&pd, args.id, args.key.as_deref()),
        Command::Operator(command) => operator::run(&pd, command),
        Command::Store(StoreCommand::List) => store::list(&pd),
        Command::Store(StoreCommand::Delete { id }) => store::delete(&pd, *id),
        Command::Get { .. } | Command::Put { .. } | Command::Delete { .. } | Command::Scan(_) => {
            run_kv(cli)
        }
    }
}

/// Key-value commands need the async client; everything else is plain blocking HTTP.
fn run_kv(cli: &Cli) -> Result<String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let timeout = Duration::from_secs(cli.timeout.max(1));
    runtime.block_on(async {
        let client = kv::connect(&cli.pd, timeout).await?;
        match &cli.command {
            Command::Get { key } => kv::get(&client, key).await,
            Command::Put { key, value, ttl } => kv::put(&client, key, value, *ttl).await,
            Command::Delete { key } => kv::delete(&client, key).await,
            Command::Scan(args) => kv::scan(&client, args).await,
            _ => unreachable!("run only routes key-value commands here"),
        }
    })
}
