//! Region heartbeats, keyspace splits, split reports, and a restart on the same data dir.

mod common;

use std::time::Duration;

use common::*;
use keys::encode_bytes;
use pd::RunningPd;
use proto::metapb::{self, RegionEpoch};
use proto::pdpb::pd_client::PdClient;
use proto::pdpb::{self, CheckPolicy, ErrorType, RegionHeartbeatRequest, RegionHeartbeatResponse};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic::Streaming;

const WAIT: Duration = Duration::from_secs(10);

fn boundaries() -> Vec<Vec<u8>> {
    vec![
        encode_bytes(b"r\0\0\0"),
        encode_bytes(b"r\0\0\x01"),
        encode_bytes(b"x\0\0\0"),
        encode_bytes(b"x\0\0\x01"),
    ]
}

struct HeartbeatStream {
    tx: mpsc::Sender<RegionHeartbeatRequest>,
    rx: Streaming<RegionHeartbeatResponse>,
}

async fn open_heartbeats(c: &mut PdClient<Channel>) -> HeartbeatStream {
    let (tx, rx) = mpsc::channel(16);
    let resp = c
        .region_heartbeat(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    HeartbeatStream { tx, rx: resp }
}

fn heartbeat(cid: u64, region: &metapb::Region) -> RegionHeartbeatRequest {
    RegionHeartbeatRequest {
        header: header(cid),
        region: Some(region.clone()),
        leader: Some(region.peers[0]),
        approximate_size: 1024,
        approximate_keys: 10,
        term: 5,
        ..Default::default()
    }
}

/// Splits `parent` at `keys` the way a store does: the parent keeps the leftmost range, every
/// piece gets the version bumped by the number of new regions.
async fn split(
    c: &mut PdClient<Channel>,
    cid: u64,
    parent: &metapb::Region,
    keys: &[Vec<u8>],
) -> Vec<metapb::Region> {
    let ids = c
        .ask_batch_split(pdpb::AskBatchSplitRequest {
            header: header(cid),
            region: Some(parent.clone()),
            split_count: keys.len() as u32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(error_type(&ids.header), ErrorType::Ok);
    assert_eq!(ids.ids.len(), keys.len());
    let mut epoch = parent.region_epoch.unwrap();
    epoch.version += keys.len() as u64;
    let mut out = vec![metapb::Region {
        end_key: keys[0].clone(),
        region_epoch: Some(epoch),
        ..parent.clone()
    }];
    for (i, split) in ids.ids.iter().enumerate() {
        assert_eq!(split.new_peer_ids.len(), parent.peers.len());
        out.push(metapb::Region {
            id: split.new_region_id,
            start_key: keys[i].clone(),
            end_key: keys.get(i + 1).cloned().unwrap_or_default(),
            region_epoch: Some(epoch),
            peers: parent
                .peers
                .iter()
                .zip(&split.new_peer_ids)
                .map(|(p, id)| peer(*id, p.store_id))
                .collect(),
        });
    }
    let resp = c
        .report_batch_split(pdpb::ReportBatchSplitRequest {
            header: header(cid),
            regions: out.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(error_type(&resp.header), ErrorType::Ok);
    out
}

async fn region_of(c: &mut PdClient<Channel>, cid: u64, key: &[u8]) -> pdpb::GetRegionResponse {
    c.get_region(pdpb::GetRegionRequest {
        header: header(cid),
        region_key: key.to_vec(),
        need_buckets: false,
    })
    .await
    .unwrap()
    .into_inner()
}

async fn metric(pd: &RunningPd, line_prefix: &str) -> u64 {
    let (_, text) = http(pd.http_addr(), "GET", "/metrics", None).await;
    text.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyspace_split_report_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let pd = start(test_config(dir.path())).await;
    let cid = pd.cluster_id();
    let mut c = client(&pd).await;
    let store_id = alloc_id(&mut c, cid).await;
    let first = bootstrap(&mut c, cid, store_id).await;
    store_heartbeat(&mut c, cid, store_id).await;

    // The whole-keyspace region spans the default keyspace's boundaries: PD asks to split.
    let mut hb = open_heartbeats(&mut c).await;
    hb.tx.send(heartbeat(cid, &first)).await.unwrap();
    let step = hb.rx.next().await.unwrap().unwrap();
    assert_eq!(error_type(&step.header), ErrorType::Ok);
    assert_eq!(step.region_id, first.id);
    assert_eq!(step.region_epoch, first.region_epoch);
    assert_eq!(step.target_peer, Some(first.peers[0]));
    let split_step = step.split_region.unwrap();
    assert_eq!(split_step.policy, CheckPolicy::Usekey as i32);
    assert_eq!(split_step.keys, boundaries());

    // The store splits and reports: PD knows the new regions at once.
    let regions = split(&mut c, cid, &first, &split_step.keys).await;
    let mut raw_key = b"r\0\0\0".to_vec();
    raw_key.extend_from_slice(b"user-key");
    let got = region_of(&mut c, cid, &encode_bytes(&raw_key)).await;
    assert_eq!(error_type(&got.header), ErrorType::Ok);
    assert_eq!(got.region.as_ref().unwrap(), &regions[1]);
    assert_eq!(
        got.leader.unwrap().store_id,
        store_id,
        "split regions start led where the parent was"
    );
    let last = region_of(&mut c, cid, &encode_bytes(b"zzz")).await;
    assert_eq!(last.region.unwrap().id, regions[4].id);

    // A late heartbeat from before the split is ignored.
    hb.tx.send(heartbeat(cid, &first)).await.unwrap();
    wait_for("the stale heartbeat to be counted", WAIT, || async {
        (metric(&pd, "shoal_pd_region_heartbeats_total{result=\"stale\"}").await >= 1).then_some(())
    })
    .await;
    let still = region_of(&mut c, cid, &encode_bytes(&raw_key)).await;
    assert_eq!(still.region.unwrap().id, regions[1].id);

    // The parent's next heartbeat shows the split done; the operator ends.
    hb.tx.send(heartbeat(cid, &regions[0])).await.unwrap();
    wait_for("the split operator to finish", WAIT, || async {
        let (_, ops) = http_json(pd.http_addr(), "GET", "/pd/api/v1/operators", None).await;
        let list = ops["operators"].as_array().cloned().unwrap_or_default();
        list.iter()
            .any(|o| o["kind"] == "split" && o["status"] == "finished")
            .then_some(())
    })
    .await;
    let (status, body) = http_json(pd.http_addr(), "GET", "/pd/api/v1/regions", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["count"], 5);

    // ScanRegions returns metas, leaders and regions side by side.
    let scan = c
        .scan_regions(pdpb::ScanRegionsRequest {
            header: header(cid),
            start_key: vec![],
            limit: 3,
            end_key: vec![],
            need_buckets: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(scan.region_metas.len(), 3);
    assert_eq!(scan.leaders.len(), 3);
    assert_eq!(scan.regions.len(), 3);
    assert_eq!(scan.region_metas[0].id, regions[0].id);

    let last_id = alloc_id(&mut c, cid).await;
    let last_ts = tso_once(&mut c, cid).await;
    drop(hb);
    drop(c);
    pd.shutdown().await.unwrap();

    // Same data dir, new ports: everything PD knew is still there, nothing goes back.
    let pd = start(test_config(dir.path())).await;
    assert_eq!(pd.cluster_id(), cid);
    let mut c = client(&pd).await;
    let got = region_of(&mut c, cid, &encode_bytes(&raw_key)).await;
    assert_eq!(got.region.unwrap(), regions[1]);
    assert_eq!(got.leader.unwrap().store_id, store_id);
    let s = c
        .get_store(pdpb::GetStoreRequest {
            header: header(cid),
            store_id,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.store.unwrap().address, store(store_id).address);
    assert!(alloc_id(&mut c, cid).await > last_id);
    assert!(tso_once(&mut c, cid).await > last_ts);
    let (_, body) = http_json(pd.http_addr(), "GET", "/pd/api/v1/regions", None).await;
    assert_eq!(body["count"], 5);
    pd.shutdown().await.unwrap();
}

async fn tso_once(c: &mut PdClient<Channel>, cid: u64) -> u64 {
    let req = pdpb::TsoRequest {
        header: header(cid),
        count: 1,
        dc_location: String::new(),
    };
    let mut out = c
        .tso(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let ts = out.next().await.unwrap().unwrap().timestamp.unwrap();
    ((ts.physical as u64) << 18) | ts.logical as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_inside_one_keyspace_range_gets_no_split() {
    let dir = tempfile::tempdir().unwrap();
    let pd = start(test_config(dir.path())).await;
    let cid = pd.cluster_id();
    let mut c = client(&pd).await;
    let store_id = alloc_id(&mut c, cid).await;
    let first = bootstrap(&mut c, cid, store_id).await;
    let regions = split(&mut c, cid, &first, &boundaries()).await;
    let mut hb = open_heartbeats(&mut c).await;
    // Regions that already end at the boundaries are left alone; the heartbeat of a region that
    // still spans one (built here by hand) is answered. Answers come in order, so the only
    // answer proves the others got none.
    for r in &regions {
        hb.tx.send(heartbeat(cid, r)).await.unwrap();
    }
    let spanning = metapb::Region {
        id: alloc_id(&mut c, cid).await,
        start_key: encode_bytes(b"y"),
        end_key: vec![],
        region_epoch: Some(RegionEpoch {
            conf_ver: 1,
            version: 100,
        }),
        peers: vec![peer(alloc_id(&mut c, cid).await, store_id)],
    };
    // This region is past every boundary, and so needs nothing either; then one that does.
    hb.tx.send(heartbeat(cid, &spanning)).await.unwrap();
    let mut wide = regions[4].clone();
    wide.start_key = encode_bytes(b"a");
    wide.region_epoch = Some(RegionEpoch {
        conf_ver: 1,
        version: 200,
    });
    hb.tx.send(heartbeat(cid, &wide)).await.unwrap();
    let step = hb.rx.next().await.unwrap().unwrap();
    assert_eq!(step.region_id, wide.id);
    assert_eq!(step.split_region.unwrap().keys, boundaries());
    pd.shutdown().await.unwrap();
}
