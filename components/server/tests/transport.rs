//! The raft transport against a recording store on 127.0.0.1: sending never waits on the
//! network, a store that comes up late gets its messages, and snapshots travel with their
//! files.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{heartbeat, snap_file, snapshot_message, wait_until, RecordingStore};
use futures::future::BoxFuture;
use parking_lot::Mutex;
use raftstore::Transport;
use server::transport::{RaftTransport, ResolveError, StoreResolver, TransportConfig};

/// Addresses from a table the test controls.
#[derive(Default)]
struct TableResolver {
    addrs: Mutex<HashMap<u64, String>>,
}

impl StoreResolver for TableResolver {
    fn resolve(&self, store_id: u64) -> BoxFuture<'static, Result<String, ResolveError>> {
        let addr = self.addrs.lock().get(&store_id).cloned();
        Box::pin(async move { addr.ok_or(ResolveError::Unknown(store_id)) })
    }
}

fn fast_config() -> TransportConfig {
    TransportConfig {
        connect_timeout: Duration::from_millis(500),
        reconnect_base: Duration::from_millis(10),
        reconnect_cap: Duration::from_millis(100),
        ..TransportConfig::default()
    }
}

/// A loopback address nothing listens on (bound, then released).
fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[test]
fn send_never_blocks_and_messages_flow_once_the_store_comes_up() {
    // A runtime nobody drives yet: if `send` waited on any task or on the network it
    // could not return.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let resolver = Arc::new(TableResolver::default());
    let addr = free_addr();
    resolver.addrs.lock().insert(2, addr.to_string());
    let snap_dir = tempfile::tempdir().unwrap();
    let transport = RaftTransport::new(
        fast_config(),
        snap_dir.path().to_path_buf(),
        resolver.clone(),
        rt.handle().clone(),
    );
    for term in 0..1000 {
        transport.send(heartbeat(1, 2, term));
    }
    // A message for a store the resolver does not know is dropped, not an error.
    transport.send(heartbeat(1, 9, 1));

    // Let the transport fail against the dead address for a while.
    let failed_before = server::metrics::RAFT_STREAM_CONNECTS
        .with_label_values(&["failed"])
        .get();
    rt.block_on(wait_until("a failed connect", || {
        server::metrics::RAFT_STREAM_CONNECTS
            .with_label_values(&["failed"])
            .get()
            >= failed_before + 2
    }));

    let recv_dir = tempfile::tempdir().unwrap();
    let store = RecordingStore::start(addr, recv_dir.path());
    let recorded = store.recorded.clone();
    rt.block_on(async {
        let deadline = std::time::Instant::now() + common::DEADLINE;
        let mut term = 5000;
        loop {
            transport.send(heartbeat(7, 2, term));
            term += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
            if recorded.raft.lock().iter().any(|m| m.region_id == 7) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "no message arrived");
        }
    });
    let got = recorded.raft.lock().clone();
    let m = got.iter().find(|m| m.region_id == 7).unwrap();
    assert_eq!(m.to_peer.as_ref().unwrap().store_id, 2);
    assert_eq!(m.from_peer.as_ref().unwrap().id, 1);
}

#[test]
fn messages_to_a_restarted_store_resume_on_a_new_stream() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let resolver = Arc::new(TableResolver::default());
    let recv_dir = tempfile::tempdir().unwrap();
    let first = RecordingStore::start("127.0.0.1:0".parse().unwrap(), recv_dir.path());
    let addr = first.addr;
    resolver.addrs.lock().insert(2, addr.to_string());
    let snap_dir = tempfile::tempdir().unwrap();
    let transport = RaftTransport::new(
        fast_config(),
        snap_dir.path().to_path_buf(),
        resolver,
        rt.handle().clone(),
    );
    let deliver = |store: &RecordingStore, region_id: u64| {
        let recorded = store.recorded.clone();
        rt.block_on(async {
            let deadline = std::time::Instant::now() + common::DEADLINE;
            while !recorded
                .raft
                .lock()
                .iter()
                .any(|m| m.region_id == region_id)
            {
                transport.send(heartbeat(region_id, 2, 1));
                tokio::time::sleep(Duration::from_millis(20)).await;
                assert!(
                    std::time::Instant::now() < deadline,
                    "region {region_id} lost"
                );
            }
        });
    };
    deliver(&first, 1);
    drop(first);
    let second = RecordingStore::start(addr, recv_dir.path());
    deliver(&second, 2);
}

#[test]
fn a_snapshot_travels_with_its_files() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let send_dir = tempfile::tempdir().unwrap();
    let recv_dir = tempfile::tempdir().unwrap();
    // Two files, one larger than a 1 MiB chunk.
    let big: Vec<u8> = (0..(1024 * 1024 + 4321)).map(|i| (i % 251) as u8).collect();
    let small = b"lock-cf-bytes".to_vec();
    std::fs::write(snap_file(send_dir.path(), "gen", 8, "default"), &big).unwrap();
    std::fs::write(snap_file(send_dir.path(), "gen", 8, "lock"), &small).unwrap();

    let store = RecordingStore::start("127.0.0.1:0".parse().unwrap(), recv_dir.path());
    let resolver = Arc::new(TableResolver::default());
    resolver.addrs.lock().insert(2, store.addr.to_string());
    let transport = RaftTransport::new(
        fast_config(),
        send_dir.path().to_path_buf(),
        resolver,
        rt.handle().clone(),
    );
    let msg = snapshot_message(8, 2, &[("default", &big), ("lock", &small)]);
    transport.send(msg.clone());

    let recorded = store.recorded.clone();
    rt.block_on(wait_until("the snapshot", || {
        !recorded.snapshots.lock().is_empty()
    }));
    assert_eq!(recorded.snapshots.lock()[0], msg);
    assert!(
        recorded.raft.lock().is_empty(),
        "snapshot went on the raft stream"
    );
    assert_eq!(
        std::fs::read(snap_file(recv_dir.path(), "rev", 8, "default")).unwrap(),
        big
    );
    assert_eq!(
        std::fs::read(snap_file(recv_dir.path(), "rev", 8, "lock")).unwrap(),
        small
    );
}

#[test]
fn a_snapshot_whose_files_are_missing_is_not_delivered() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let send_dir = tempfile::tempdir().unwrap();
    let recv_dir = tempfile::tempdir().unwrap();
    let store = RecordingStore::start("127.0.0.1:0".parse().unwrap(), recv_dir.path());
    let resolver = Arc::new(TableResolver::default());
    resolver.addrs.lock().insert(2, store.addr.to_string());
    let transport = RaftTransport::new(
        fast_config(),
        send_dir.path().to_path_buf(),
        resolver,
        rt.handle().clone(),
    );
    let failed = || {
        server::metrics::SNAPSHOT_SENDS
            .with_label_values(&["failed"])
            .get()
    };
    let before = failed();
    // Described but never generated on the sender.
    transport.send(snapshot_message(9, 2, &[("default", b"missing")]));
    rt.block_on(wait_until("the failed send", || failed() > before));
    assert!(store.recorded.snapshots.lock().is_empty());
    let leftovers: Vec<_> = std::fs::read_dir(recv_dir.path())
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
