//! Async commit and 1PC against a 3-store fleet: through the official client (optimistic and
//! pessimistic, one region and two), by hand for a client that walks away after prewrite
//! (the transaction's fate is then decided from its secondaries), across a leader change
//! (the new leader commits above every read the old one served), and for requests that could
//! lose keys (refused, nothing written).

use std::time::Duration;

use proto::kvrpcpb::{Mutation, Op, PrewriteRequest, PrewriteResponse};
use serde_json::json;
use shoal_fleet_tests::keyspace::{txn_pd_key, txn_store_key};
use shoal_fleet_tests::route::Route;
use shoal_fleet_tests::txn_by_hand::{mvcc_of, prewrite};
use shoal_fleet_tests::txn_split::split_at_each;
use shoal_fleet_tests::{region_json, wait_until_async, Fleet, FleetOptions};
use tikv_client::transaction::ResolveLocksOptions;
use tikv_client::{CheckLevel, TimestampExt, TransactionClient, TransactionOptions};

async fn commit_puts(
    client: &TransactionClient,
    options: TransactionOptions,
    pairs: &[(&str, &str)],
) -> u64 {
    let mut txn = client
        .begin_with_options(options.drop_check(CheckLevel::Warn))
        .await
        .unwrap();
    for (key, value) in pairs {
        txn.put(key.to_string(), value.to_string()).await.unwrap();
    }
    txn.commit()
        .await
        .unwrap()
        .expect("a commit timestamp")
        .version()
}

/// A fleet and a client, with `key` committed as `value` (2PC) before the test begins.
async fn fleet_holding(key: &str, value: &str) -> (Fleet, TransactionClient) {
    let fleet = Fleet::start(FleetOptions::default()).await.unwrap();
    let client = fleet.txn_client().await.unwrap();
    commit_puts(
        &client,
        TransactionOptions::new_optimistic(),
        &[(key, value)],
    )
    .await;
    (fleet, client)
}

async fn read_at(client: &TransactionClient, ts: u64, key: &str) -> Option<Vec<u8>> {
    let ts = tikv_client::Timestamp::from_version(ts);
    let mut snapshot = client.snapshot(ts, TransactionOptions::new_optimistic().read_only());
    snapshot.get(key.to_owned()).await.unwrap()
}

async fn read(client: &TransactionClient, key: &str) -> Option<Vec<u8>> {
    let now = client.current_timestamp().await.unwrap().version();
    read_at(client, now, key).await
}

async fn lock_count(client: &TransactionClient) -> usize {
    let now = client.current_timestamp().await.unwrap();
    client.scan_locks(&now, .., 100).await.unwrap().len()
}

async fn split_at(fleet: &Fleet, key: &str) {
    split_at_each(fleet, &[key.as_bytes().to_vec()], Duration::from_secs(30))
        .await
        .unwrap();
}

/// A prewrite of puts of `keys` (user keys, all in one region) for a transaction with
/// primary `primary` and these `secondaries`, with async commit or 1PC as asked.
async fn prewrite_by_hand(
    fleet: &Fleet,
    primary: &str,
    keys: &[&str],
    secondaries: &[&str],
    start_ts: u64,
    one_pc: bool,
) -> PrewriteResponse {
    let request = PrewriteRequest {
        mutations: keys
            .iter()
            .map(|k| Mutation {
                op: Op::Put as i32,
                key: txn_store_key(k.as_bytes()),
                value: format!("{k}-by-hand").into_bytes(),
                ..Default::default()
            })
            .collect(),
        primary_lock: txn_store_key(primary.as_bytes()),
        start_version: start_ts,
        lock_ttl: 60_000,
        txn_size: (secondaries.len() + 1) as u64,
        use_async_commit: !one_pc,
        try_one_pc: one_pc,
        secondaries: secondaries
            .iter()
            .map(|k| txn_store_key(k.as_bytes()))
            .collect(),
        ..Default::default()
    };
    prewrite(fleet, keys[0].as_bytes(), request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_commit_and_one_pc_commit_through_the_client() {
    let fleet = Fleet::start(FleetOptions::default()).await.unwrap();
    let client = fleet.txn_client().await.unwrap();
    split_at(&fleet, "m").await;

    // Async commit in one region and across two, optimistic and pessimistic: the commit
    // timestamp comes from the stores, and a snapshot at it sees every key.
    for (options, keys) in [
        (TransactionOptions::new_optimistic(), ["a1", "a2"]),
        (TransactionOptions::new_optimistic(), ["b1", "z1"]),
        (TransactionOptions::new_pessimistic(), ["c1", "z2"]),
    ] {
        let pairs: Vec<(&str, &str)> = keys.iter().map(|k| (*k, "async")).collect();
        let commit_ts = commit_puts(&client, options.use_async_commit(), &pairs).await;
        for key in keys {
            assert_eq!(
                read_at(&client, commit_ts, key).await,
                Some(b"async".to_vec())
            );
            assert_eq!(read_at(&client, commit_ts - 1, key).await, None, "{key}");
        }
    }

    // 1PC writes commit records and no locks at all, optimistic and pessimistic.
    for options in [
        TransactionOptions::new_optimistic(),
        TransactionOptions::new_pessimistic(),
    ] {
        let commit_ts = commit_puts(
            &client,
            options.try_one_pc(),
            &[("d1", "1pc"), ("d2", "1pc")],
        )
        .await;
        assert_eq!(lock_count(&client).await, 0);
        assert_eq!(
            read_at(&client, commit_ts, "d1").await,
            Some(b"1pc".to_vec())
        );
        assert_eq!(read(&client, "d2").await, Some(b"1pc".to_vec()));
    }
    // A transaction asking for 1PC whose keys span two regions commits in two phases.
    let commit_ts = commit_puts(
        &client,
        TransactionOptions::new_optimistic().try_one_pc(),
        &[("d3", "2pc"), ("z3", "2pc")],
    )
    .await;
    for key in ["d3", "z3"] {
        assert_eq!(
            read_at(&client, commit_ts, key).await,
            Some(b"2pc".to_vec())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_async_commit_is_decided_from_its_secondaries() {
    let fleet = Fleet::start(FleetOptions::default()).await.unwrap();
    let client = fleet.txn_client().await.unwrap();
    split_at(&fleet, "m").await;

    // Every key prewritten, then the client is gone: the transaction is committed, at the
    // largest min_commit_ts its prewrites answered.
    let start = client.current_timestamp().await.unwrap().version();
    let primary = prewrite_by_hand(&fleet, "p1", &["p1"], &["s1"], start, false).await;
    let secondary = prewrite_by_hand(&fleet, "p1", &["s1"], &[], start, false).await;
    assert!(primary.errors.is_empty() && secondary.errors.is_empty());
    let commit_ts = primary.min_commit_ts.max(secondary.min_commit_ts);
    assert!(commit_ts > start);
    let now = client.current_timestamp().await.unwrap();
    client
        .cleanup_locks(.., &now, ResolveLocksOptions::default())
        .await
        .unwrap();
    assert_eq!(lock_count(&client).await, 0);
    assert_eq!(
        read_at(&client, commit_ts, "p1").await,
        Some(b"p1-by-hand".to_vec())
    );
    assert_eq!(
        read_at(&client, commit_ts, "s1").await,
        Some(b"s1-by-hand".to_vec())
    );
    assert_eq!(read_at(&client, commit_ts - 1, "s1").await, None);

    // Only the primary prewritten: a secondary never locked means the transaction cannot have
    // committed. It is rolled back, and the late prewrite of that secondary is refused.
    let start = client.current_timestamp().await.unwrap().version();
    let primary = prewrite_by_hand(&fleet, "p2", &["p2"], &["s2"], start, false).await;
    assert!(primary.errors.is_empty());
    let now = client.current_timestamp().await.unwrap();
    client
        .cleanup_locks(.., &now, ResolveLocksOptions::default())
        .await
        .unwrap();
    assert_eq!(lock_count(&client).await, 0);
    let late = prewrite_by_hand(&fleet, "p2", &["s2"], &[], start, false).await;
    assert_eq!(late.errors.len(), 1, "{late:?}");
    assert!(mvcc_of(&fleet, b"s2").await.lock.is_none());
    assert_eq!(read(&client, "p2").await, None);
    assert_eq!(read(&client, "s2").await, None);

    // One secondary locked next to the primary (both below the split key), another (above it)
    // never locked:
    // rolled back as well. Client 0.4 merges the regions' answers by taking the locks it is
    // shown, so a region that answered "rolled back" with nothing at all would have been
    // outvoted by the locked one, and the transaction committed half-written.
    let start = client.current_timestamp().await.unwrap().version();
    let written = prewrite_by_hand(&fleet, "c3", &["c3", "d3"], &["d3", "x3"], start, false).await;
    assert!(
        written.errors.is_empty() && written.region_error.is_none(),
        "{written:?}"
    );
    assert!(mvcc_of(&fleet, b"d3").await.lock.is_some());
    let now = client.current_timestamp().await.unwrap();
    client
        .cleanup_locks(.., &now, ResolveLocksOptions::default())
        .await
        .unwrap();
    assert_eq!(lock_count(&client).await, 0);
    for key in ["c3", "d3", "x3"] {
        assert_eq!(read(&client, key).await, None, "{key} was committed");
    }
}

/// Moves the leadership of the region holding `key` to another store and waits until PD
/// reports it there.
async fn move_leader_of(fleet: &Fleet, key: &str) {
    let pd_key = txn_pd_key(key.as_bytes());
    let before = Route::of_txn_key(fleet.pd_api(), key.as_bytes()).unwrap();
    let region = fleet
        .pd_get(&format!("region/key/{}", hex::encode(&pd_key)))
        .unwrap();
    let to = region_json::voter_stores(&region)
        .into_iter()
        .find(|s| *s != before.leader.store_id)
        .expect("a follower");
    wait_until_async(Duration::from_secs(30), "the leader to move", || async {
        let body = json!({"name": "transfer-leader", "region_id": before.region_id,
            "to_store_id": to});
        let _ = fleet.pd_post("operators", &body);
        Route::of_txn_key(fleet.pd_api(), key.as_bytes()).is_ok_and(|r| r.leader.store_id == to)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_commits_async_transactions_above_reads_the_old_one_served() {
    let (fleet, client) = fleet_holding("k", "old").await;

    for options in [
        TransactionOptions::new_optimistic().use_async_commit(),
        TransactionOptions::new_optimistic().try_one_pc(),
    ] {
        // The transaction starts, then a read at a later timestamp is served by the leader.
        let mut txn = client
            .begin_with_options(options.drop_check(CheckLevel::Warn))
            .await
            .unwrap();
        let read_ts = client.current_timestamp().await.unwrap().version();
        let before = read_at(&client, read_ts, "k").await;
        // Another store takes over, and the transaction commits there: its commit timestamp
        // must be above that read, or the same snapshot would now see a different value.
        move_leader_of(&fleet, "k").await;
        txn.put("k".to_owned(), format!("new-{read_ts}"))
            .await
            .unwrap();
        let commit_ts = txn.commit().await.unwrap().expect("a commit ts").version();
        assert!(
            commit_ts > read_ts,
            "committed at {commit_ts}, read at {read_ts}"
        );
        assert_eq!(read_at(&client, read_ts, "k").await, before);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prewrites_that_could_lose_keys_are_refused_and_write_nothing() {
    let fleet = Fleet::start(FleetOptions::default()).await.unwrap();
    let client = fleet.txn_client().await.unwrap();
    split_at(&fleet, "m").await;
    let start = client.current_timestamp().await.unwrap().version();

    // 1PC of a transaction with a key in another region.
    let spanning = prewrite_by_hand(&fleet, "e1", &["e1"], &["y1"], start, true).await;
    // Async commit of the primary with another key of the request missing from the
    // secondaries: whoever resolves the transaction would never find that key.
    let unlisted = prewrite_by_hand(&fleet, "e2", &["e2", "e3"], &[], start, false).await;
    // Secondaries and primaries must be transactional keys: a raw key (`r` prefix) listed as
    // a secondary could never be resolved, and every lock scan would fail on it after.
    let request = PrewriteRequest {
        mutations: vec![Mutation {
            op: Op::Put as i32,
            key: txn_store_key(b"e4"),
            value: b"v".to_vec(),
            ..Default::default()
        }],
        primary_lock: txn_store_key(b"e4"),
        start_version: start,
        lock_ttl: 60_000,
        use_async_commit: true,
        secondaries: vec![b"r\0\0\0raw".to_vec()],
        ..Default::default()
    };
    let raw_secondary = prewrite(&fleet, b"e4", request).await;
    for resp in [spanning, unlisted, raw_secondary] {
        assert_eq!(resp.errors.len(), 1, "{resp:?}");
        assert!(!resp.errors[0].abort.is_empty(), "{resp:?}");
        assert_eq!((resp.min_commit_ts, resp.one_pc_commit_ts), (0, 0));
    }
    for key in ["e1", "e2", "e3", "e4"] {
        let info = mvcc_of(&fleet, key.as_bytes()).await;
        assert!(
            info.lock.is_none() && info.writes.is_empty(),
            "{key}: {info:?}"
        );
    }
    assert_eq!(lock_count(&client).await, 0);
}

/// Milliseconds as a TSO timestamp difference (the low 18 bits are the logical counter).
fn ms_of_tso(ms: u64) -> u64 {
    ms << 18
}

/// A read an hour ahead of PD's clock would raise max_ts by an hour, and every async-commit
/// and 1PC commit after it would land an hour ahead, invisible to fresh snapshots. The store
/// refuses such a read with a key error instead (the default allowance is 60 s), still
/// serves reads a little ahead, and the next async commit is seen at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_far_ahead_of_pd_is_refused_and_later_commits_stay_visible() {
    let (_fleet, client) = fleet_holding("f1", "old").await;
    let now = client.current_timestamp().await.unwrap().version();

    let hour_ahead = || {
        let far = tikv_client::Timestamp::from_version(now + ms_of_tso(3_600_000));
        client.snapshot(far, TransactionOptions::new_optimistic().read_only())
    };
    let refused = hour_ahead().get("f1".to_owned()).await;
    assert!(
        format!("{refused:?}").contains("too far ahead"),
        "a read an hour ahead was answered: {refused:?}"
    );
    // Batch gets and scans carry the refusal in a pair too, where client 0.4 looks for it
    // (it would otherwise answer an empty result).
    let batch = hour_ahead().batch_get(vec!["f1".to_owned()]).await;
    assert!(
        format!("{:?}", batch.as_ref().map(|_| ())).contains("too far ahead"),
        "a batch get an hour ahead was answered: {:?}",
        batch.map(|pairs| pairs.count())
    );
    let scanned = hour_ahead().scan("f".to_owned().."g".to_owned(), 10).await;
    assert!(
        format!("{:?}", scanned.as_ref().map(|_| ())).contains("too far ahead"),
        "a scan an hour ahead was answered: {:?}",
        scanned.map(|pairs| pairs.count())
    );

    for (options, value) in [
        (
            TransactionOptions::new_optimistic().use_async_commit(),
            "async",
        ),
        (TransactionOptions::new_optimistic().try_one_pc(), "1pc"),
    ] {
        let commit_ts = commit_puts(&client, options, &[("f1", value)]).await;
        assert!(
            commit_ts < now + ms_of_tso(3_600_000),
            "the commit landed at {commit_ts}, an hour ahead"
        );
        assert_eq!(read(&client, "f1").await, Some(value.as_bytes().to_vec()));
    }
    // Within the allowance a read ahead of PD's clock is served (and does raise max_ts).
    let now = client.current_timestamp().await.unwrap().version();
    assert_eq!(
        read_at(&client, now + ms_of_tso(1_000), "f1").await,
        Some(b"1pc".to_vec()),
        "a read a second ahead is served"
    );
}
