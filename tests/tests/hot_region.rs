//! PD spreads hot regions' leaders: a range read hard, split in two and led from one store, ends
//! with its leaders on more than one store, moved by PD's hot-region scheduler. Balance-leader
//! is off here, so leader counts alone move nothing.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use shoal_fleet_tests::keyspace::pd_key;
use shoal_fleet_tests::{configs, data, region_json, wait_for, wait_ok, Fleet, FleetOptions};
use tikv_client::RawClient;

const KEYS: usize = 200;
const VALUE_LEN: usize = 64;

/// The regions PD holds that overlap `[start, end)` (PD-encoded keys).
fn regions_over(fleet: &Fleet, start: &[u8], end: &[u8]) -> Result<Vec<Value>, String> {
    let regions = fleet.regions().map_err(|e| e.to_string())?;
    Ok(regions
        .into_iter()
        .filter(|r| {
            let (s, e) = (region_json::start_key(r), region_json::end_key(r));
            (e.is_empty() || e.as_slice() > start) && s.as_slice() < end
        })
        .collect())
}

/// Moves the leader of the region holding `key` (PD-encoded) to `store_id` through PD and
/// waits until PD reports it there. PD refuses while the region runs another operator (the
/// replica checker may still be finishing one), so the request is made again on every poll.
async fn move_leader(fleet: &Fleet, key: &[u8], store_id: u64) {
    let hex_key = hex::encode(key);
    wait_for(
        Duration::from_secs(60),
        "the leader transfer to reach PD",
        || async {
            let region = fleet.pd_get(&format!("region/key/{hex_key}")).ok()?;
            if region_json::leader_store(&region) == Some(store_id) {
                return Some(());
            }
            let body = json!({"name": "transfer-leader", "region_id": region_json::id(&region),
                "to_store_id": store_id});
            let _ = fleet.pd_post("operators", &body);
            None
        },
    )
    .await;
}

/// Reads the `prefix` keys in batches until `stop`, counting the keys read.
fn spawn_reader(
    client: RawClient,
    prefix: &'static str,
    stop: Arc<AtomicBool>,
    read: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let keys: Vec<Vec<u8>> = (0..KEYS).map(|i| data::key(prefix, i)).collect();
        while !stop.load(Ordering::Relaxed) {
            // Errors while a leader moves are retried by the next round.
            if let Ok(pairs) = client.batch_get(keys.clone()).await {
                read.fetch_add(pairs.len() as u64, Ordering::Relaxed);
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leaders_of_a_hot_range_led_from_one_store_spread_to_other_stores() {
    let fleet = Fleet::start(FleetOptions {
        pd_config: configs::pd_config("enable-balance-leader = false"),
        ..FleetOptions::default()
    })
    .await
    .unwrap();
    fleet
        .wait_settled(3, Duration::from_secs(60))
        .await
        .unwrap();
    let client = fleet.raw_client().await.unwrap();
    data::load(&client, "hot-a", 0..KEYS, 100, VALUE_LEN)
        .await
        .unwrap();
    data::load(&client, "hot-b", 0..KEYS, 100, VALUE_LEN)
        .await
        .unwrap();

    // Split the range between the two halves.
    let split_key = pd_key(&data::key("hot-b", 0));
    split_at(&fleet, &split_key).await;

    // Both halves led from the store leading the first.
    let first_key = pd_key(&data::key("hot-a", 0));
    let store = wait_for(Duration::from_secs(30), "a leader of hot-a", || async {
        let r = fleet
            .pd_get(&format!("region/key/{}", hex::encode(&first_key)))
            .ok()?;
        region_json::leader_store(&r)
    })
    .await;
    move_leader(&fleet, &first_key, store).await;
    move_leader(&fleet, &split_key, store).await;
    let range_end = pd_key(b"hot-c");
    let stores_leading = |fleet: &Fleet| -> Result<(BTreeSet<u64>, Vec<Value>), String> {
        let regions = regions_over(fleet, &first_key, &range_end)?;
        let leaders = regions
            .iter()
            .filter_map(region_json::leader_store)
            .collect();
        Ok((leaders, regions))
    };
    let (before, _) = stores_leading(&fleet).unwrap();
    assert_eq!(
        before,
        BTreeSet::from([store]),
        "both halves led from one store"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let read = Arc::new(AtomicU64::new(0));
    let readers = [
        spawn_reader(client.clone(), "hot-a", stop.clone(), read.clone()),
        spawn_reader(client.clone(), "hot-b", stop.clone(), read.clone()),
    ];
    wait_ok(
        Duration::from_secs(120),
        "the hot range's leaders on more than one store",
        || {
            let (leaders, regions) = stores_leading(&fleet)?;
            if leaders.len() > 1 {
                return Ok(());
            }
            let rates: Vec<String> = regions
                .iter()
                .map(|r| format!("region {} rate {}", region_json::id(r), r["flow_rate"]))
                .collect();
            Err(format!(
                "leaders on {leaders:?} after {} keys read; {rates:?}",
                read.load(Ordering::Relaxed)
            ))
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }

    // The hot-region scheduler made the move.
    let ops = fleet.pd_get("operators").unwrap();
    let hot_moves = ops["operators"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|op| op["kind"] == "hot-region" && op["status"] == "finished")
        .count();
    assert!(hot_moves >= 1, "no finished hot-region operator: {ops}");
    data::verify(&client, "hot-a", 0..KEYS, VALUE_LEN)
        .await
        .unwrap();
    data::verify(&client, "hot-b", 0..KEYS, VALUE_LEN)
        .await
        .unwrap();
}

/// Splits the region holding `key` (PD-encoded) at it through PD and waits until PD shows one
/// region ending and one starting there. The request is made again on every poll until then,
/// as PD refuses it while the region runs another operator.
async fn split_at(fleet: &Fleet, key: &[u8]) {
    let hex_key = hex::encode(key);
    wait_for(Duration::from_secs(60), "the split to reach PD", || async {
        let regions = fleet.regions().ok()?;
        let left = regions.iter().any(|r| region_json::end_key(r) == key);
        let right = regions.iter().any(|r| region_json::start_key(r) == key);
        if left && right {
            return Some(());
        }
        let region = fleet.pd_get(&format!("region/key/{hex_key}")).ok()?;
        let body = json!({"name": "split-region", "region_id": region_json::id(&region),
            "keys": [hex_key]});
        let _ = fleet.pd_post("operators", &body);
        None
    })
    .await;
}
