//! Jepsen-style fault tests on real processes, short version (`make chaos` runs the long one).
//!
//! Ten clients read, write and compare-and-swap six hot keys through the official client with
//! retries off while a nemesis kills, pauses and restarts stores and PD, moves leaders,
//! splits regions and changes membership, each for about ten seconds. After healing, every
//! key's history must be linearizable (indeterminate operations may or may not have
//! happened), writes must be acknowledged again, and every region must be led and fully
//! replicated. The same workload with the client's retries on runs under crashes and pauses
//! to count operations applied twice; that count is printed, not asserted. Where the test may
//! create network namespaces (root), a third test cuts stores off from each other.
//!
//! Histories, fault logs and verdicts go to a `shoal-chaos-*` temporary directory, kept when
//! a test fails (its path is printed). `--nocapture` shows the measurements of every phase.

use std::time::Duration;

use shoal_fleet_tests::chaos::clock::libfaketime;
use shoal_fleet_tests::chaos::{run_phase, ChaosFleet, NemesisKind, PhaseOptions, PhaseReport};
use shoal_fleet_tests::fleet::KEEP_ENV;
use shoal_fleet_tests::netns::StoreNetwork;

/// The fleets of two tests at once would share two cores: run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long each nemesis runs.
const PHASE: Duration = Duration::from_secs(10);

async fn phase(
    fleet: &mut ChaosFleet,
    dir: &std::path::Path,
    kind: NemesisKind,
    retries: bool,
) -> PhaseReport {
    let name = if retries {
        format!("{kind}-retries")
    } else {
        kind.to_string()
    };
    let mut opts = PhaseOptions::new(&name, kind, PHASE, dir);
    opts.workload.clients = 10;
    opts.workload.retries = retries;
    if retries {
        // Room for the client's own retries inside one operation.
        opts.workload.op_timeout = Duration::from_secs(10);
    }
    opts.nemesis.seed = 7;
    opts.check.threads = 2;
    let report = run_phase(fleet, opts)
        .await
        .unwrap_or_else(|e| panic!("phase {name}: {e:#}"));
    println!("{report}\n");
    report
}

/// Fails (keeping the results directory) when a phase without retries found a violation or a
/// problem; prints one summary line per phase either way.
fn assert_sound(reports: &[PhaseReport], dir: tempfile::TempDir, fleet: &mut ChaosFleet) {
    println!("results in {}", dir.path().display());
    for r in reports {
        println!("{}", r.summary_line());
    }
    let mut failures = Vec::new();
    for r in reports {
        if !r.retries {
            for v in r.violations() {
                failures.push(format!(
                    "phase {} (nemesis {}): key {} is NOT LINEARIZABLE ({} ops); history {}\n{}",
                    r.name,
                    r.nemesis,
                    v.key,
                    v.ops,
                    r.history_path.display(),
                    v.detail.as_deref().unwrap_or("")
                ));
            }
        }
        for p in &r.problems {
            failures.push(format!("phase {} (nemesis {}): {p}", r.name, r.nemesis));
        }
    }
    if failures.is_empty() {
        if std::env::var_os(KEEP_ENV).is_some() {
            let kept = dir.keep();
            println!("kept {}", kept.display());
        }
        return;
    }
    let kept = dir.keep();
    let fleet_dir = fleet.keep_dir();
    panic!(
        "{} failure(s); histories, fault logs and verdicts kept in {}, fleet data and logs \
         in {}\n{}\n{}",
        failures.len(),
        kept.display(),
        fleet_dir.display(),
        failures.join("\n"),
        fleet.log_tails(20)
    );
}

fn results_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("shoal-chaos-")
        .tempdir()
        .expect("results directory")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_pauses_and_pd_restarts_keep_every_key_linearizable() {
    let _serial = SERIAL.lock().await;
    let dir = results_dir();
    let mut fleet = ChaosFleet::start(3).await.unwrap();
    let mut reports = Vec::new();
    for kind in [NemesisKind::Kill, NemesisKind::Stop, NemesisKind::PdRestart] {
        reports.push(phase(&mut fleet, dir.path(), kind, false).await);
    }
    // The client's own retries under the same crashes and pauses: counted, not asserted.
    let retried = phase(&mut fleet, dir.path(), NemesisKind::Crash, true).await;
    println!(
        "with retries on: {} compare-and-swaps saw their own value, {} values reappeared, \
         {} compare-and-swaps answered \"not swapped\" after swapping, {} of {} keys linearizable",
        retried.duplicates.cas_saw_own_value,
        retried.duplicates.values_reappeared,
        retried.duplicates.failed_cas_took_effect,
        retried
            .verdicts
            .iter()
            .filter(|v| v.verdict == "linearizable")
            .count(),
        retried.verdicts.len()
    );
    reports.push(retried);
    assert_sound(&reports, dir, &mut fleet);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_transfers_splits_and_membership_changes_keep_every_key_linearizable() {
    let _serial = SERIAL.lock().await;
    let dir = results_dir();
    let mut fleet = ChaosFleet::start(3).await.unwrap();
    let mut reports = Vec::new();
    for kind in [
        NemesisKind::Transfer,
        NemesisKind::Split,
        NemesisKind::Membership,
        NemesisKind::Mixed,
    ] {
        reports.push(phase(&mut fleet, dir.path(), kind, false).await);
    }
    assert!(
        reports.iter().all(|r| r.faults_injected > 0),
        "a nemesis injected nothing: {:?}",
        reports
            .iter()
            .map(|r| (&r.name, r.faults_injected))
            .collect::<Vec<_>>()
    );
    assert_sound(&reports, dir, &mut fleet);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_between_stores_keep_every_key_linearizable() {
    if !StoreNetwork::available() {
        eprintln!("skipped: creating network namespaces needs root and `ip`");
        return;
    }
    let _serial = SERIAL.lock().await;
    let dir = results_dir();
    let mut fleet = ChaosFleet::start_isolated(3).await.unwrap();
    let report = phase(&mut fleet, dir.path(), NemesisKind::Partition, false).await;
    assert!(report.faults_injected > 0, "no partition was made");
    assert_sound(&[report], dir, &mut fleet);
}

/// Stores and PD restarted on skewed clocks (libfaketime: offsets up to an hour, rates within
/// 10 %), a skewed leader also cut off from the other stores where namespaces can be made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skewed_clocks_keep_every_key_linearizable() {
    if libfaketime().is_none() {
        eprintln!("skipped: needs libfaketime (the Debian package faketime; `make deps`)");
        return;
    }
    let _serial = SERIAL.lock().await;
    let dir = results_dir();
    let mut fleet = if StoreNetwork::available() {
        ChaosFleet::start_isolated(3).await.unwrap()
    } else {
        ChaosFleet::start(3).await.unwrap()
    };
    let report = phase(&mut fleet, dir.path(), NemesisKind::Clock, false).await;
    assert!(report.faults_injected > 0, "no clock was skewed");
    assert_sound(&[report], dir, &mut fleet);
}
