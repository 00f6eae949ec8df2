//! `shoal-ctl`: inspect and operate a Shoal cluster.

mod cli;
mod commands;
mod human;
mod keyfmt;
mod model;
mod pd_http;
mod route;
mod table;
mod tls;
mod tls_probe;
mod views;

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Parser;

use cli::{CertCommand, Cli, Command, StoreCommand, TxnCommand};
use commands::{cert, gc, inspect, kv, mvcc, operator, presplit, store, txn};
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
            eprintln!(
                "error: {}",
                error_text::without_source_tags(&error_text::chain_text(e.as_ref()))
            );
            // Without certificates a TLS fleet fails with transport errors that do not say
            // why; if PD answers in TLS, say so.
            let no_certificates =
                cli.ca_path.is_none() && cli.cert_path.is_none() && cli.key_path.is_none();
            if !matches!(cli.command, Command::Cert(_)) {
                let hint = match tls::material() {
                    _ if no_certificates => {
                        tls_probe::missing_certificates_hint(&cli.pd, &cli.pd_http)
                    }
                    Some(material) => tls_probe::certificates_hint(&cli.pd, &cli.pd_http, material),
                    None => None,
                };
                if let Some(hint) = hint {
                    eprintln!("{hint}");
                }
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<String> {
    if let Command::Cert(CertCommand::Generate {
        dir,
        cn,
        server_cn,
        days,
        force,
    }) = &cli.command
    {
        return cert::generate(dir, cn, server_cn, *days, *force);
    }
    tls::init(cli)?;
    let pd = PdHttp::new(&cli.pd_http, tls::material())?;
    match &cli.command {
        Command::Cluster(args) => inspect::cluster(&pd, args),
        Command::Presplit(args) => presplit::run(&pd, args),
        Command::Region(args) => inspect::region(&pd, args.id, args.key.as_deref()),
        Command::Operator(command) => operator::run(&pd, command),
        Command::Store(StoreCommand::List) => store::list(&pd),
        Command::Store(StoreCommand::Delete { id }) => store::delete(&pd, *id),
        Command::Store(StoreCommand::CancelDelete { id }) => store::cancel_delete(&pd, *id),
        Command::Get { .. } | Command::Put { .. } | Command::Delete { .. } | Command::Scan(_) => {
            run_kv(cli)
        }
        Command::Txn(_) | Command::Locks(_) => run_txn(cli),
        Command::Mvcc(args) => mvcc::run(&pd, &runtime()?, &args.key, timeout(cli)),
        Command::Gc(args) => {
            let target = match args.safe_point {
                Some(ts) => gc::Target::SafePoint(ts),
                None => gc::Target::LifeTime(args.life_time),
            };
            runtime()?.block_on(async {
                let client = txn::connect(&cli.pd, timeout(cli), cli.api_version).await?;
                gc::run(&client, &pd, target).await
            })
        }
        Command::Cert(_) => unreachable!("run answers cert commands before connecting"),
    }
}

/// The runtime of the commands that use async clients; everything else is plain blocking
/// HTTP.
fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Timeout of one request to the cluster (`--timeout`, which clap keeps within 1 s..1 year).
fn timeout(cli: &Cli) -> Duration {
    Duration::from_secs(cli.timeout)
}

/// Raw key-value commands, through the raw client.
fn run_kv(cli: &Cli) -> Result<String> {
    let timeout = timeout(cli);
    runtime()?.block_on(async {
        let client = kv::connect(&cli.pd, timeout, cli.api_version).await?;
        match &cli.command {
            Command::Get { key } => kv::get(&client, key).await,
            Command::Put { key, value, ttl } => kv::put(&client, key, value, *ttl).await,
            Command::Delete { key } => kv::delete(&client, key).await,
            Command::Scan(args) => kv::scan(&client, args, cli.api_version).await,
            _ => unreachable!("run only routes key-value commands here"),
        }
    })
}

/// Transactional commands, through the transaction client.
fn run_txn(cli: &Cli) -> Result<String> {
    let timeout = timeout(cli);
    runtime()?.block_on(async {
        let client = txn::connect(&cli.pd, timeout, cli.api_version).await?;
        match &cli.command {
            Command::Txn(TxnCommand::Get { key }) => txn::get(&client, key).await,
            Command::Txn(TxnCommand::Put { key, value }) => txn::put(&client, key, value).await,
            Command::Txn(TxnCommand::Delete { key }) => txn::delete(&client, key).await,
            Command::Txn(TxnCommand::Scan(args)) => txn::scan(&client, args).await,
            Command::Locks(args) => txn::locks(&client, args).await,
            _ => unreachable!("run only routes transactional commands here"),
        }
    })
}
