//! Stores joining and leaving: PD moves regions onto a new store and off a decommissioned one,
//! and the data stays readable throughout.

use std::time::Duration;

use shoal_fleet_tests::{configs, data, region_json, store_json, wait_ok, Fleet, FleetOptions};

const VALUE_LEN: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regions_move_onto_a_new_store() {
    let mut fleet = Fleet::start(FleetOptions {
        stores: 3,
        pd_config: configs::pd_config(""),
        store_config: configs::store_config(&configs::size_split_policy(64 * 1024, 48 * 1024)),
        ..FleetOptions::default()
    })
    .await
    .unwrap();
    let client = fleet.raw_client().await.unwrap();
    data::load(&client, "key", 0..10_000, 500, VALUE_LEN)
        .await
        .unwrap();

    let new = fleet.add_store().await.unwrap();
    let new_id = fleet.store_id(new);
    wait_ok(Duration::from_secs(180), "regions on the new store", || {
        let stores = fleet.stores().map_err(|e| e.to_string())?;
        let store = stores
            .iter()
            .find(|s| store_json::id(s) == new_id)
            .ok_or(format!("store {new_id} not listed"))?;
        let regions = fleet.regions().map_err(|e| e.to_string())?;
        let hosted = regions
            .iter()
            .filter(|r| region_json::peer_stores(r).contains(&new_id))
            .count();
        if store_json::state(store) == "Up" && store_json::region_count(store) > 0 && hosted > 0 {
            Ok(())
        } else {
            Err(format!(
                "store {new_id}: state {}, region_count {}, peers in /regions {hosted}",
                store_json::state(store),
                store_json::region_count(store)
            ))
        }
    })
    .await;
    data::verify(&client, "key", 0..10_000, VALUE_LEN)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decommissioned_store_is_emptied_and_becomes_tombstone() {
    let fleet = Fleet::start(FleetOptions {
        stores: 4,
        ..FleetOptions::default()
    })
    .await
    .unwrap();
    let client = fleet.raw_client().await.unwrap();
    data::load(&client, "key", 0..2_000, 500, VALUE_LEN)
        .await
        .unwrap();

    // Decommission a store that holds peers.
    let regions = fleet.regions().unwrap();
    let victim = (0..fleet.store_count())
        .map(|i| fleet.store_id(i))
        .max_by_key(|id| {
            regions
                .iter()
                .filter(|r| region_json::peer_stores(r).contains(id))
                .count()
        })
        .unwrap();
    fleet.pd_delete(&format!("store/{victim}")).unwrap();

    wait_ok(
        Duration::from_secs(180),
        "the store to become Tombstone",
        || {
            let store = fleet
                .pd_get(&format!("store/{victim}"))
                .map_err(|e| e.to_string())?;
            let regions = fleet.regions().map_err(|e| e.to_string())?;
            let still_hosting: Vec<u64> = regions
                .iter()
                .filter(|r| region_json::peer_stores(r).contains(&victim))
                .map(region_json::id)
                .collect();
            if store_json::state(&store) == "Tombstone" && still_hosting.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "store {victim} is {}, still in regions {still_hosting:?}",
                    store_json::state(&store)
                ))
            }
        },
    )
    .await;

    // Every region is back at three voters on the remaining stores.
    wait_ok(Duration::from_secs(60), "three peers per region", || {
        let regions = fleet.regions().map_err(|e| e.to_string())?;
        match regions.iter().find(|r| {
            region_json::voter_stores(r).len() != 3
                || region_json::peer_stores(r).len() != 3
                || region_json::leader_store(r).is_none()
        }) {
            None => Ok(()),
            Some(r) => Err(format!("region {r}")),
        }
    })
    .await;
    data::verify(&client, "key", 0..2_000, VALUE_LEN)
        .await
        .unwrap();
}

/// An operator that still has to add a peer on a store being decommissioned is cancelled at
/// once, so the decommission goes on; it used to run until `peer-operator-timeout` (here 10
/// minutes), holding the region.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_onto_a_decommissioned_store_are_cancelled_at_once() {
    let mut fleet = Fleet::start(FleetOptions {
        stores: 4,
        pd_config: configs::pd_config(
            "enable-balance-region = false\nenable-balance-leader = false",
        ),
        ..FleetOptions::default()
    })
    .await
    .unwrap();
    fleet
        .pd_post(
            "config/schedule",
            &serde_json::json!({"peer-operator-timeout": "10m"}),
        )
        .unwrap();
    // Any store without a peer of a settled region (the replica checker may have placed the
    // first regions' replicas on any three of the four stores).
    fleet
        .wait_settled(3, Duration::from_secs(120))
        .await
        .unwrap();
    let (region, victim) = fleet
        .regions()
        .unwrap()
        .into_iter()
        .find_map(|r| {
            let on = region_json::peer_stores(&r);
            let spare = (0..fleet.store_count())
                .map(|i| fleet.store_id(i))
                .find(|s| !on.contains(s))?;
            Some((r, spare))
        })
        .expect("a region without a peer on one of the four stores");
    let victim_index = fleet.store_index(victim).unwrap();
    let region_id = region_json::id(&region);
    // The store dies; while PD still counts it Up, an administrator adds a peer there, which
    // cannot catch up.
    fleet.kill_store(victim_index).unwrap();
    fleet
        .pd_post(
            "operators",
            &serde_json::json!({"name": "add-peer", "region_id": region_id,
                "store_id": victim}),
        )
        .unwrap();
    fleet.pd_delete(&format!("store/{victim}")).unwrap();

    wait_ok(
        Duration::from_secs(120),
        "the add-peer operator to be cancelled",
        || {
            let ops = fleet.pd_get("operators").map_err(|e| e.to_string())?;
            let op = ops["operators"]
                .as_array()
                .and_then(|list| {
                    list.iter().find(|o| {
                        o["region_id"].as_u64() == Some(region_id) && o["kind"] == "admin"
                    })
                })
                .cloned()
                .ok_or("no operator for the region")?;
            match (op["status"].as_str(), op["reason"].as_str()) {
                (Some("cancelled"), Some(reason)) if reason.contains("Offline") => Ok(()),
                _ => Err(format!("operator {op}")),
            }
        },
    )
    .await;
}
