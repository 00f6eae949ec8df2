//! The series an operator watches first, read from a live fleet's `/metrics`: regions and
//! leaders per store, elections, propose-to-commit and commit-to-apply latency, and the
//! process's CPU and memory, on stores and on PD. The shipped Grafana dashboard and
//! Prometheus alerts query only series the fleet exports, and `promtool` accepts the rules
//! and the scrape config.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use shoal_fleet_tests::{wait_until_async, Fleet, FleetOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_and_pd_export_the_operators_first_series() {
    let fleet = Fleet::start(FleetOptions::default()).await.unwrap();
    let client = fleet.raw_client().await.unwrap();
    for i in 0..20u32 {
        client
            .put(format!("metrics-{i}"), i.to_string())
            .await
            .unwrap();
    }
    let metric = |i: usize, name: &str| fleet.store_metric(i, name).unwrap();
    // Region heartbeats and elections settle in the background; wait for a leader's count.
    wait_until_async(
        Duration::from_secs(30),
        "a store reporting a leader",
        || async { (0..fleet.store_count()).any(|i| metric(i, "shoal_raftstore_leaders") >= 1.0) },
    )
    .await;
    let stores = 0..fleet.store_count();
    for i in stores.clone() {
        assert!(metric(i, "shoal_raftstore_regions") >= 1.0, "store {i}");
        assert!(
            metric(i, "process_resident_memory_bytes") > 0.0,
            "store {i}"
        );
        // Whole CPU seconds (the collector counts in integers): present, maybe still 0.
        let text = ureq::get(&format!("http://{}/metrics", fleet.store(i).status_addr))
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        assert!(
            text.lines()
                .any(|l| l.starts_with("process_cpu_seconds_total ")),
            "store {i}"
        );
        // Counters without labels are exported from the start, at 0 until something happens
        // (no deadlock has happened here), not first when it does.
        for name in ["shoal_deadlocks_total", "shoal_lock_waiters"] {
            assert!(
                text.lines().any(|l| l == format!("{name} 0")),
                "store {i} does not export {name} 0"
            );
        }
        // Every store applies the writes, leader or not.
        assert!(
            metric(i, "shoal_raftstore_commit_to_apply_seconds_count") > 0.0,
            "store {i}"
        );
    }
    let sum = |name: &str| stores.clone().map(|i| metric(i, name)).sum::<f64>();
    assert!(sum("shoal_raftstore_became_leader_total") >= 1.0);
    assert!(sum("shoal_raftstore_propose_to_commit_seconds_count") >= 20.0);

    let pd_metrics = scrape(&fleet.pd_http);
    for name in ["process_resident_memory_bytes", "process_cpu_seconds_total"] {
        assert!(
            pd_metrics.lines().any(|l| l.starts_with(name)),
            "PD lacks {name}"
        );
    }

    // Every series the dashboard and the alerts query exists on this live fleet.
    let mut live = pd_metrics;
    for i in 0..fleet.store_count() {
        live.push_str(&scrape(&fleet.store(i).status_addr));
    }
    let exported: BTreeSet<&str> = live
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(deploy("grafana/shoal.json")).unwrap())
            .unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect();
    assert!(
        exprs.len() >= 20,
        "the dashboard has {} queries",
        exprs.len()
    );
    let alerts = std::fs::read_to_string(deploy("prometheus/alerts.yml")).unwrap();
    let queried = metric_names(&exprs.join("\n"))
        .into_iter()
        .chain(metric_names(&alerts));
    for name in queried {
        assert!(
            exported.contains(name.as_str()),
            "{name} is queried by deploy/ but no process exports it"
        );
    }
}

/// The `/metrics` text of a status or PD HTTP address.
fn scrape(addr: &str) -> String {
    ureq::get(&format!("http://{addr}/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap()
}

fn deploy(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path)
}

/// The metric names (`shoal_*`, `process_*`) a PromQL text mentions.
fn metric_names(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
        .filter(|w| w.starts_with("shoal_") || w.starts_with("process_"))
        .map(str::to_string)
        .collect()
}

/// `promtool` (Debian's prometheus package, which `make deps` installs) accepts the alert
/// rules and the scrape config that loads them.
#[test]
fn promtool_accepts_the_alerts_and_the_scrape_config() {
    for (what, file) in [
        ("rules", "prometheus/alerts.yml"),
        ("config", "prometheus/prometheus.yml"),
    ] {
        let out = Command::new("promtool")
            .args(["check", what])
            .arg(deploy(file))
            .output()
            .unwrap_or_else(|e| panic!("promtool not runnable ({e}); `make deps` installs it"));
        assert!(
            out.status.success(),
            "promtool check {what} {file}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
