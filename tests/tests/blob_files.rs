//! `[rocksdb] min-blob-size`: a fleet whose stores keep values in RocksDB blob files splits
//! its regions by size as one keeping them in the LSM tree does (the blob files' bytes count
//! in the region sizes), and every value reads back, also after a store was killed and
//! restarted.

use std::time::Duration;

use shoal_fleet_tests::keyspace::keyspace_region_count;
use shoal_fleet_tests::{configs, data, region_json, wait_until, Fleet, FleetOptions};

const VALUE_LEN: usize = 1024;
const KEYS: usize = 6_000;

/// Blob files in store directory `dir` (RocksDB names them `<number>.blob`).
fn blob_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("db"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".blob"))
                .count()
        })
        .unwrap_or(0)
}

/// Whether PD sees every region led and with three voters (no learner still catching up): a
/// region with two voters would lose its quorum to the kills below.
fn every_region_has_three_voters(fleet: &Fleet) -> bool {
    fleet.regions().is_ok_and(|regions| {
        regions.iter().all(|r| {
            let voters = r["peers"].as_array().map_or(0, |peers| {
                peers.iter().filter(|p| p["role_name"] == "Voter").count()
            });
            region_json::leader_store(r).is_some() && voters == 3
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_in_blob_files_split_by_size_and_read_back() {
    // 1 MiB memtables, so that the ~6 MiB loaded are flushed (values reach blob files only
    // when flushed); regions split past 512 KiB into pieces of about 384 KiB.
    let store_config = format!(
        "{}\n[rocksdb]\nmin-blob-size = 256\nwrite-buffer-size = 1048576\n",
        configs::store_config(&configs::size_split_policy(512 * 1024, 384 * 1024))
    );
    let mut fleet = Fleet::start(FleetOptions {
        stores: 3,
        pd_config: configs::pd_config(""),
        store_config,
        ..FleetOptions::default()
    })
    .await
    .unwrap();
    let client = fleet.raw_client().await.unwrap();
    data::load(&client, "blob", 0..KEYS, 200, VALUE_LEN)
        .await
        .unwrap();

    // 6,000 KiB over pieces of at most 512 KiB: at least 12 regions once the splits settle.
    wait_until(
        Duration::from_secs(120),
        "at least 10 regions in the keyspace",
        || fleet.regions().map_or(0, |r| keyspace_region_count(&r)) >= 10,
    )
    .await;
    for i in 0..fleet.store_count() {
        let dir = fleet.store(i).data_dir.clone();
        assert!(blob_files(&dir) > 0, "store {i} wrote no blob file");
    }
    data::verify(&client, "blob", 0..KEYS, VALUE_LEN)
        .await
        .unwrap();

    wait_until(
        Duration::from_secs(120),
        "every region led and with three voters",
        || every_region_has_three_voters(&fleet),
    )
    .await;
    // Store 0 killed and restarted reopens its blob files; with store 1 down after that,
    // every region's quorum includes store 0, so the regions store 1 led are now led by
    // store 0 or 2 and a write commits only once store 0 has it.
    fleet.kill_store(0).unwrap();
    fleet.restart_store(0).await.unwrap();
    fleet
        .wait_settled(3, Duration::from_secs(120))
        .await
        .unwrap();
    fleet.kill_store(1).unwrap();
    // The client may never have connected to store 1 (its leaders moved there after the
    // last reads): see `RenewedClient`.
    let client = data::RenewedClient::new(&fleet, &client);
    data::verify(&client, "blob", 0..KEYS, VALUE_LEN)
        .await
        .unwrap();
    data::load_and_verify(&client, "after", 0..100, 100, VALUE_LEN)
        .await
        .unwrap();
}
