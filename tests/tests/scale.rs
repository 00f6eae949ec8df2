//! Many keys and many regions: splits keep every key readable, PD's region map stays whole,
//! and leaders spread evenly.

use std::collections::HashMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use shoal_fleet_tests::data::{self, check_batch};
use shoal_fleet_tests::keyspace::keyspace_region_count;
use shoal_fleet_tests::{configs, region_json, wait_ok, wait_until, Fleet, FleetOptions};
use tikv_client::{BoundRange, Key, RawClient};

const VALUE_LEN: usize = 100;

fn fleet_options(max_size: u64, split_size: u64) -> FleetOptions {
    FleetOptions {
        stores: 3,
        pd_config: configs::pd_config(""),
        store_config: configs::store_config(&configs::size_split_policy(max_size, split_size)),
        ..FleetOptions::default()
    }
}

/// PD's regions sorted by start key, checked to tile the whole key space: the first starts
/// at "", each ends where the next starts, the last ends at "". Returns the problem if not.
fn coverage_gap(regions: &[serde_json::Value]) -> Option<String> {
    let mut ranges: Vec<(Vec<u8>, Vec<u8>, u64)> = regions
        .iter()
        .map(|r| {
            (
                region_json::start_key(r),
                region_json::end_key(r),
                region_json::id(r),
            )
        })
        .collect();
    ranges.sort();
    let first = ranges.first()?;
    if !first.0.is_empty() {
        return Some(format!("first region {} does not start at \"\"", first.2));
    }
    for pair in ranges.windows(2) {
        if pair[0].1 != pair[1].0 {
            return Some(format!(
                "region {} ends at {} but the next, {}, starts at {}",
                pair[0].2,
                hex::encode(&pair[0].1),
                pair[1].2,
                hex::encode(&pair[1].0)
            ));
        }
    }
    let last = ranges.last()?;
    (!last.1.is_empty()).then(|| format!("last region {} does not end at \"\"", last.2))
}

/// Loads `tasks * per_task` keys from `tasks` concurrent loaders; a reader keeps checking
/// random keys that loaders have acknowledged. Returns how many reads the reader checked.
async fn load_while_reading(client: &RawClient, tasks: usize, per_task: usize) -> usize {
    let progress: Arc<Vec<AtomicUsize>> =
        Arc::new((0..tasks).map(|_| AtomicUsize::new(0)).collect());
    let done = Arc::new(AtomicBool::new(false));

    let reader = {
        let client = client.clone();
        let progress = Arc::clone(&progress);
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut checked = 0usize;
            while !done.load(Ordering::Acquire) {
                for (task, acked) in progress.iter().enumerate() {
                    let acked = acked.load(Ordering::Acquire);
                    if acked == 0 {
                        continue;
                    }
                    let start = task * per_task + rand::thread_rng().gen_range(0..acked);
                    let end = (start + 20).min(task * per_task + acked);
                    check_batch(&client, "key", start..end, VALUE_LEN)
                        .await
                        .expect("an acknowledged key must read back during the load");
                    checked += end - start;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            checked
        })
    };

    let mut loaders = Vec::new();
    for task in 0..tasks {
        let client = client.clone();
        let progress = Arc::clone(&progress);
        loaders.push(tokio::spawn(async move {
            const BATCH: usize = 500;
            let base = task * per_task;
            let mut loaded = 0;
            while loaded < per_task {
                let n = BATCH.min(per_task - loaded);
                data::load(
                    &client,
                    "key",
                    base + loaded..base + loaded + n,
                    n,
                    VALUE_LEN,
                )
                .await
                .expect("load");
                loaded += n;
                progress[task].store(loaded, Ordering::Release);
            }
        }));
    }
    for loader in loaders {
        loader.await.expect("loader task");
    }
    done.store(true, Ordering::Release);
    reader.await.expect("reader task")
}

/// Every key in order through paged raw scans of the whole keyspace.
async fn scan_all(client: &RawClient) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut next: Vec<u8> = Vec::new();
    // 100,000 keys in pages of 10,240: a bounded number of rounds.
    for _ in 0..100 {
        let range = BoundRange::new(Bound::Included(Key::from(next.clone())), Bound::Unbounded);
        let page = data::retry("scan page", || client.scan(range.clone(), 10240))
            .await
            .unwrap();
        let full = page.len() == 10240;
        for pair in page {
            out.push((pair.0.into(), pair.1));
        }
        if !full {
            return out;
        }
        next = out.last().map(|(k, _)| k.clone()).unwrap_or_default();
        next.push(0);
    }
    panic!("scan did not finish in 100 pages");
}

/// Also runs the stores as `make run` does, with one gRPC thread: the current-thread runtime
/// then serves clients, raft traffic and PD calls from split checks (see `grpc_runtime`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_keys_split_into_many_regions_and_all_read_back() {
    const TASKS: usize = 4;
    const PER_TASK: usize = 25_000;
    let mut options = fleet_options(256 * 1024, 192 * 1024);
    options
        .store_config
        .push_str("\n[server]\ngrpc-concurrency = 1\n");
    let fleet = Fleet::start(options).await.unwrap();
    let client = fleet.raw_client().await.unwrap();

    let checked = load_while_reading(&client, TASKS, PER_TASK).await;
    assert!(checked > 0, "the reader never ran during the load");

    // Splits go on for a while after the load; PD may briefly miss the half of a split it
    // has not heard of yet, so wait for a view that has many regions and no gap.
    wait_ok(
        Duration::from_secs(120),
        "more than 20 keyspace regions tiling the key space",
        || {
            let regions = fleet.regions().map_err(|e| e.to_string())?;
            let in_keyspace = keyspace_region_count(&regions);
            if in_keyspace <= 20 {
                return Err(format!("{in_keyspace} regions in the keyspace"));
            }
            coverage_gap(&regions).map_or(Ok(()), Err)
        },
    )
    .await;

    data::verify(&client, "key", 0..TASKS * PER_TASK, VALUE_LEN)
        .await
        .unwrap();
    let all = scan_all(&client).await;
    assert_eq!(all.len(), TASKS * PER_TASK);
    for (i, (key, value)) in all.iter().enumerate() {
        assert_eq!(key, &data::key("key", i), "scan order at {i}");
        assert_eq!(value, &data::value(i, VALUE_LEN), "value of key {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaders_spread_evenly_once_the_load_settles() {
    let fleet = Fleet::start(fleet_options(96 * 1024, 64 * 1024))
        .await
        .unwrap();
    let client = fleet.raw_client().await.unwrap();
    data::load(&client, "key", 0..30_000, 500, VALUE_LEN)
        .await
        .unwrap();
    wait_until(Duration::from_secs(120), "more than 20 regions", || {
        fleet.regions().is_ok_and(|r| r.len() > 20)
    })
    .await;

    let store_ids: Vec<u64> = (0..fleet.store_count())
        .map(|i| fleet.store_id(i))
        .collect();
    let balanced = || -> Result<(), String> {
        let regions = fleet.regions().map_err(|e| e.to_string())?;
        let mut leaders: HashMap<u64, usize> = store_ids.iter().map(|s| (*s, 0)).collect();
        for r in &regions {
            let store = region_json::leader_store(r)
                .ok_or_else(|| format!("region {} has no leader", region_json::id(r)))?;
            *leaders.entry(store).or_default() += 1;
        }
        let mean = regions.len() as f64 / store_ids.len() as f64;
        if leaders.values().all(|n| (*n as f64 - mean).abs() <= 1.0) {
            Ok(())
        } else {
            Err(format!("leaders per store {leaders:?}, mean {mean:.2}"))
        }
    };
    wait_ok(
        Duration::from_secs(180),
        "leader counts within one of the mean",
        balanced,
    )
    .await;
    data::verify(&client, "key", 0..30_000, VALUE_LEN)
        .await
        .unwrap();
}

/// Has PD split `region` at `keys` (PD keys), asking again while PD refuses an
/// administrator's operator because its own is changing the region's membership (adding the
/// third replica right after start), as `shoal-ctl presplit` does.
async fn split_through_pd(fleet: &Fleet, region: &serde_json::Value, keys: &[Vec<u8>]) {
    wait_ok(
        Duration::from_secs(60),
        "PD to take the split operator",
        || {
            fleet
            .pd_post(
                "operators",
                &serde_json::json!({"name": "split-region", "region_id": region_json::id(region),
                    "keys": keys.iter().map(hex::encode).collect::<Vec<_>>()}),
            )
            .map(|_| ())
            .map_err(|e| e.to_string())
        },
    )
    .await;
}

/// Waits until the keyspace holds no more than `before` regions again, the map whole, then
/// checks every loaded key and that the merged region takes writes across old boundaries.
async fn wait_merged_back(fleet: &Fleet, client: &RawClient, before: usize, timeout: Duration) {
    wait_ok(timeout, "the split regions to merge back", || {
        let regions = fleet.regions().map_err(|e| e.to_string())?;
        let n = keyspace_region_count(&regions);
        if n > before {
            return Err(format!(
                "{n} regions in the keyspace, {before} before the split"
            ));
        }
        coverage_gap(&regions).map_or(Ok(()), Err)
    })
    .await;
    data::verify(client, "key", 0..2_000, VALUE_LEN)
        .await
        .unwrap();
    data::load_and_verify(client, "more", 0..500, 100, VALUE_LEN)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_regions_merge_back_into_one_and_keep_every_key() {
    // Splits are protected from merging for one second only, so PD's merge checker takes
    // the small regions below back into one region of the keyspace.
    let fleet = Fleet::start(FleetOptions {
        pd_config: configs::pd_config("split-merge-interval = \"1s\""),
        ..FleetOptions::default()
    })
    .await
    .unwrap();
    let client = fleet.raw_client().await.unwrap();
    data::load(&client, "key", 0..2_000, 200, VALUE_LEN)
        .await
        .unwrap();
    let before = keyspace_region_count(&fleet.regions().unwrap());

    let split_keys: Vec<Vec<u8>> = [400, 800, 1200, 1600]
        .iter()
        .map(|i| shoal_fleet_tests::keyspace::pd_key(&data::key("key", *i)))
        .collect();
    let region = fleet
        .pd_get(&format!("region/key/{}", hex::encode(&split_keys[0])))
        .unwrap();
    split_through_pd(&fleet, &region, &split_keys).await;
    wait_ok(Duration::from_secs(60), "the split to reach PD", || {
        let regions = fleet.regions().map_err(|e| e.to_string())?;
        let n = keyspace_region_count(&regions);
        if n >= before + split_keys.len() {
            Ok(())
        } else {
            Err(format!("{n} regions in the keyspace"))
        }
    })
    .await;

    wait_merged_back(&fleet, &client, before, Duration::from_secs(120)).await;
}

/// With more stores than replicas, two small neighbours on different stores still merge: PD
/// moves the small region's peers onto its neighbour's stores first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_neighbours_on_different_stores_merge_after_their_peers_move() {
    // Merging stays off until the two regions sit on different stores; region balance stays
    // off so only the merge checker moves peers.
    let fleet = Fleet::start(FleetOptions {
        stores: 4,
        pd_config: configs::pd_config(
            "split-merge-interval = \"1s\"\nmerge-schedule-limit = 0\nenable-balance-region = false",
        ),
        ..FleetOptions::default()
    })
    .await
    .unwrap();
    fleet
        .wait_settled(3, Duration::from_secs(120))
        .await
        .unwrap();
    let client = fleet.raw_client().await.unwrap();
    data::load(&client, "key", 0..2_000, 200, VALUE_LEN)
        .await
        .unwrap();
    let before = keyspace_region_count(&fleet.regions().unwrap());
    let region_of = |i: usize| {
        let key = shoal_fleet_tests::keyspace::pd_key(&data::key("key", i));
        fleet
            .pd_get(&format!("region/key/{}", hex::encode(key)))
            .map_err(|e| e.to_string())
    };
    let split_key = shoal_fleet_tests::keyspace::pd_key(&data::key("key", 1_000));
    let region = region_of(1_000).unwrap();
    split_through_pd(&fleet, &region, &[split_key]).await;
    wait_ok(Duration::from_secs(60), "the split to reach PD", || {
        let (low, high) = (region_of(0)?, region_of(1_000)?);
        if region_json::id(&low) == region_json::id(&high) {
            return Err("one region still".into());
        }
        Ok(())
    })
    .await;

    // The upper region moves a peer to the store the lower one does not use (the replica
    // checker, off meanwhile, would remove the fourth peer itself).
    fleet
        .pd_post(
            "config/schedule",
            &serde_json::json!({"enable-replica-checker": false}),
        )
        .unwrap();
    let lower_stores = region_json::voter_stores(&region_of(0).unwrap());
    let spare = (0..fleet.store_count())
        .map(|i| fleet.store_id(i))
        .find(|s| !lower_stores.contains(s))
        .expect("a store without the lower region");
    let leaving = lower_stores[0];
    for (name, store) in [("add-peer", spare), ("remove-peer", leaving)] {
        let wanted = |stores: &[u64]| (stores.contains(&store)) == (name == "add-peer");
        wait_ok(Duration::from_secs(120), name, || {
            let upper = region_of(1_000)?;
            if wanted(&region_json::voter_stores(&upper))
                && region_json::peer_stores(&upper).len() == region_json::voter_stores(&upper).len()
            {
                return Ok(());
            }
            // Asked again while PD refuses (another operator on the region) or the change
            // is under way.
            let _ = fleet.pd_post(
                "operators",
                &serde_json::json!({"name": name, "region_id": region_json::id(&upper),
                    "store_id": store}),
            );
            Err(format!("{name} on store {store} not done yet"))
        })
        .await;
    }
    let (lower, upper) = (region_of(0).unwrap(), region_of(1_000).unwrap());
    let mut upper_stores = region_json::voter_stores(&upper);
    let mut lower_stores = region_json::voter_stores(&lower);
    upper_stores.sort_unstable();
    lower_stores.sort_unstable();
    assert_ne!(region_json::id(&lower), region_json::id(&upper));
    assert_ne!(
        lower_stores, upper_stores,
        "the neighbours share their stores"
    );

    fleet
        .pd_post(
            "config/schedule",
            &serde_json::json!({"merge-schedule-limit": 8, "enable-replica-checker": true}),
        )
        .unwrap();
    wait_merged_back(&fleet, &client, before, Duration::from_secs(180)).await;
}
