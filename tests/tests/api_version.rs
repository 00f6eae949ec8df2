//! A cluster serves one storage API version for its whole life: the one of the store that
//! bootstrapped it. A store configured otherwise is refused when it registers with PD, and
//! says why.

use std::process::Command;
use std::time::Duration;

use shoal_fleet_tests::binaries::server_binary;
use shoal_fleet_tests::ports::free_addr;
use shoal_fleet_tests::process::run_to_exit;
use shoal_fleet_tests::{configs, Fleet, FleetOptions};

/// How long the refused store may take to give up and exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_configured_for_api_v1_is_refused_by_an_api_v2_cluster() {
    let fleet = Fleet::start(FleetOptions {
        stores: 1,
        ..FleetOptions::default()
    })
    .await
    .unwrap();
    let stores_before = fleet.pd_api().stores().unwrap().len();

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("store.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\napi-version = 1\n\n{}",
            configs::store_config("")
        ),
    )
    .unwrap();
    let mut store = Command::new(server_binary().unwrap());
    store
        .args(["--pd", &fleet.pd_grpc, "--addr", &free_addr().unwrap()])
        .args(["--status-addr", &free_addr().unwrap()])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config);
    let (status, stderr) = tokio::task::spawn_blocking(move || run_to_exit(store, EXIT_TIMEOUT))
        .await
        .unwrap()
        .expect("the V1 store was not refused");
    assert!(!status.success(), "the V1 store exited with {status}");
    assert!(
        stderr.contains("storage.api-version = 1") && stderr.contains("API V2"),
        "the refusal does not name both versions:\n{stderr}"
    );
    // PD did not register it, and the cluster still serves.
    assert_eq!(fleet.pd_api().stores().unwrap().len(), stores_before);
    let client = fleet.raw_client().await.unwrap();
    client
        .put("still".to_owned(), "serving".to_owned())
        .await
        .unwrap();
    assert_eq!(
        client.get("still".to_owned()).await.unwrap(),
        Some(b"serving".to_vec())
    );
}

/// API V1 serves transactional clients too (keys as given, no keyspace); PD's tail boundary
/// is a key they can decode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_v1_cluster_serves_transactions_without_keyspace() {
    let fleet = Fleet::start(FleetOptions::api_v1()).await.unwrap();
    let client = fleet.txn_client().await.unwrap();
    let mut txn = client.begin_optimistic().await.unwrap();
    for i in 0..10 {
        txn.put(format!("acct{i}"), format!("{}", i * 10))
            .await
            .unwrap();
    }
    txn.commit().await.unwrap();

    let mut read = client.begin_optimistic().await.unwrap();
    assert_eq!(
        read.get("acct3".to_owned()).await.unwrap(),
        Some(b"30".to_vec())
    );
    let keys: Vec<Vec<u8>> = read
        .scan_keys("acct".to_owned().."acct5".to_owned(), 100)
        .await
        .unwrap()
        .map(Vec::<u8>::from)
        .collect();
    let expected: Vec<Vec<u8>> = (0..5).map(|i| format!("acct{i}").into_bytes()).collect();
    assert_eq!(keys, expected);
    read.rollback().await.unwrap();
}
