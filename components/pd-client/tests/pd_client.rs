//! The PD client against a tiny in-test PD on 127.0.0.1: discovery, headers, error
//! mapping, retries across a PD restart, and the heartbeat stream's reconnects.

mod mock_pd;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mock_pd::{MockPd, MockState};
use pd_client::{Config, Error, PdClient};
use proto::metapb;
use proto::pdpb::{self, ErrorType};

const DEADLINE: Duration = Duration::from_secs(30);

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn config(endpoints: Vec<String>) -> Config {
    Config {
        endpoints,
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(2),
        retry_limit: 40,
        tls: None,
    }
}

/// An address nothing listens on: bound once, then released.
fn dead_endpoint() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

#[test]
fn discovery_learns_the_cluster_id_and_skips_dead_endpoints() {
    let rt = runtime();
    let pd = MockPd::start(MockState::new(42), any_port());
    for endpoints in [
        vec![pd.endpoint()],
        vec![format!("http://{}", pd.endpoint())],
        vec![dead_endpoint(), pd.endpoint()],
    ] {
        let client = rt.block_on(PdClient::connect(config(endpoints))).unwrap();
        assert_eq!(client.cluster_id(), 42);
        assert_eq!(client.leader_url(), format!("http://{}", pd.endpoint()));
    }
}

#[test]
fn discovery_follows_the_advertised_leader() {
    let rt = runtime();
    let leader = MockPd::start(MockState::new(7), any_port());
    let follower_state = MockState::new(7);
    *follower_state.leader_url.lock() = Some(format!("http://{}", leader.endpoint()));
    let follower = MockPd::start(follower_state, any_port());

    let client = rt
        .block_on(PdClient::connect(config(vec![follower.endpoint()])))
        .unwrap();
    assert_eq!(client.leader_url(), format!("http://{}", leader.endpoint()));
    rt.block_on(client.alloc_id()).unwrap();
    assert_eq!(leader.state.requests.load(Ordering::SeqCst), 1);
    assert_eq!(follower.state.requests.load(Ordering::SeqCst), 0);
}

#[test]
fn connect_fails_clearly_when_no_endpoint_answers() {
    let rt = runtime();
    let mut cfg = config(vec![dead_endpoint()]);
    cfg.connect_timeout = Duration::from_millis(500);
    let err = rt.block_on(PdClient::connect(cfg)).unwrap_err();
    assert!(matches!(err, Error::NoLeader(_)), "{err}");
    let err = rt
        .block_on(PdClient::connect(config(vec!["not an endpoint".into()])))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidEndpoint(_)), "{err}");
}

#[test]
fn requests_carry_the_cluster_id_and_header_errors_are_typed() {
    let rt = runtime();
    let pd = MockPd::start(MockState::new(9), any_port());
    let client = rt
        .block_on(PdClient::connect(config(vec![pd.endpoint()])))
        .unwrap();
    rt.block_on(async {
        assert!(!client.is_bootstrapped().await.unwrap());
        let a = client.alloc_id().await.unwrap();
        let b = client.alloc_id().await.unwrap();
        assert!(b > a);
        let store = metapb::Store {
            id: 1,
            address: "127.0.0.1:20160".into(),
            ..Default::default()
        };
        client
            .bootstrap(store.clone(), metapb::Region::default(), 2)
            .await
            .unwrap();
        assert!(client.is_bootstrapped().await.unwrap());
        let again = client
            .bootstrap(store.clone(), metapb::Region::default(), 2)
            .await;
        assert!(
            matches!(again, Err(Error::AlreadyBootstrapped)),
            "{again:?}"
        );

        assert_eq!(client.get_store(1).await.unwrap().address, store.address);
        match client.get_store(99).await {
            Err(Error::Pd { kind, message }) => {
                assert_eq!(kind, ErrorType::Unknown);
                assert!(message.contains("99"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }

        client
            .put_store(
                metapb::Store {
                    id: 3,
                    state: metapb::StoreState::Tombstone as i32,
                    ..Default::default()
                },
                2,
            )
            .await
            .unwrap();
        let refused = client
            .put_store(
                metapb::Store {
                    id: 3,
                    ..Default::default()
                },
                2,
            )
            .await;
        assert!(
            matches!(
                refused,
                Err(Error::Pd {
                    kind: ErrorType::StoreTombstone,
                    ..
                })
            ),
            "{refused:?}"
        );
        assert_eq!(client.get_all_stores(false).await.unwrap().len(), 2);

        let region = metapb::Region {
            id: 1,
            peers: vec![metapb::Peer::default(); 3],
            ..Default::default()
        };
        let ids = client.ask_batch_split(&region, 2).await.unwrap();
        assert_eq!(ids.len(), 2);
        assert!(ids.iter().all(|s| s.new_peer_ids.len() == 3));
        assert_eq!(client.get_region(b"k").await.unwrap().0.id, 2);
        assert_eq!(client.get_region_by_id(5).await.unwrap(), None);
        let ts = client.get_timestamp().await.unwrap();
        assert_eq!(ts.physical, 1_000);
        // Not implemented by this PD: a gRPC error, returned without retrying.
        let unimpl = client.report_batch_split(vec![]).await;
        assert!(
            matches!(&unimpl, Err(Error::Grpc(s)) if s.code() == tonic::Code::Unimplemented),
            "{unimpl:?}"
        );
    });
    let seen = pd.state.seen_cluster_ids.lock().clone();
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|c| *c == 9), "{seen:?}");
}

#[test]
fn requests_survive_a_pd_restart_on_the_same_address() {
    let rt = runtime();
    let pd = MockPd::start(MockState::new(5), any_port());
    let client = rt
        .block_on(PdClient::connect(config(vec![pd.endpoint()])))
        .unwrap();
    let before = rt.block_on(client.alloc_id()).unwrap();

    let (state, addr) = pd.kill();
    // A request issued while PD is down waits through the restart.
    let pending = rt.spawn({
        let client = client.clone();
        async move { client.alloc_id().await }
    });
    let pd = MockPd::start(state, addr);
    let during = rt.block_on(pending).unwrap().unwrap();
    let after = rt.block_on(client.alloc_id()).unwrap();
    assert!(before < during && during < after);
    assert_eq!(pd.addr, addr);
}

fn heartbeat(region_id: u64) -> pdpb::RegionHeartbeatRequest {
    pdpb::RegionHeartbeatRequest {
        region: Some(metapb::Region {
            id: region_id,
            ..Default::default()
        }),
        leader: Some(metapb::Peer {
            id: region_id * 10,
            store_id: 1,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Sends heartbeats for `region_id` until PD answers one (the stream may be reconnecting).
fn await_answer(
    rt: &tokio::runtime::Runtime,
    sender: &pd_client::RegionHeartbeatSender,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<pdpb::RegionHeartbeatResponse>,
    region_id: u64,
) -> pdpb::RegionHeartbeatResponse {
    let deadline = Instant::now() + DEADLINE;
    rt.block_on(async {
        loop {
            assert!(
                Instant::now() < deadline,
                "no answer for region {region_id}"
            );
            sender.send(heartbeat(region_id));
            match tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
                Ok(Some(resp)) if resp.region_id == region_id => return resp,
                Ok(Some(_)) | Err(_) => {}
                Ok(None) => panic!("heartbeat stream task ended"),
            }
        }
    })
}

#[test]
fn heartbeat_stream_delivers_operators_and_reconnects_after_pd_restarts() {
    let rt = runtime();
    let pd = MockPd::start(MockState::new(11), any_port());
    let client = rt
        .block_on(PdClient::connect(config(vec![pd.endpoint()])))
        .unwrap();
    let (sender, mut rx) = client.region_heartbeats();

    let resp = await_answer(&rt, &sender, &mut rx, 1);
    assert_eq!(resp.transfer_leader.unwrap().peer.unwrap().id, 10);
    let stamped = pd.state.heartbeats.lock()[0].header.unwrap();
    assert_eq!(stamped.cluster_id, 11);

    let mut pd = pd;
    for round in 0..2u64 {
        let (state, addr) = pd.kill();
        // Heartbeats sent while PD is down must not block the sender.
        for r in 100..200 {
            sender.send(heartbeat(r));
        }
        pd = MockPd::start(state, addr);
        let region_id = 2 + round;
        let resp = await_answer(&rt, &sender, &mut rx, region_id);
        assert_eq!(resp.region_id, region_id);
    }
    // The latest heartbeat of each region queued during the outage reached PD.
    let seen = pd.state.heartbeats.lock().clone();
    assert!(seen.iter().any(|h| h.region.as_ref().unwrap().id == 150));
}
