//! Compare-and-swap and TTLs through the raw KV service, over a real single-store raftstore
//! (see `kv_common` for the regions).

mod kv_common;

use std::sync::Arc;

use kv_common::{key0, wait_for, Harness, DEADLINE};
use proto::kvrpcpb::*;
use proto::tikvpb::tikv_server::Tikv;
use tonic::Request;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_and_swap_outcomes() {
    let h = Harness::start();
    let k = key0("cas");
    // Absent key, expecting absence: succeeds.
    let resp = h.cas(&k, None, b"1", 0).await;
    assert!(resp.succeed && resp.previous_not_exist, "{resp:?}");
    assert_eq!(h.get(&k).await, Some(b"1".to_vec()));
    // Expecting absence when present: fails and reports the value.
    let resp = h.cas(&k, None, b"2", 0).await;
    assert!(!resp.succeed && !resp.previous_not_exist);
    assert_eq!(resp.previous_value, b"1");
    assert_eq!(h.get(&k).await, Some(b"1".to_vec()));
    // Wrong expected value: fails, nothing changes.
    let resp = h.cas(&k, Some(b"0"), b"2", 0).await;
    assert!(!resp.succeed);
    assert_eq!(resp.previous_value, b"1");
    assert_eq!(h.get(&k).await, Some(b"1".to_vec()));
    // Right expected value: swaps.
    let resp = h.cas(&k, Some(b"1"), b"2", 0).await;
    assert!(resp.succeed && !resp.previous_not_exist);
    assert_eq!(resp.previous_value, b"1");
    assert_eq!(h.get(&k).await, Some(b"2".to_vec()));
    // Expecting a value of an absent key fails.
    let resp = h.cas(&key0("absent"), Some(b"x"), b"y", 0).await;
    assert!(!resp.succeed && resp.previous_not_exist);
    assert_eq!(h.get(&key0("absent")).await, None);
    // A swap can set a ttl.
    let resp = h.cas(&k, Some(b"2"), b"3", 600).await;
    assert!(resp.succeed);
    assert!(h.ttl(&k).await.is_some_and(|t| t > 0 && t <= 600));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cas_increments_lose_nothing() {
    const TASKS: usize = 32;
    const INCREMENTS: u64 = 5;
    let h = Arc::new(Harness::start());
    let k = key0("counter");
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let h = h.clone();
        let k = k.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            // Each increment retries on conflict; every failed attempt means another task
            // succeeded, so the total number of attempts is bounded.
            let mut attempts = 0;
            while done < INCREMENTS {
                attempts += 1;
                assert!(attempts < 10_000, "too many conflicts");
                let current = h.get(&k).await;
                let next = current
                    .as_deref()
                    .map_or(0, |v| u64::from_be_bytes(v.try_into().unwrap()))
                    + 1;
                let resp = h.cas(&k, current.as_deref(), &next.to_be_bytes(), 0).await;
                if resp.succeed {
                    done += 1;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let v = h.get(&k).await.unwrap();
    assert_eq!(
        u64::from_be_bytes(v.try_into().unwrap()),
        TASKS as u64 * INCREMENTS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_expiry_hides_values_everywhere() {
    let h = Harness::start();
    let short = key0("short");
    h.put_ttl(&short, b"soon gone", 1).await;
    h.put(&key0("stays"), b"here").await;
    let expired = wait_for(DEADLINE, || async { h.get(&short).await.is_none() }).await;
    assert!(expired, "a value with a 1 s ttl never expired");
    assert_eq!(h.ttl(&short).await, None);
    let kvs = h.scan(&key0(""), b"", 100, false, false).await;
    assert_eq!(kvs.len(), 1);
    assert_eq!(kvs[0].key, key0("stays"));
    let resp = h
        .svc()
        .raw_batch_get(Request::new(RawBatchGetRequest {
            context: Some(h.ctx_for(&short)),
            keys: vec![short.clone(), key0("stays")],
            cf: String::new(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.pairs.len(), 1);
    // An expired key counts as absent for compare-and-swap.
    let resp = h.cas(&short, None, b"new", 0).await;
    assert!(resp.succeed && resp.previous_not_exist, "{resp:?}");
    assert_eq!(h.ttl(&short).await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_ttl_counts_down() {
    let h = Harness::start();
    let k = key0("ttl");
    h.put_ttl(&k, b"v", 100).await;
    let first = h.ttl(&k).await.expect("key exists");
    assert!(first > 0 && first <= 100, "{first}");
    let lower = wait_for(DEADLINE, || async {
        h.ttl(&k).await.is_some_and(|t| t < first)
    })
    .await;
    assert!(lower, "the ttl never went down from {first}");
    assert_eq!(h.get(&k).await, Some(b"v".to_vec()));
    // No ttl reads as 0; a missing key as not found.
    h.put(&key0("forever"), b"v").await;
    assert_eq!(h.ttl(&key0("forever")).await, Some(0));
    assert_eq!(h.ttl(&key0("missing")).await, None);
}
