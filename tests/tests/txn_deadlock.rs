//! Deadlock detection through the official client: two pessimistic transactions that each
//! hold a key the other then asks for. Each store reports the waits to the one detector on
//! PD; the wait that closes the cycle is answered with `KeyError.deadlock` (with the whole
//! wait chain), that transaction rolls back, and the other gets its lock and commits. Once
//! with both keys in one region, once with them in two regions led by different stores.

use std::time::Duration;

use futures::future::{self, Either};
use serde_json::json;
use shoal_fleet_tests::keyspace::{txn_pd_key, txn_store_key};
use shoal_fleet_tests::txn_split::{regions_holding, split_at_each};
use shoal_fleet_tests::{region_json, wait_ok, wait_until, Fleet, FleetOptions};
use tikv_client::{
    CheckLevel, Error, ProtoKeyError, TimestampExt, Transaction, TransactionClient,
    TransactionOptions,
};

async fn begin_pessimistic(client: &TransactionClient) -> Transaction {
    client
        .begin_with_options(TransactionOptions::new_pessimistic().drop_check(CheckLevel::Warn))
        .await
        .unwrap()
}

async fn commit_put(client: &TransactionClient, key: &str, value: &str) {
    let mut txn = begin_pessimistic(client).await;
    txn.put(key.to_owned(), value.to_owned()).await.unwrap();
    txn.commit().await.unwrap();
}

async fn read(client: &TransactionClient, key: &str) -> Option<Vec<u8>> {
    let ts = client.current_timestamp().await.unwrap();
    let mut snapshot = client.snapshot(ts, TransactionOptions::new_optimistic().read_only());
    snapshot.get(key.to_owned()).await.unwrap()
}

async fn lock_count(client: &TransactionClient) -> usize {
    let now = client.current_timestamp().await.unwrap();
    client.scan_locks(&now, .., 100).await.unwrap().len()
}

/// The key error carrying `deadlock` inside a client error, wherever the client nested it
/// (client 0.4: `PessimisticLockError { inner: MultipleKeyErrors([KeyError(..)]) }`).
fn deadlock_of(err: &Error) -> Option<&ProtoKeyError> {
    match err {
        Error::KeyError(e) if e.deadlock.is_some() => Some(e),
        Error::PessimisticLockError { inner, .. } => deadlock_of(inner),
        Error::MultipleKeyErrors(errors) | Error::ExtractedErrors(errors) => {
            errors.iter().find_map(deadlock_of)
        }
        _ => None,
    }
}

/// Waits until every store's stream to the detector is open, so the first waits are
/// reported (a wait missed only ends by its timeout, but the test should not rely on that).
async fn wait_detector_connected(fleet: &Fleet) {
    for i in 0..fleet.store_count() {
        wait_ok(Duration::from_secs(60), "the detect stream", || {
            let connected = fleet.store_metric(i, "shoal_deadlock_detector_connected");
            match connected {
                Ok(1.0) => Ok(()),
                other => Err(format!("store {i}: {other:?}")),
            }
        })
        .await;
    }
}

/// PD's count of deadlocks found.
fn pd_deadlocks(fleet: &Fleet) -> f64 {
    let url = format!("http://{}/metrics", fleet.pd_http);
    let text = ureq::get(&url)
        .timeout(Duration::from_secs(5))
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .into_string()
        .unwrap();
    text.lines()
        .filter(|l| l.split_whitespace().next() == Some("shoal_pd_deadlocks_total"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .sum()
}

/// A holds `k1`, B holds `k2`; then A asks for `k2` while B asks for `k1`. Exactly one of
/// them is answered with a deadlock naming the other; it rolls back, and the other gets its
/// lock and commits both keys.
async fn opposite_order_lockers(fleet: &Fleet, client: &TransactionClient, k1: &str, k2: &str) {
    commit_put(client, k1, "initial-1").await;
    commit_put(client, k2, "initial-2").await;
    let deadlocks_before = pd_deadlocks(fleet);

    let mut a = begin_pessimistic(client).await;
    let mut b = begin_pessimistic(client).await;
    let (a_ts, b_ts) = (a.start_timestamp().version(), b.start_timestamp().version());
    assert_eq!(
        a.get_for_update(k1.to_owned()).await.unwrap(),
        Some(b"initial-1".to_vec())
    );
    assert_eq!(
        b.get_for_update(k2.to_owned()).await.unwrap(),
        Some(b"initial-2".to_vec())
    );

    let (want_a, want_b) = (k2.to_owned(), k1.to_owned());
    let a_asks = tokio::spawn(async move {
        let got = a.get_for_update(want_a).await;
        (a, got)
    });
    let b_asks = tokio::spawn(async move {
        let got = b.get_for_update(want_b).await;
        (b, got)
    });
    // The winner cannot get its lock before the loser gives up, so the first to finish is
    // the one refused.
    let (loser_is_a, (mut loser, refused), winner) = match future::select(a_asks, b_asks).await {
        Either::Left((a_done, b_asks)) => (true, a_done.unwrap(), b_asks),
        Either::Right((b_done, a_asks)) => (false, b_done.unwrap(), a_asks),
    };
    let err = match refused {
        Err(e) => e,
        Ok(v) => panic!("the first lock request to finish succeeded ({v:?}) in a deadlock"),
    };
    let key_error = deadlock_of(&err).unwrap_or_else(|| panic!("not a deadlock: {err:?}"));
    let deadlock = key_error.deadlock.as_ref().expect("deadlock is set");
    let (loser_ts, winner_ts) = if loser_is_a {
        (a_ts, b_ts)
    } else {
        (b_ts, a_ts)
    };
    let (loser_held, loser_wanted) = if loser_is_a { (k1, k2) } else { (k2, k1) };
    // The lock it waited for, and the cycle: the winner waits for the key the loser holds,
    // the loser for the key the winner holds.
    assert_eq!(deadlock.lock_ts, winner_ts);
    assert_eq!(deadlock.lock_key, txn_store_key(loser_wanted.as_bytes()));
    let chain: Vec<(u64, u64, Vec<u8>)> = deadlock
        .wait_chain
        .iter()
        .map(|e| (e.txn, e.wait_for_txn, e.key.clone()))
        .collect();
    assert_eq!(
        chain,
        vec![
            (winner_ts, loser_ts, txn_store_key(loser_held.as_bytes())),
            (loser_ts, winner_ts, txn_store_key(loser_wanted.as_bytes())),
        ]
    );
    assert_eq!(deadlock.deadlock_key_hash, deadlock.wait_chain[0].key_hash);

    loser.rollback().await.unwrap();
    let (mut winner, got) = winner.await.unwrap();
    let winner_wanted = loser_held;
    let initial = if winner_wanted == k1 {
        "initial-1"
    } else {
        "initial-2"
    };
    assert_eq!(got.unwrap(), Some(initial.as_bytes().to_vec()));
    winner.put(k1.to_owned(), "winner-1").await.unwrap();
    winner.put(k2.to_owned(), "winner-2").await.unwrap();
    winner.commit().await.unwrap();

    assert_eq!(read(client, k1).await, Some(b"winner-1".to_vec()));
    assert_eq!(read(client, k2).await, Some(b"winner-2".to_vec()));
    assert_eq!(lock_count(client).await, 0);
    assert!(
        pd_deadlocks(fleet) > deadlocks_before,
        "PD counted no deadlock"
    );
    let refused_on_stores: f64 = (0..fleet.store_count())
        .map(|i| fleet.store_metric(i, "shoal_deadlocks_total").unwrap())
        .sum();
    assert!(refused_on_stores >= 1.0, "no store counted a deadlock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opposite_order_lockers_in_one_region_deadlock_and_one_commits() {
    let fleet = Fleet::start(FleetOptions::default()).await.unwrap();
    let client = fleet.txn_client().await.unwrap();
    wait_detector_connected(&fleet).await;
    opposite_order_lockers(&fleet, &client, "dl-one-a", "dl-one-b").await;
}

/// The store leading the region of transactional key `key`, as PD sees it.
fn leader_store_of(fleet: &Fleet, key: &str) -> Option<u64> {
    let region = fleet
        .pd_get(&format!(
            "region/key/{}",
            hex::encode(txn_pd_key(key.as_bytes()))
        ))
        .ok()?;
    region_json::leader_store(&region)
}

/// Asks PD to move the leadership of `key`'s region away from `avoid`.
fn move_leader_off(fleet: &Fleet, key: &str, avoid: u64) {
    let Ok(region) = fleet.pd_get(&format!(
        "region/key/{}",
        hex::encode(txn_pd_key(key.as_bytes()))
    )) else {
        return;
    };
    let Some(to) = region_json::voter_stores(&region)
        .into_iter()
        .find(|s| *s != avoid)
    else {
        return;
    };
    let body = json!({"name": "transfer-leader", "region_id": region_json::id(&region),
        "to_store_id": to});
    let _ = fleet.pd_post("operators", &body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opposite_order_lockers_across_regions_and_stores_deadlock_and_one_commits() {
    let fleet = Fleet::start(FleetOptions::default()).await.unwrap();
    let client = fleet.txn_client().await.unwrap();
    let (k1, k2) = ("dl-two-a", "dl-two-b");
    split_at_each(&fleet, &[k2.as_bytes().to_vec()], Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        regions_holding(&fleet, &[k1.as_bytes().to_vec(), k2.as_bytes().to_vec()]),
        2
    );
    // The two waits are then reported by two different stores.
    wait_until(
        Duration::from_secs(60),
        "the regions led by two stores",
        || match (leader_store_of(&fleet, k1), leader_store_of(&fleet, k2)) {
            (Some(l1), Some(l2)) if l1 != l2 => true,
            (Some(l1), _) => {
                move_leader_off(&fleet, k2, l1);
                false
            }
            _ => false,
        },
    )
    .await;
    wait_detector_connected(&fleet).await;
    opposite_order_lockers(&fleet, &client, k1, k2).await;
}
