//! What stores tell PD: region heartbeats from leaders (meta, leader, down peers, sizes,
//! flow) and store heartbeats (disk, region count).

use std::time::{Duration, Instant};

use proto::pdpb::RegionHeartbeatRequest;
use raftstore::Config;
use test_cluster::pd::RegionReports;
use test_cluster::*;

/// Test timings with PD reports every 100 ms and peers down after one silent second.
fn pd_config() -> Config {
    Config {
        pd_heartbeat_tick_interval: Duration::from_millis(100),
        pd_store_heartbeat_tick_interval: Duration::from_millis(100),
        max_peer_down_duration: Duration::from_secs(1),
        ..Config::for_tests()
    }
}

fn started(count: usize, cfg: Config, split_keys: &[Vec<u8>]) -> Cluster {
    let mut cluster = Cluster::with_config(count, cfg);
    cluster.bootstrap(split_keys);
    cluster.start();
    cluster
}

fn down_ids(hb: &RegionHeartbeatRequest) -> Vec<u64> {
    hb.down_peers
        .iter()
        .filter_map(|d| d.peer.map(|p| p.id))
        .collect()
}

#[test]
fn leaders_report_after_election_split_and_transfer() {
    let cluster = started(3, pd_config(), &[]);
    let leader = cluster.wait_leader(1);
    let bootstrapped = cluster.bootstrapped_regions()[0].clone();
    let hb = cluster
        .pd
        .wait_region_heartbeat(1, DEFAULT_TIMEOUT, |hb| {
            hb.leader.map(|l| l.id) == Some(leader.id)
        })
        .expect("the elected leader reports its region");
    let region = hb.region.unwrap();
    assert_eq!(region.region_epoch, bootstrapped.region_epoch);
    assert_eq!(region.peers, bootstrapped.peers);
    assert!(hb.term > 0);
    assert!(hb.header.is_none(), "the PD client fills the header");

    // After a split both regions are reported with their new ranges.
    let regions = cluster.must_split(&[b"m"]);
    assert_eq!(regions.len(), 2);
    for r in &regions {
        let hb = cluster
            .pd
            .wait_region_heartbeat(r.id, DEFAULT_TIMEOUT, |hb| {
                hb.region
                    .as_ref()
                    .is_some_and(|x| x.region_epoch == r.region_epoch)
            })
            .unwrap_or_else(|| panic!("region {} reported after the split", r.id));
        let reported = hb.region.unwrap();
        assert_eq!(
            (reported.start_key, reported.end_key),
            (r.start_key.clone(), r.end_key.clone())
        );
        let leader = hb.leader.expect("a leader");
        assert!(r.peers.iter().any(|p| p.id == leader.id));
    }

    // A leader transfer: the new leader reports.
    let region1 = cluster.region(1).unwrap();
    let current = cluster.wait_leader(1);
    let target = *region1.peers.iter().find(|p| p.id != current.id).unwrap();
    cluster.must_transfer_leader(1, target);
    let hb = cluster
        .pd
        .wait_region_heartbeat(1, DEFAULT_TIMEOUT, |hb| {
            hb.leader.map(|l| l.id) == Some(target.id)
        })
        .expect("the new leader reports");
    assert_eq!(hb.region.unwrap().region_epoch, region1.region_epoch);
}

#[test]
fn a_stopped_store_is_reported_down_until_it_returns() {
    let mut cluster = started(3, pd_config(), &[]);
    let leader = cluster.wait_leader(1);
    cluster.must_put(b"k", b"v");
    let region = cluster.region(1).unwrap();
    let victim = *region
        .peers
        .iter()
        .find(|p| p.store_id != leader.store_id)
        .unwrap();
    cluster.stop_store(victim.store_id);
    let hb = cluster
        .pd
        .wait_region_heartbeat(1, DEFAULT_TIMEOUT, |hb| down_ids(hb).contains(&victim.id))
        .expect("the stopped peer is reported down");
    assert_eq!(down_ids(&hb), vec![victim.id], "only the stopped peer");
    assert!(hb.down_peers[0].down_seconds >= 1);

    cluster.must_put(b"k2", b"v2");
    cluster.start_store(victim.store_id);
    cluster
        .pd
        .wait_region_heartbeat(1, DEFAULT_TIMEOUT, |hb| hb.down_peers.is_empty())
        .expect("the returned peer is no longer down");
    cluster.must_engine_eq(victim.store_id, b"k2", Some(b"v2"));
}

#[test]
fn hibernated_regions_keep_reporting_without_waking_or_false_downs() {
    let cfg = Config {
        // A generous liveness timeout, so a slow machine never wakes regions spuriously.
        store_unreachable_timeout: Duration::from_secs(1),
        // Unchanged reports are skipped; this keeps one coming every few ticks.
        pd_heartbeat_max_quiet_interval: Duration::from_millis(300),
        ..pd_config()
    };
    let max_down = cfg.max_peer_down_duration;
    let cluster = started(3, cfg, &[]);
    cluster.wait_leader(1);
    cluster.must_put(b"k", b"v");
    assert!(cluster.wait_region_hibernated(1));
    // Reports keep coming while the region sleeps far longer than the down limit.
    let asleep_at = Instant::now();
    let seen = cluster.pd.region_reports(1).map_or(0, |r| r.count);
    let later = wait_for(DEFAULT_TIMEOUT, || {
        cluster.pd.region_reports(1).filter(|r| {
            r.count >= seen + 3
                && r.received
                    .is_some_and(|t| t.duration_since(asleep_at) > max_down * 2)
        })
    })
    .expect("a hibernated leader keeps reporting");
    assert!(
        later.latest.down_peers.is_empty(),
        "sleeping peers on live stores are not down: {:?}",
        later.latest.down_peers
    );
    for s in cluster.store_ids() {
        assert!(cluster.is_hibernating(s, 1), "store {s} still sleeps");
    }
}

#[test]
fn an_idle_leader_skips_reports_that_would_say_nothing_new() {
    // Ticks every 100 ms, and nothing forces a report for ten minutes.
    let cluster = started(3, pd_config(), &[]);
    cluster.wait_leader(1);
    cluster.must_put(b"k", b"v");
    assert!(cluster.wait_region_hibernated(1));
    // The first report after the write carries its flow; the one after that, without flow,
    // is the last until something changes.
    let settled = wait_for(DEFAULT_TIMEOUT, || {
        cluster
            .pd
            .region_reports(1)
            .filter(|r| r.latest.bytes_written == 0 && r.latest.approximate_size > 0)
    })
    .expect("a report without flow once the region is idle");
    let clock = cluster.pd.store_report_count(1);
    // Twenty store reports later (as many region ticks), PD has heard at most two more: the
    // repeat every report gets once, and a size estimate landing late; every tick used to
    // send one.
    wait_for(DEFAULT_TIMEOUT, || {
        (cluster.pd.store_report_count(1) >= clock + 20).then_some(())
    })
    .expect("store reports keep coming");
    let quiet = cluster.pd.region_reports(1).unwrap().count;
    assert!(
        quiet <= settled.count + 2,
        "{} reports during 20 idle ticks",
        quiet - settled.count
    );
    // New flow is reported at the next tick.
    cluster.must_put(b"k2", b"v2");
    let after = wait_for(DEFAULT_TIMEOUT, || {
        cluster
            .pd
            .region_reports(1)
            .filter(|r| r.count > quiet && r.bytes_written > settled.bytes_written)
    });
    assert!(after.is_some(), "the write was reported");
}

#[test]
fn approximate_size_and_keys_follow_the_data() {
    let cluster = started(3, pd_config(), &[]);
    cluster.wait_leader(1);
    const N: u64 = 200;
    const VALUE_LEN: usize = 100;
    let value = vec![b'v'; VALUE_LEN];
    for i in 0..N {
        cluster.must_put(format!("key{i:04}").as_bytes(), &value);
    }
    let hb = cluster
        .pd
        .wait_region_heartbeat(1, DEFAULT_TIMEOUT, |hb| hb.approximate_keys == N)
        .expect("the key count is measured exactly");
    assert!(hb.approximate_size >= N * VALUE_LEN as u64);
    for i in 0..10 {
        assert_eq!(
            cluster.must_get(format!("key{i:04}").as_bytes()),
            Some(value.clone())
        );
    }
    let reports = wait_for(DEFAULT_TIMEOUT, || {
        cluster
            .pd
            .region_reports(1)
            .filter(|r| r.keys_read >= 10 && r.keys_written > 0)
    })
    .expect("reads and writes show up in the flow");
    assert!(reports.keys_written <= N);
    assert!(reports.bytes_written >= reports.keys_written * VALUE_LEN as u64);
    assert!(reports.bytes_read >= 10 * VALUE_LEN as u64);

    // After a split each side is measured on its own.
    let regions = cluster.must_split(&[b"key0050"]);
    let left = regions.iter().find(|r| r.end_key == b"key0050").unwrap();
    let right = regions.iter().find(|r| r.start_key == b"key0050").unwrap();
    for (r, keys) in [(left, 50), (right, N - 50)] {
        cluster
            .pd
            .wait_region_heartbeat(r.id, DEFAULT_TIMEOUT, |hb| {
                hb.region
                    .as_ref()
                    .is_some_and(|x| x.region_epoch == r.region_epoch)
                    && hb.approximate_keys == keys
            })
            .unwrap_or_else(|| panic!("region {} measured with {keys} keys", r.id));
    }
}

#[test]
fn stores_report_regions_disk_and_leaders() {
    let split: Vec<Vec<u8>> = vec![b"b".to_vec(), b"c".to_vec()];
    let cluster = started(3, pd_config(), &split);
    for r in 1..=3 {
        cluster.wait_leader(r);
    }
    cluster.must_put(b"a1", b"v");
    for s in cluster.store_ids() {
        let stats = cluster
            .pd
            .wait_store_stats(s, DEFAULT_TIMEOUT, |st| {
                st.region_count == 3 && st.used_size > 0
            })
            .unwrap_or_else(|| panic!("store {s} reports its regions"));
        assert!(stats.capacity >= stats.available);
        assert!(stats.available > 0);
        assert!(stats.start_time > 0);
        let interval = stats.interval.expect("an interval");
        assert!(interval.end_timestamp >= interval.start_timestamp);
    }
    // Every region is led by exactly one store.
    assert!(wait_until(DEFAULT_TIMEOUT, || {
        cluster
            .store_ids()
            .iter()
            .map(|s| cluster.store(*s).leader_count())
            .sum::<usize>()
            == 3
    }));
}

/// Waits until the flow summed over `region_id`'s accepted reports reaches the given keys.
fn wait_flow(cluster: &Cluster, region_id: u64, written: u64, read: u64) -> RegionReports {
    wait_for(DEFAULT_TIMEOUT, || {
        cluster
            .pd
            .region_reports(region_id)
            .filter(|r| r.keys_written >= written && r.keys_read >= read)
    })
    .unwrap_or_else(|| {
        panic!(
            "region {region_id} reports {written} keys written and {read} read, got {:?}",
            cluster.pd.region_reports(region_id)
        )
    })
}

#[test]
fn regions_from_a_split_and_a_transfer_report_their_flow() {
    let cluster = started(3, pd_config(), &[]);
    cluster.wait_leader(1);
    const N: u64 = 20;
    let value = vec![b'v'; 100];
    let key = |side: &str, i: u64| format!("{side}{i:03}").into_bytes();
    for i in 0..N {
        cluster.must_put(&key("a", i), &value);
        cluster.must_put(&key("z", i), &value);
    }
    let regions = cluster.must_split(&[b"m"]);
    let left = regions.iter().find(|r| r.end_key == b"m").unwrap().clone();
    let right = regions
        .iter()
        .find(|r| r.start_key == b"m")
        .unwrap()
        .clone();
    assert_ne!(left.id, 1, "the left half is a new region");

    // Both halves are written and read again after the split: the new region's leader and the
    // shrunk region's leader report what they served.
    for (r, side) in [(&left, "a"), (&right, "z")] {
        cluster.wait_leader(r.id);
        let before = cluster.pd.region_reports(r.id).unwrap_or_default();
        for i in 0..N {
            cluster.must_put(&key(side, i), &value);
            assert_eq!(cluster.must_get(&key(side, i)), Some(value.clone()));
        }
        let after = wait_flow(
            &cluster,
            r.id,
            before.keys_written + N,
            before.keys_read + N,
        );
        assert!(after.bytes_written - before.bytes_written >= N * value.len() as u64);
        assert!(after.bytes_read - before.bytes_read >= N * value.len() as u64);
    }

    // A new leader of the new region reports the flow it serves.
    let current = cluster.wait_leader(left.id);
    let target = *left.peers.iter().find(|p| p.id != current.id).unwrap();
    cluster.must_transfer_leader(left.id, target);
    cluster
        .pd
        .wait_region_heartbeat(left.id, DEFAULT_TIMEOUT, |hb| {
            hb.leader.map(|l| l.id) == Some(target.id)
        })
        .expect("the new leader reports");
    let before = cluster.pd.region_reports(left.id).unwrap_or_default();
    for i in 0..N {
        cluster.must_put(&key("a", i), &value);
        assert_eq!(cluster.must_get(&key("a", i)), Some(value.clone()));
    }
    let after = wait_flow(
        &cluster,
        left.id,
        before.keys_written + N,
        before.keys_read + N,
    );
    assert_eq!(after.latest.leader.map(|l| l.id), Some(target.id));
}

/// `pd_config` without the periodic report: a leader reports only when something happens
/// (leadership, ranges, the first size measurement), so a test sees exactly those reports.
fn event_reports_config() -> Config {
    Config {
        pd_heartbeat_tick_interval: Duration::from_secs(3600),
        ..pd_config()
    }
}

#[test]
fn flow_served_before_a_leader_moves_is_reported() {
    let cluster = started(3, event_reports_config(), &[]);
    cluster.wait_leader(1);
    const N: u64 = 20;
    let value = vec![b'v'; 100];
    let key = |i: u64| format!("a{i:03}").into_bytes();
    for i in 0..N {
        cluster.must_put(&key(i), &value);
    }
    let regions = cluster.must_split(&[b"m"]);
    let left = regions.iter().find(|r| r.end_key == b"m").unwrap().clone();
    // The new region's first measurement is the last report its leader sends by itself.
    cluster
        .pd
        .wait_region_heartbeat(left.id, DEFAULT_TIMEOUT, |hb| hb.approximate_keys == N)
        .expect("the new region is measured");
    let before = cluster.pd.region_reports(left.id).unwrap_or_default();
    for i in 0..N {
        cluster.must_put(&key(i), &value);
        assert_eq!(cluster.must_get(&key(i)), Some(value.clone()));
    }
    // PD moves the leader away (as its leader balancing does right after splits) before the
    // next periodic report: what the old leader served still reaches PD.
    let current = cluster.wait_leader(left.id);
    let target = *left.peers.iter().find(|p| p.id != current.id).unwrap();
    cluster.must_transfer_leader(left.id, target);
    let after = wait_flow(
        &cluster,
        left.id,
        before.keys_written + N,
        before.keys_read + N,
    );
    assert!(after.bytes_written - before.bytes_written >= N * value.len() as u64);
    assert!(after.bytes_read - before.bytes_read >= N * value.len() as u64);
}
