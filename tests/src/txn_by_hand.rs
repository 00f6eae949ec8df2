//! Transactional requests sent by hand to a store, for tests that play a client which walks
//! away mid-transaction, and the clock waits such tests need.

use std::time::Duration;

use proto::tikvpb::tikv_client::TikvClient;
use tikv_client::TransactionClient;
use tonic::transport::Channel;

use crate::fleet::Fleet;
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
pub async fn leader_of(fleet: &Fleet, key: &[u8]) -> (Route, TikvClient<Channel>) {
    let route = Route::of_txn_key(fleet.pd_api(), key).unwrap();
    let index = fleet
        .store_index(route.leader.store_id)
        .expect("leader on a store of this fleet");
    let client = TikvClient::connect(format!("http://{}", fleet.store(index).addr))
        .await
        .unwrap();
    (route, client)
}
