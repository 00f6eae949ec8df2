//! Stores started in-process against a real PD on 127.0.0.1: bootstrap, identity checks,
//! restarts, the status server and replication over the network transport.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::DEADLINE;
use pd_client::PdClient;
use proto::kvrpcpb::{ApiVersion, Context, RawGetRequest, RawPutRequest};
use proto::tikvpb::tikv_client::TikvClient;
use server::status::StatusReport;
use server::{Config, ServerError, ServerHandle};

async fn start_pd(dir: &Path, replicas: u64) -> pd::RunningPd {
    let mut cfg = pd::Config {
        data_dir: dir.to_path_buf(),
        client_urls: "http://127.0.0.1:0".into(),
        http_addr: "127.0.0.1:0".into(),
        ..Default::default()
    };
    cfg.schedule.schedule_interval = Duration::from_millis(100);
    cfg.schedule.max_replicas = replicas;
    cfg.schedule.enable_balance_leader = false;
    cfg.schedule.enable_balance_region = false;
    cfg.schedule.enable_keyspace_split = false;
    pd::PdServer::start(cfg).await.unwrap()
}

fn store_config(pd: &pd::RunningPd, data_dir: &Path) -> Config {
    let mut cfg = Config::default();
    cfg.server.addr = "127.0.0.1:0".into();
    cfg.server.status_addr = "127.0.0.1:0".into();
    cfg.storage.data_dir = data_dir.to_path_buf();
    cfg.pd.endpoints = vec![pd.grpc_addr().to_string()];
    cfg.pd.start_timeout = Duration::from_secs(10);
    cfg.raftstore = raftstore::Config::for_tests();
    cfg
}

async fn pd_client(pd: &pd::RunningPd) -> PdClient {
    PdClient::connect(pd_client::Config::new(vec![pd.grpc_addr().to_string()]))
        .await
        .unwrap()
}

/// The body of a GET on the status server (a bare HTTP/1.1 exchange keeps the test free of
/// an HTTP client crate).
async fn http_get(handle: &ServerHandle, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(handle.status_addr)
        .await
        .unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    resp.split_once("\r\n\r\n").unwrap().1.to_string()
}

async fn status(handle: &ServerHandle) -> StatusReport {
    serde_json::from_str(&http_get(handle, "/status").await).unwrap()
}

async fn wait_for<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A raw API V2 key (keyspace 0).
fn raw_key(k: &[u8]) -> Vec<u8> {
    [b"r\0\0\0".as_slice(), k].concat()
}

/// Writes through the region's leader as PD reports it, retrying while leadership settles.
async fn raw_put(pd: &PdClient, key: &[u8], value: &[u8]) {
    wait_for("a successful raw put", || async {
        let (region, leader) = pd.get_region(b"").await.ok()?;
        let leader = leader?;
        let store = pd.get_store(leader.store_id).await.ok()?;
        let mut client = TikvClient::connect(format!("http://{}", store.address))
            .await
            .ok()?;
        let resp = client
            .raw_put(RawPutRequest {
                context: Some(context(&region, leader)),
                key: raw_key(key),
                value: value.to_vec(),
                ..Default::default()
            })
            .await
            .ok()?
            .into_inner();
        (resp.region_error.is_none() && resp.error.is_empty()).then_some(())
    })
    .await
}

async fn raw_get(pd: &PdClient, key: &[u8]) -> Option<Vec<u8>> {
    wait_for("a successful raw get", || async {
        let (region, leader) = pd.get_region(b"").await.ok()?;
        let leader = leader?;
        let store = pd.get_store(leader.store_id).await.ok()?;
        let mut client = TikvClient::connect(format!("http://{}", store.address))
            .await
            .ok()?;
        let resp = client
            .raw_get(RawGetRequest {
                context: Some(context(&region, leader)),
                key: raw_key(key),
                ..Default::default()
            })
            .await
            .ok()?
            .into_inner();
        if resp.region_error.is_some() || !resp.error.is_empty() {
            return None;
        }
        Some((!resp.not_found).then_some(resp.value))
    })
    .await
}

fn context(region: &proto::metapb::Region, leader: proto::metapb::Peer) -> Context {
    Context {
        region_id: region.id,
        region_epoch: region.region_epoch,
        peer: Some(leader),
        api_version: ApiVersion::V2 as i32,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_first_store_bootstraps_the_cluster_and_keeps_its_data_across_restarts() {
    let pd_dir = tempfile::tempdir().unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    let pd = start_pd(pd_dir.path(), 1).await;
    let client = pd_client(&pd).await;

    let handle = ServerHandle::start(store_config(&pd, store_dir.path()))
        .await
        .unwrap();
    let store_id = handle.store_id;
    assert_eq!(handle.cluster_id, pd.cluster_id());
    assert_eq!(
        handle.ready_line(),
        format!(
            "STORE_READY store_id={store_id} addr={} status={}",
            handle.grpc_addr, handle.status_addr
        )
    );
    assert!(client.is_bootstrapped().await.unwrap());
    let registered = client.get_store(store_id).await.unwrap();
    assert_eq!(registered.address, handle.advertise_addr);
    assert_eq!(registered.status_address, handle.status_addr.to_string());
    let (region, _) = client.get_region(b"").await.unwrap();
    assert_eq!(region.peers.len(), 1);
    assert_eq!(region.peers[0].store_id, store_id);
    assert!(store_dir.path().join("store.toml").exists());

    let report = wait_for("the store to lead its region", || async {
        let r = status(&handle).await;
        (r.leader_count == 1).then_some(r)
    })
    .await;
    assert_eq!(report.store_id, store_id);
    assert_eq!(report.cluster_id, pd.cluster_id());
    assert_eq!(report.region_count, 1);

    raw_put(&client, b"k1", b"v1").await;
    assert_eq!(raw_get(&client, b"k1").await, Some(b"v1".to_vec()));
    let metrics = http_get(&handle, "/metrics").await;
    assert!(metrics.contains("shoal_grpc_requests_total"), "{metrics}");

    // A second process on the same directory is refused while the first runs.
    let err = ServerHandle::start(store_config(&pd, store_dir.path()))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, ServerError::Lock(_)), "{err}");

    handle.shutdown().await;
    let again = ServerHandle::start(store_config(&pd, store_dir.path()))
        .await
        .unwrap();
    assert_eq!(again.store_id, store_id);
    assert_eq!(raw_get(&client, b"k1").await, Some(b"v1".to_vec()));
    again.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_data_dir_of_another_cluster_is_refused() {
    let store_dir = tempfile::tempdir().unwrap();
    let first_dir = tempfile::tempdir().unwrap();
    let first = start_pd(first_dir.path(), 1).await;
    let handle = ServerHandle::start(store_config(&first, store_dir.path()))
        .await
        .unwrap();
    handle.shutdown().await;

    let other_dir = tempfile::tempdir().unwrap();
    let other = start_pd(other_dir.path(), 1).await;
    assert_ne!(other.cluster_id(), first.cluster_id());
    let err = ServerHandle::start(store_config(&other, store_dir.path()))
        .await
        .err()
        .unwrap();
    match err {
        ServerError::ClusterMismatch { local, pd, .. } => {
            assert_eq!(local, first.cluster_id());
            assert_eq!(pd, other.cluster_id());
        }
        other => panic!("unexpected {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_stores_bootstrap_one_region_and_replicate_it_over_the_network() {
    let pd_dir = tempfile::tempdir().unwrap();
    let pd = start_pd(pd_dir.path(), 3).await;
    let client = pd_client(&pd).await;
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    // All three race to bootstrap the cluster.
    let starts: Vec<_> = dirs
        .iter()
        .map(|d| tokio::spawn(ServerHandle::start(store_config(&pd, d.path()))))
        .collect();
    let mut handles = Vec::new();
    for s in starts {
        handles.push(s.await.unwrap().unwrap());
    }
    let (first_region, _) = client.get_region(b"").await.unwrap();
    // Losers removed the region they prepared: every local region is the one PD knows.
    for h in &handles {
        let meta = h.store().meta().lock();
        assert!(
            meta.regions().all(|r| r.id == first_region.id),
            "store {} kept a region PD does not know",
            h.store_id
        );
    }
    raw_put(&client, b"before", b"replication").await;

    // PD's replica checker adds a peer on each other store; they catch up by snapshot or
    // log over the gRPC transport.
    wait_for("three replicas", || async {
        let (region, _) = client.get_region_by_id(first_region.id).await.ok()??;
        (region.peers.len() == 3).then_some(())
    })
    .await;
    for h in &handles {
        wait_for("every store to hold the region", || async {
            (status(h).await.region_count == 1).then_some(())
        })
        .await;
    }
    // New peers start empty, so each gets the region by a snapshot over the network.
    wait_for("two snapshots sent and received", || async {
        let sent = server::metrics::SNAPSHOT_SENDS
            .with_label_values(&["ok"])
            .get();
        let received = server::metrics::SNAPSHOT_RECEIVES
            .with_label_values(&["ok"])
            .get();
        (sent >= 2 && received >= 2).then_some(())
    })
    .await;
    raw_put(&client, b"after", b"replication").await;
    assert_eq!(
        raw_get(&client, b"before").await,
        Some(b"replication".to_vec())
    );
    for h in handles {
        h.shutdown().await;
    }
}

/// Leaves `dir` as a crash right before the Bootstrap request would: identity and first
/// region written locally, PD never told. Returns the prepared region's id.
async fn crash_before_bootstrap(pd: &pd::RunningPd, dir: &Path) -> u64 {
    let client = pd_client(pd).await;
    let dirs = server::node::DataDirs::new(dir);
    dirs.create().unwrap();
    let (kv, raft) = dirs
        .open_engines(&Default::default(), &Default::default())
        .unwrap();
    let store_id = server::bootstrap::ensure_store_id(&kv, &client, dir)
        .await
        .unwrap();
    let region = server::bootstrap::prepare_first_region(&kv, &raft, &client, store_id)
        .await
        .unwrap();
    region.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_interrupted_bootstrap_is_finished_with_the_same_region() {
    let pd_dir = tempfile::tempdir().unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    let pd = start_pd(pd_dir.path(), 1).await;
    let prepared = crash_before_bootstrap(&pd, store_dir.path()).await;

    let handle = ServerHandle::start(store_config(&pd, store_dir.path()))
        .await
        .unwrap();
    let client = pd_client(&pd).await;
    let (region, _) = client.get_region(b"").await.unwrap();
    assert_eq!(region.id, prepared);
    assert!(server::bootstrap::pending_first_region(handle.store().kv())
        .unwrap()
        .is_none());
    raw_put(&client, b"k", b"v").await;
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_that_lost_the_bootstrap_race_before_crashing_drops_its_region() {
    let pd_dir = tempfile::tempdir().unwrap();
    let loser_dir = tempfile::tempdir().unwrap();
    let winner_dir = tempfile::tempdir().unwrap();
    let pd = start_pd(pd_dir.path(), 1).await;
    let prepared = crash_before_bootstrap(&pd, loser_dir.path()).await;
    let winner = ServerHandle::start(store_config(&pd, winner_dir.path()))
        .await
        .unwrap();

    let loser = ServerHandle::start(store_config(&pd, loser_dir.path()))
        .await
        .unwrap();
    assert_eq!(loser.store().meta().lock().region_count(), 0);
    let state = engine::KvRead::get_value_cf(
        loser.store().kv(),
        engine::CF_RAFT,
        &keys::region_state_key(prepared),
    );
    assert!(
        state.unwrap().is_none(),
        "the prepared region is still on disk"
    );
    assert!(server::bootstrap::pending_first_region(loser.store().kv())
        .unwrap()
        .is_none());
    let client = pd_client(&pd).await;
    assert_ne!(client.get_region(b"").await.unwrap().0.id, prepared);
    loser.shutdown().await;
    winner.shutdown().await;
}
