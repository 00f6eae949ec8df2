//! The `pdpb.PD` and `keyspacepb.Keyspace` services over real gRPC on loopback.

mod common;

use common::*;
use proto::keyspacepb::keyspace_client::KeyspaceClient;
use proto::keyspacepb::{KeyspaceState, LoadKeyspaceRequest};
use proto::pdpb::{self, ErrorType};
use tokio_stream::StreamExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_name_the_advertised_url_and_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let pd = start(test_config(dir.path())).await;
    let mut c = client(&pd).await;
    // The client's first call carries no header.
    let resp = c
        .get_members(pdpb::GetMembersRequest { header: None })
        .await
        .unwrap()
        .into_inner();
    let h = resp.header.as_ref().unwrap();
    assert_ne!(h.cluster_id, 0);
    assert_eq!(h.cluster_id, pd.cluster_id());
    assert!(h.error.is_none());
    let leader = resp.leader.unwrap();
    assert_eq!(leader.client_urls, vec![pd.client_url().to_string()]);
    assert_eq!(resp.members, vec![leader]);
    assert_eq!(
        pd.client_url(),
        format!("http://{}", pd.grpc_addr()),
        "port 0 advertises the bound port"
    );
    pd.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_stores_and_regions() {
    let dir = tempfile::tempdir().unwrap();
    let pd = start(test_config(dir.path())).await;
    let cid = pd.cluster_id();
    let mut c = client(&pd).await;

    let not_yet = c
        .is_bootstrapped(pdpb::IsBootstrappedRequest {
            header: header(cid),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!not_yet.bootstrapped);
    let early = c
        .get_region(pdpb::GetRegionRequest {
            header: header(cid),
            region_key: b"k".to_vec(),
            need_buckets: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(error_type(&early.header), ErrorType::NotBootstrapped);

    let a = alloc_id(&mut c, cid).await;
    let b = alloc_id(&mut c, cid).await;
    assert!(b > a);

    let store_id = alloc_id(&mut c, cid).await;
    let region = bootstrap(&mut c, cid, store_id).await;
    let again = c
        .bootstrap(pdpb::BootstrapRequest {
            header: header(cid),
            store: Some(store(store_id)),
            region: Some(region.clone()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(error_type(&again.header), ErrorType::AlreadyBootstrapped);
    let done = c
        .is_bootstrapped(pdpb::IsBootstrappedRequest {
            header: header(cid),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(done.bootstrapped);

    // The bootstrap region covers every key and has its single peer as leader.
    let got = c
        .get_region(pdpb::GetRegionRequest {
            header: header(cid),
            region_key: b"anything".to_vec(),
            need_buckets: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(error_type(&got.header), ErrorType::Ok);
    assert_eq!(got.region.as_ref().unwrap().id, region.id);
    assert!(got.region.unwrap().region_epoch.is_some());
    assert_eq!(got.leader.unwrap(), region.peers[0]);
    let by_id = c
        .get_region_by_id(pdpb::GetRegionByIdRequest {
            header: header(cid),
            region_id: region.id,
            need_buckets: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_id.region.unwrap(), region);
    let missing = c
        .get_region_by_id(pdpb::GetRegionByIdRequest {
            header: header(cid),
            region_id: 987_654,
            need_buckets: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(error_type(&missing.header), ErrorType::RegionNotFound);
    assert!(missing.region.is_none());

    // Stores: register, update, look up.
    let second = alloc_id(&mut c, cid).await;
    put_store(&mut c, cid, second).await;
    store_heartbeat(&mut c, cid, second).await;
    let got = c
        .get_store(pdpb::GetStoreRequest {
            header: header(cid),
            store_id: second,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(error_type(&got.header), ErrorType::Ok);
    assert_eq!(got.store.unwrap().address, store(second).address);
    let unknown = c
        .get_store(pdpb::GetStoreRequest {
            header: header(cid),
            store_id: 424_242,
        })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(error_type(&unknown.header), ErrorType::Ok);
    assert!(unknown.store.is_none());
    let all = c
        .get_all_stores(pdpb::GetAllStoresRequest {
            header: header(cid),
            exclude_tombstone_stores: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.stores.len(), 2);
    // A second store may not take the first one's address.
    let mut clash = store(alloc_id(&mut c, cid).await);
    clash.address = store(second).address;
    let refused = c
        .put_store(pdpb::PutStoreRequest {
            header: header(cid),
            store: Some(clash),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(error_type(&refused.header), ErrorType::Ok);

    // Requests for another cluster are refused.
    let foreign = c
        .get_store(pdpb::GetStoreRequest {
            header: header(cid + 1),
            store_id: second,
        })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(error_type(&foreign.header), ErrorType::Ok);
    pd.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tso_answers_each_batch_in_order_with_its_last_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let pd = start(test_config(dir.path())).await;
    let cid = pd.cluster_id();
    let mut c = client(&pd).await;
    let counts = [1u32, 10, 64, 3, 1];
    let requests: Vec<pdpb::TsoRequest> = counts
        .iter()
        .map(|n| pdpb::TsoRequest {
            header: header(cid),
            count: *n,
            dc_location: String::new(),
        })
        .collect();
    let mut responses = c
        .tso(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let mut last_version = 0u64;
    for n in counts {
        let resp = responses.next().await.unwrap().unwrap();
        assert_eq!(resp.count, n);
        let ts = resp.timestamp.unwrap();
        assert!(ts.logical < (1 << 18));
        assert!(ts.logical >= i64::from(n));
        let last = ((ts.physical as u64) << 18) | ts.logical as u64;
        let first = last - u64::from(n) + 1;
        assert!(first > last_version, "batches overlap");
        last_version = last;
    }
    pd.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_safe_point_only_moves_up_and_the_default_keyspace_exists() {
    let dir = tempfile::tempdir().unwrap();
    let pd = start(test_config(dir.path())).await;
    let cid = pd.cluster_id();
    let mut c = client(&pd).await;
    for (proposed, expected) in [(100, 100), (50, 100), (300, 300)] {
        let resp = c
            .update_gc_safe_point(pdpb::UpdateGcSafePointRequest {
                header: header(cid),
                safe_point: proposed,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resp.new_safe_point, expected);
    }
    let got = c
        .get_gc_safe_point(pdpb::GetGcSafePointRequest {
            header: header(cid),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.safe_point, 300);

    let mut ks = KeyspaceClient::connect(pd.client_url().to_string())
        .await
        .unwrap();
    let resp = ks
        .load_keyspace(LoadKeyspaceRequest {
            header: header(cid),
            name: "DEFAULT".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(error_type(&resp.header), ErrorType::Ok);
    let meta = resp.keyspace.unwrap();
    assert_eq!(meta.id, 0);
    assert_eq!(meta.state, KeyspaceState::Enabled as i32);
    assert!(meta.created_at > 0);
    let resp = ks
        .load_keyspace(LoadKeyspaceRequest {
            header: header(cid),
            name: "nope".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(error_type(&resp.header), ErrorType::EntryNotFound);
    assert!(resp.keyspace.is_none());
    pd.shutdown().await.unwrap();
}
