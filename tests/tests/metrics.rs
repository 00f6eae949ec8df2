//! The series an operator watches first, read from a live fleet's `/metrics`: regions and
//! leaders per store, elections, propose-to-commit and commit-to-apply latency, and the
//! process's CPU and memory, on stores and on PD.

use std::time::Duration;

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
        // Every store applies the writes, leader or not.
        assert!(
            metric(i, "shoal_raftstore_commit_to_apply_seconds_count") > 0.0,
            "store {i}"
        );
    }
    let sum = |name: &str| stores.clone().map(|i| metric(i, name)).sum::<f64>();
    assert!(sum("shoal_raftstore_became_leader_total") >= 1.0);
    assert!(sum("shoal_raftstore_propose_to_commit_seconds_count") >= 20.0);

    let pd_metrics = ureq::get(&format!("http://{}/metrics", fleet.pd_http))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    for name in ["process_resident_memory_bytes", "process_cpu_seconds_total"] {
        assert!(
            pd_metrics.lines().any(|l| l.starts_with(name)),
            "PD lacks {name}"
        );
    }
}
