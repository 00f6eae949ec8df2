//! `[server] cpu-scheduling = "batch"`: every thread of a running store, including the raft
//! poller, apply and RocksDB threads it starts after reading its config, runs under Linux's
//! `SCHED_BATCH`, and the store serves reads and writes.

use std::collections::BTreeSet;

use shoal_fleet_tests::configs::store_config;
use shoal_fleet_tests::{Fleet, FleetOptions};

/// `SCHED_BATCH` in sched(7) and in field 41 of `/proc/<pid>/task/<tid>/stat`.
const SCHED_BATCH: u32 = 3;

/// Name and scheduling policy of each thread of process `pid`.
fn thread_policies(pid: u32) -> Vec<(String, u32)> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    let mut out = Vec::new();
    for task in tasks {
        let dir = task.unwrap().path();
        // A thread may end between the listing and the read.
        let (Ok(comm), Ok(stat)) = (
            std::fs::read_to_string(dir.join("comm")),
            std::fs::read_to_string(dir.join("stat")),
        ) else {
            continue;
        };
        // Fields after the parenthesised command name start at field 3 (`state`).
        let after_name = &stat[stat.rfind(')').unwrap() + 1..];
        let policy: u32 = after_name
            .split_whitespace()
            .nth(41 - 3)
            .unwrap()
            .parse()
            .unwrap();
        out.push((comm.trim().to_string(), policy));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_thread_of_a_batch_scheduled_store_runs_under_sched_batch() {
    let options = FleetOptions {
        stores: 1,
        store_config: format!(
            "{}\n[server]\ncpu-scheduling = \"batch\"\n",
            store_config("")
        ),
        ..FleetOptions::default()
    };
    let fleet = Fleet::start(options).await.unwrap();
    let client = fleet.raw_client().await.unwrap();
    client
        .put("sched-k".to_owned(), "v".to_owned())
        .await
        .unwrap();
    assert_eq!(
        client.get("sched-k".to_owned()).await.unwrap(),
        Some(b"v".to_vec())
    );

    let pid = fleet.store(0).process.pid().unwrap();
    let threads = thread_policies(pid);
    let not_batch: Vec<&(String, u32)> =
        threads.iter().filter(|(_, p)| *p != SCHED_BATCH).collect();
    assert!(
        not_batch.is_empty(),
        "threads not under SCHED_BATCH: {not_batch:?}"
    );
    // The store's own threads, started after the policy was applied, are among them.
    let kinds: BTreeSet<String> = threads
        .iter()
        .map(|(name, _)| name.split('-').next().unwrap_or(name).to_string())
        .collect();
    for kind in ["raftstore", "apply", "rocksdb:low"] {
        assert!(
            kinds.iter().any(|k| k.starts_with(kind)),
            "no {kind} thread among {kinds:?}"
        );
    }
}
