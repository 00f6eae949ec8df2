//! Lease reads: a deposed leader must not serve stale data.

use std::time::{Duration, Instant};

use proto::errorpb;
use test_cluster::*;

#[test]
fn isolated_old_leader_refuses_reads_after_its_lease() {
    let cluster = Cluster::run(3);
    let old = cluster.wait_leader(1);
    cluster.must_put(b"k", b"v1");
    // A lease read on the leader works while it is healthy.
    assert_eq!(cluster.must_get(b"k"), Some(b"v1".to_vec()));

    cluster.isolate(old.store_id);
    let new = cluster.wait_leader_elsewhere(1, old.store_id);
    cluster.must_put(b"k", b"v2");

    // The old leader's lease ran out before anyone else could be elected.
    let delegate = cluster
        .store(old.store_id)
        .meta()
        .lock()
        .readers
        .get(&1)
        .cloned()
        .expect("read delegate");
    assert!(!delegate.can_read_locally(Instant::now()));

    // Asking the old leader directly never returns the stale value.
    let region = cluster.region(1).unwrap();
    let req = Cluster::new_request(&region, old, vec![get_request(b"k")]);
    match cluster.call_on_store(old.store_id, req, Duration::from_millis(300)) {
        Ok(resp) => {
            let err: Option<errorpb::Error> =
                resp.response.header.as_ref().and_then(|h| h.error.clone());
            assert!(
                err.is_some(),
                "stale read served: {:?}",
                get_value(&resp.response)
            );
        }
        Err(RequestError::Timeout) => {}
        Err(e) => panic!("unexpected: {e:?}"),
    }

    // The new leader serves the new value, locally and through ReadIndex.
    assert_eq!(cluster.get(b"k", false).unwrap(), Some(b"v2".to_vec()));
    assert_eq!(cluster.get(b"k", true).unwrap(), Some(b"v2".to_vec()));
    assert_ne!(new.store_id, old.store_id);
}

#[test]
fn read_index_reads_see_the_latest_write() {
    let cluster = Cluster::run(3);
    cluster.wait_leader(1);
    for i in 0..20u8 {
        cluster.must_put(b"ri", &[i]);
        assert_eq!(cluster.get(b"ri", true).unwrap(), Some(vec![i]));
    }
}
