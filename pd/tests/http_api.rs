//! The JSON HTTP API: stores, regions, operators, schedule config, health and metrics.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_regions_config_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let pd = start(test_config(dir.path())).await;
    let cid = pd.cluster_id();
    let addr = pd.http_addr();
    let (status, body) = http_json(addr, "GET", "/pd/api/v1/regions", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["count"], 0);

    let mut c = client(&pd).await;
    let s1 = alloc_id(&mut c, cid).await;
    let region = bootstrap(&mut c, cid, s1).await;
    store_heartbeat(&mut c, cid, s1).await;

    let (_, body) = http_json(addr, "GET", "/pd/api/v1/regions", None).await;
    assert_eq!(body["count"], 1);
    let r = &body["regions"][0];
    assert_eq!(r["id"], region.id);
    assert_eq!(r["start_key"], "");
    assert_eq!(r["end_key"], "");
    assert_eq!(r["epoch"]["version"], 1);
    assert_eq!(r["peers"][0]["role_name"], "Voter");
    assert_eq!(r["leader"]["store_id"], s1);

    let (_, body) = http_json(addr, "GET", "/pd/api/v1/stores", None).await;
    assert_eq!(body["count"], 1);
    let s = &body["stores"][0];
    assert_eq!(s["store"]["id"], s1);
    assert_eq!(s["store"]["state_name"], "Up");
    assert_eq!(s["status"]["region_count"], 1);
    assert_eq!(s["status"]["leader_count"], 1);
    assert_eq!(s["status"]["capacity"], 100u64 << 30);
    assert!(s["status"]["last_heartbeat_ts"].as_u64().unwrap() > 0);

    let (status, _) = http_json(
        addr,
        "GET",
        &format!("/pd/api/v1/region/id/{}", region.id),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = http_json(addr, "GET", "/pd/api/v1/region/key/7a7a", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["id"], region.id);
    for (method, path, want) in [
        ("GET", "/pd/api/v1/store/999999", 404),
        ("GET", "/pd/api/v1/store/abc", 400),
        ("DELETE", "/pd/api/v1/store/999999", 404),
        ("GET", "/pd/api/v1/region/id/999999", 404),
        ("GET", "/pd/api/v1/region/key/zz", 400),
        ("DELETE", "/pd/api/v1/operators/999999", 404),
    ] {
        let (status, body) = http_json(addr, method, path, None).await;
        assert_eq!(status, want, "{method} {path}");
        assert!(body["error"].is_string(), "{method} {path}");
    }

    // Schedule config: partial, validated, persisted.
    let (status, body) = http_json(
        addr,
        "POST",
        "/pd/api/v1/config/schedule",
        Some(r#"{"leader-schedule-limit": 7, "max-store-down-time": "5s"}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["leader-schedule-limit"], 7);
    assert_eq!(body["max-store-down-time"], "5s");
    for bad in [
        r#"{"max-replicas": 0}"#,
        r#"{"unknown-knob": 1}"#,
        "[]",
        "{",
    ] {
        let (status, body) = http_json(addr, "POST", "/pd/api/v1/config/schedule", Some(bad)).await;
        assert_eq!(status, 400, "{bad}");
        assert!(body["error"].is_string());
    }
    let (_, ops) = http_json(addr, "GET", "/pd/api/v1/operators", None).await;
    assert!(ops["operators"].is_array());
    let (status, _) = http_json(addr, "GET", "/pd/api/v1/health", None).await;
    assert_eq!(status, 200);
    let (status, metrics) = http(addr, "GET", "/metrics", None).await;
    assert_eq!(status, 200);
    assert!(metrics.contains("shoal_pd_regions 1"), "{metrics}");
    drop(c);
    pd.shutdown().await.unwrap();

    let pd = start(test_config(dir.path())).await;
    let (_, body) = http_json(pd.http_addr(), "GET", "/pd/api/v1/config/schedule", None).await;
    assert_eq!(
        body["leader-schedule-limit"], 7,
        "runtime config changes survive a restart"
    );
    pd.shutdown().await.unwrap();
}

/// A decommission that would leave fewer Up stores than max-replicas is refused (the store
/// could never be emptied and would stay Offline for good); one under way can be cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decommission_needs_enough_stores_left_and_can_be_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let pd = start(test_config(dir.path())).await;
    let cid = pd.cluster_id();
    let addr = pd.http_addr();
    let mut c = client(&pd).await;
    let s1 = alloc_id(&mut c, cid).await;
    bootstrap(&mut c, cid, s1).await;
    let (s2, s3) = (alloc_id(&mut c, cid).await, alloc_id(&mut c, cid).await);
    put_store(&mut c, cid, s2).await;
    put_store(&mut c, cid, s3).await;
    let state = |body: &serde_json::Value| body["store"]["state_name"].clone();

    let (status, body) = http_json(addr, "DELETE", &format!("/pd/api/v1/store/{s3}"), None).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("max-replicas"),
        "{body}"
    );
    let (_, body) = http_json(addr, "GET", &format!("/pd/api/v1/store/{s3}"), None).await;
    assert_eq!(state(&body), "Up");

    let (status, _) = http_json(
        addr,
        "POST",
        "/pd/api/v1/config/schedule",
        Some(r#"{"max-replicas": 2}"#),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = http_json(addr, "DELETE", &format!("/pd/api/v1/store/{s3}"), None).await;
    assert_eq!((status, state(&body)), (200, "Offline".into()), "{body}");
    let path = format!("/pd/api/v1/store/{s3}/state?state=Up");
    let (status, body) = http_json(addr, "POST", &path, None).await;
    assert_eq!((status, state(&body)), (200, "Up".into()), "{body}");
    let path = format!("/pd/api/v1/store/{s3}/state?state=Offline");
    let (status, body) = http_json(addr, "POST", &path, None).await;
    assert_eq!((status, state(&body)), (200, "Offline".into()), "{body}");
    for (path, want) in [
        (format!("/pd/api/v1/store/{s3}/state?state=Tombstone"), 400),
        (format!("/pd/api/v1/store/{s3}/state"), 400),
        ("/pd/api/v1/store/999999/state?state=Up".to_string(), 404),
        // s3 is Offline: taking s2 too would leave one Up store.
        (format!("/pd/api/v1/store/{s2}/state?state=Offline"), 409),
    ] {
        let (status, body) = http_json(addr, "POST", &path, None).await;
        assert_eq!(status, want, "{path}: {body}");
        assert!(body["error"].is_string(), "{path}: {body}");
    }
    drop(c);
    pd.shutdown().await.unwrap();
}

/// The API answers on the gRPC client address too (HTTP/1.1 there, next to gRPC's HTTP/2),
/// as PD serves both on its client URL: the same answers as on the HTTP address, JSON 404s
/// for unknown paths on both, and gRPC keeps working on the shared address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_is_also_served_on_the_grpc_client_address() {
    let dir = tempfile::tempdir().unwrap();
    let pd = start(test_config(dir.path())).await;
    let cid = pd.cluster_id();
    let mut c = client(&pd).await;
    let s1 = alloc_id(&mut c, cid).await;
    bootstrap(&mut c, cid, s1).await;
    store_heartbeat(&mut c, cid, s1).await;

    for path in [
        "/pd/api/v1/health",
        "/pd/api/v1/members",
        "/pd/api/v1/stores",
        "/pd/api/v1/regions",
        "/pd/api/v1/cluster",
    ] {
        let (http_status, on_http) = http_json(pd.http_addr(), "GET", path, None).await;
        let (grpc_status, on_grpc) = http_json(pd.grpc_addr(), "GET", path, None).await;
        assert_eq!((http_status, grpc_status), (200, 200), "{path}");
        if path.ends_with("/stores") {
            // Heartbeat times may move between the two reads; the stores are the same.
            assert_eq!(on_http["count"], on_grpc["count"]);
            assert_eq!(on_grpc["stores"][0]["store"]["id"], s1);
        } else {
            assert_eq!(on_http, on_grpc, "{path}");
        }
    }
    // The read endpoints tools expect, on the shared address.
    let addr = pd.grpc_addr();
    let (_, listed) = http_json(addr, "GET", "/pd/api/v1/regions/key?key=&limit=5", None).await;
    assert_eq!(listed["count"], 1);
    // The one region holds key 6d ("m"), but an empty range holds nothing.
    let (_, empty) = http_json(
        addr,
        "GET",
        "/pd/api/v1/regions/key?key=6d&end_key=6d",
        None,
    )
    .await;
    assert_eq!(empty["count"], 0, "{empty}");
    for bad in ["key=zz", "limit=many", "key=6d&end_key=61"] {
        let path = format!("/pd/api/v1/regions/key?{bad}");
        let (status, body) = http_json(addr, "GET", &path, None).await;
        assert_eq!(status, 400, "{bad}");
        assert!(body["error"].is_string(), "{bad}: {body}");
    }
    // The parameter at fault is named.
    let (_, body) = http_json(addr, "GET", "/pd/api/v1/regions/key?limit=many", None).await;
    assert!(
        body["error"].as_str().unwrap().contains("limit \"many\""),
        "{body}"
    );
    // The dashboard's page of matching regions: the bootstrapped region by its id, none for
    // a filter nothing matches, and a typed error for a bad limit.
    let region_id = listed["regions"][0]["id"].as_u64().unwrap();
    let path = format!("/pd/api/v1/regions/search?q={region_id}&limit=10");
    let (status, found) = http_json(addr, "GET", &path, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        (found["count"].as_u64(), found["total"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(found["regions"][0]["id"], region_id);
    let (_, none) = http_json(addr, "GET", "/pd/api/v1/regions/search?q=zzz", None).await;
    assert_eq!(
        (none["count"].as_u64(), none["matching"].as_u64()),
        (Some(0), Some(0))
    );
    let (status, body) = http_json(addr, "GET", "/pd/api/v1/regions/search?limit=many", None).await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("limit \"many\""),
        "{body}"
    );
    let (_, config) = http_json(addr, "GET", "/pd/api/v1/config", None).await;
    assert_eq!(config["schedule"]["max-replicas"], 3);
    assert_eq!(config["storage"]["api-version"], 2);
    // Errors axum answers itself are JSON too: a method a path does not take, a key that is
    // not UTF-8.
    let (status, refused) = http_json(addr, "POST", "/pd/api/v1/config", Some("{}")).await;
    assert_eq!(status, 405);
    assert!(refused["error"].is_string(), "{refused}");
    let (status, refused) = http_json(addr, "GET", "/pd/api/v1/region/key/%ff%00", None).await;
    assert_eq!(status, 400);
    assert!(refused["error"].is_string(), "{refused}");
    let (_, schedulers) = http_json(addr, "GET", "/pd/api/v1/schedulers", None).await;
    assert!(schedulers
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("balance-leader-scheduler")));
    for flow in ["write", "read"] {
        let path = format!("/pd/api/v1/hotspot/regions/{flow}");
        let (status, hot) = http_json(addr, "GET", &path, None).await;
        assert_eq!(status, 200);
        assert!(hot["as_leader"].is_object(), "{hot}");
    }
    let (status, metrics) = http(pd.grpc_addr(), "GET", "/metrics", None).await;
    assert_eq!(status, 200);
    assert!(metrics.contains("shoal_pd_"), "{metrics}");
    for addr in [pd.http_addr(), pd.grpc_addr()] {
        let (status, body) = http_json(addr, "GET", "/pd/api/v1/no-such-thing", None).await;
        assert_eq!(status, 404);
        assert!(body["error"].as_str().unwrap().contains("no-such-thing"));
    }
    // gRPC still answers on the shared address after all that.
    assert!(alloc_id(&mut c, cid).await > s1);
}
