//! `shoal-bench` against a real fleet: every core workload runs its operation count with no
//! errors, its inserts land, and failed requests are counted and turn the exit status red; with
//! `--api txn` the load and the workloads run as optimistic transactions.

use std::process::Output;

use serde_json::Value;
use shoal_fleet_tests::binaries::binary;
use shoal_fleet_tests::{Fleet, FleetOptions};

const RECORDS: u64 = 300;
const OPERATIONS: u64 = 600;

async fn bench(args: Vec<String>) -> Output {
    let exe = binary("shoal-bench").unwrap();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(exe)
            .args(args)
            .output()
            .expect("run shoal-bench")
    })
    .await
    .unwrap()
}

fn args(fleet: &Fleet, extra: &[&str]) -> Vec<String> {
    // A cap so a stuck run ends; the operation count ends every run here first.
    args_for(fleet, "300s", extra)
}

/// The common arguments with the run phase lasting at most `duration`.
fn args_for(fleet: &Fleet, duration: &str, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "--pd",
        &fleet.pd_grpc,
        "--concurrency",
        "4",
        "--value-size",
        "64",
        "--seed",
        "7",
        "--timeout",
        "20s",
        "--duration",
        duration,
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "shoal-bench printed no JSON ({e}); stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn count(phase: &Value, op: &str) -> u64 {
    phase["operations"][op]["count"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_core_workload_runs_clean_against_the_fleet() {
    let fleet = Fleet::start(FleetOptions::default()).await.unwrap();
    let records = RECORDS.to_string();
    let operations = OPERATIONS.to_string();

    let load = bench(args(&fleet, &["--records", &records, "--phase", "load"])).await;
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    let load = json(&load);
    assert_eq!(load["load"]["total_ops"], RECORDS);
    assert_eq!(count(&load["load"], "INSERT"), RECORDS);

    // Each run inserts records from --records on (YCSB's insert start), so D and E write the
    // same new record numbers: the store ends up with the larger of their insert counts.
    let mut inserted = 0;
    for (workload, expected) in [
        ("A", &["READ", "UPDATE"][..]),
        ("B", &["READ", "UPDATE"][..]),
        ("C", &["READ"][..]),
        ("D", &["INSERT", "READ"][..]),
        ("E", &["INSERT", "SCAN"][..]),
        ("F", &["READ", "READ-MODIFY-WRITE", "UPDATE"][..]),
    ] {
        let out = bench(args(
            &fleet,
            &[
                "--records",
                &records,
                "--phase",
                "run",
                "--workload",
                workload,
                "--operations",
                &operations,
            ],
        ))
        .await;
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "workload {workload}: {stderr}");
        let run = json(&out)["run"].clone();
        assert_eq!(run["workload"], workload);
        assert_eq!(run["errors"], 0, "workload {workload}: {stderr}");
        assert_eq!(run["total_ops"], OPERATIONS, "workload {workload}");
        let ops: Vec<&str> = run["operations"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        // Operation names come sorted.
        assert_eq!(ops, expected, "workload {workload}");
        inserted = inserted.max(count(&run, "INSERT"));
    }
    assert!(inserted > 0, "D and E insert about 5 % of their requests");

    // Every loaded and inserted record is in the store, under YCSB's key names.
    let client = fleet.raw_client().await.unwrap();
    let keys = client
        .scan_keys("user".to_owned().."user~".to_owned(), 10_000)
        .await
        .unwrap();
    assert_eq!(keys.len() as u64, RECORDS + inserted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_requests_are_counted_and_fail_the_run() {
    let fleet = Fleet::start(FleetOptions::default()).await.unwrap();
    // Nothing is loaded: every read asks for a record that does not exist.
    let out = bench(args(
        &fleet,
        &[
            "--records",
            "1000",
            "--phase",
            "run",
            "--workload",
            "C",
            "--operations",
            "50",
        ],
    ))
    .await;
    assert_eq!(out.status.code(), Some(1));
    let run = json(&out)["run"].clone();
    assert_eq!(run["errors"], 50);
    assert_eq!(run["total_ops"], 0);
    assert_eq!(run["operations"]["READ"]["errors"], 50);
    assert!(run["first_errors"][0]
        .as_str()
        .unwrap()
        .contains("record not found"));

    // An unreachable PD is a usage error, told apart from failed requests.
    let unreachable = bench(vec![
        "--pd".into(),
        "127.0.0.1:9".into(),
        "--timeout".into(),
        "2s".into(),
        "--operations".into(),
        "1".into(),
    ])
    .await;
    assert_eq!(unreachable.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txn_api_runs_clean_against_the_fleet() {
    // Checked before connecting: etcd has no transactional API to drive.
    let etcd = bench(vec![
        "--target".into(),
        "etcd".into(),
        "--api".into(),
        "txn".into(),
    ])
    .await;
    assert_eq!(etcd.status.code(), Some(2));

    let fleet = Fleet::start(FleetOptions::default()).await.unwrap();
    let records = RECORDS.to_string();
    let load = bench(args(
        &fleet,
        &["--api", "txn", "--records", &records, "--phase", "load"],
    ))
    .await;
    let stderr = String::from_utf8_lossy(&load.stderr).to_string();
    assert!(load.status.success(), "{stderr}");
    let load = json(&load)["load"].clone();
    assert_eq!(load["api"], "txn");
    assert_eq!(load["errors"], 0, "{stderr}");
    // Every record has its own key, so no load transaction can conflict.
    assert_eq!(load["aborts"], 0, "{stderr}");
    assert_eq!(count(&load, "INSERT"), RECORDS);

    // A few seconds each of updates and reads (A), scans and inserts (E) and transactional
    // read-modify-writes (F). Zipfian keys over a few hundred records make write conflicts
    // likely: they are aborts, counted apart, and leave the error count at zero.
    let mut inserted = 0;
    for (workload, ops) in [
        ("A", &["READ", "UPDATE"][..]),
        ("E", &["SCAN"][..]),
        ("F", &["READ", "READ-MODIFY-WRITE"][..]),
    ] {
        let out = bench(args_for(
            &fleet,
            "2s",
            &[
                "--api",
                "txn",
                "--records",
                &records,
                "--phase",
                "run",
                "--workload",
                workload,
            ],
        ))
        .await;
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "workload {workload}: {stderr}");
        let run = json(&out)["run"].clone();
        assert_eq!(run["api"], "txn");
        assert_eq!(run["errors"], 0, "workload {workload}: {stderr}");
        assert!(run["aborts"].is_u64(), "workload {workload}: {run}");
        for op in ops {
            assert!(
                count(&run, op) > 0,
                "workload {workload}: no {op} succeeded"
            );
        }
        inserted = inserted.max(count(&run, "INSERT"));
    }

    // The loaded and inserted records are in the transactional key space.
    let client = fleet.txn_client().await.unwrap();
    let ts = client.current_timestamp().await.unwrap();
    let mut snapshot = client.snapshot(
        ts,
        tikv_client::TransactionOptions::new_optimistic().read_only(),
    );
    let keys = snapshot
        .scan_keys("user".to_owned().."user~".to_owned(), 10_000)
        .await
        .unwrap()
        .count();
    assert_eq!(keys as u64, RECORDS + inserted);
}

/// A bank run killed mid-transfer leaves pessimistic and prewrite locks that live for their
/// TTL. The next run's load must wait them out and write every account, so its check adds up;
/// before, the load counted those accounts as aborts, went on, and reported money missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bank_load_waits_out_the_locks_of_a_killed_run() {
    let fleet = Fleet::start(FleetOptions::default()).await.unwrap();
    let bank = |mode: &str, duration: &str, phase: &str| {
        args_for(
            &fleet,
            duration,
            &[
                "--workload",
                "bank",
                "--txn-mode",
                mode,
                "--accounts",
                "20",
                "--phase",
                phase,
            ],
        )
    };
    let load = bench(bank("pessimistic", "2s", "load")).await;
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    // Transfers only, so every lock listed is a transfer's (pessimistic locks live 20 s).
    let mut killed = std::process::Command::new(binary("shoal-bench").unwrap())
        .args(bank("pessimistic", "300s", "run"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start shoal-bench");
    // Killed once the transfers hold locks, which `shoal-ctl locks` lists.
    let ctl = shoal_fleet_tests::binaries::ctl_binary().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let locks = std::process::Command::new(&ctl)
            .args(["--pd", &fleet.pd_grpc, "--pd-http", &fleet.pd_http, "locks"])
            .output()
            .expect("run shoal-ctl locks");
        if String::from_utf8_lossy(&locks.stdout).contains("key=bank") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the bank run held no lock within 120 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    killed.kill().unwrap();
    killed.wait().unwrap();

    let out = bench(bank("optimistic", "2s", "both")).await;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    let report = json(&out);
    assert_eq!(report["load"]["errors"], 0, "{stderr}");
    assert_eq!(report["load"]["aborts"], 0, "{stderr}");
    assert_eq!(count(&report["load"], "INSERT"), 20, "{stderr}");
    assert_eq!(report["bank"]["check"]["ok"], true, "{report}");
}

/// A run whose region's leader store is killed goes on once the region has a new leader: the
/// bench replaces its client when a request cannot reach a store (tikv-client 0.4 keeps
/// sending to a dead leader's store it learned of from PD, and the run stayed at 0 ops/s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_goes_on_after_its_leader_store_is_killed() {
    let mut fleet = Fleet::start(FleetOptions::default()).await.unwrap();
    fleet
        .wait_settled(3, std::time::Duration::from_secs(120))
        .await
        .unwrap();
    let load = bench(args(&fleet, &["--records", "300", "--phase", "load"])).await;
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    let key = shoal_fleet_tests::keyspace::pd_key(b"user");
    let leader_of_records = |fleet: &Fleet| -> Option<u64> {
        let region = fleet
            .pd_get(&format!("region/key/{}", hex::encode(&key)))
            .ok()?;
        shoal_fleet_tests::region_json::leader_store(&region)
    };
    let victim = leader_of_records(&fleet).expect("the records' region has a leader");
    let started = std::time::Instant::now();
    let run = tokio::spawn(bench(args_for(
        &fleet,
        "60s",
        &["--records", "300", "--phase", "run", "--workload", "C"],
    )));
    fleet
        .kill_store(fleet.store_index(victim).unwrap())
        .unwrap();
    let deadline = started + std::time::Duration::from_secs(45);
    while leader_of_records(&fleet).is_none_or(|s| s == victim) {
        assert!(
            std::time::Instant::now() < deadline,
            "no new leader within 45 s of the kill"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let elected_after = started.elapsed().as_secs_f64();
    let out = run.await.unwrap();
    let report = json(&out);
    let timeline = report["run"]["timeline"].as_array().unwrap().clone();
    // Some seconds after the new leader reported to PD (the phase's clock started after
    // `started`, so these are later still), reads are answered again (`ops_per_sec` counts
    // the answered ones).
    let served_after: f64 = timeline
        .iter()
        .filter(|p| p["t"].as_f64().unwrap() > elected_after + 5.0)
        .map(|p| p["ops_per_sec"].as_f64().unwrap())
        .sum();
    assert!(
        served_after > 0.0,
        "no read answered after the region elected a new leader at {elected_after:.1} s: \
         {timeline:?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
