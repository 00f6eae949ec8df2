//! The transactional API through the official client (`TransactionClient`, optimistic 2PC)
//! against a 3-store fleet: snapshot reads, atomic commits, conflicts, and the lock
//! resolution a reader does for a client that died between prewrite and commit.

use std::time::Duration;

use shoal_fleet_tests::txn_by_hand::{commit_keys, prewrite_puts, wait_until_physical_past};
use shoal_fleet_tests::txn_split::{regions_holding, split_at_each};
use shoal_fleet_tests::{wait_until_async, Fleet, FleetOptions};
use tikv_client::transaction::Mutation;
use tikv_client::{
    CheckLevel, Key, KvPair, TimestampExt, Transaction, TransactionClient, TransactionOptions,
};

/// An optimistic transaction that may be dropped after a failed commit without panicking.
async fn begin(client: &TransactionClient) -> Transaction {
    client
        .begin_with_options(TransactionOptions::new_optimistic().drop_check(CheckLevel::Warn))
        .await
        .unwrap()
}

fn pairs(found: impl Iterator<Item = KvPair>) -> Vec<(Vec<u8>, Vec<u8>)> {
    found.map(|p| (Vec::<u8>::from(p.0), p.1)).collect()
}

fn kv(k: &str, v: &str) -> (Vec<u8>, Vec<u8>) {
    (k.as_bytes().to_vec(), v.as_bytes().to_vec())
}

async fn commit_puts(client: &TransactionClient, puts: &[(&str, &str)]) {
    let mut txn = begin(client).await;
    for (k, v) in puts {
        txn.put(k.to_string(), v.to_string()).await.unwrap();
    }
    txn.commit().await.unwrap();
}

/// Client 0.4 commits a transaction's secondaries in the background after its primary: waits
/// until their locks are gone, so the only locks a test meets afterwards are its own.
async fn wait_until_secondaries_committed(client: &TransactionClient) {
    wait_until_async(
        Duration::from_secs(30),
        "the committed transaction's secondary locks to be resolved",
        || async {
            let now = client.current_timestamp().await.unwrap();
            client.scan_locks(&now, .., 100).await.unwrap().is_empty()
        },
    )
    .await;
}

async fn read(client: &TransactionClient, key: &str) -> Option<Vec<u8>> {
    let mut txn = begin(client).await;
    let value = txn.get(key.to_string()).await.unwrap();
    txn.rollback().await.unwrap();
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_transactions_are_read_whole_and_snapshots_stay_put() {
    let fleet = Fleet::start(FleetOptions::default()).await.unwrap();
    let client = fleet.txn_client().await.unwrap();

    commit_puts(&client, &[("a", "1"), ("b", "2"), ("c", "3")]).await;
    let before_second = client.current_timestamp().await.unwrap();

    // Reads of a new transaction: get, batch_get (missing keys omitted), key_exists, scans.
    let mut txn = begin(&client).await;
    assert_eq!(txn.get("a".to_owned()).await.unwrap(), Some(b"1".to_vec()));
    assert!(txn.key_exists("b".to_owned()).await.unwrap());
    assert!(!txn.key_exists("zz".to_owned()).await.unwrap());
    let mut got = pairs(
        txn.batch_get(vec!["a".to_owned(), "c".to_owned(), "x".to_owned()])
            .await
            .unwrap(),
    );
    got.sort();
    assert_eq!(got, vec![kv("a", "1"), kv("c", "3")]);
    let scanned = pairs(txn.scan("a".to_owned().."c".to_owned(), 10).await.unwrap());
    assert_eq!(scanned, vec![kv("a", "1"), kv("b", "2")]);
    let reversed = pairs(
        txn.scan_reverse("a".to_owned()..="c".to_owned(), 2)
            .await
            .unwrap(),
    );
    assert_eq!(reversed, vec![kv("c", "3"), kv("b", "2")]);

    // Writes of the same transaction: delete, put, batch_mutate; committed atomically.
    txn.delete("b".to_owned()).await.unwrap();
    txn.put("c".to_owned(), "30".to_owned()).await.unwrap();
    txn.batch_mutate(vec![
        Mutation::Put(Key::from("d".to_owned()), b"4".to_vec()),
        Mutation::Delete(Key::from("a".to_owned())),
    ])
    .await
    .unwrap();
    assert!(txn.commit().await.unwrap().is_some());

    let mut now = begin(&client).await;
    let all = pairs(now.scan("".to_owned().., 100).await.unwrap());
    assert_eq!(all, vec![kv("c", "30"), kv("d", "4")]);
    now.rollback().await.unwrap();

    // A snapshot at the older timestamp still sees the first transaction's state.
    let mut snapshot = client.snapshot(
        before_second.clone(),
        TransactionOptions::new_optimistic().read_only(),
    );
    assert_eq!(
        pairs(snapshot.scan("".to_owned().., 100).await.unwrap()),
        vec![kv("a", "1"), kv("b", "2"), kv("c", "3")]
    );
    assert_eq!(
        snapshot.get("d".to_owned()).await.unwrap(),
        None,
        "the snapshot predates d"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserts_conflicts_and_lock_keys_follow_snapshot_isolation() {
    let fleet = Fleet::start(FleetOptions::default()).await.unwrap();
    let client = fleet.txn_client().await.unwrap();
    commit_puts(&client, &[("k", "base"), ("guard", "g")]).await;

    // Insert over an existing key fails at commit; nothing of that transaction lands.
    let mut dup = begin(&client).await;
    dup.insert("k".to_owned(), "dup".to_owned()).await.unwrap();
    dup.put("dup-side".to_owned(), "x".to_owned())
        .await
        .unwrap();
    let err = dup.commit().await.unwrap_err();
    assert!(
        format!("{err:?}").contains("already_exist") || format!("{err:?}").contains("AlreadyExist"),
        "{err:?}"
    );
    assert_eq!(read(&client, "k").await, Some(b"base".to_vec()));
    assert_eq!(read(&client, "dup-side").await, None);

    // Insert of a new key works.
    let mut fresh = begin(&client).await;
    fresh
        .insert("new".to_owned(), "n".to_owned())
        .await
        .unwrap();
    fresh.commit().await.unwrap();
    assert_eq!(read(&client, "new").await, Some(b"n".to_vec()));

    // Two transactions write the same key: the one that commits second fails, and none of
    // its writes is visible.
    let mut first = begin(&client).await;
    let mut second = begin(&client).await;
    first.put("k".to_owned(), "first".to_owned()).await.unwrap();
    second
        .put("k".to_owned(), "second".to_owned())
        .await
        .unwrap();
    second
        .put("only-second".to_owned(), "s".to_owned())
        .await
        .unwrap();
    first.commit().await.unwrap();
    let err = second.commit().await.unwrap_err();
    assert!(
        format!("{err:?}").to_lowercase().contains("conflict"),
        "{err:?}"
    );
    assert_eq!(read(&client, "k").await, Some(b"first".to_vec()));
    assert_eq!(read(&client, "only-second").await, None);

    // lock_keys protects a key read by a transaction: a concurrent commit to it makes the
    // locking transaction fail, and the locked key's value is not changed by the lock.
    let mut reader = begin(&client).await;
    assert_eq!(
        reader.get("guard".to_owned()).await.unwrap(),
        Some(b"g".to_vec())
    );
    reader.lock_keys(vec!["guard".to_owned()]).await.unwrap();
    reader
        .put("derived".to_owned(), "d".to_owned())
        .await
        .unwrap();
    commit_puts(&client, &[("guard", "changed")]).await;
    assert!(reader.commit().await.is_err());
    assert_eq!(read(&client, "derived").await, None);

    let mut locker = begin(&client).await;
    locker.lock_keys(vec!["guard".to_owned()]).await.unwrap();
    locker.commit().await.unwrap();
    assert_eq!(read(&client, "guard").await, Some(b"changed".to_vec()));
}

/// Prewrites `keys` (the first is the primary) as a client would, then walks away.
async fn prewrite_by_hand(fleet: &Fleet, keys: &[&[u8]], value: &[u8], start_ts: u64, ttl: u64) {
    let resp = prewrite_puts(fleet, keys, value, start_ts, ttl).await;
    assert!(
        resp.region_error.is_none() && resp.errors.is_empty(),
        "{resp:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_resolve_the_locks_of_a_client_that_died_before_committing() {
    let fleet = Fleet::start(FleetOptions::default()).await.unwrap();
    let client = fleet.txn_client().await.unwrap();
    commit_puts(
        &client,
        &[("p1", "old"), ("s1", "old"), ("p2", "old"), ("s2", "old")],
    )
    .await;
    wait_until_secondaries_committed(&client).await;

    // Prewritten with a 1 ms TTL and never committed: the reader finds the lock expired,
    // rolls the transaction back through its primary, and reads the old value.
    let start = client.current_timestamp().await.unwrap().version();
    prewrite_by_hand(&fleet, &[b"p1", b"s1"], b"new", start, 1).await;
    wait_until_physical_past(&client, start, 1).await;
    assert_eq!(read(&client, "s1").await, Some(b"old".to_vec()));
    assert_eq!(read(&client, "p1").await, Some(b"old".to_vec()));
    // The rolled-back transaction cannot commit afterwards.
    let commit_ts = client.current_timestamp().await.unwrap().version();
    let late = commit_keys(&fleet, &[b"p1"], start, commit_ts).await;
    assert!(
        late.error.is_some(),
        "a rolled-back transaction committed: {late:?}"
    );

    // Prewritten and committed on the primary only: the reader of the secondary learns the
    // commit from the primary and commits the secondary at the same timestamp.
    let start = client.current_timestamp().await.unwrap().version();
    prewrite_by_hand(&fleet, &[b"p2", b"s2"], b"new", start, 60_000).await;
    let commit_ts = client.current_timestamp().await.unwrap().version();
    let committed = commit_keys(&fleet, &[b"p2"], start, commit_ts).await;
    assert!(
        committed.error.is_none() && committed.region_error.is_none(),
        "{committed:?}"
    );
    assert_eq!(read(&client, "s2").await, Some(b"new".to_vec()));
    assert!(client
        .scan_locks(&client.current_timestamp().await.unwrap(), .., 100)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_locks_gc_and_unsafe_destroy_range_clean_up() {
    let fleet = Fleet::start(FleetOptions::default()).await.unwrap();
    let client = fleet.txn_client().await.unwrap();
    commit_puts(&client, &[("g1", "v1"), ("g2", "v2"), ("h1", "x")]).await;
    wait_until_secondaries_committed(&client).await;

    // A dead client's lock shows up in a lock scan, and gc resolves it.
    let start = client.current_timestamp().await.unwrap().version();
    prewrite_by_hand(&fleet, &[b"g1", b"g2"], b"dead", start, 60_000).await;
    let safepoint = client.current_timestamp().await.unwrap();
    let locks = client.scan_locks(&safepoint, .., 100).await.unwrap();
    let mut locked: Vec<Vec<u8>> = locks.iter().map(|l| l.key.clone()).collect();
    locked.sort();
    assert_eq!(locked, vec![b"g1".to_vec(), b"g2".to_vec()]);
    assert!(client.gc(safepoint.clone()).await.unwrap());
    assert!(client
        .scan_locks(&safepoint, .., 100)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(read(&client, "g1").await, Some(b"v1".to_vec()));
    assert_eq!(read(&client, "g2").await, Some(b"v2".to_vec()));

    // Overwritten versions at or below the safe point go once the stores' GC workers see it;
    // what a read at the safe point sees stays.
    let between = client.current_timestamp().await.unwrap();
    commit_puts(&client, &[("h1", "x2")]).await;
    commit_puts(&client, &[("h1", "x3")]).await;
    let safepoint = client.current_timestamp().await.unwrap();
    assert!(client.gc(safepoint.clone()).await.unwrap());
    wait_until_async(
        Duration::from_secs(30),
        "GC to remove h1's old versions",
        || {
            let mut old = client.snapshot(between.clone(), TransactionOptions::new_optimistic());
            async move { old.get("h1".to_owned()).await.unwrap().is_none() }
        },
    )
    .await;
    let deleted: f64 = (0..fleet.store_count())
        .map(|i| {
            fleet
                .store_metric(i, "shoal_gc_versions_deleted_total")
                .unwrap()
        })
        .sum();
    assert!(deleted >= 2.0, "{deleted} versions deleted");
    assert_eq!(read(&client, "h1").await, Some(b"x3".to_vec()));
    let mut at_safepoint = client.snapshot(safepoint, TransactionOptions::new_optimistic());
    assert_eq!(
        at_safepoint.get("h1".to_owned()).await.unwrap(),
        Some(b"x3".to_vec())
    );

    // unsafe_destroy_range removes every version of the keys in the range on every store.
    client
        .unsafe_destroy_range("g".to_owned().."h".to_owned())
        .await
        .unwrap();
    assert_eq!(read(&client, "g1").await, None);
    assert_eq!(read(&client, "g2").await, None);
    assert_eq!(read(&client, "h1").await, Some(b"x3".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_cross_more_than_forty_regions_in_both_directions() {
    let fleet = Fleet::start(FleetOptions::default()).await.unwrap();
    let client = fleet.txn_client().await.unwrap();
    let keys: Vec<String> = (0..200).map(|i| format!("s{i:03}")).collect();
    let mut txn = begin(&client).await;
    for k in &keys {
        txn.put(k.clone(), format!("v-{k}")).await.unwrap();
    }
    txn.commit().await.unwrap();
    // A region boundary every fourth key: 50 regions hold the keys.
    let boundaries: Vec<Vec<u8>> = keys
        .iter()
        .skip(4)
        .step_by(4)
        .map(|k| k.clone().into_bytes())
        .collect();
    split_at_each(&fleet, &boundaries, Duration::from_secs(30))
        .await
        .unwrap();
    let raw_keys: Vec<Vec<u8>> = keys.iter().map(|k| k.clone().into_bytes()).collect();
    assert_eq!(regions_holding(&fleet, &raw_keys), 50);

    let mut txn = begin(&client).await;
    let all = pairs(
        txn.scan("s".to_owned().."t".to_owned(), 1000)
            .await
            .unwrap(),
    );
    let expected: Vec<(Vec<u8>, Vec<u8>)> = keys
        .iter()
        .map(|k| (k.clone().into_bytes(), format!("v-{k}").into_bytes()))
        .collect();
    assert_eq!(all, expected);
    let limited = pairs(txn.scan("s042".to_owned().., 17).await.unwrap());
    assert_eq!(limited, expected[42..59].to_vec());
    let backwards = pairs(
        txn.scan_reverse("s000".to_owned()..="s199".to_owned(), 1000)
            .await
            .unwrap(),
    );
    let mut reversed = expected.clone();
    reversed.reverse();
    assert_eq!(backwards, reversed);
    let batch = pairs(
        txn.batch_get(keys.iter().step_by(7).cloned().collect::<Vec<_>>())
            .await
            .unwrap(),
    );
    assert_eq!(batch.len(), keys.iter().step_by(7).count());
    txn.rollback().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_and_transactional_keys_share_the_store_without_mixing() {
    let fleet = Fleet::start(FleetOptions::default()).await.unwrap();
    let txn_client = fleet.txn_client().await.unwrap();
    let raw_client = fleet.raw_client().await.unwrap();
    raw_client
        .put("same".to_owned(), "raw".to_owned())
        .await
        .unwrap();
    commit_puts(&txn_client, &[("same", "txn"), ("only-txn", "t")]).await;
    raw_client
        .put("only-raw".to_owned(), "r".to_owned())
        .await
        .unwrap();

    assert_eq!(
        raw_client.get("same".to_owned()).await.unwrap(),
        Some(b"raw".to_vec())
    );
    assert_eq!(read(&txn_client, "same").await, Some(b"txn".to_vec()));
    assert_eq!(raw_client.get("only-txn".to_owned()).await.unwrap(), None);
    assert_eq!(read(&txn_client, "only-raw").await, None);
    let raw_keys: Vec<Vec<u8>> = raw_client
        .scan("".to_owned().., 100)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.0.into())
        .collect();
    assert_eq!(raw_keys, vec![b"only-raw".to_vec(), b"same".to_vec()]);
    let mut txn = begin(&txn_client).await;
    let txn_keys: Vec<Vec<u8>> = txn
        .scan("".to_owned().., 100)
        .await
        .unwrap()
        .map(|p| p.0.into())
        .collect();
    assert_eq!(txn_keys, vec![b"only-txn".to_vec(), b"same".to_vec()]);
    txn.rollback().await.unwrap();
}
