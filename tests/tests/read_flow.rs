//! Reads served through the client API count as their region's read flow: the leader reports
//! them to PD, whose key-space heatmap (`kind=read`) and hot-read view show them.

use std::time::Duration;

use serde_json::Value;
use shoal_fleet_tests::{wait_until_async, Fleet, FleetOptions};
use tikv_client::KvPair;

const KEYS: usize = 50;
const VALUE: &[u8] = &[b'v'; 100];

/// Bytes the heatmap of `kind` holds over every minute and key range.
fn heatmap_total(fleet: &Fleet, kind: &str) -> u64 {
    let Ok(map) = fleet.pd_api().get(&format!("heatmap?kind={kind}")) else {
        return 0;
    };
    let rows = map["values"].as_array().cloned().unwrap_or_default();
    rows.iter()
        .flat_map(|row| row.as_array().cloned().unwrap_or_default())
        .map(|cell: Value| cell.as_u64().unwrap_or(0))
        .sum::<u64>()
        + map["unplaced"]
            .as_array()
            .map_or(0, |u| u.iter().map(|v| v.as_u64().unwrap_or(0)).sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_and_transactional_reads_reach_pd_as_read_flow() {
    let fleet = Fleet::start(FleetOptions::default()).await.unwrap();
    let raw = fleet.raw_client().await.unwrap();
    let pairs: Vec<KvPair> = (0..KEYS)
        .map(|i| KvPair::new(format!("flow{i:03}"), VALUE.to_vec()))
        .collect();
    raw.batch_put(pairs).await.unwrap();
    assert_eq!(heatmap_total(&fleet, "read"), 0, "nothing was read yet");

    // One scan, one batch get and one get: at least every value once.
    let scanned = raw
        .scan("flow".to_owned().."flox".to_owned(), KEYS as u32)
        .await
        .unwrap();
    assert_eq!(scanned.len(), KEYS);
    let keys: Vec<String> = (0..KEYS).map(|i| format!("flow{i:03}")).collect();
    assert_eq!(raw.batch_get(keys).await.unwrap().len(), KEYS);
    assert!(raw.get("flow000".to_owned()).await.unwrap().is_some());
    let raw_read = (2 * KEYS + 1) * VALUE.len();
    wait_until_async(
        Duration::from_secs(30),
        "PD's read heatmap to hold the raw reads",
        || async { heatmap_total(&fleet, "read") >= raw_read as u64 },
    )
    .await;

    // Transactional reads count too.
    let txn_client = fleet.txn_client().await.unwrap();
    let mut txn = txn_client.begin_optimistic().await.unwrap();
    txn.put("txn-flow".to_owned(), VALUE.to_vec())
        .await
        .unwrap();
    txn.commit().await.unwrap();
    let before = heatmap_total(&fleet, "read");
    let mut snapshot = txn_client.begin_optimistic().await.unwrap();
    for _ in 0..10 {
        assert!(snapshot.get("txn-flow".to_owned()).await.unwrap().is_some());
    }
    snapshot.rollback().await.unwrap();
    wait_until_async(
        Duration::from_secs(30),
        "PD's read heatmap to hold the transactional reads",
        || async { heatmap_total(&fleet, "read") >= before + VALUE.len() as u64 },
    )
    .await;
}
