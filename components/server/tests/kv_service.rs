//! The raw KV service over a real single-store raftstore with three regions:
//! `["", r\0\0\0)`, `[r\0\0\0, r\0\0\1)` (keyspace 0) and `[r\0\0\1, "")` (keyspace 1 and
//! up), boundaries memcomparable-encoded as PD stores them.

mod kv_common;

use kv_common::{key0, key1, Harness};
use proto::kvrpcpb::*;
use proto::metapb::{Peer, RegionEpoch};
use proto::tikvpb::tikv_server::Tikv;
use server::kv::KvConfig;
use tonic::{Code, Request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_delete_round_trip() {
    let h = Harness::start();
    assert_eq!(h.get(&key0("a")).await, None);
    h.put(&key0("a"), b"1").await;
    h.put(&key0("empty"), b"").await;
    assert_eq!(h.get(&key0("a")).await, Some(b"1".to_vec()));
    // An empty value exists.
    assert_eq!(h.get(&key0("empty")).await, Some(Vec::new()));
    h.put(&key0("a"), b"2").await;
    assert_eq!(h.get(&key0("a")).await, Some(b"2".to_vec()));

    let resp = h
        .svc()
        .raw_delete(Request::new(RawDeleteRequest {
            context: Some(h.ctx_for(&key0("a"))),
            key: key0("a"),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(
        resp.region_error.is_none() && resp.error.is_empty(),
        "{resp:?}"
    );
    assert_eq!(h.get(&key0("a")).await, None);
    // Deleting a missing key is fine.
    let resp = h
        .svc()
        .raw_delete(Request::new(RawDeleteRequest {
            context: Some(h.ctx_for(&key0("a"))),
            key: key0("a"),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(resp.region_error.is_none() && resp.error.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn column_families_are_separate() {
    let h = Harness::start();
    for (cf, value) in [
        ("lock", "in-lock"),
        ("write", "in-write"),
        ("default", "in-default"),
    ] {
        let resp = h
            .svc()
            .raw_put(Request::new(RawPutRequest {
                context: Some(h.ctx_for(&key0("k"))),
                key: key0("k"),
                value: value.as_bytes().to_vec(),
                cf: cf.into(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(resp.region_error.is_none() && resp.error.is_empty());
    }
    for (cf, value) in [
        ("lock", "in-lock"),
        ("write", "in-write"),
        ("", "in-default"),
    ] {
        let resp = h
            .svc()
            .raw_get(Request::new(RawGetRequest {
                context: Some(h.ctx_for(&key0("k"))),
                key: key0("k"),
                cf: cf.into(),
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resp.value, value.as_bytes(), "cf {cf:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_put_get_delete() {
    let h = Harness::start();
    let ctx = h.ctx_for(&key0("a"));
    let pairs: Vec<KvPair> = ["a", "b", "c"]
        .iter()
        .map(|k| KvPair {
            key: key0(k),
            value: format!("v{k}").into_bytes(),
            error: None,
        })
        .collect();
    let resp = h
        .svc()
        .raw_batch_put(Request::new(RawBatchPutRequest {
            context: Some(ctx),
            pairs: pairs.clone(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(
        resp.region_error.is_none() && resp.error.is_empty(),
        "{resp:?}"
    );

    // Missing keys are left out; the rest come back in request order.
    let resp = h
        .svc()
        .raw_batch_get(Request::new(RawBatchGetRequest {
            context: Some(ctx),
            keys: vec![key0("c"), key0("missing"), key0("a")],
            cf: String::new(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(resp.region_error.is_none());
    let got: Vec<(Vec<u8>, Vec<u8>)> = resp.pairs.into_iter().map(|p| (p.key, p.value)).collect();
    assert_eq!(
        got,
        vec![(key0("c"), b"vc".to_vec()), (key0("a"), b"va".to_vec())]
    );

    let resp = h
        .svc()
        .raw_batch_delete(Request::new(RawBatchDeleteRequest {
            context: Some(ctx),
            keys: vec![key0("a"), key0("b")],
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(resp.region_error.is_none() && resp.error.is_empty());
    assert_eq!(h.get(&key0("a")).await, None);
    assert_eq!(h.get(&key0("b")).await, None);
    assert_eq!(h.get(&key0("c")).await, Some(b"vc".to_vec()));

    // A ttls list that does not match the pairs is refused before anything is written.
    let status = h
        .svc()
        .raw_batch_put(Request::new(RawBatchPutRequest {
            context: Some(ctx),
            pairs: vec![KvPair {
                key: key0("x"),
                value: b"x".to_vec(),
                error: None,
            }],
            ttls: vec![10, 20],
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(h.get(&key0("x")).await, None);

    // Per-pair ttls, and the single ttl applying to all when ttls is empty.
    let resp = h
        .svc()
        .raw_batch_put(Request::new(RawBatchPutRequest {
            context: Some(ctx),
            pairs: pairs[..2].to_vec(),
            ttls: vec![0, 500],
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(resp.region_error.is_none() && resp.error.is_empty());
    assert_eq!(h.ttl(&key0("a")).await, Some(0));
    assert!(h.ttl(&key0("b")).await.is_some_and(|t| t > 0 && t <= 500));
    let resp = h
        .svc()
        .raw_batch_put(Request::new(RawBatchPutRequest {
            context: Some(ctx),
            pairs: pairs[..2].to_vec(),
            ttl: 300,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(resp.region_error.is_none() && resp.error.is_empty());
    for k in ["a", "b"] {
        assert!(h.ttl(&key0(k)).await.is_some_and(|t| t > 0 && t <= 300));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_are_sorted_limited_and_clipped_to_the_region() {
    let h = Harness::start();
    for k in ["a", "b", "c", "d", "e"] {
        h.put(&key0(k), format!("v{k}").as_bytes()).await;
    }
    // Keyspace 1 lives in the next region.
    h.put(&key1("a"), b"other").await;
    let keys_of = |kvs: &[KvPair]| kvs.iter().map(|p| p.key.clone()).collect::<Vec<_>>();

    // Forward, unbounded end: stops at the region's end.
    let kvs = h.scan(&key0(""), b"", 100, false, false).await;
    assert_eq!(keys_of(&kvs), ["a", "b", "c", "d", "e"].map(key0));
    assert_eq!(kvs[0].value, b"va");
    // An end beyond the region is clipped too.
    let kvs = h.scan(&key0("c"), &key1("z"), 100, false, false).await;
    assert_eq!(keys_of(&kvs), ["c", "d", "e"].map(key0));
    // Bounded, limited, key only.
    let kvs = h.scan(&key0("b"), &key0("e"), 2, true, false).await;
    assert_eq!(keys_of(&kvs), ["b", "c"].map(key0));
    assert!(kvs.iter().all(|p| p.value.is_empty()));
    // Limit 0 returns nothing.
    assert!(h.scan(&key0("a"), b"", 0, false, false).await.is_empty());

    // Reverse: start_key is the exclusive upper bound, end_key the inclusive lower one.
    let kvs = h.scan(&key0("d"), &key0("b"), 100, false, true).await;
    assert_eq!(keys_of(&kvs), ["c", "b"].map(key0));
    let kvs = h.scan(&key0("z"), b"", 2, false, true).await;
    assert_eq!(keys_of(&kvs), ["e", "d"].map(key0));
    // An upper bound past the region end is clipped to the region.
    let kvs = h.scan(&key1("z"), &key0(""), 100, false, true).await;
    assert_eq!(keys_of(&kvs), ["e", "d", "c", "b", "a"].map(key0));

    // A limit over the maximum is refused.
    let status = h
        .svc()
        .raw_scan(Request::new(RawScanRequest {
            context: Some(h.ctx_for(&key0("a"))),
            start_key: key0("a"),
            limit: KvConfig::default().max_scan_limit + 1,
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    // Batch scan: each range on its own limit, in request order, clipped to the region.
    let resp = h
        .svc()
        .raw_batch_scan(Request::new(RawBatchScanRequest {
            context: Some(h.ctx_for(&key0("a"))),
            ranges: vec![
                KeyRange {
                    start_key: key0("d"),
                    end_key: key1("z"),
                },
                KeyRange {
                    start_key: key0("a"),
                    end_key: key0("c"),
                },
            ],
            each_limit: 1,
            key_only: false,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(resp.region_error.is_none());
    assert_eq!(keys_of(&resp.kvs), ["d", "a"].map(key0));
    assert_eq!(resp.kvs[1].value, b"va");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_range_stays_inside_the_region() {
    let h = Harness::start();
    for k in ["a", "b", "c", "d"] {
        h.put(&key0(k), b"v").await;
    }
    h.put(&key1("a"), b"other").await;
    let delete = |start: Vec<u8>, end: Vec<u8>| {
        let ctx = h.ctx_for(&key0("a"));
        let service = h.svc();
        async move {
            service
                .raw_delete_range(Request::new(RawDeleteRangeRequest {
                    context: Some(ctx),
                    start_key: start,
                    end_key: end,
                    cf: String::new(),
                }))
                .await
                .unwrap()
                .into_inner()
        }
    };
    let resp = delete(key0("a"), key0("c")).await;
    assert!(
        resp.region_error.is_none() && resp.error.is_empty(),
        "{resp:?}"
    );
    assert_eq!(h.get(&key0("a")).await, None);
    assert_eq!(h.get(&key0("b")).await, None);
    assert_eq!(h.get(&key0("c")).await, Some(b"v".to_vec()));

    // An unbounded end reaches the region's end and no further.
    let resp = delete(key0("c"), Vec::new()).await;
    assert!(
        resp.region_error.is_none() && resp.error.is_empty(),
        "{resp:?}"
    );
    assert_eq!(h.get(&key0("c")).await, None);
    assert_eq!(h.get(&key0("d")).await, None);
    assert_eq!(h.get(&key1("a")).await, Some(b"other".to_vec()));

    // A range starting outside the region is refused as a region error.
    let resp = delete(key1("a"), key1("b")).await;
    let err = resp.region_error.expect("region error");
    assert!(err.key_not_in_region.is_some(), "{err:?}");
    assert!(resp.error.is_empty());
    assert_eq!(h.get(&key1("a")).await, Some(b"other".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_or_wrong_contexts_get_only_region_errors() {
    let h = Harness::start();
    let k = key0("k");
    h.put(&k, b"v").await;
    let good = h.ctx_for(&k);

    let mut wrong_region = good;
    wrong_region.region_id = 99;
    let mut stale_epoch = good;
    stale_epoch.region_epoch = Some(RegionEpoch {
        conf_ver: 1,
        version: 0,
    });
    let mut wrong_store = good;
    wrong_store.peer = Some(Peer {
        id: good.peer.unwrap().id,
        store_id: 2,
        ..Default::default()
    });
    let mut wrong_peer = good;
    wrong_peer.peer = Some(Peer {
        id: 777,
        store_id: 1,
        ..Default::default()
    });
    let other_region = h.ctx_for(&key1("k"));

    type Check = fn(&proto::errorpb::Error) -> bool;
    let cases: Vec<(&str, Context, Check)> = vec![
        ("wrong region", wrong_region, |e| {
            e.region_not_found.is_some()
        }),
        ("stale epoch", stale_epoch, |e| e.epoch_not_match.is_some()),
        ("wrong store", wrong_store, |e| e.store_not_match.is_some()),
        ("wrong peer", wrong_peer, |e| e.message.contains("777")),
        ("key outside", other_region, |e| {
            e.key_not_in_region.is_some()
        }),
    ];
    for (name, ctx, check) in cases {
        let get = h
            .svc()
            .raw_get(Request::new(RawGetRequest {
                context: Some(ctx),
                key: k.clone(),
                cf: String::new(),
            }))
            .await
            .unwrap()
            .into_inner();
        let err = get
            .region_error
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: {get:?}"));
        assert!(check(err), "{name}: {err:?}");
        assert!(
            get.error.is_empty() && get.value.is_empty() && !get.not_found,
            "{name}"
        );

        let put = h
            .svc()
            .raw_put(Request::new(RawPutRequest {
                context: Some(ctx),
                key: k.clone(),
                value: b"changed".to_vec(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        let err = put
            .region_error
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: {put:?}"));
        assert!(check(err), "{name}: {err:?}");
        assert!(put.error.is_empty(), "{name}");

        let cas = h
            .svc()
            .raw_compare_and_swap(Request::new(RawCasRequest {
                context: Some(ctx),
                key: k.clone(),
                value: b"changed".to_vec(),
                previous_value: b"v".to_vec(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(
            cas.region_error.as_ref().is_some_and(check),
            "{name}: {cas:?}"
        );
        assert!(cas.error.is_empty() && !cas.succeed, "{name}");
    }
    assert_eq!(h.get(&k).await, Some(b"v".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_entries_are_refused_and_nothing_is_written() {
    let cfg = raftstore::Config {
        raft_entry_max_size: 64 * 1024,
        ..raftstore::Config::for_tests()
    };
    let h = Harness::start_with(cfg, KvConfig::default());
    let k = key0("big");
    let resp = h
        .svc()
        .raw_put(Request::new(RawPutRequest {
            context: Some(h.ctx_for(&k)),
            key: k.clone(),
            value: vec![7; 100 * 1024],
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let err = resp.region_error.expect("region error");
    assert!(err.raft_entry_too_large.is_some(), "{err:?}");
    assert!(resp.error.is_empty());
    assert_eq!(h.get(&k).await, None);

    // Each pair is small, the batch is not: the batch is one entry and is refused whole.
    let pairs: Vec<KvPair> = (0..4)
        .map(|i| KvPair {
            key: key0(&format!("part{i}")),
            value: vec![1; 20 * 1024],
            error: None,
        })
        .collect();
    let resp = h
        .svc()
        .raw_batch_put(Request::new(RawBatchPutRequest {
            context: Some(h.ctx_for(&k)),
            pairs,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(resp
        .region_error
        .is_some_and(|e| e.raft_entry_too_large.is_some()));
    for i in 0..4 {
        assert_eq!(h.get(&key0(&format!("part{i}"))).await, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_refused_before_anything_is_written() {
    let h = Harness::start();
    let k = key0("k");
    let put = |ctx: Option<Context>, key: Vec<u8>, cf: &str| RawPutRequest {
        context: ctx,
        key,
        value: b"v".to_vec(),
        cf: cf.into(),
        ..Default::default()
    };

    let status = h
        .svc()
        .raw_put(Request::new(put(Some(h.ctx_for(&k)), k.clone(), "raft")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("column family"), "{status:?}");

    let mut v1 = h.ctx_for(&k);
    v1.api_version = ApiVersion::V1 as i32;
    let status = h
        .svc()
        .raw_put(Request::new(put(Some(v1), k.clone(), "")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("API V2"), "{status:?}");

    let status = h
        .svc()
        .raw_put(Request::new(put(None, k.clone(), "")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    // Keys without the raw keyspace prefix.
    for bad in [b"r\0".to_vec(), b"x\0\0\0k".to_vec(), Vec::new()] {
        let status = h
            .svc()
            .raw_put(Request::new(put(Some(h.ctx_for(&k)), bad, "")))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
    }

    // A key over the size limit is a key error.
    let long = key0(&"x".repeat(KvConfig::default().max_key_size));
    let resp = h
        .svc()
        .raw_put(Request::new(put(Some(h.ctx_for(&k)), long.clone(), "")))
        .await
        .unwrap()
        .into_inner();
    assert!(resp.error.starts_with("key is too large"), "{resp:?}");
    assert!(resp.region_error.is_none());

    assert_eq!(h.get(&k).await, None);
    let kvs = h.scan(&key0(""), b"", 100, true, false).await;
    assert!(kvs.is_empty(), "{kvs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_stored_values_are_reported_not_panicked_on() {
    let h = Harness::start();
    let k = key0("corrupt");
    h.write_stored_value(&k, b"");
    let resp = h
        .svc()
        .raw_get(Request::new(RawGetRequest {
            context: Some(h.ctx_for(&k)),
            key: k.clone(),
            cf: String::new(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(resp.error.contains("corrupt"), "{resp:?}");
    assert!(resp.region_error.is_none());

    let status = h
        .svc()
        .raw_scan(Request::new(RawScanRequest {
            context: Some(h.ctx_for(&k)),
            start_key: key0(""),
            limit: 10,
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::DataLoss);
}

/// Takes pessimistic locks on `keys` for the transaction at `start_ts` (primary: the first
/// key), returning values, without waiting for other transactions' locks.
async fn pessimistic_lock(
    h: &Harness,
    keys: &[&[u8]],
    start_ts: u64,
    for_update_ts: u64,
) -> PessimisticLockResponse {
    pessimistic_lock_waiting(h, keys, start_ts, for_update_ts, -1).await
}

/// Like `pessimistic_lock`, with the request's `wait_timeout` (ms; 0 = the store's limit).
async fn pessimistic_lock_waiting(
    h: &Harness,
    keys: &[&[u8]],
    start_ts: u64,
    for_update_ts: u64,
    wait_timeout: i64,
) -> PessimisticLockResponse {
    h.svc()
        .kv_pessimistic_lock(Request::new(PessimisticLockRequest {
            wait_timeout,
            context: Some(h.ctx_for(keys[0])),
            mutations: keys
                .iter()
                .map(|k| Mutation {
                    op: Op::PessimisticLock as i32,
                    key: k.to_vec(),
                    ..Default::default()
                })
                .collect(),
            primary_lock: keys[0].to_vec(),
            start_version: start_ts,
            for_update_ts,
            lock_ttl: 20_000,
            return_values: true,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pessimistic_locks_exclude_other_transactions_until_rolled_back() {
    let h = Harness::start();
    let (a, b): (&[u8], &[u8]) = (b"x\0\0\0a", b"x\0\0\0b");
    prewrite_one(&h, a, Op::Put, b"va", 5).await;
    commit_one(&h, a, 5, 6).await;

    // Values come back in request order; a key without a value is marked not found.
    let resp = pessimistic_lock(&h, &[b, a], 10, 10).await;
    assert!(
        resp.errors.is_empty() && resp.region_error.is_none(),
        "{resp:?}"
    );
    assert_eq!(resp.values, vec![Vec::new(), b"va".to_vec()]);
    assert_eq!(resp.not_founds, vec![true, false]);

    // Another transaction cannot lock either key, and its request leaves no lock behind.
    let resp = pessimistic_lock(&h, &[a, b], 20, 20).await;
    let locked = resp.errors.first().and_then(|e| e.locked.clone());
    assert_eq!(locked.map(|l| l.lock_version), Some(10), "{resp:?}");
    let mvcc = mvcc_get_by_key(&h, a, a).await;
    assert_eq!(mvcc.info.and_then(|i| i.lock).map(|l| l.start_ts), Some(10));

    // A rollback at an older for_update_ts leaves the locks; at theirs it removes them.
    let rollback = |for_update_ts: u64| {
        h.svc()
            .kv_pessimistic_rollback(Request::new(PessimisticRollbackRequest {
                context: Some(h.ctx_for(a)),
                start_version: 10,
                for_update_ts,
                keys: vec![a.to_vec(), b.to_vec()],
            }))
    };
    let resp = rollback(9).await.unwrap().into_inner();
    assert!(
        resp.errors.is_empty() && resp.region_error.is_none(),
        "{resp:?}"
    );
    assert!(!pessimistic_lock(&h, &[a], 20, 20).await.errors.is_empty());
    let resp = rollback(10).await.unwrap().into_inner();
    assert!(
        resp.errors.is_empty() && resp.region_error.is_none(),
        "{resp:?}"
    );
    let resp = pessimistic_lock(&h, &[a, b], 20, 20).await;
    assert!(resp.errors.is_empty(), "{resp:?}");

    // A commit after the for_update_ts a lock is asked at is a conflict.
    prewrite_one(&h, b"x\0\0\0c", Op::Put, b"vc", 30).await;
    commit_one(&h, b"x\0\0\0c", 30, 31).await;
    let resp = pessimistic_lock(&h, &[b"x\0\0\0c"], 25, 25).await;
    assert!(
        resp.errors.first().is_some_and(|e| e.conflict.is_some()),
        "{resp:?}"
    );

    // Malformed requests get a key error, not a panic or a lock.
    let resp = h
        .svc()
        .kv_pessimistic_lock(Request::new(PessimisticLockRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(!resp.errors.is_empty(), "{resp:?}");
    let below_start = h
        .svc()
        .kv_pessimistic_lock(Request::new(PessimisticLockRequest {
            context: Some(h.ctx_for(b"x\0\0\0e")),
            mutations: vec![Mutation {
                op: Op::PessimisticLock as i32,
                key: b"x\0\0\0e".to_vec(),
                ..Default::default()
            }],
            primary_lock: b"x\0\0\0e".to_vec(),
            start_version: 50,
            for_update_ts: 49,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(!below_start.errors.is_empty(), "{below_start:?}");
    let mvcc = mvcc_get_by_key(&h, b"x\0\0\0e", b"x\0\0\0e").await;
    assert!(mvcc.info.and_then(|i| i.lock).is_none());
}

async fn pessimistic_rollback(h: &Harness, key: &[u8], start_ts: u64) {
    let resp = h
        .svc()
        .kv_pessimistic_rollback(Request::new(PessimisticRollbackRequest {
            context: Some(h.ctx_for(key)),
            start_version: start_ts,
            for_update_ts: start_ts,
            keys: vec![key.to_vec()],
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(
        resp.errors.is_empty() && resp.region_error.is_none(),
        "{resp:?}"
    );
}

/// Waits (bounded) until `n` lock requests wait in this process.
async fn wait_for_waiters(n: i64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while server::kv::metrics::LOCK_WAITERS.get() != n {
        assert!(
            std::time::Instant::now() < deadline,
            "{n} lock waiters never queued"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_keys_are_handed_to_waiting_lockers_in_arrival_order() {
    let h = std::sync::Arc::new(Harness::start_with(
        raftstore::Config::for_tests(),
        KvConfig {
            lock_wait_timeout: std::time::Duration::from_secs(120),
            ..KvConfig::default()
        },
    ));
    let k: &'static [u8] = b"x\0\0\0waited";
    assert!(pessimistic_lock(&h, &[k], 10, 10).await.errors.is_empty());

    // Two lockers queue behind the holder, in this order.
    let waiting = |start_ts: u64| {
        let h = h.clone();
        tokio::spawn(async move { pessimistic_lock_waiting(&h, &[k], start_ts, start_ts, 0).await })
    };
    let second = waiting(20);
    wait_for_waiters(1).await;
    let third = waiting(30);
    wait_for_waiters(2).await;

    // The holder lets go: only the first waiter is woken, and it takes the lock.
    pessimistic_rollback(&h, k, 10).await;
    let resp = second.await.unwrap();
    assert!(resp.errors.is_empty(), "{resp:?}");
    assert!(
        !third.is_finished(),
        "the later waiter went ahead of the lock's new holder"
    );
    wait_for_waiters(1).await;

    // Then the next in line.
    pessimistic_rollback(&h, k, 20).await;
    let resp = third.await.unwrap();
    assert!(resp.errors.is_empty(), "{resp:?}");
    wait_for_waiters(0).await;

    // A request that does not wait is answered at once with the lock.
    let resp = pessimistic_lock(&h, &[k], 40, 40).await;
    assert_eq!(
        resp.errors
            .first()
            .and_then(|e| e.locked.as_ref())
            .map(|l| l.lock_version),
        Some(30)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_transactional_requests_get_a_key_error_and_write_nothing() {
    let h = Harness::start();
    // No context at all.
    let resp = h
        .svc()
        .kv_get(Request::new(GetRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(resp.error.is_some_and(|e| e.abort.contains("context")));
    // A prewrite with start_ts 0, then one with no mutations.
    let resp = h
        .svc()
        .kv_prewrite(Request::new(PrewriteRequest {
            context: Some(h.ctx_for(b"x\0\0\0k")),
            mutations: vec![Mutation {
                op: Op::Put as i32,
                key: b"x\0\0\0k".to_vec(),
                value: b"v".to_vec(),
                ..Default::default()
            }],
            primary_lock: b"x\0\0\0k".to_vec(),
            start_version: 0,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(resp.errors[0].abort.contains("start_version"), "{resp:?}");
    let resp = h
        .svc()
        .kv_prewrite(Request::new(PrewriteRequest {
            context: Some(h.ctx_for(b"x\0\0\0k")),
            primary_lock: b"x\0\0\0k".to_vec(),
            start_version: 10,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(resp.errors[0].abort.contains("mutations"), "{resp:?}");
    // A commit timestamp not above the start timestamp.
    let resp = h
        .svc()
        .kv_commit(Request::new(CommitRequest {
            context: Some(h.ctx_for(b"x\0\0\0k")),
            start_version: 10,
            keys: vec![b"x\0\0\0k".to_vec()],
            commit_version: 10,
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(resp
        .error
        .is_some_and(|e| e.abort.contains("commit_version")));
    // A raw-keyspace key in a transactional request.
    let resp = h
        .svc()
        .kv_get(Request::new(GetRequest {
            context: Some(h.ctx_for(b"x\0\0\0k")),
            key: b"r\0\0\0k".to_vec(),
            version: 5,
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(resp
        .error
        .is_some_and(|e| e.abort.contains("transactional key")));
    // Nothing reached the lock CF.
    let locks = h
        .svc()
        .kv_scan_lock(Request::new(ScanLockRequest {
            context: Some(h.ctx_for(b"x\0\0\0k")),
            max_version: u64::MAX - 1,
            limit: 10,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(locks.locks.is_empty() && locks.error.is_none(), "{locks:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_transaction_is_answered_not_panicked_on() {
    let h = Harness::start();
    let key = b"x\0\0\0ghost".to_vec();
    // Commit of a transaction that never prewrote: the lock is not found (retryable text).
    let resp = h
        .svc()
        .kv_commit(Request::new(CommitRequest {
            context: Some(h.ctx_for(b"x\0\0\0k")),
            start_version: 10,
            keys: vec![key.clone()],
            commit_version: 11,
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(resp.error.is_some_and(|e| !e.retryable.is_empty()));
    // Rollback of it succeeds and leaves a rollback record: a late prewrite then conflicts.
    let resp = h
        .svc()
        .kv_batch_rollback(Request::new(BatchRollbackRequest {
            context: Some(h.ctx_for(b"x\0\0\0k")),
            start_version: 20,
            keys: vec![key.clone()],
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(
        resp.error.is_none() && resp.region_error.is_none(),
        "{resp:?}"
    );
    let resp = h
        .svc()
        .kv_prewrite(Request::new(PrewriteRequest {
            context: Some(h.ctx_for(b"x\0\0\0k")),
            mutations: vec![Mutation {
                op: Op::Put as i32,
                key: key.clone(),
                value: b"late".to_vec(),
                ..Default::default()
            }],
            primary_lock: key.clone(),
            start_version: 20,
            lock_ttl: 3000,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(resp.errors[0].conflict.is_some(), "{resp:?}");
    // Heartbeat and status check of a transaction nobody knows.
    let resp = h
        .svc()
        .kv_txn_heart_beat(Request::new(TxnHeartBeatRequest {
            context: Some(h.ctx_for(b"x\0\0\0k")),
            primary_lock: key.clone(),
            start_version: 30,
            advise_lock_ttl: 100,
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(resp.error.is_some_and(|e| e.txn_not_found.is_some()));
    let resp = h
        .svc()
        .kv_check_txn_status(Request::new(CheckTxnStatusRequest {
            context: Some(h.ctx_for(b"x\0\0\0k")),
            primary_key: key,
            lock_ts: 30,
            current_ts: 40,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(resp.error.is_some_and(|e| e.txn_not_found.is_some()));
}

/// Prewrites one mutation of `key` (its own primary) at `start_ts`; asserts it succeeded.
async fn prewrite_one(h: &Harness, key: &[u8], op: Op, value: &[u8], start_ts: u64) {
    let resp = h
        .svc()
        .kv_prewrite(Request::new(PrewriteRequest {
            context: Some(h.ctx_for(key)),
            mutations: vec![Mutation {
                op: op as i32,
                key: key.to_vec(),
                value: value.to_vec(),
                ..Default::default()
            }],
            primary_lock: key.to_vec(),
            start_version: start_ts,
            lock_ttl: 3000,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(
        resp.errors.is_empty() && resp.region_error.is_none(),
        "{resp:?}"
    );
}

/// Commits `key` of the transaction at `start_ts`; asserts it succeeded.
async fn commit_one(h: &Harness, key: &[u8], start_ts: u64, commit_ts: u64) {
    let resp = h
        .svc()
        .kv_commit(Request::new(CommitRequest {
            context: Some(h.ctx_for(key)),
            start_version: start_ts,
            keys: vec![key.to_vec()],
            commit_version: commit_ts,
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(
        resp.error.is_none() && resp.region_error.is_none(),
        "{resp:?}"
    );
}

async fn mvcc_get_by_key(h: &Harness, ctx_key: &[u8], key: &[u8]) -> MvccGetByKeyResponse {
    h.svc()
        .mvcc_get_by_key(Request::new(MvccGetByKeyRequest {
            context: Some(h.ctx_for(ctx_key)),
            key: key.to_vec(),
        }))
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mvcc_get_by_key_lists_the_lock_and_every_version_newest_first() {
    let h = Harness::start();
    let key = b"x\0\0\0mvcc".to_vec();
    let long = vec![b'L'; 300];

    // A key nobody wrote: an empty answer, not an error.
    let resp = mvcc_get_by_key(&h, &key, &key).await;
    assert!(
        resp.error.is_empty() && resp.region_error.is_none(),
        "{resp:?}"
    );
    let info = resp.info.unwrap();
    assert!(info.lock.is_none() && info.writes.is_empty() && info.values.is_empty());

    // Put (short), Delete, Put (long: CF default), a rollback, then a prewrite left pending.
    prewrite_one(&h, &key, Op::Put, b"v1", 10).await;
    commit_one(&h, &key, 10, 11).await;
    prewrite_one(&h, &key, Op::Del, b"", 20).await;
    commit_one(&h, &key, 20, 21).await;
    prewrite_one(&h, &key, Op::Put, &long, 30).await;
    commit_one(&h, &key, 30, 31).await;
    let resp = h
        .svc()
        .kv_batch_rollback(Request::new(BatchRollbackRequest {
            context: Some(h.ctx_for(&key)),
            start_version: 40,
            keys: vec![key.clone()],
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(
        resp.error.is_none() && resp.region_error.is_none(),
        "{resp:?}"
    );
    prewrite_one(&h, &key, Op::Put, b"pending", 50).await;

    let resp = mvcc_get_by_key(&h, &key, &key).await;
    assert!(
        resp.error.is_empty() && resp.region_error.is_none(),
        "{resp:?}"
    );
    let info = resp.info.unwrap();
    let lock = info.lock.expect("the pending prewrite's lock");
    assert_eq!(lock.r#type, Op::Put as i32);
    assert_eq!((lock.start_ts, lock.ttl), (50, 3000));
    assert_eq!(lock.primary, key);
    assert_eq!(lock.short_value, b"pending");

    let writes: Vec<(i32, u64, u64, Vec<u8>)> = info
        .writes
        .iter()
        .map(|w| (w.r#type, w.commit_ts, w.start_ts, w.short_value.clone()))
        .collect();
    assert_eq!(
        writes,
        vec![
            (Op::Rollback as i32, 40, 40, Vec::new()),
            (Op::Put as i32, 31, 30, Vec::new()),
            (Op::Del as i32, 21, 20, Vec::new()),
            (Op::Put as i32, 11, 10, b"v1".to_vec()),
        ]
    );
    assert!(info.writes.iter().all(|w| !w.has_overlapped_rollback));
    // Only the long value lives in CF default.
    assert_eq!(info.values.len(), 1, "{:?}", info.values);
    assert_eq!(info.values[0].start_ts, 30);
    assert_eq!(info.values[0].value, long);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mvcc_get_by_key_refuses_bad_requests_with_text_or_region_errors() {
    let h = Harness::start();
    // No context.
    let resp = h
        .svc()
        .mvcc_get_by_key(Request::new(MvccGetByKeyRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(resp.error.contains("context"), "{resp:?}");
    assert!(resp.info.is_none());
    // A raw key is not a transactional one.
    let resp = mvcc_get_by_key(&h, b"x\0\0\0k", &key0("k")).await;
    assert!(resp.error.contains("transactional key"), "{resp:?}");
    // A transactional key sent to a region that does not hold it.
    let resp = mvcc_get_by_key(&h, &key0("k"), b"x\0\0\0k").await;
    assert!(
        resp.region_error.is_some() && resp.error.is_empty(),
        "{resp:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prewrites_outside_the_region_or_over_the_entry_limit_write_nothing() {
    let cfg = raftstore::Config {
        raft_entry_max_size: 64 * 1024,
        ..raftstore::Config::for_tests()
    };
    let h = Harness::start_with(cfg, KvConfig::default());
    let key = b"x\0\0\0k".to_vec();
    let prewrite = |ctx: Context, value: Vec<u8>| PrewriteRequest {
        context: Some(ctx),
        mutations: vec![Mutation {
            op: Op::Put as i32,
            key: key.clone(),
            value,
            ..Default::default()
        }],
        primary_lock: key.clone(),
        start_version: 10,
        lock_ttl: 3000,
        ..Default::default()
    };
    // Sent to the raw keyspace's region: the key is not in it.
    let wrong_region = h.ctx_for(b"r\0\0\0k");
    let resp = h
        .svc()
        .kv_prewrite(Request::new(prewrite(wrong_region, b"v".to_vec())))
        .await
        .unwrap()
        .into_inner();
    let err = resp.region_error.expect("region error");
    assert!(err.key_not_in_region.is_some(), "{err:?}");
    // A value larger than a raft entry may be.
    let resp = h
        .svc()
        .kv_prewrite(Request::new(prewrite(h.ctx_for(&key), vec![7; 100 * 1024])))
        .await
        .unwrap()
        .into_inner();
    let err = resp.region_error.expect("region error");
    assert!(err.raft_entry_too_large.is_some(), "{err:?}");
    // No lock was left by either.
    let locks = h
        .svc()
        .kv_scan_lock(Request::new(ScanLockRequest {
            context: Some(h.ctx_for(&key)),
            max_version: u64::MAX - 1,
            limit: 10,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(locks.locks.is_empty(), "{locks:?}");
}
