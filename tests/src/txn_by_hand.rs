//! Transactional requests sent by hand to a store, for tests that play a client which walks
//! away mid-transaction, and the clock waits such tests need.

use std::time::Duration;

use proto::kvrpcpb::{
    BatchRollbackRequest, BatchRollbackResponse, CheckTxnStatusRequest, CheckTxnStatusResponse,
    CommitRequest, CommitResponse, Mutation, MvccGetByKeyRequest, MvccInfo, Op,
    PessimisticLockRequest, PessimisticLockResponse, PrewriteRequest, PrewriteResponse,
    TxnHeartBeatRequest, TxnHeartBeatResponse,
};
use proto::tikvpb::tikv_client::TikvClient;
use tikv_client::TransactionClient;
use tonic::transport::Channel;

use crate::fleet::Fleet;
use crate::keyspace::txn_store_key;
use crate::route::Route;
use crate::wait::wait_until_async;

/// Waits (bounded) until PD's clock is more than `ms` milliseconds past the physical time of
/// TSO timestamp `ts`: a lock of that start and TTL has expired for every status check after.
pub async fn wait_until_physical_past(client: &TransactionClient, ts: u64, ms: i64) {
    let start_ms = (ts >> 18) as i64;
    wait_until_async(
        Duration::from_secs(10),
        "PD's clock to pass the lock's TTL",
        || async { client.current_timestamp().await.unwrap().physical > start_ms + ms },
    )
    .await;
}

/// A gRPC client to the store leading the region of transactional key `key`, with its route.
/// Like a client, it routes again while the leader PD names answers that it is not the
/// leader (a fresh fleet's leaders move while PD balances them), probing with a read
/// (MvccGetByKey) that changes nothing; bounded at 60 s.
pub async fn leader_of(fleet: &Fleet, key: &[u8]) -> (Route, TikvClient<Channel>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let route = Route::of_txn_key(fleet.pd_api(), key).unwrap();
        let index = fleet
            .store_index(route.leader.store_id)
            .expect("leader on a store of this fleet");
        let mut client = TikvClient::connect(format!("http://{}", fleet.store(index).addr))
            .await
            .unwrap();
        let probe = client
            .mvcc_get_by_key(MvccGetByKeyRequest {
                context: Some(route.context()),
                key: txn_store_key(key),
            })
            .await
            .unwrap()
            .into_inner();
        match probe.region_error {
            None => return (route, client),
            Some(e) if std::time::Instant::now() < deadline => {
                eprintln!("route of {key:?} not settled yet: {e:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Some(e) => panic!("the route of {key:?} never settled: {e:?}"),
        }
    }
}

/// Like [`wait_until_physical_past`] for TTLs longer than its bound (a pessimistic lock's
/// 20 s): gives up after `limit`.
pub async fn wait_until_physical_past_within(
    client: &TransactionClient,
    ts: u64,
    ms: i64,
    limit: Duration,
) {
    let start_ms = (ts >> 18) as i64;
    wait_until_async(limit, "PD's clock to pass the lock's TTL", || async {
        client.current_timestamp().await.unwrap().physical > start_ms + ms
    })
    .await;
}

/// Prewrites puts of transactional user keys `keys` (the first is the primary; all in one
/// region) as a client would, and answers the store's response.
pub async fn prewrite_puts(
    fleet: &Fleet,
    keys: &[&[u8]],
    value: &[u8],
    start_ts: u64,
    ttl: u64,
) -> PrewriteResponse {
    let (route, mut store) = leader_of(fleet, keys[0]).await;
    store
        .kv_prewrite(PrewriteRequest {
            context: Some(route.context()),
            mutations: keys
                .iter()
                .map(|k| Mutation {
                    op: Op::Put as i32,
                    key: txn_store_key(k),
                    value: value.to_vec(),
                    ..Default::default()
                })
                .collect(),
            primary_lock: txn_store_key(keys[0]),
            start_version: start_ts,
            lock_ttl: ttl,
            txn_size: keys.len() as u64,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

/// KvTxnHeartBeat naming transactional user key `key` as the transaction's primary.
pub async fn txn_heart_beat(
    fleet: &Fleet,
    key: &[u8],
    start_ts: u64,
    advise_ttl: u64,
) -> TxnHeartBeatResponse {
    let (route, mut store) = leader_of(fleet, key).await;
    store
        .kv_txn_heart_beat(TxnHeartBeatRequest {
            context: Some(route.context()),
            primary_lock: txn_store_key(key),
            start_version: start_ts,
            advise_lock_ttl: advise_ttl,
        })
        .await
        .unwrap()
        .into_inner()
}

/// KvCheckTxnStatus on primary `primary` (a transactional user key) as client 0.4's read path
/// sends it, by a reader whose start_ts and clock are both `now`.
pub async fn check_txn_status(
    fleet: &Fleet,
    primary: &[u8],
    lock_ts: u64,
    now: u64,
) -> CheckTxnStatusResponse {
    let (route, mut store) = leader_of(fleet, primary).await;
    store
        .kv_check_txn_status(CheckTxnStatusRequest {
            context: Some(route.context()),
            primary_key: txn_store_key(primary),
            lock_ts,
            caller_start_ts: now,
            current_ts: now,
            verify_is_primary: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

/// KvCommit of transactional user keys `keys` (all in one region).
pub async fn commit_keys(
    fleet: &Fleet,
    keys: &[&[u8]],
    start_ts: u64,
    commit_ts: u64,
) -> CommitResponse {
    let (route, mut store) = leader_of(fleet, keys[0]).await;
    store
        .kv_commit(CommitRequest {
            context: Some(route.context()),
            start_version: start_ts,
            keys: keys.iter().map(|k| txn_store_key(k)).collect(),
            commit_version: commit_ts,
        })
        .await
        .unwrap()
        .into_inner()
}

/// KvBatchRollback of transactional user keys `keys` (all in one region).
pub async fn rollback_keys(fleet: &Fleet, keys: &[&[u8]], start_ts: u64) -> BatchRollbackResponse {
    let (route, mut store) = leader_of(fleet, keys[0]).await;
    store
        .kv_batch_rollback(BatchRollbackRequest {
            context: Some(route.context()),
            start_version: start_ts,
            keys: keys.iter().map(|k| txn_store_key(k)).collect(),
        })
        .await
        .unwrap()
        .into_inner()
}

/// KvPessimisticLock of transactional user keys `keys` (the first is the primary; all in one
/// region) with the given timestamps, answered as the store sent it.
pub async fn pessimistic_lock_keys(
    fleet: &Fleet,
    keys: &[&[u8]],
    start_ts: u64,
    for_update_ts: u64,
    ttl: u64,
) -> PessimisticLockResponse {
    let (route, mut store) = leader_of(fleet, keys[0]).await;
    store
        .kv_pessimistic_lock(PessimisticLockRequest {
            context: Some(route.context()),
            mutations: keys
                .iter()
                .map(|k| Mutation {
                    op: Op::PessimisticLock as i32,
                    key: txn_store_key(k),
                    ..Default::default()
                })
                .collect(),
            primary_lock: txn_store_key(keys[0]),
            start_version: start_ts,
            for_update_ts,
            lock_ttl: ttl,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

/// Every MVCC record of transactional user key `key` (MvccGetByKey): its lock and its write
/// records, newest first.
pub async fn mvcc_of(fleet: &Fleet, key: &[u8]) -> MvccInfo {
    let (route, mut store) = leader_of(fleet, key).await;
    let resp = store
        .mvcc_get_by_key(MvccGetByKeyRequest {
            context: Some(route.context()),
            key: txn_store_key(key),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        resp.region_error.is_none() && resp.error.is_empty(),
        "{resp:?}"
    );
    resp.info.unwrap_or_default()
}
