//! Many regions per store replicate independently and survive restarts.

use test_cluster::*;

fn split_keys(n: usize) -> Vec<Vec<u8>> {
    (1..n).map(|i| format!("k{i:04}").into_bytes()).collect()
}

#[test]
fn hundred_regions_replicate_and_survive_a_full_restart() {
    let mut cluster = Cluster::new(3);
    let regions = cluster.bootstrap(&split_keys(100));
    assert_eq!(regions.len(), 100);
    cluster.start();
    for r in &regions {
        cluster.wait_leader(r.id);
    }
    // One key inside every region.
    for i in 0..100usize {
        let key = format!("k{i:04}-x").into_bytes();
        cluster.must_put(&key, &key);
        let region = cluster.region_for_key(&key).unwrap();
        assert_eq!(region.id, i as u64 + 1, "key {i} lands in its own region");
    }
    for s in cluster.store_ids() {
        cluster.must_engine_eq(s, b"k0099-x", Some(b"k0099-x"));
    }
    for s in cluster.store_ids() {
        cluster.stop_store(s);
    }
    for s in cluster.store_ids() {
        cluster.start_store(s);
    }
    for s in cluster.store_ids() {
        assert_eq!(cluster.store(s).meta().lock().region_count(), 100);
    }
    for i in 0..100usize {
        let key = format!("k{i:04}-x").into_bytes();
        assert_eq!(cluster.must_get(&key), Some(key.clone()));
    }
}
