//! Machine-readable logs: a fleet whose stores run with `[log] format = "json"` writes one JSON
//! object per log line, and a region's events (here a split) carry its `region_id`.

use std::time::Duration;

use serde_json::Value;
use shoal_fleet_tests::configs::store_config;
use shoal_fleet_tests::txn_split::split_at_each;
use shoal_fleet_tests::{wait_until_async, Fleet, FleetOptions};

/// The JSON log lines of a store's stderr (the harness writes a `=====` banner before each
/// start, which is not the store's).
fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|line| !line.starts_with("=====") && !line.is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line_and_region_events_name_the_region() {
    let options = FleetOptions {
        store_config: format!("{}\n[log]\nformat = \"json\"\n", store_config("")),
        ..FleetOptions::default()
    };
    let fleet = Fleet::start(options).await.unwrap();
    split_at_each(&fleet, &[b"logs-m".to_vec()], Duration::from_secs(30))
        .await
        .unwrap();
    let read_all = || {
        (0..fleet.store_count())
            .map(|i| std::fs::read_to_string(fleet.store(i).process.stderr_log()).unwrap())
            .flat_map(|text| json_lines(&text))
            .collect::<Vec<Value>>()
    };
    // The split's log line is written by whichever store applies it first; wait for one.
    wait_until_async(Duration::from_secs(30), "a logged region split", || async {
        read_all()
            .iter()
            .any(|l| l["fields"]["message"] == "region split")
    })
    .await;
    let lines = read_all();
    assert!(!lines.is_empty());
    for line in &lines {
        assert!(line["level"].is_string(), "{line}");
        assert!(line["target"].is_string(), "{line}");
        assert!(line["fields"]["message"].is_string(), "{line}");
    }
    let splits: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "region split")
        .collect();
    assert!(!splits.is_empty());
    for split in splits {
        assert!(split["fields"]["region_id"].is_u64(), "{split}");
    }
}
