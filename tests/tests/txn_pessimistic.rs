//! Pessimistic transactions through the official client (`begin_pessimistic`) against a
//! 3-store fleet: keys are locked as they are written or read for update, a locking read sees
//! the latest committed value, inserts assert absence when they lock, and rollback releases
//! every lock.

use shoal_fleet_tests::txn_by_hand::{pessimistic_lock_keys, wait_until_physical_past};
use shoal_fleet_tests::{Fleet, FleetOptions};
use tikv_client::{CheckLevel, TimestampExt, Transaction, TransactionClient, TransactionOptions};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pessimistic_transactions_lock_read_for_update_and_commit() {
    let fleet = Fleet::start(FleetOptions::default()).await.unwrap();
    let client = fleet.txn_client().await.unwrap();

    // Writes lock their keys at once, and commit like any transaction.
    commit_put(&client, "p-a", "1").await;
    commit_put(&client, "p-b", "2").await;
    assert_eq!(read(&client, "p-a").await, Some(b"1".to_vec()));

    // A transaction that began before another committed: its plain get reads its snapshot,
    // its get_for_update locks the key and reads the latest committed value.
    let mut early = begin_pessimistic(&client).await;
    commit_put(&client, "p-a", "10").await;
    assert_eq!(
        early.get("p-a".to_owned()).await.unwrap(),
        Some(b"1".to_vec())
    );
    assert_eq!(
        early.get_for_update("p-a".to_owned()).await.unwrap(),
        Some(b"10".to_vec())
    );
    let locked = early
        .batch_get_for_update(vec!["p-b".to_owned(), "p-none".to_owned()])
        .await
        .unwrap();
    assert_eq!(locked.len(), 1, "a missing key is not returned: {locked:?}");
    assert_eq!(lock_count(&client).await, 3);
    early.put("p-a".to_owned(), "11".to_owned()).await.unwrap();
    early.commit().await.unwrap();
    assert_eq!(read(&client, "p-a").await, Some(b"11".to_vec()));
    assert_eq!(read(&client, "p-b").await, Some(b"2".to_vec()));

    // insert asserts absence when it locks.
    let mut dup = begin_pessimistic(&client).await;
    assert!(dup.insert("p-b".to_owned(), "x".to_owned()).await.is_err());
    dup.rollback().await.unwrap();

    // Rollback releases every lock, and nothing of the transaction is visible.
    let mut abandoned = begin_pessimistic(&client).await;
    abandoned
        .put("p-c".to_owned(), "3".to_owned())
        .await
        .unwrap();
    abandoned.lock_keys(vec!["p-a".to_owned()]).await.unwrap();
    assert_eq!(lock_count(&client).await, 2);
    abandoned.rollback().await.unwrap();
    assert_eq!(lock_count(&client).await, 0);
    assert_eq!(read(&client, "p-c").await, None);

    // Keys released by the rollback can be locked and written at once by another.
    commit_put(&client, "p-a", "12").await;
    assert_eq!(read(&client, "p-a").await, Some(b"12".to_vec()));
}

/// Takes pessimistic locks on `keys` (the first is the primary) as a client would, then walks
/// away.
async fn pessimistic_lock_by_hand(fleet: &Fleet, keys: &[&[u8]], start_ts: u64, ttl: u64) {
    let resp = pessimistic_lock_keys(fleet, keys, start_ts, start_ts, ttl).await;
    assert!(
        resp.region_error.is_none() && resp.errors.is_empty(),
        "{resp:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_locker_rolls_back_the_pessimistic_locks_of_a_dead_transaction() {
    let fleet = Fleet::start(FleetOptions::default()).await.unwrap();
    let client = fleet.txn_client().await.unwrap();
    commit_put(&client, "d-secondary", "old").await;

    // Locked with a 1 ms TTL by a client that then died: the next transaction to lock the
    // secondary finds the primary's lock expired, has it rolled back, and goes on.
    let start = client.current_timestamp().await.unwrap().version();
    pessimistic_lock_by_hand(&fleet, &[b"d-primary", b"d-secondary"], start, 1).await;
    assert_eq!(lock_count(&client).await, 2);
    wait_until_physical_past(&client, start, 1).await;
    // Pessimistic locks never block readers.
    assert_eq!(read(&client, "d-secondary").await, Some(b"old".to_vec()));

    let mut next = begin_pessimistic(&client).await;
    assert_eq!(
        next.get_for_update("d-secondary".to_owned()).await.unwrap(),
        Some(b"old".to_vec())
    );
    next.put("d-secondary".to_owned(), "new".to_owned())
        .await
        .unwrap();
    next.commit().await.unwrap();
    assert_eq!(read(&client, "d-secondary").await, Some(b"new".to_vec()));

    // The dead transaction's primary lock goes too once anyone resolves it.
    let mut primary = begin_pessimistic(&client).await;
    primary
        .put("d-primary".to_owned(), "p".to_owned())
        .await
        .unwrap();
    primary.commit().await.unwrap();
    assert_eq!(lock_count(&client).await, 0);
}
