//! `shoal-ctl` against a 3-store fleet, through the real binary: the transactional commands
//! (`txn put/get/delete/scan`, `mvcc --key` with every version from the leader's
//! MvccGetByKey, `locks`), `gc` moving the safe point, and `presplit` with `cluster` paging
//! through the regions it made.

use std::process::Output;

use shoal_fleet_tests::binaries::ctl_binary;
use shoal_fleet_tests::txn_by_hand::prewrite_puts;
use shoal_fleet_tests::{Fleet, FleetOptions};
use tikv_client::TimestampExt;

/// Runs `shoal-ctl` against `fleet` with `args`.
async fn ctl(fleet: &Fleet, args: &[&str]) -> Output {
    tokio::process::Command::new(ctl_binary().unwrap())
        .args(["--pd", &fleet.pd_grpc, "--pd-http", &fleet.pd_http])
        .args(args)
        .output()
        .await
        .unwrap()
}

/// Runs `shoal-ctl` and returns its standard output; fails the test when it fails.
async fn ctl_ok(fleet: &Fleet, args: &[&str]) -> String {
    let out = ctl(fleet, args).await;
    assert!(
        out.status.success(),
        "shoal-ctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The `(commit_ts, rest of the line)` of each write line of an `mvcc` report.
fn write_lines(report: &str) -> Vec<(u64, String)> {
    report
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("commit_ts="))
        .map(|l| {
            let (ts, rest) = l.split_once(' ').unwrap();
            (ts.parse().unwrap(), rest.to_string())
        })
        .collect()
}

/// The rest of a write line without its start_ts, which the test cannot know.
fn without_start_ts(rest: &str) -> String {
    rest.split(' ')
        .filter(|f| !f.starts_with("start_ts="))
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txn_commands_write_read_and_mvcc_shows_every_version() {
    let fleet = Fleet::start(FleetOptions::default()).await.unwrap();
    let long = "L".repeat(300);

    assert_eq!(ctl_ok(&fleet, &["txn", "put", "a", "1"]).await, "OK\n");
    ctl_ok(&fleet, &["txn", "put", "a", "2"]).await;
    ctl_ok(&fleet, &["txn", "put", "b", "3"]).await;
    ctl_ok(&fleet, &["txn", "delete", "b"]).await;
    ctl_ok(&fleet, &["txn", "put", "c", &long]).await;
    ctl_ok(&fleet, &["txn", "put", "d=\\x00", "x y"]).await;

    assert_eq!(ctl_ok(&fleet, &["txn", "get", "a"]).await, "a=2\n");
    let missing = ctl(&fleet, &["txn", "get", "b"]).await;
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("key b not found"));
    // The raw keyspace is another key space.
    assert!(!ctl(&fleet, &["get", "a"]).await.status.success());

    assert_eq!(
        ctl_ok(&fleet, &["txn", "scan"]).await,
        format!("a=2\nc={long}\nd\\x3d\\x00=x y\n")
    );
    assert_eq!(
        ctl_ok(&fleet, &["txn", "scan", "--from", "b", "--keys-only"]).await,
        "c\nd\\x3d\\x00\n"
    );
    assert_eq!(
        ctl_ok(&fleet, &["txn", "scan", "--to", "c", "--limit", "1"]).await,
        "a=2\n"
    );

    // Every version of a, newest first.
    let report = ctl_ok(&fleet, &["mvcc", "--key", "a"]).await;
    assert!(report.starts_with("key: a\nregion "), "{report}");
    assert!(report.contains("lock: none\n"), "{report}");
    assert!(report.contains("writes: 2, newest first\n"), "{report}");
    let writes = write_lines(&report);
    assert!(writes[0].0 > writes[1].0, "{report}");
    let rest: Vec<String> = writes.iter().map(|w| without_start_ts(&w.1)).collect();
    assert_eq!(
        rest,
        vec!["type=Put value=2", "type=Put value=1"],
        "{report}"
    );

    // The delete is a version too; the long value lives in CF default.
    let report = ctl_ok(&fleet, &["mvcc", "--key", "b"]).await;
    let rest: Vec<String> = write_lines(&report)
        .iter()
        .map(|w| without_start_ts(&w.1))
        .collect();
    assert_eq!(rest, vec!["type=Delete", "type=Put value=3"], "{report}");
    let report = ctl_ok(&fleet, &["mvcc", "--key", "c"]).await;
    assert!(
        report.contains("type=Put value=<long value in default CF, 300 bytes>"),
        "{report}"
    );
    let report = ctl_ok(&fleet, &["mvcc", "--key", "never-written"]).await;
    assert!(report.contains("lock: none\nwrites: none\n"), "{report}");

    // Every transaction committed: nothing is locked.
    assert_eq!(ctl_ok(&fleet, &["locks"]).await, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_prewrite_shows_in_locks_and_mvcc() {
    let fleet = Fleet::start(FleetOptions::default()).await.unwrap();
    let client = fleet.txn_client().await.unwrap();
    let start_ts = client.current_timestamp().await.unwrap().version();

    // Prewrite p as a client would, then walk away (a long TTL keeps the lock alive); the
    // shared helper routes again while a fresh fleet's leaders move.
    let resp = prewrite_puts(&fleet, &[b"p"], b"pending", start_ts, 600_000).await;
    assert!(
        resp.region_error.is_none() && resp.errors.is_empty(),
        "{resp:?}"
    );

    let line = format!("key=p primary=p start_ts={start_ts} ttl=600000 type=Put\n");
    assert_eq!(ctl_ok(&fleet, &["locks"]).await, line);
    assert_eq!(ctl_ok(&fleet, &["locks", "--key", "p"]).await, line);
    assert_eq!(
        ctl_ok(&fleet, &["locks", "--from", "a", "--to", "q"]).await,
        line
    );
    assert_eq!(ctl_ok(&fleet, &["locks", "--key", "q"]).await, "");
    assert_eq!(ctl_ok(&fleet, &["locks", "--from", "q"]).await, "");

    let report = ctl_ok(&fleet, &["mvcc", "--key", "p"]).await;
    assert!(
        report.contains(&format!(
            "lock: type=Put start_ts={start_ts} primary=p ttl=600000 value=pending\n"
        )),
        "{report}"
    );
    assert!(report.contains("writes: none\n"), "{report}");
}

/// The number in `(N of M regions shown ...)` or `regions: M (...` after `marker`.
fn number_after(text: &str, marker: &str) -> u64 {
    let at = text
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker:?} in {text}"));
    text[at + marker.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("no number after {marker:?} in {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presplit_makes_the_regions_asked_for_and_cluster_pages_through_them() {
    let fleet = Fleet::start(FleetOptions::default()).await.unwrap();
    // Data written before the split is still there after it.
    for i in (0..1000).step_by(37) {
        ctl_ok(&fleet, &["put", &format!("num{i:04}"), &format!("v{i}")]).await;
    }
    let split = [
        "presplit",
        "--prefix",
        "num",
        "--digits",
        "4",
        "--max",
        "1000",
        "--regions",
        "40",
        "--batch",
        "16",
    ];
    let out = ctl_ok(&fleet, &split).await;
    // 39 keys in batches of at most 16: three operators.
    assert!(
        out.starts_with("split at 39 new keys (0 already boundaries) with 3 operators"),
        "{out}"
    );
    // The same split again finds every key a boundary already.
    let again = ctl_ok(&fleet, &split).await;
    assert!(
        again.starts_with("split at 0 new keys (39 already boundaries)"),
        "{again}"
    );
    let region = ctl_ok(&fleet, &["region", "--key", "num0030"]).await;
    assert!(
        region.contains("num0025, r\\x00\\x00\\x00num0050)"),
        "{region}"
    );

    // One page of five regions from num0100, with the next page's first key, and totals over
    // all regions.
    let page = ctl_ok(&fleet, &["cluster", "--limit", "5", "--from", "num0100"]).await;
    let total = number_after(&page, "regions: ");
    assert!(total >= 40, "{page}");
    assert_eq!(number_after(&page, "(5 of "), total, "{page}");
    assert!(page.contains("the next page: --from 'num0225'"), "{page}");
    let listed: Vec<&str> = page
        .lines()
        .filter(|l| l.contains("r\\x00\\x00\\x00num0"))
        .collect();
    assert_eq!(listed.len(), 5, "{page}");
    assert!(listed[0].contains("num0100"), "{page}");
    let next = ctl_ok(&fleet, &["cluster", "--limit", "5", "--from", "num0225"]).await;
    assert!(next.contains("the next page: --from 'num0350'"), "{next}");

    for i in (0..1000).step_by(37) {
        let got = ctl_ok(&fleet, &["get", &format!("num{i:04}")]).await;
        assert_eq!(got, format!("num{i:04}=v{i}\n"));
    }
}

/// In an API V1 cluster, `scan` prints each key of the range once, in order: keys past PD's
/// tail boundary (nine `0xff` bytes) included, none outside the range, none twice, and an
/// unbounded scan reaches past the first region. (Client 0.4 alone repeats keys from the
/// start of the key space when a bounded scan reaches the last region, and stops an unbounded
/// one at the first region's end.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_scan_prints_each_key_of_its_range_once() {
    let fleet = Fleet::start(FleetOptions::api_v1()).await.unwrap();
    let v1 = |args: &[&str]| {
        let mut all = vec!["--api-version", "1"];
        all.extend_from_slice(args);
        all.into_iter().map(String::from).collect::<Vec<String>>()
    };
    let tail = "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff";
    let keys: Vec<String> = ["a", "b", "m", "z"]
        .iter()
        .map(|k| k.to_string())
        .chain([format!("{tail}a"), format!("{tail}b")])
        .collect();
    for k in &keys {
        let args = v1(&["put", k, "v"]);
        ctl_ok(&fleet, &args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    }
    let fleet = &fleet;
    let scan = |args: Vec<String>| async move {
        let out = ctl_ok(fleet, &args.iter().map(String::as_str).collect::<Vec<_>>()).await;
        out.lines().map(String::from).collect::<Vec<String>>()
    };
    let to = format!("{tail}z");
    assert_eq!(
        scan(v1(&["scan", "--keys-only", "--from", "\\xff", "--to", &to])).await,
        keys[4..].to_vec()
    );
    assert_eq!(
        scan(v1(&["scan", "--keys-only", "--from", "m", "--to", &to])).await,
        keys[2..].to_vec()
    );
    assert_eq!(scan(v1(&["scan", "--keys-only"])).await, keys);
    assert_eq!(
        scan(v1(&["scan", "--from", "m"])).await,
        keys[2..]
            .iter()
            .map(|k| format!("{k}=v"))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        scan(v1(&["scan", "--keys-only", "--limit", "5"])).await,
        keys[..5].to_vec()
    );
}

/// Scans whose answers outgrow the 4 MiB the official client takes (tonic's default) are
/// made in pages: 24 values of 300 KiB (7 MiB) print in full, raw and transactional, where
/// one client scan of the whole range used to fail with "message length too large". A
/// reversed range is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_larger_than_a_client_answer_print_every_row() {
    let fleet = Fleet::start(FleetOptions::default()).await.unwrap();
    let value = vec![b'v'; 300 * 1024];
    let keys: Vec<String> = (0..24).map(|i| format!("big{i:03}")).collect();
    let raw = fleet.raw_client().await.unwrap();
    for k in &keys {
        raw.put(k.clone(), value.clone()).await.unwrap();
    }
    let txn_client = fleet.txn_client().await.unwrap();
    for k in &keys {
        let mut txn = txn_client.begin_optimistic().await.unwrap();
        txn.put(format!("t{k}"), value.clone()).await.unwrap();
        txn.commit().await.unwrap();
    }
    let expected = |prefix: &str| -> Vec<String> {
        let v = String::from_utf8(value.clone()).unwrap();
        keys.iter().map(|k| format!("{prefix}{k}={v}")).collect()
    };

    let out = ctl_ok(
        &fleet,
        &["scan", "--from", "big", "--to", "bih", "--limit", "100"],
    )
    .await;
    assert_eq!(
        out.lines().map(String::from).collect::<Vec<_>>(),
        expected("")
    );
    let out = ctl_ok(&fleet, &["scan", "--from", "big", "--limit", "10"]).await;
    assert_eq!(
        out.lines().map(String::from).collect::<Vec<_>>(),
        expected("")[..10].to_vec()
    );
    let out = ctl_ok(&fleet, &["txn", "scan", "--from", "tbig", "--limit", "100"]).await;
    assert_eq!(
        out.lines().map(String::from).collect::<Vec<_>>(),
        expected("t")
    );

    for args in [
        &["scan", "--from", "z", "--to", "a"][..],
        &["txn", "scan", "--from", "z", "--to", "a"][..],
    ] {
        let out = ctl(&fleet, args).await;
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--to is before --from"), "{args:?}: {err}");
    }
}

/// `gc --safe-point` resolves the locks below it, moves PD's safe point, and the stores then
/// keep only the newest version of a key at or below it; a safe point behind PD's is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_resolves_old_locks_moves_the_safe_point_and_the_stores_drop_old_versions() {
    let fleet = Fleet::start(FleetOptions::default()).await.unwrap();
    let client = fleet.txn_client().await.unwrap();
    for value in ["1", "2", "3"] {
        ctl_ok(&fleet, &["txn", "put", "a", value]).await;
    }
    // An abandoned prewrite whose lock has expired (1 ms TTL): gc rolls it back.
    let abandoned_ts = client.current_timestamp().await.unwrap().version();
    let resp = prewrite_puts(&fleet, &[b"p"], b"abandoned", abandoned_ts, 1).await;
    assert!(
        resp.region_error.is_none() && resp.errors.is_empty(),
        "{resp:?}"
    );
    let safe_point = client.current_timestamp().await.unwrap().version();
    // Written after the safe point: kept whatever happens.
    ctl_ok(&fleet, &["txn", "put", "a", "4"]).await;

    let short = ctl(&fleet, &["gc", "--life-time", "1m"]).await;
    assert!(!short.status.success());
    assert!(
        String::from_utf8_lossy(&short.stderr).contains("shorter than the minimum 10m"),
        "{}",
        String::from_utf8_lossy(&short.stderr)
    );

    let out = ctl_ok(&fleet, &["gc", "--safe-point", &safe_point.to_string()]).await;
    assert!(
        out.contains(&format!(
            "GC safe point: 0 (1970-01-01T00:00:00Z) -> {safe_point} ("
        )),
        "{out}"
    );
    let cluster = fleet.pd_get("cluster").unwrap();
    assert_eq!(cluster["gc_safe_point"].as_u64(), Some(safe_point));
    assert_eq!(ctl_ok(&fleet, &["locks", "--key", "p"]).await, "");
    assert_eq!(ctl_ok(&fleet, &["txn", "get", "a"]).await, "a=4\n");

    // The leader's GC worker polls PD every 200 ms (test config).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let report = ctl_ok(&fleet, &["mvcc", "--key", "a"]).await;
        let values: Vec<String> = write_lines(&report)
            .iter()
            .map(|w| without_start_ts(&w.1))
            .collect();
        if values.len() < 4 || std::time::Instant::now() > deadline {
            assert_eq!(
                values,
                vec!["type=Put value=4", "type=Put value=3"],
                "{report}"
            );
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // An older safe point, or a life time reaching before it, leaves PD's alone.
    let out = ctl_ok(&fleet, &["gc", "--safe-point", "1"]).await;
    assert!(
        out.starts_with(&format!("GC safe point stays at {safe_point} (")),
        "{out}"
    );
    let out = ctl_ok(&fleet, &["gc"]).await;
    assert!(out.starts_with("GC safe point stays at"), "{out}");
    let future = ctl(&fleet, &["gc", "--safe-point", &u64::MAX.to_string()]).await;
    assert!(!future.status.success());
}
