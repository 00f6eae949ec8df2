//! Crashes and restarts: a store killed with SIGKILL in the middle of writes, and PD
//! restarted under a serving cluster.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shoal_fleet_tests::keyspace::pd_key;
use shoal_fleet_tests::pd_grpc::PdGrpc;
use shoal_fleet_tests::{
    configs, data, region_json, store_json, wait_for, wait_until, wait_until_async, Fleet,
    FleetOptions,
};
use tikv_client::RawClient;

const VALUE_LEN: usize = 64;
const WRITERS: usize = 4;

/// Writers that keep putting `w<task>-<seq>` keys and remember which puts were acknowledged.
struct Writers {
    count: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Vec<usize>>>,
}

fn writer_key(task: usize, seq: usize) -> Vec<u8> {
    data::key(&format!("w{task}-"), seq)
}

impl Writers {
    fn start(client: &RawClient) -> Writers {
        let count = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..WRITERS)
            .map(|task| {
                let client = client.clone();
                let count = Arc::clone(&count);
                let stop = Arc::clone(&stop);
                tokio::spawn(async move {
                    let mut acked = Vec::new();
                    let mut seq = 0;
                    while !stop.load(Ordering::Acquire) {
                        let put = client.put(writer_key(task, seq), data::value(seq, VALUE_LEN));
                        // A failed put may or may not have been applied; only acknowledged
                        // ones are promised.
                        if put.await.is_ok() {
                            acked.push(seq);
                            count.fetch_add(1, Ordering::AcqRel);
                        }
                        seq += 1;
                    }
                    acked
                })
            })
            .collect();
        Writers { count, stop, tasks }
    }

    fn acked_count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    async fn wait_for_more(&self, more: usize, what: &str) {
        let target = self.acked_count() + more;
        wait_until(Duration::from_secs(90), what, || {
            self.acked_count() >= target
        })
        .await;
    }

    /// Stops the writers and returns every acknowledged `(task, seq)`.
    async fn stop(self) -> Vec<(usize, usize)> {
        self.stop.store(true, Ordering::Release);
        let mut all = Vec::new();
        for (task, handle) in self.tasks.into_iter().enumerate() {
            let acked = handle.await.expect("writer task");
            all.extend(acked.into_iter().map(|seq| (task, seq)));
        }
        all
    }
}

/// Store index holding the most region leaders, per PD.
fn busiest_leader_store(fleet: &Fleet) -> usize {
    let mut leaders: HashMap<u64, usize> = HashMap::new();
    for r in fleet.regions().unwrap() {
        if let Some(store) = region_json::leader_store(&r) {
            *leaders.entry(store).or_default() += 1;
        }
    }
    let (store, _) = leaders
        .into_iter()
        .max_by_key(|(store, n)| (*n, *store))
        .expect("some region has a leader");
    fleet.store_index(store).expect("leader on a fleet store")
}

async fn read_back(client: &RawClient, acked: &[(usize, usize)]) {
    for chunk in acked.chunks(500) {
        let keys: Vec<Vec<u8>> = chunk.iter().map(|(t, s)| writer_key(*t, *s)).collect();
        let pairs = data::retry("batch_get acknowledged keys", || {
            client.batch_get(keys.clone())
        })
        .await
        .unwrap();
        let found: HashMap<Vec<u8>, Vec<u8>> =
            pairs.into_iter().map(|p| (p.0.into(), p.1)).collect();
        for (task, seq) in chunk {
            let key = writer_key(*task, *seq);
            assert_eq!(
                found.get(&key),
                Some(&data::value(*seq, VALUE_LEN)),
                "acknowledged write {} lost",
                String::from_utf8_lossy(&key)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_killed_store() {
    let mut fleet = Fleet::start(FleetOptions::default()).await.unwrap();
    let client = fleet.raw_client().await.unwrap();
    let writers = Writers::start(&client);
    writers
        .wait_for_more(200, "200 writes before the kill")
        .await;

    let victim = busiest_leader_store(&fleet);
    fleet.kill_store(victim).unwrap();
    writers
        .wait_for_more(200, "200 more writes with a store down")
        .await;

    fleet.restart_store(victim).await.unwrap();
    writers
        .wait_for_more(100, "100 more writes after the restart")
        .await;
    let acked = writers.stop().await;
    assert!(acked.len() >= 500, "{} writes acknowledged", acked.len());

    read_back(&client, &acked).await;
    // The restarted store rejoins: every region has three voters and a leader again.
    fleet
        .wait_settled(3, Duration::from_secs(120))
        .await
        .unwrap();
    read_back(&client, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_pd_keeps_ids_and_timestamps_increasing() {
    let mut fleet = Fleet::start(FleetOptions::default()).await.unwrap();
    let client = fleet.raw_client().await.unwrap();
    data::load(&client, "before", 0..200, 100, VALUE_LEN)
        .await
        .unwrap();

    let mut pd = PdGrpc::connect(&fleet.pd_grpc).await.unwrap();
    let cluster_id = pd.cluster_id();
    let ts_before = pd.tso().await.unwrap();
    let id_before = pd.alloc_id().await.unwrap();
    let max_region_id_before = fleet.max_region_id().unwrap();
    drop(pd);

    fleet.restart_pd().await.unwrap();

    let mut pd = wait_for(Duration::from_secs(30), "PD gRPC after restart", || async {
        PdGrpc::connect(&fleet.pd_grpc).await.ok()
    })
    .await;
    assert_eq!(
        pd.cluster_id(),
        cluster_id,
        "cluster id changed over a restart"
    );
    let ts_after = pd.tso().await.unwrap();
    let id_after = pd.alloc_id().await.unwrap();
    assert!(
        ts_after > ts_before,
        "TSO went from {ts_before} to {ts_after}"
    );
    assert!(
        id_after > id_before,
        "AllocID went from {id_before} to {id_after}"
    );

    // The existing client keeps working once it has reconnected.
    wait_until_async(
        Duration::from_secs(60),
        "a write after the PD restart",
        || async {
            client
                .put(b"after".to_vec(), b"pd restart".to_vec())
                .await
                .is_ok()
        },
    )
    .await;
    data::verify(&client, "before", 0..200, VALUE_LEN)
        .await
        .unwrap();
    fleet
        .wait_settled(3, Duration::from_secs(60))
        .await
        .unwrap();
    let stores = fleet.stores().unwrap();
    assert!(
        stores.iter().all(|s| store_json::state(s) == "Up"),
        "{stores:?}"
    );

    // A split after the restart gets a region id above everything handed out before.
    let split_key = pd_key(b"before00000100");
    let region = fleet
        .pd_get(&format!("region/key/{}", hex::encode(&split_key)))
        .unwrap();
    let region_id = region_json::id(&region);
    fleet
        .pd_post(
            "operators",
            &serde_json::json!({"name": "split-region", "region_id": region_id,
                "keys": [hex::encode(&split_key)]}),
        )
        .unwrap();
    // The split leaves one region ending and one starting at the key; one keeps the old id.
    let new_id = wait_for(Duration::from_secs(60), "the split to reach PD", || async {
        let regions = fleet.regions().ok()?;
        let left = regions
            .iter()
            .find(|r| region_json::end_key(r) == split_key)?;
        let right = regions
            .iter()
            .find(|r| region_json::start_key(r) == split_key)?;
        [region_json::id(left), region_json::id(right)]
            .into_iter()
            .find(|id| *id != region_id)
    })
    .await;
    assert!(
        new_id > id_after,
        "new region id {new_id} not above {id_after}"
    );
    assert!(
        new_id > max_region_id_before,
        "new region id {new_id} not above {max_region_id_before}"
    );
    data::verify(&client, "before", 0..200, VALUE_LEN)
        .await
        .unwrap();
}

/// PD's region (HTTP API object) holding user key `key`.
fn region_of(fleet: &Fleet, key: &[u8]) -> serde_json::Value {
    fleet
        .pd_get(&format!("region/key/{}", hex::encode(pd_key(key))))
        .unwrap()
}

/// Has PD move the leadership of `key`'s region to store index `to` and waits until PD
/// sees it there.
async fn move_leader(fleet: &Fleet, key: &[u8], to: usize) {
    let region = region_of(fleet, key);
    let region_id = region_json::id(&region);
    let to_store = fleet.store_id(to);
    if region_json::leader_store(&region) == Some(to_store) {
        return;
    }
    fleet
        .pd_post(
            "operators",
            &serde_json::json!({"name": "transfer-leader", "region_id": region_id,
                "to_store_id": to_store}),
        )
        .unwrap();
    wait_until(
        Duration::from_secs(60),
        &format!("region {region_id} led by store {to_store}"),
        || region_json::leader_store(&region_of(fleet, key)) == Some(to_store),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_recover_when_the_dead_leader_store_was_never_contacted() {
    let mut fleet = Fleet::start(FleetOptions {
        pd_config: configs::pd_config("enable-balance-leader = false"),
        ..FleetOptions::default()
    })
    .await
    .unwrap();
    fleet
        .wait_settled(3, Duration::from_secs(120))
        .await
        .unwrap();
    let first_key = data::key("k", 0);
    // While the client writes, the keys' region is led by store 0: the client connects to
    // store 0 only.
    move_leader(&fleet, &first_key, 0).await;
    let client = fleet.raw_client().await.unwrap();
    data::load(&client, "k", 0..100, 100, VALUE_LEN)
        .await
        .unwrap();
    // Then the leadership moves to store 1, which the client has never connected to, and
    // store 1 dies. Store 0's peer, asked first, still names the dead leader until a new
    // one is elected; the client caches that leader and cannot connect to it.
    move_leader(&fleet, &first_key, 1).await;
    fleet.kill_store(1).unwrap();
    let client = data::RenewedClient::new(&fleet, &client);
    data::verify(&client, "k", 0..100, VALUE_LEN).await.unwrap();
    data::load_and_verify(&client, "after", 0..100, 100, VALUE_LEN)
        .await
        .unwrap();
}

/// Leaders skip reports that would repeat the last one, and PD learns which heartbeat stream
/// reaches a store only from a report sent on it. After PD restarts, a store whose regions are
/// all idle must still report on the new stream, or PD cannot send it operator steps (before,
/// nothing went out for `pd-heartbeat-max-quiet-interval`, 10 minutes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_reach_idle_regions_after_a_pd_restart() {
    let mut fleet = Fleet::start(FleetOptions {
        pd_config: configs::pd_config(
            "enable-balance-leader = false\nenable-balance-region = false\n\
             enable-hot-region-scheduler = false\nmerge-schedule-limit = 0",
        ),
        ..FleetOptions::default()
    })
    .await
    .unwrap();
    let client = fleet.raw_client().await.unwrap();
    data::load(&client, "idle", 0..20, 20, VALUE_LEN)
        .await
        .unwrap();
    fleet
        .wait_settled(3, Duration::from_secs(120))
        .await
        .unwrap();
    let key = data::key("idle", 0);
    let leader_store = region_json::leader_store(&region_of(&fleet, &key)).unwrap();
    let leader = fleet.store_index(leader_store).unwrap();
    // Every leader of that store has gone quiet: its ticks skip their reports, and no
    // report has gone out for 2 s (many of its 300 ms ticks).
    let metric = |name: &str| fleet.store_metric(leader, name).unwrap_or(0.0);
    let skipped = metric("shoal_raftstore_region_heartbeats_skipped_total");
    let mut last_report = (
        metric("shoal_raftstore_region_heartbeats_total"),
        Instant::now(),
    );
    wait_until(
        Duration::from_secs(120),
        "the leader store's regions to stop reporting to PD",
        || {
            let reports = metric("shoal_raftstore_region_heartbeats_total");
            if reports != last_report.0 {
                last_report = (reports, Instant::now());
            }
            metric("shoal_raftstore_region_heartbeats_skipped_total") > skipped
                && last_report.1.elapsed() >= Duration::from_secs(2)
        },
    )
    .await;

    fleet.restart_pd().await.unwrap();
    wait_for(Duration::from_secs(30), "PD gRPC after restart", || async {
        PdGrpc::connect(&fleet.pd_grpc).await.ok()
    })
    .await;
    let to = (leader + 1) % fleet.store_count();
    // The region's leader must learn of the transfer from PD, without any write to it.
    move_leader(&fleet, &key, to).await;
    data::verify(&client, "idle", 0..20, VALUE_LEN)
        .await
        .unwrap();
}
