//! Transactional requests sent by hand to a store, for tests that play a client which walks
//! away mid-transaction, and the clock waits such tests need.

use std::future::Future;
use std::time::{Duration, Instant};

use proto::errorpb;
use proto::kvrpcpb::{
    BatchRollbackRequest, BatchRollbackResponse, CheckSecondaryLocksResponse,
    CheckTxnStatusRequest, CheckTxnStatusResponse, CommitRequest, CommitResponse, Context,
    Mutation, MvccGetByKeyRequest, MvccGetByKeyResponse, MvccInfo, Op, PessimisticLockRequest,
    PessimisticLockResponse, PrewriteRequest, PrewriteResponse, ResolveLockResponse,
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

/// How long a request sent by hand keeps routing again while stores answer region errors.
const ROUTE_SETTLE_LIMIT: Duration = Duration::from_secs(60);

/// A response that may carry a region error: the store did not serve the request (its peer
/// is not the leader, the epoch moved, the region is elsewhere), so nothing was written and a
/// client routes again and retries, as client-rust does.
pub trait RegionErrorOf {
    /// The region error the store answered, if any.
    fn region_error_of(&self) -> Option<&errorpb::Error>;
}

macro_rules! region_error_of {
    ($($response:ty),* $(,)?) => {
        $(impl RegionErrorOf for $response {
            fn region_error_of(&self) -> Option<&errorpb::Error> {
                self.region_error.as_ref()
            }
        })*
    };
}

region_error_of!(
    PrewriteResponse,
    CommitResponse,
    BatchRollbackResponse,
    CheckTxnStatusResponse,
    CheckSecondaryLocksResponse,
    ResolveLockResponse,
    PessimisticLockResponse,
    TxnHeartBeatResponse,
    MvccGetByKeyResponse,
);

/// A transport error is not a region error: it goes back to the caller as it is.
impl<T: RegionErrorOf> RegionErrorOf for Result<T, tonic::Status> {
    fn region_error_of(&self) -> Option<&errorpb::Error> {
        self.as_ref().ok().and_then(RegionErrorOf::region_error_of)
    }
}

/// Sends a request about transactional user key `key` to the store PD names as its region's
/// leader, as a client does: `send` gets the route's context and a gRPC client to that
/// store. While the answer carries a region error (a fresh fleet's leaders still move while
/// PD balances them, and a peer that just handed its leadership over knows no leader for a
/// moment), it asks PD again and resends; bounded at 60 s, after which the last answer is
/// returned as it is. Every request sent this way must be one a client may resend
/// (Percolator's prewrite, commit, rollback, heartbeat and status checks are idempotent).
pub async fn send_to_leader<R, F, Fut>(fleet: &Fleet, key: &[u8], mut send: F) -> R
where
    R: RegionErrorOf + std::fmt::Debug,
    F: FnMut(Context, TikvClient<Channel>) -> Fut,
    Fut: Future<Output = R>,
{
    let deadline = Instant::now() + ROUTE_SETTLE_LIMIT;
    loop {
        let route = Route::of_txn_key(fleet.pd_api(), key).unwrap();
        let index = fleet
            .store_index(route.leader.store_id)
            .expect("leader on a store of this fleet");
        let client = TikvClient::connect(format!("http://{}", fleet.store(index).addr))
            .await
            .unwrap();
        let response = send(route.context(), client).await;
        match response.region_error_of() {
            Some(e) if Instant::now() < deadline => {
                eprintln!("route of {key:?} not settled yet: {e:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ => return response,
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

/// Sends `request` (its context set to each attempt's route) to the leader of transactional
/// user key `route_key`'s region, routing again on region errors as [`send_to_leader`] does.
pub async fn prewrite(
    fleet: &Fleet,
    route_key: &[u8],
    request: PrewriteRequest,
) -> PrewriteResponse {
    send_to_leader(fleet, route_key, |context, mut store| {
        let request = PrewriteRequest {
            context: Some(context),
            ..request.clone()
        };
        async move {
            store
                .kv_prewrite(request)
                .await
                .map(tonic::Response::into_inner)
        }
    })
    .await
    .unwrap()
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
    let request = PrewriteRequest {
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
    };
    prewrite(fleet, keys[0], request).await
}

/// KvTxnHeartBeat naming transactional user key `key` as the transaction's primary.
pub async fn txn_heart_beat(
    fleet: &Fleet,
    key: &[u8],
    start_ts: u64,
    advise_ttl: u64,
) -> TxnHeartBeatResponse {
    send_to_leader(fleet, key, |context, mut store| {
        let request = TxnHeartBeatRequest {
            context: Some(context),
            primary_lock: txn_store_key(key),
            start_version: start_ts,
            advise_lock_ttl: advise_ttl,
        };
        async move {
            store
                .kv_txn_heart_beat(request)
                .await
                .map(tonic::Response::into_inner)
        }
    })
    .await
    .unwrap()
}

/// KvCheckTxnStatus on primary `primary` (a transactional user key) as client 0.4's read path
/// sends it, by a reader whose start_ts and clock are both `now`.
pub async fn check_txn_status(
    fleet: &Fleet,
    primary: &[u8],
    lock_ts: u64,
    now: u64,
) -> CheckTxnStatusResponse {
    send_to_leader(fleet, primary, |context, mut store| {
        let request = CheckTxnStatusRequest {
            context: Some(context),
            primary_key: txn_store_key(primary),
            lock_ts,
            caller_start_ts: now,
            current_ts: now,
            verify_is_primary: true,
            ..Default::default()
        };
        async move {
            store
                .kv_check_txn_status(request)
                .await
                .map(tonic::Response::into_inner)
        }
    })
    .await
    .unwrap()
}

/// KvCommit of transactional user keys `keys` (all in one region).
pub async fn commit_keys(
    fleet: &Fleet,
    keys: &[&[u8]],
    start_ts: u64,
    commit_ts: u64,
) -> CommitResponse {
    send_to_leader(fleet, keys[0], |context, mut store| {
        let request = CommitRequest {
            context: Some(context),
            start_version: start_ts,
            keys: keys.iter().map(|k| txn_store_key(k)).collect(),
            commit_version: commit_ts,
        };
        async move {
            store
                .kv_commit(request)
                .await
                .map(tonic::Response::into_inner)
        }
    })
    .await
    .unwrap()
}

/// KvBatchRollback of transactional user keys `keys` (all in one region).
pub async fn rollback_keys(fleet: &Fleet, keys: &[&[u8]], start_ts: u64) -> BatchRollbackResponse {
    send_to_leader(fleet, keys[0], |context, mut store| {
        let request = BatchRollbackRequest {
            context: Some(context),
            start_version: start_ts,
            keys: keys.iter().map(|k| txn_store_key(k)).collect(),
        };
        async move {
            store
                .kv_batch_rollback(request)
                .await
                .map(tonic::Response::into_inner)
        }
    })
    .await
    .unwrap()
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
    send_to_leader(fleet, keys[0], |context, mut store| {
        let request = PessimisticLockRequest {
            context: Some(context),
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
        };
        async move {
            store
                .kv_pessimistic_lock(request)
                .await
                .map(tonic::Response::into_inner)
        }
    })
    .await
    .unwrap()
}

/// Every MVCC record of transactional user key `key` (MvccGetByKey): its lock and its write
/// records, newest first.
pub async fn mvcc_of(fleet: &Fleet, key: &[u8]) -> MvccInfo {
    let resp = send_to_leader(fleet, key, |context, mut store| {
        let request = MvccGetByKeyRequest {
            context: Some(context),
            key: txn_store_key(key),
        };
        async move {
            store
                .mvcc_get_by_key(request)
                .await
                .map(tonic::Response::into_inner)
        }
    })
    .await
    .unwrap();
    assert!(
        resp.region_error.is_none() && resp.error.is_empty(),
        "{resp:?}"
    );
    resp.info.unwrap_or_default()
}
