//! Helpers for PD's integration tests: an embedded PD on loopback ports, a gRPC client, a
//! minimal HTTP/1.1 client, and condition waits with deadlines.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use pd::{Config, PdServer, RunningPd};
use proto::metapb::{self, Peer, PeerRole, RegionEpoch};
use proto::pdpb::pd_client::PdClient;
use proto::pdpb::{self, RequestHeader};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::Channel;

/// A config for a PD on free loopback ports with quick scheduling.
pub fn test_config(dir: &Path) -> Config {
    let mut cfg = Config {
        data_dir: dir.to_path_buf(),
        client_urls: "http://127.0.0.1:0".into(),
        http_addr: "127.0.0.1:0".into(),
        ..Config::default()
    };
    cfg.schedule.schedule_interval = Duration::from_millis(50);
    cfg.schedule.operator_resend_interval = Duration::from_millis(200);
    cfg
}

pub async fn start(cfg: Config) -> RunningPd {
    PdServer::start(cfg).await.expect("PD starts")
}

pub async fn client(pd: &RunningPd) -> PdClient<Channel> {
    PdClient::connect(pd.client_url().to_string())
        .await
        .expect("connect to PD")
}

pub fn header(cluster_id: u64) -> Option<RequestHeader> {
    Some(RequestHeader {
        cluster_id,
        sender_id: 0,
    })
}

/// The error type in a response header (OK when there is none).
pub fn error_type(h: &Option<pdpb::ResponseHeader>) -> pdpb::ErrorType {
    let h = h.as_ref().expect("every response has a header");
    h.error
        .as_ref()
        .map(|e| pdpb::ErrorType::try_from(e.r#type).expect("known error type"))
        .unwrap_or(pdpb::ErrorType::Ok)
}

pub async fn alloc_id(c: &mut PdClient<Channel>, cluster_id: u64) -> u64 {
    let resp = c
        .alloc_id(pdpb::AllocIdRequest {
            header: header(cluster_id),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(error_type(&resp.header), pdpb::ErrorType::Ok);
    resp.id
}

pub fn peer(id: u64, store_id: u64) -> Peer {
    Peer {
        id,
        store_id,
        role: PeerRole::Voter as i32,
        is_witness: false,
    }
}

pub fn store(id: u64) -> metapb::Store {
    metapb::Store {
        id,
        address: format!("127.0.0.1:{}", 30000 + id),
        version: "0.1.0".into(),
        ..Default::default()
    }
}

/// Bootstraps with store `store_id` and a single-peer region covering everything.
pub async fn bootstrap(
    c: &mut PdClient<Channel>,
    cluster_id: u64,
    store_id: u64,
) -> metapb::Region {
    let region_id = alloc_id(c, cluster_id).await;
    let peer_id = alloc_id(c, cluster_id).await;
    let region = metapb::Region {
        id: region_id,
        start_key: vec![],
        end_key: vec![],
        region_epoch: Some(RegionEpoch {
            conf_ver: 1,
            version: 1,
        }),
        peers: vec![peer(peer_id, store_id)],
    };
    let resp = c
        .bootstrap(pdpb::BootstrapRequest {
            header: header(cluster_id),
            store: Some(store(store_id)),
            region: Some(region.clone()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(error_type(&resp.header), pdpb::ErrorType::Ok);
    region
}

pub async fn put_store(c: &mut PdClient<Channel>, cluster_id: u64, id: u64) {
    let resp = c
        .put_store(pdpb::PutStoreRequest {
            header: header(cluster_id),
            store: Some(store(id)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(error_type(&resp.header), pdpb::ErrorType::Ok);
}

pub async fn store_heartbeat(c: &mut PdClient<Channel>, cluster_id: u64, id: u64) {
    let resp = c
        .store_heartbeat(pdpb::StoreHeartbeatRequest {
            header: header(cluster_id),
            stats: Some(pdpb::StoreStats {
                store_id: id,
                capacity: 100 << 30,
                available: 50 << 30,
                used_size: 1 << 20,
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(error_type(&resp.header), pdpb::ErrorType::Ok);
}

/// Polls `check` until it yields a value or `timeout` passes (then panics with `what`).
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One HTTP/1.1 exchange; returns the status code and the body.
pub async fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, rest) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    (status, body)
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    loop {
        let Some((size, after)) = rest.split_once("\r\n") else {
            return out;
        };
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
}

pub async fn http_json(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let (status, body) = http(addr, method, path, body).await;
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    (status, json)
}
