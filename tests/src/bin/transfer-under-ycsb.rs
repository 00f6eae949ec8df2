//! `transfer-under-ycsb`: how often PD's leader transfers succeed on a real fleet under YCSB-A
//! load, for several store/PD settings side by side.
//!
//! For each setting it starts a fresh fleet (1 PD, 3 stores, the debug binaries next to this
//! one), loads `--records` records with `shoal-bench`, runs workload A for the whole
//! measurement, and asks PD for `--transfers` leader transfers of the region holding the
//! records, one at a time, each to a random other voter. A transfer succeeds when PD sees the
//! leader on the target within `--deadline-ms`. Prints one line per setting: successes, and the
//! time to move (p50/max) of the successful ones.
//!
//! ```text
//! transfer-under-ycsb [--settings 0:1,128:5] [--transfers 40] [--records 20000]
//!                     [--concurrency 32] [--deadline-ms 5000]
//! ```
//! A setting `LAG:ATTEMPTS` sets the stores' `leader-transfer-max-log-lag` and PD's
//! `leader-transfer-max-attempts`; `0:1` is the rule before both existed.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde_json::json;
use shoal_fleet_tests::binaries::binary;
use shoal_fleet_tests::configs::{pd_config, store_config};
use shoal_fleet_tests::fleet::{Fleet, FleetOptions, SETTLE_TIMEOUT};
use shoal_fleet_tests::keyspace::pd_key;
use shoal_fleet_tests::pd_api::region_json;

#[derive(Parser, Debug)]
#[command(name = "transfer-under-ycsb")]
struct Args {
    /// Comma-separated `LAG:ATTEMPTS` settings (store log lag accepted, PD attempts).
    #[arg(long, default_value = "0:1,128:5")]
    settings: String,
    /// Transfers asked for per setting.
    #[arg(long, default_value_t = 40)]
    transfers: usize,
    /// Records loaded before the run.
    #[arg(long, default_value_t = 20_000)]
    records: u64,
    /// Concurrent YCSB clients.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// How long one transfer may take to count as a success, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    deadline_ms: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

struct Outcome {
    lag: u64,
    attempts: u32,
    asked: usize,
    moved: Vec<Duration>,
    refused: usize,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    let mut outcomes = Vec::new();
    for setting in args.settings.split(',').filter(|s| !s.is_empty()) {
        let (lag, attempts) = setting
            .split_once(':')
            .context("a setting is LAG:ATTEMPTS")?;
        let lag: u64 = lag.parse().context("LAG")?;
        let attempts: u32 = attempts.parse().context("ATTEMPTS")?;
        outcomes.push(measure(&args, lag, attempts).await?);
    }
    println!(
        "\n| store log lag accepted | PD attempts | transfers moved | p50 to move | max to move |"
    );
    println!("|---|---|---|---|---|");
    for o in &outcomes {
        let mut t = o.moved.clone();
        t.sort();
        let p50 = t.get(t.len() / 2).copied().unwrap_or_default();
        let max = t.last().copied().unwrap_or_default();
        println!(
            "| {} | {} | {}/{} ({} refused by PD) | {} ms | {} ms |",
            o.lag,
            o.attempts,
            o.moved.len(),
            o.asked,
            o.refused,
            p50.as_millis(),
            max.as_millis()
        );
    }
    Ok(())
}

async fn measure(args: &Args, lag: u64, attempts: u32) -> Result<Outcome> {
    eprintln!("== log lag {lag}, PD attempts {attempts}: starting a fleet");
    let fleet = Fleet::start(FleetOptions {
        stores: 3,
        pd_config: pd_config(&format!("leader-transfer-max-attempts = {attempts}")),
        store_config: store_config(&format!("leader-transfer-max-log-lag = {lag}")),
        ..FleetOptions::default()
    })
    .await?;
    fleet.wait_settled(3, SETTLE_TIMEOUT).await?;
    let bench = binary("shoal-bench")?;
    let common = [
        "--workload".to_string(),
        "A".into(),
        "--pd".into(),
        fleet.pd_grpc.clone(),
        "--records".into(),
        args.records.to_string(),
        "--concurrency".into(),
        args.concurrency.to_string(),
    ];
    let load = tokio::process::Command::new(&bench)
        .args(&common)
        .args(["--phase", "load"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await?;
    if !load.success() {
        bail!("shoal-bench load failed: {load}");
    }
    let mut run = tokio::process::Command::new(&bench)
        .args(&common)
        .args(["--phase", "run", "--duration", "1h"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    // Let the load reach its pace.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mut rng = StdRng::seed_from_u64(args.seed);
    let mut outcome = Outcome {
        lag,
        attempts,
        asked: 0,
        moved: Vec::new(),
        refused: 0,
    };
    let path = format!("region/key/{}", hex::encode(pd_key(b"user")));
    for n in 0..args.transfers {
        if let Ok(Some(status)) = run.try_wait() {
            bail!("shoal-bench run ended early: {status}");
        }
        let region = fleet.pd_get(&path)?;
        let id = region_json::id(&region);
        let leader = region_json::leader_store(&region);
        let others: Vec<u64> = region_json::voter_stores(&region)
            .into_iter()
            .filter(|s| Some(*s) != leader)
            .collect();
        let Some(&to) = others.choose(&mut rng) else {
            bail!("region {id} has no other voter");
        };
        outcome.asked += 1;
        let started = Instant::now();
        let body = json!({"name": "transfer-leader", "region_id": id, "to_store_id": to});
        if let Err(e) = fleet.pd_post("operators", &body) {
            eprintln!("transfer {n}: PD refused: {e:#}");
            outcome.refused += 1;
        } else {
            let mut moved = false;
            while started.elapsed() < Duration::from_millis(args.deadline_ms) {
                let r = fleet.pd_get(&path)?;
                if region_json::leader_store(&r) == Some(to) {
                    moved = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if moved {
                outcome.moved.push(started.elapsed());
            } else {
                eprintln!("transfer {n}: region {id} to store {to} did not move in time");
            }
        }
        // Let PD's operator end (done, or cancelled) before asking for the next one.
        let settle = Instant::now() + Duration::from_secs(15);
        while Instant::now() < settle {
            let ops = fleet.pd_get("operators")?;
            let busy = ops
                .get("operators")
                .and_then(|v| v.as_array())
                .is_some_and(|a| {
                    a.iter()
                        .any(|o| o.get("region_id").and_then(|v| v.as_u64()) == Some(id))
                });
            if !busy {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let _ = run.kill().await;
    eprintln!(
        "== log lag {lag}, PD attempts {attempts}: {}/{} moved",
        outcome.moved.len(),
        outcome.asked
    );
    Ok(outcome)
}
