//! Operators end to end over gRPC: a simulated store applies each step PD sends and reports
//! the region again, the way a real leader does, so the replica checker, decommissioning and
//! administrator operators run through the real heartbeat streams and scheduler loop.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use pd::RunningPd;
use proto::metapb::{self, PeerRole, StoreState};
use proto::pdpb::pd_client::PdClient;
use proto::pdpb::{
    self, ConfChangeType, ErrorType, RegionHeartbeatRequest, RegionHeartbeatResponse,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

const WAIT: Duration = Duration::from_secs(20);

/// One region as its (simulated) leader sees it.
struct SimRegion {
    meta: metapb::Region,
    leader: u64,
}

impl SimRegion {
    fn leader_peer(&self) -> metapb::Peer {
        *self
            .meta
            .peers
            .iter()
            .find(|p| p.id == self.leader)
            .unwrap()
    }

    fn voter_stores(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .meta
            .peers
            .iter()
            .filter(|p| p.role == PeerRole::Voter as i32)
            .map(|p| p.store_id)
            .collect();
        v.sort();
        v
    }

    /// Applies one step the way a store would: only for the current epoch.
    fn apply(&mut self, step: &RegionHeartbeatResponse) {
        if step.region_id != self.meta.id || step.region_epoch != self.meta.region_epoch {
            return;
        }
        let epoch = self.meta.region_epoch.as_mut().unwrap();
        if let Some(cp) = &step.change_peer_v2 {
            assert_eq!(cp.changes.len(), 1, "PD sends one change at a time");
            let change = &cp.changes[0];
            let peer = change.peer.unwrap();
            let kind = ConfChangeType::try_from(change.change_type).unwrap();
            let peers = &mut self.meta.peers;
            match kind {
                ConfChangeType::AddLearnerNode => {
                    assert_eq!(peer.role, PeerRole::Learner as i32);
                    assert!(peers.iter().all(|p| p.store_id != peer.store_id));
                    peers.push(peer);
                }
                ConfChangeType::AddNode => {
                    let p = peers.iter_mut().find(|p| p.id == peer.id).unwrap();
                    p.role = PeerRole::Voter as i32;
                }
                ConfChangeType::RemoveNode => {
                    assert_ne!(peer.id, self.leader, "the leader is never removed directly");
                    peers.retain(|p| p.id != peer.id);
                }
            }
            epoch.conf_ver += 1;
        }
        if let Some(t) = &step.transfer_leader {
            self.leader = t.peer.unwrap().id;
        }
    }
}

/// Heartbeat streams of every store, their answers merged into one queue.
struct Stores {
    cid: u64,
    senders: HashMap<u64, mpsc::Sender<RegionHeartbeatRequest>>,
    steps: mpsc::Receiver<RegionHeartbeatResponse>,
}

impl Stores {
    async fn open(c: &mut PdClient<Channel>, cid: u64, ids: &[u64]) -> Stores {
        let (step_tx, steps) = mpsc::channel(256);
        let mut senders = HashMap::new();
        for id in ids {
            let (tx, rx) = mpsc::channel(16);
            let mut responses = c
                .region_heartbeat(ReceiverStream::new(rx))
                .await
                .unwrap()
                .into_inner();
            let step_tx = step_tx.clone();
            tokio::spawn(async move {
                while let Some(Ok(resp)) = responses.next().await {
                    if step_tx.send(resp).await.is_err() {
                        break;
                    }
                }
            });
            senders.insert(*id, tx);
        }
        Stores {
            cid,
            senders,
            steps,
        }
    }

    async fn report(&self, r: &SimRegion) {
        let leader = r.leader_peer();
        let req = RegionHeartbeatRequest {
            header: header(self.cid),
            region: Some(r.meta.clone()),
            leader: Some(leader),
            term: 2,
            ..Default::default()
        };
        self.senders[&leader.store_id].send(req).await.unwrap();
    }

    /// Reports the region and applies what PD answers until `done` holds.
    async fn drive<F, Fut>(&mut self, what: &str, r: &mut SimRegion, mut done: F)
    where
        F: FnMut(&SimRegion) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + WAIT;
        loop {
            if done(r).await {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            self.report(r).await;
            // PD answers a report or pushes steps on its own; either is applied, and silence
            // just means another report.
            if let Ok(Some(step)) =
                tokio::time::timeout(Duration::from_millis(200), self.steps.recv()).await
            {
                assert_eq!(error_type(&step.header), ErrorType::Ok);
                r.apply(&step);
            }
        }
    }
}

async fn store_state(pd: &RunningPd, id: u64) -> String {
    let (_, body) = http_json(
        pd.http_addr(),
        "GET",
        &format!("/pd/api/v1/store/{id}"),
        None,
    )
    .await;
    body["store"]["state_name"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_are_added_a_store_is_decommissioned_and_admin_operators_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.schedule.enable_keyspace_split = false;
    let pd = start(cfg).await;
    let cid = pd.cluster_id();
    let mut c = client(&pd).await;
    let s1 = alloc_id(&mut c, cid).await;
    let meta = bootstrap(&mut c, cid, s1).await;
    let mut ids = vec![s1];
    for _ in 0..3 {
        let id = alloc_id(&mut c, cid).await;
        put_store(&mut c, cid, id).await;
        ids.push(id);
    }
    for id in &ids {
        store_heartbeat(&mut c, cid, *id).await;
    }
    let (s2, s3, s4) = (ids[1], ids[2], ids[3]);
    let mut stores = Stores::open(&mut c, cid, &ids).await;
    let mut region = SimRegion {
        leader: meta.peers[0].id,
        meta,
    };

    // One voter, max-replicas 3: learners are added on the emptiest stores and promoted.
    stores
        .drive("three voters", &mut region, |r| {
            let n = r.voter_stores().len();
            async move { n == 3 }
        })
        .await;
    assert_eq!(region.voter_stores(), vec![s1, s2, s3]);

    // Decommission store 3: its peer is replaced on store 4, then store 3 is a tombstone.
    let (status, body) = http_json(
        pd.http_addr(),
        "DELETE",
        &format!("/pd/api/v1/store/{s3}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["store"]["state_name"], "Offline");
    stores
        .drive("store 3 to be drained", &mut region, |r| {
            let v = r.voter_stores();
            async move { v == vec![s1, s2, s4] }
        })
        .await;
    let pd_ref = &pd;
    stores
        .drive(
            "store 3 to become a tombstone",
            &mut region,
            |_| async move { store_state(pd_ref, s3).await == "Tombstone" },
        )
        .await;
    let all = c
        .get_all_stores(pdpb::GetAllStoresRequest {
            header: header(cid),
            exclude_tombstone_stores: false,
        })
        .await
        .unwrap()
        .into_inner();
    let gone = all.stores.iter().find(|s| s.id == s3).unwrap();
    assert_eq!(gone.state, StoreState::Tombstone as i32);
    let kept = c
        .get_all_stores(pdpb::GetAllStoresRequest {
            header: header(cid),
            exclude_tombstone_stores: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(kept.stores.iter().all(|s| s.id != s3));
    let refused = c
        .put_store(pdpb::PutStoreRequest {
            header: header(cid),
            store: Some(store(s3)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(error_type(&refused.header), ErrorType::StoreTombstone);

    // An administrator moves the leader.
    let body = format!(
        r#"{{"name":"transfer-leader","region_id":{},"to_store_id":{s4}}}"#,
        region.meta.id
    );
    let (status, op) = http_json(pd.http_addr(), "POST", "/pd/api/v1/operators", Some(&body)).await;
    assert_eq!(status, 200, "{op}");
    assert_eq!(op["kind"], "admin");
    stores
        .drive("the leader to move to store 4", &mut region, |r| {
            let leader_store = r.leader_peer().store_id;
            async move { leader_store == s4 }
        })
        .await;

    // Invalid administrator requests are refused with a reason.
    for bad in [
        format!(
            r#"{{"name":"add-peer","region_id":{},"store_id":{s1}}}"#,
            region.meta.id
        ),
        r#"{"name":"add-peer","region_id":999999,"store_id":1}"#.to_string(),
        format!(
            r#"{{"name":"remove-peer","region_id":{},"store_id":{s3}}}"#,
            region.meta.id
        ),
        r#"{"name":"teleport"}"#.to_string(),
        "not json".to_string(),
    ] {
        let (status, body) =
            http_json(pd.http_addr(), "POST", "/pd/api/v1/operators", Some(&bad)).await;
        assert_eq!(status, 400, "{bad}");
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    pd.shutdown().await.unwrap();
}
