//! Malformed requests sent straight to a store over gRPC get the documented typed errors and
//! change nothing.

use proto::kvrpcpb::{RawGetRequest, RawPutRequest};
use proto::tikvpb::tikv_client::TikvClient;
use shoal_fleet_tests::keyspace::store_key;
use shoal_fleet_tests::route::Route;
use shoal_fleet_tests::{configs, Fleet, FleetOptions};
use tonic::transport::Channel;

/// Raft entries above this size are refused.
const ENTRY_LIMIT: usize = 512 * 1024;

async fn start() -> Fleet {
    Fleet::start(FleetOptions {
        stores: 3,
        // Leaders stay where they are, so a route read from PD stays right.
        pd_config: configs::pd_config("enable-balance-leader = false"),
        store_config: configs::store_config(&format!("raft-entry-max-size = {ENTRY_LIMIT}")),
        ..FleetOptions::default()
    })
    .await
    .unwrap()
}

/// The route of `key` and a gRPC client connected to its leader's store, once that store
/// answers a read as the leader (an election may still be settling right after start).
async fn leader_of(fleet: &Fleet, key: &[u8]) -> (Route, TikvClient<Channel>) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let route = Route::of_user_key(fleet.pd_api(), key).unwrap();
        let index = fleet
            .store_index(route.leader.store_id)
            .expect("leader on a store of this fleet");
        let addr = format!("http://{}", fleet.store(index).addr);
        let mut client = TikvClient::connect(addr)
            .await
            .unwrap()
            .max_decoding_message_size(16 * 1024 * 1024)
            .max_encoding_message_size(16 * 1024 * 1024);
        let probe = client
            .raw_get(RawGetRequest {
                context: Some(route.context()),
                key: store_key(key),
                cf: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        match probe.region_error {
            None => return (route, client),
            Some(e) if std::time::Instant::now() < deadline => {
                eprintln!("route of {key:?} not settled yet: {e:?}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Some(e) => panic!("the route of {key:?} never settled: {e:?}"),
        }
    }
}

fn put(route: &Route, key: &[u8], value: Vec<u8>) -> RawPutRequest {
    RawPutRequest {
        context: Some(route.context()),
        key: store_key(key),
        value,
        ..Default::default()
    }
}

async fn read(client: &mut TikvClient<Channel>, route: &Route, key: &[u8]) -> Option<Vec<u8>> {
    let response = client
        .raw_get(RawGetRequest {
            context: Some(route.context()),
            key: store_key(key),
            cf: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        response.region_error.is_none(),
        "{:?}",
        response.region_error
    );
    assert!(response.error.is_empty(), "{}", response.error);
    (!response.not_found).then_some(response.value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_for_unknown_regions_get_region_not_found() {
    let fleet = start().await;
    let (route, mut client) = leader_of(&fleet, b"k").await;
    let mut wrong = route.clone();
    wrong.region_id = 987_654_321;

    let response = client
        .raw_get(RawGetRequest {
            context: Some(wrong.context()),
            key: store_key(b"k"),
            cf: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let region_error = response.region_error.expect("a region error");
    assert_eq!(
        region_error.region_not_found.map(|e| e.region_id),
        Some(987_654_321),
        "{region_error:?}"
    );
    assert!(response.error.is_empty(), "key error beside a region error");

    let response = client
        .raw_put(put(&wrong, b"k", b"v".to_vec()))
        .await
        .unwrap()
        .into_inner();
    let region_error = response.region_error.expect("a region error");
    assert!(region_error.region_not_found.is_some(), "{region_error:?}");
    assert!(response.error.is_empty());
    assert_eq!(read(&mut client, &route, b"k").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_epochs_too_large_entries_and_unknown_cfs_write_nothing() {
    let fleet = start().await;
    let (route, mut client) = leader_of(&fleet, b"k").await;

    // Stale epoch: the region has split at least once (keyspace boundaries), so an older
    // version exists.
    assert!(route.epoch.version >= 2, "epoch {:?}", route.epoch);
    let mut stale = route.clone();
    stale.epoch.version -= 1;
    let response = client
        .raw_put(put(&stale, b"stale", b"v".to_vec()))
        .await
        .unwrap()
        .into_inner();
    let region_error = response.region_error.expect("a region error");
    let epoch_not_match = region_error
        .epoch_not_match
        .clone()
        .unwrap_or_else(|| panic!("epoch_not_match expected: {region_error:?}"));
    assert!(
        epoch_not_match
            .current_regions
            .iter()
            .any(|r| r.id == route.region_id),
        "current regions {:?}",
        epoch_not_match.current_regions
    );
    assert!(response.error.is_empty());
    assert_eq!(read(&mut client, &route, b"stale").await, None);

    // A value over the raft entry limit.
    let response = client
        .raw_put(put(&route, b"big", vec![7u8; 2 * ENTRY_LIMIT]))
        .await
        .unwrap()
        .into_inner();
    let region_error = response.region_error.expect("a region error");
    let too_large = region_error
        .raft_entry_too_large
        .expect("raft_entry_too_large");
    assert_eq!(too_large.region_id, route.region_id);
    assert!(too_large.entry_size > ENTRY_LIMIT as u64, "{too_large:?}");
    assert!(response.error.is_empty());
    assert_eq!(read(&mut client, &route, b"big").await, None);
    // The official client hands the same refusal to the caller.
    let raw = fleet.raw_client().await.unwrap();
    assert!(raw
        .put(b"big".to_vec(), vec![7u8; 2 * ENTRY_LIMIT])
        .await
        .is_err());
    assert_eq!(raw.get(b"big".to_vec()).await.unwrap(), None);

    // An unknown column family is a malformed request.
    let mut request = put(&route, b"cf", b"v".to_vec());
    request.cf = "no-such-cf".into();
    let status = client.raw_put(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let status = client
        .raw_get(RawGetRequest {
            context: Some(route.context()),
            key: store_key(b"cf"),
            cf: "no-such-cf".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert_eq!(read(&mut client, &route, b"cf").await, None);

    // A message that does not decode: the key field carries a number.
    let status = send_malformed_put(&fleet, &route).await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");

    // The region still takes a well-formed write.
    let response = client
        .raw_put(put(&route, b"fine", b"v".to_vec()))
        .await
        .unwrap()
        .into_inner();
    assert!(
        response.region_error.is_none(),
        "{:?}",
        response.region_error
    );
    assert_eq!(
        read(&mut client, &route, b"fine").await,
        Some(b"v".to_vec())
    );
}

/// A RawPut-shaped message whose `key` (field 2, bytes) is sent as a varint.
#[derive(Clone, PartialEq, prost::Message)]
struct MalformedPut {
    #[prost(message, optional, tag = "1")]
    context: Option<proto::kvrpcpb::Context>,
    #[prost(uint64, tag = "2")]
    key: u64,
}

async fn send_malformed_put(fleet: &Fleet, route: &Route) -> tonic::Status {
    let index = fleet
        .store_index(route.leader.store_id)
        .expect("leader on a store of this fleet");
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", fleet.store(index).addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let codec = tonic::codec::ProstCodec::<MalformedPut, proto::kvrpcpb::RawPutResponse>::default();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/tikvpb.Tikv/RawPut");
    let request = tonic::Request::new(MalformedPut {
        context: Some(route.context()),
        key: 42,
    });
    grpc.unary(request, path, codec)
        .await
        .expect_err("a malformed message is refused")
}
