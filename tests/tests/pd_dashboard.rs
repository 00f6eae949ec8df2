//! PD's web page at `/dashboard`, rendered by headless Chromium against a fleet under load:
//! the stores and regions tables list what PD's API reports, the key-space heatmap has cells,
//! and a screenshot of the page lands in the cargo target directory. Malformed heatmap
//! queries are refused with a JSON error.

use std::collections::BTreeSet;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use shoal_fleet_tests::spawn::spawn_tied;
use shoal_fleet_tests::{
    configs, data, region_json, store_json, wait_for, wait_ok, Fleet, FleetOptions,
};

const CHROMIUM: &str = "chromium";
/// How long one Chromium run may take (a cold start on a busy debug-build machine).
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(90);
/// Virtual time the page's scripts get before the DOM is dumped or the screenshot taken; the
/// budget pauses while fetches are in flight, so it is not a wait on the fleet.
const VIRTUAL_TIME_MS: u32 = 8_000;
const VALUE_LEN: usize = 100;
const KEYS: usize = 6_000;

/// Chromium on PATH, or a failure saying how to install it.
fn chromium_path() -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(CHROMIUM))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{CHROMIUM}` is not on PATH: this test renders PD's dashboard in headless \
                 Chromium; `make deps` installs it (Debian package `chromium`)"
            )
        })
}

/// Kills a process group when dropped: Chromium's helper processes go with the browser.
struct GroupGuard(i32);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        // SAFETY: kill(2) with a negative pid signals the group this test created; a group
        // that is already gone only yields ESRCH.
        unsafe {
            libc::kill(-self.0, libc::SIGKILL);
        }
    }
}

/// Runs headless Chromium with `args` then `url`, stdout to `out`, bounded by
/// `CHROMIUM_TIMEOUT`; the whole process group is killed on return.
async fn chromium(args: &[String], url: &str, out: &Path, profile: &Path) -> ExitStatus {
    let stdout = File::create(out).unwrap();
    let stderr = File::create(out.with_extension("stderr")).unwrap();
    let mut command = Command::new(chromium_path());
    command
        .args([
            "--headless=new",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--virtual-time-budget={VIRTUAL_TIME_MS}"))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0);
    let mut child = spawn_tied(command).expect("cannot start chromium");
    let _group = GroupGuard(child.id() as i32);
    let deadline = Instant::now() + CHROMIUM_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(out.with_extension("stderr")).unwrap_or_default();
            panic!("chromium did not finish within {CHROMIUM_TIMEOUT:?}; its stderr:\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The values of `attr="..."` inside the element that starts with `open` (up to its `close`).
/// The part of `dom` from `open` to the next `close` (empty when `open` is missing).
fn section<'a>(dom: &'a str, open: &str, close: &str) -> &'a str {
    let Some(start) = dom.find(open) else {
        return "";
    };
    let section = &dom[start..];
    &section[..section.find(close).unwrap_or(section.len())]
}

fn attr_values(dom: &str, open: &str, close: &str, attr: &str) -> Vec<String> {
    let section = section(dom, open, close);
    let needle = format!("{attr}=\"");
    section
        .match_indices(&needle)
        .filter_map(|(at, _)| {
            let rest = &section[at + needle.len()..];
            rest.find('"').map(|end| rest[..end].to_string())
        })
        .collect()
}

fn ids(values: Vec<String>) -> BTreeSet<u64> {
    values.iter().filter_map(|v| v.parse().ok()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_stores_regions_and_a_heatmap_in_chromium() {
    chromium_path();
    let fleet = Fleet::start(FleetOptions {
        stores: 3,
        pd_config: configs::pd_config(""),
        store_config: configs::store_config(&configs::size_split_policy(64 * 1024, 48 * 1024)),
        ..FleetOptions::default()
    })
    .await
    .unwrap();
    let client = fleet.raw_client().await.unwrap();
    // Enough data for the small split size to cut the loaded range into several regions.
    data::load_and_verify(&client, "dash", 0..KEYS, 500, VALUE_LEN)
        .await
        .unwrap();
    // Splits and flow reach PD with the leaders' heartbeats.
    wait_ok(
        Duration::from_secs(120),
        "several regions and heatmap cells",
        || {
            let regions = fleet.regions().map_err(|e| e.to_string())?.len();
            let map = fleet
                .pd_get("/heatmap?kind=write")
                .map_err(|e| e.to_string())?;
            let cells = map["cells"].as_u64().unwrap_or(0);
            if regions >= 3 && cells > 0 {
                Ok(())
            } else {
                Err(format!("{regions} regions, {cells} heatmap cells"))
            }
        },
    )
    .await;
    let read = fleet
        .pd_get("/heatmap?kind=read&buckets=10&rows=50")
        .unwrap();
    assert_eq!(read["kind"], "read");
    assert_eq!(read["bucket_seconds"], 60);
    assert!(read["keys"].as_array().unwrap().len() <= 50, "{read}");
    assert_eq!(
        read["values"].as_array().unwrap().len(),
        read["times"].as_array().unwrap().len()
    );

    // Malformed queries: 400 with a JSON error.
    for query in [
        "kind=sideways",
        "buckets=abc",
        "buckets=0",
        "buckets=100000",
        "rows=-1",
    ] {
        let answer = fleet
            .pd_api()
            .request("GET", &format!("/heatmap?{query}"), None)
            .unwrap();
        assert_eq!(answer.status, 400, "{query}: {:?}", answer.body);
        assert!(
            answer.body["error"].is_string(),
            "{query}: {:?}",
            answer.body
        );
    }

    // The page and its assets are served on both of PD's addresses.
    for addr in [&fleet.pd_http, &fleet.pd_grpc] {
        for (path, kind) in [
            ("/dashboard", "text/html"),
            ("/dashboard/app.js", "text/javascript"),
            ("/dashboard/style.css", "text/css"),
        ] {
            let resp = ureq::get(&format!("http://{addr}{path}")).call().unwrap();
            assert!(resp.content_type().starts_with(kind), "{addr}{path}");
        }
    }

    let url = format!("http://{}/dashboard", fleet.pd_http);
    let work = fleet.dir().join("chromium");
    std::fs::create_dir_all(&work).unwrap();
    let profile = work.join("profile");
    let dom_file = work.join("dom.html");
    // Regions may still split while the page loads, so a render is compared with what PD
    // reports just before it, until one matches.
    let dom = wait_for(Duration::from_secs(300), "a render matching PD", || async {
        let stores: BTreeSet<u64> = fleet.stores().unwrap().iter().map(store_json::id).collect();
        let regions: BTreeSet<u64> = fleet
            .regions()
            .unwrap()
            .iter()
            .map(region_json::id)
            .collect();
        let status = chromium(&["--dump-dom".into()], &url, &dom_file, &profile).await;
        assert!(status.success(), "chromium --dump-dom failed: {status}");
        let dom = std::fs::read_to_string(&dom_file).unwrap();
        let shown_stores = ids(attr_values(
            &dom,
            "<table id=\"stores\"",
            "</table>",
            "data-store-id",
        ));
        let shown_regions = ids(attr_values(
            &dom,
            "<table id=\"regions\"",
            "</table>",
            "data-region-id",
        ));
        let cells: u64 = attr_values(&dom, "<canvas id=\"heatmap\"", ">", "data-cells")
            .first()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        eprintln!(
            "render: {} of {} stores, {} of {} regions, {cells} heatmap cells",
            shown_stores.len(),
            stores.len(),
            shown_regions.len(),
            regions.len()
        );
        (shown_stores == stores && shown_regions == regions && cells > 0).then_some(dom)
    })
    .await;
    assert!(
        dom.contains("data-state=\"loaded\""),
        "the page reported a refresh error"
    );

    // Keys are shown as the client wrote them ("dash" and 8 digits after the keyspace
    // prefix), not in their stored memcomparable form with a marker byte every 8 bytes.
    let table = section(&dom, "<table id=\"regions\"", "</table>");
    let shown_keys: Vec<&str> = table
        .match_indices(">r\\x00\\x00\\x00dash")
        .map(|(at, _)| {
            let key = &table[at + 1..];
            &key[..key.find('<').unwrap_or(key.len())]
        })
        .collect();
    assert!(!shown_keys.is_empty(), "no key shown as written: {table}");
    for key in &shown_keys {
        let digits = &key["r\\x00\\x00\\x00dash".len()..];
        assert!(
            digits.len() == 8 && digits.bytes().all(|b| b.is_ascii_digit()),
            "key shown as {key:?}"
        );
    }
    assert!(
        !table.contains("\\xff"),
        "a stored marker byte is shown: {table}"
    );

    // A filter in the address: PD filters (`/regions/search`) and the table shows what it
    // answers; a filter nothing matches leaves the table empty.
    let last_id = fleet.max_region_id().unwrap();
    let filtered_url = format!("{url}#filter={last_id}");
    wait_for(
        Duration::from_secs(300),
        "a filtered render matching PD",
        || {
            let (filtered_url, dom_file, profile) = (&filtered_url, &dom_file, &profile);
            let fleet = &fleet;
            async move {
                let expected: BTreeSet<u64> = fleet
                    .pd_get(&format!("/regions/search?q={last_id}"))
                    .unwrap()["regions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(region_json::id)
                    .collect();
                let status =
                    chromium(&["--dump-dom".into()], filtered_url, dom_file, profile).await;
                assert!(status.success(), "chromium --dump-dom failed: {status}");
                let dom = std::fs::read_to_string(dom_file).unwrap();
                let shown = ids(attr_values(
                    &dom,
                    "<table id=\"regions\"",
                    "</table>",
                    "data-region-id",
                ));
                eprintln!("filtered render: {shown:?}, PD matches {expected:?}");
                (shown.contains(&last_id) && shown == expected).then_some(())
            }
        },
    )
    .await;
    let status = chromium(
        &["--dump-dom".into()],
        &format!("{url}#filter=no%20such%20key"),
        &dom_file,
        &profile,
    )
    .await;
    assert!(status.success(), "chromium --dump-dom failed: {status}");
    let dom = std::fs::read_to_string(&dom_file).unwrap();
    assert!(
        dom.contains("data-state=\"loaded\""),
        "the filtered page did not load"
    );
    let shown = ids(attr_values(
        &dom,
        "<table id=\"regions\"",
        "</table>",
        "data-region-id",
    ));
    assert!(
        shown.is_empty(),
        "a filter nothing matches showed {shown:?}"
    );
    assert!(
        dom.contains("showing 0 of 0 matching"),
        "no match count shown"
    );

    // A screenshot next to the build's outputs, for people to look at.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let png = target.join("pd-dashboard.png");
    let _ = std::fs::remove_file(&png);
    let status = chromium(
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1400,1800".into(),
        ],
        &url,
        &work.join("screenshot.out"),
        &profile,
    )
    .await;
    assert!(status.success(), "chromium --screenshot failed: {status}");
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    let png_head = std::fs::read(&png).unwrap_or_default();
    assert!(
        png_head.starts_with(b"\x89PNG"),
        "{} is not a PNG",
        png.display()
    );
    assert!(size > 20_000, "{} is only {size} bytes", png.display());
    eprintln!("dashboard screenshot: {}", png.display());
}
