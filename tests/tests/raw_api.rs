//! The raw key-value API through the official client against a 3-store fleet, on an API V2
//! cluster (the client addresses the default keyspace) and on an API V1 one (keys as given,
//! no keyspace, as client-go's and the Java client's default).

use std::time::Duration;

use shoal_fleet_tests::{wait_until_async, Fleet, FleetOptions};
use tikv_client::{Key, KvPair, RawClient};

fn keys_of(pairs: &[KvPair]) -> Vec<Vec<u8>> {
    pairs.iter().map(|p| Vec::<u8>::from(p.0.clone())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_operations_behave_like_a_sorted_map_on_api_v2() {
    let fleet = Fleet::start(FleetOptions::default()).await.unwrap();
    let client = fleet.raw_client().await.unwrap();
    sorted_map_suite(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_operations_behave_like_a_sorted_map_on_api_v1() {
    let fleet = Fleet::start(FleetOptions::api_v1()).await.unwrap();
    let client = fleet.raw_client().await.unwrap();
    sorted_map_suite(&client).await;

    // Plain V1 (storage.enable-ttl = false) refuses a TTL rather than dropping it.
    let err = client
        .put_with_ttl("ttl".to_owned(), b"v".to_vec(), 60)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("enable-ttl"), "{err}");
    assert_eq!(client.get("ttl".to_owned()).await.unwrap(), None);

    // A V2 client (keyspace-prefixed keys) is refused with the cluster's version named.
    let v2 = tikv_client::RawClient::new_with_config(
        vec![fleet.pd_grpc.clone()],
        tikv_client::Config::default()
            .with_default_keyspace()
            .with_timeout(Duration::from_secs(5)),
    )
    .await;
    match v2 {
        // Client 0.4 asks PD for the keyspace first; PD may answer, the stores refuse.
        Ok(v2) => {
            let err = v2.put("k".to_owned(), "v".to_owned()).await.unwrap_err();
            assert!(err.to_string().contains("API V1"), "{err}");
        }
        Err(e) => panic!("PD refused the keyspace lookup: {e}"),
    }
}

async fn sorted_map_suite(client: &RawClient) {
    // put / get / missing key.
    client
        .put("alpha".to_owned(), "one".to_owned())
        .await
        .unwrap();
    assert_eq!(
        client.get("alpha".to_owned()).await.unwrap(),
        Some(b"one".to_vec())
    );
    assert_eq!(client.get("absent".to_owned()).await.unwrap(), None);
    client
        .put("alpha".to_owned(), "uno".to_owned())
        .await
        .unwrap();
    assert_eq!(
        client.get("alpha".to_owned()).await.unwrap(),
        Some(b"uno".to_vec())
    );

    // batch_put / batch_get: only existing keys come back.
    let pairs: Vec<KvPair> = (0..20)
        .map(|i| KvPair::new(format!("b{i:02}"), format!("val{i}")))
        .collect();
    client.batch_put(pairs).await.unwrap();
    let got = client
        .batch_get(vec!["b03".to_owned(), "b17".to_owned(), "b99".to_owned()])
        .await
        .unwrap();
    let mut got: Vec<(Vec<u8>, Vec<u8>)> = got.into_iter().map(|p| (p.0.into(), p.1)).collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (b"b03".to_vec(), b"val3".to_vec()),
            (b"b17".to_vec(), b"val17".to_vec())
        ]
    );

    // scan: sorted, bounded, limited; scan_keys agrees.
    let scanned = client
        .scan("b05".to_owned().."b10".to_owned(), 100)
        .await
        .unwrap();
    assert_eq!(
        keys_of(&scanned),
        (5..10)
            .map(|i| format!("b{i:02}").into_bytes())
            .collect::<Vec<_>>()
    );
    assert_eq!(scanned[0].1, b"val5");
    let limited = client.scan("b".to_owned().., 3).await.unwrap();
    assert_eq!(
        keys_of(&limited),
        vec![b"b00".to_vec(), b"b01".to_vec(), b"b02".to_vec()]
    );
    let scanned_keys = client
        .scan_keys("b18".to_owned().."c".to_owned(), 10)
        .await
        .unwrap();
    assert_eq!(
        scanned_keys,
        vec![Key::from(b"b18".to_vec()), Key::from(b"b19".to_vec())]
    );

    // batch_scan: each range on its own, each limited.
    let batch = client
        .batch_scan(
            vec![
                "b00".to_owned().."b05".to_owned(),
                "b15".to_owned().."b20".to_owned(),
            ],
            2,
        )
        .await
        .unwrap();
    let mut batch_keys = keys_of(&batch);
    batch_keys.sort();
    assert_eq!(
        batch_keys,
        vec![
            b"b00".to_vec(),
            b"b01".to_vec(),
            b"b15".to_vec(),
            b"b16".to_vec()
        ]
    );

    // delete / batch_delete / delete_range.
    client.delete("alpha".to_owned()).await.unwrap();
    assert_eq!(client.get("alpha".to_owned()).await.unwrap(), None);
    client
        .batch_delete(vec!["b00".to_owned(), "b01".to_owned()])
        .await
        .unwrap();
    client
        .delete_range("b10".to_owned().."b15".to_owned())
        .await
        .unwrap();
    let left = client
        .scan("b".to_owned().."c".to_owned(), 100)
        .await
        .unwrap();
    let expected: Vec<Vec<u8>> = (2..10)
        .chain(15..20)
        .map(|i| format!("b{i:02}").into_bytes())
        .collect();
    assert_eq!(keys_of(&left), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_and_swap_and_ttl_on_api_v2() {
    let fleet = Fleet::start(FleetOptions::default()).await.unwrap();
    let client = fleet.raw_client().await.unwrap();
    cas_and_ttl_suite(&client).await;
}

/// API V1 with `storage.enable-ttl = true` (V1TTL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_and_swap_and_ttl_on_api_v1_with_ttl() {
    let fleet = Fleet::start(FleetOptions {
        enable_ttl: true,
        ..FleetOptions::api_v1()
    })
    .await
    .unwrap();
    let client = fleet.raw_client().await.unwrap();
    cas_and_ttl_suite(&client).await;
}

async fn cas_and_ttl_suite(client: &RawClient) {
    let atomic = client.with_atomic_for_cas();

    // CAS on an absent key succeeds when "absent" is expected.
    let (previous, swapped) = atomic
        .compare_and_swap("cas".to_owned(), None, b"v1".to_vec())
        .await
        .unwrap();
    assert_eq!((previous, swapped), (None, true));
    // A wrong expectation fails and reports the current value.
    let (previous, swapped) = atomic
        .compare_and_swap("cas".to_owned(), Some(b"nope".to_vec()), b"v2".to_vec())
        .await
        .unwrap();
    assert_eq!((previous, swapped), (Some(b"v1".to_vec()), false));
    assert_eq!(
        atomic.get("cas".to_owned()).await.unwrap(),
        Some(b"v1".to_vec())
    );
    // "Absent" is wrong now too.
    let (previous, swapped) = atomic
        .compare_and_swap("cas".to_owned(), None, b"v2".to_vec())
        .await
        .unwrap();
    assert_eq!((previous, swapped), (Some(b"v1".to_vec()), false));
    // The right expectation swaps.
    let (previous, swapped) = atomic
        .compare_and_swap("cas".to_owned(), Some(b"v1".to_vec()), b"v2".to_vec())
        .await
        .unwrap();
    assert_eq!((previous, swapped), (Some(b"v1".to_vec()), true));
    assert_eq!(
        atomic.get("cas".to_owned()).await.unwrap(),
        Some(b"v2".to_vec())
    );
    // Plain writes in atomic mode go through the same ordering.
    atomic.put("cas".to_owned(), b"v3".to_vec()).await.unwrap();
    assert_eq!(
        client.get("cas".to_owned()).await.unwrap(),
        Some(b"v3".to_vec())
    );

    // A key without TTL reports 0; a missing key reports none.
    client
        .put("forever".to_owned(), "x".to_owned())
        .await
        .unwrap();
    assert_eq!(
        client.get_key_ttl_secs("forever".to_owned()).await.unwrap(),
        Some(0)
    );
    assert_eq!(
        client.get_key_ttl_secs("missing".to_owned()).await.unwrap(),
        None
    );

    // A long TTL is reported and the key stays readable.
    client
        .put_with_ttl("long".to_owned(), b"lives".to_vec(), 600)
        .await
        .unwrap();
    let ttl = client
        .get_key_ttl_secs("long".to_owned())
        .await
        .unwrap()
        .unwrap();
    assert!((1..=600).contains(&ttl), "ttl {ttl}");
    assert_eq!(
        client.get("long".to_owned()).await.unwrap(),
        Some(b"lives".to_vec())
    );

    // A short TTL expires: the key disappears from get and scan.
    client
        .put_with_ttl("short".to_owned(), b"gone soon".to_vec(), 1)
        .await
        .unwrap();
    wait_until_async(
        Duration::from_secs(30),
        "key with ttl 1s to expire",
        || async { matches!(client.get("short".to_owned()).await, Ok(None)) },
    )
    .await;
    let keys = client
        .scan_keys("short".to_owned()..="short".to_owned(), 10)
        .await
        .unwrap();
    assert!(keys.is_empty(), "expired key still scanned: {keys:?}");
    assert_eq!(
        client.get_key_ttl_secs("short".to_owned()).await.unwrap(),
        None
    );
}
