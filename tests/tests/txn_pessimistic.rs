//! Pessimistic transactions through the official client (`begin_pessimistic`) against a
//! 3-store fleet: keys are locked as they are written or read for update, a locking read sees
//! the latest committed value, inserts assert absence when they lock, and rollback releases
//! every lock.

use shoal_fleet_tests::{Fleet, FleetOptions};
use tikv_client::{CheckLevel, Transaction, TransactionClient, TransactionOptions};

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
