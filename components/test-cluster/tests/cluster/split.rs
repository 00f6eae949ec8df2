//! Splits: by command, under load, repeated, by policy (built-in and custom), and refusals.

use std::sync::Arc;
use std::time::Duration;

use raftstore::SplitCheckInput;
use raftstore::SplitPolicy;
use raftstore::SplitPolicyConfig;
use test_cluster::*;

fn assert_key_in(region: &proto::metapb::Region, key: &[u8]) {
    assert!(
        key >= region.start_key.as_slice(),
        "{key:?} before {region:?}"
    );
    assert!(region.end_key.is_empty() || key < region.end_key.as_slice());
}

#[test]
fn split_while_writes_continue_then_every_key_reads_back() {
    let cluster = Arc::new(Cluster::run(3));
    cluster.wait_leader(1);
    let writers = Writers::start(cluster.clone(), 4, 2000, |w, i| {
        format!("key-{:04}-{w}", (i as usize * 37 + w * 11) % 1000).into_bytes()
    });
    writers.wait_acked(50);
    let regions = cluster.must_split(&[b"key-0250", b"key-0500"]);
    assert_eq!(regions.len(), 3);
    writers.wait_acked(150);
    cluster.must_split(&[b"key-0750"]);
    writers.wait_acked(250);
    let acked = writers.finish();
    for key in acked.iter() {
        let region = cluster.region_for_key(key).unwrap();
        assert_key_in(&region, key);
        assert_eq!(cluster.must_get(key).as_deref(), Some(key.as_slice()));
    }
    for s in cluster.store_ids() {
        assert!(wait_until(DEFAULT_TIMEOUT, || cluster
            .store(s)
            .meta()
            .lock()
            .region_count()
            == 4));
    }
}

#[test]
fn one_region_split_into_a_hundred() {
    let mut cluster = Cluster::run(3);
    cluster.wait_leader(1);
    for i in 1..100u32 {
        let key = format!("s{i:03}");
        cluster.must_split(&[key.as_bytes()]);
    }
    for s in cluster.store_ids() {
        assert!(
            wait_until(DEFAULT_TIMEOUT, || cluster
                .store(s)
                .meta()
                .lock()
                .region_count()
                == 100),
            "store {s} has every region"
        );
    }
    for i in 0..100u32 {
        let key = format!("s{i:03}-x");
        cluster.must_put(key.as_bytes(), b"v");
    }
    let mut ids: Vec<u64> = (0..100u32)
        .map(|i| {
            cluster
                .region_for_key(format!("s{i:03}-x").as_bytes())
                .unwrap()
                .id
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 100, "every key in its own region");
    // The regions survive a full restart.
    for s in cluster.store_ids() {
        cluster.stop_store(s);
    }
    for s in cluster.store_ids() {
        cluster.start_store(s);
    }
    for i in (0..100u32).step_by(9) {
        let key = format!("s{i:03}-x");
        assert_eq!(cluster.must_get(key.as_bytes()), Some(b"v".to_vec()));
    }
}

#[test]
fn old_epoch_gets_epoch_not_match_with_the_new_regions() {
    let cluster = Cluster::run(3);
    let leader = cluster.wait_leader(1);
    let before = cluster.region(1).unwrap();
    let regions = cluster.must_split(&[b"m"]);
    cluster.wait_leader(1);
    let leader = cluster.leader_of(1).unwrap_or(leader);
    let req = Cluster::new_request(&before, leader, vec![put_request(b"x", b"1")]);
    let resp = cluster
        .call_on_store(leader.store_id, req, DEFAULT_TIMEOUT)
        .expect("answered");
    let err = resp
        .response
        .header
        .and_then(|h| h.error)
        .expect("an error");
    let current = err
        .epoch_not_match
        .expect("epoch not match")
        .current_regions;
    let mut ids: Vec<u64> = current.iter().map(|r| r.id).collect();
    ids.sort();
    let mut want: Vec<u64> = regions.iter().map(|r| r.id).collect();
    want.sort();
    assert_eq!(ids, want, "the error carries every region of the split");
}

#[test]
fn bad_split_keys_are_refused() {
    let mut cluster = Cluster::new(3);
    cluster.bootstrap(&[b"b".to_vec(), b"m".to_vec()]);
    cluster.start();
    cluster.wait_leader(2);
    // Region 2 is [b, m).
    for bad in [&b"b"[..], &b"z"[..]] {
        let region = cluster.region(2).unwrap();
        let leader = cluster.wait_leader(2);
        let (tx, rx) = crossbeam_channel::bounded(1);
        cluster.store(leader.store_id).split_region(
            &region,
            vec![bad.to_vec()],
            raftstore::Callback::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        let resp = rx.recv_timeout(DEFAULT_TIMEOUT).unwrap().response;
        let err = resp.header.and_then(|h| h.error).expect("refused");
        assert!(err.message.contains("split key"), "{}", err.message);
    }
    assert_eq!(
        cluster.region(2).unwrap().region_epoch,
        Some(proto::metapb::RegionEpoch {
            conf_ver: 1,
            version: 1
        })
    );
}

/// A user policy: every section (a key `#name`, without a `/`) starts its own region.
struct SectionPolicy;

impl SplitPolicy for SectionPolicy {
    fn name(&self) -> &str {
        "sections"
    }

    fn split_keys(&self, input: &SplitCheckInput<'_>) -> raftstore::Result<Vec<Vec<u8>>> {
        let mut keys = Vec::new();
        input.for_each_key(|k, _| {
            let section = k.first() == Some(&b'#') && !k.contains(&b'/');
            if section && k > input.region.start_key.as_slice() {
                keys.push(k.to_vec());
            }
            true
        })?;
        keys.sort();
        keys.dedup();
        Ok(keys)
    }
}

#[test]
fn a_custom_split_policy_splits_where_it_says() {
    let mut cluster = Cluster::new(3);
    cluster.split_policy = Some(Arc::new(SectionPolicy));
    cluster.bootstrap(&[]);
    cluster.start();
    cluster.wait_leader(1);
    for k in [&b"#alpha"[..], b"#alpha/1", b"#beta", b"#beta/1", b"#gamma"] {
        cluster.must_put(k, b"v");
    }
    let boundaries = || -> Vec<Vec<u8>> {
        let meta = cluster.store(1).meta().lock();
        let mut starts: Vec<Vec<u8>> = meta.regions().map(|r| r.start_key.clone()).collect();
        starts.sort();
        starts
    };
    assert!(
        wait_until(DEFAULT_TIMEOUT, || boundaries().len() == 4),
        "regions start at every section: {:?}",
        boundaries()
    );
    assert_eq!(
        boundaries(),
        vec![
            b"".to_vec(),
            b"#alpha".to_vec(),
            b"#beta".to_vec(),
            b"#gamma".to_vec()
        ]
    );
    assert_eq!(cluster.must_get(b"#beta/1"), Some(b"v".to_vec()));
}

#[test]
fn size_policy_splits_a_growing_region() {
    let cfg = raftstore::Config {
        split_policy: SplitPolicyConfig::Size {
            max_size: 48 * 1024,
            split_size: 32 * 1024,
        },
        ..raftstore::Config::for_tests()
    };
    let mut cluster = Cluster::with_config(3, cfg);
    cluster.bootstrap(&[]);
    cluster.start();
    cluster.wait_leader(1);
    let value = vec![1u8; 1024];
    for i in 0..200u32 {
        cluster.must_put(format!("z{i:04}").as_bytes(), &value);
    }
    assert!(
        wait_until(DEFAULT_TIMEOUT, || cluster
            .store(1)
            .meta()
            .lock()
            .region_count()
            >= 4),
        "a 200 KiB region splits into pieces of about 32 KiB"
    );
    for i in (0..200u32).step_by(13) {
        assert_eq!(
            cluster.must_get(format!("z{i:04}").as_bytes()),
            Some(value.clone())
        );
    }
}

#[test]
fn load_policy_splits_a_busy_region_where_the_load_halves() {
    busy_region_splits_where_the_load_halves(raftstore::Config {
        split_policy: SplitPolicyConfig::Load {
            qps_threshold: 20.0,
            window: Duration::from_secs(5),
        },
        ..raftstore::Config::for_tests()
    });
}

/// Load-based splitting is on beside the default size policy: a small but busy region splits.
#[test]
fn the_default_size_policy_also_splits_a_busy_region_by_load() {
    busy_region_splits_where_the_load_halves(raftstore::Config {
        load_split: raftstore::LoadSplitConfig {
            qps_threshold: 20.0,
            window: Duration::from_secs(5),
            ..Default::default()
        },
        ..raftstore::Config::for_tests()
    });
}

fn busy_region_splits_where_the_load_halves(cfg: raftstore::Config) {
    let mut cluster = Cluster::with_config(3, cfg);
    cluster.bootstrap(&[]);
    cluster.start();
    cluster.wait_leader(1);
    // All the traffic goes to keys a.. and b..; the split should fall between them.
    for i in 0..200u32 {
        let key = if i % 2 == 0 {
            format!("a{i:03}")
        } else {
            format!("b{i:03}")
        };
        cluster.must_put(key.as_bytes(), b"v");
        if cluster.store(1).meta().lock().region_count() > 1 {
            break;
        }
    }
    assert!(wait_until(DEFAULT_TIMEOUT, || cluster
        .store(1)
        .meta()
        .lock()
        .region_count()
        >= 2));
    // The split key falls inside the busy range, near its middle (between the a.. and b..
    // halves of the sampled keys).
    let starts: Vec<Vec<u8>> = cluster
        .store(1)
        .meta()
        .lock()
        .regions()
        .map(|r| r.start_key.clone())
        .collect();
    assert!(
        starts
            .iter()
            .any(|k| k.as_slice() > &b"a1"[..] && k.as_slice() <= &b"b1"[..]),
        "split keys {starts:?}"
    );
}

#[test]
fn a_split_region_elects_the_old_leaders_peer_in_its_first_term() {
    // Elections that time out take 100-200 ticks here; the new region must not need one.
    let cfg = raftstore::Config {
        raft_election_timeout_ticks: 100,
        ..raftstore::Config::for_tests()
    };
    let mut cluster = Cluster::with_config(3, cfg);
    cluster.bootstrap(&[]);
    cluster.start();
    let leader = cluster.wait_leader(1);
    cluster.must_put(b"a", b"1");
    // The old region's messages to followers arrive late, so the new region's first votes
    // reach stores that have not applied the split yet.
    cluster.add_filter(DelayRegionFilter {
        region_id: 1,
        from_store: leader.store_id,
        delay: Duration::from_millis(300),
    });
    let regions = cluster.must_split(&[b"m"]);
    let new_region = regions
        .iter()
        .find(|r| r.id != 1)
        .expect("a new region")
        .clone();
    let (new_leader, term) = wait_for(DEFAULT_TIMEOUT, || {
        cluster.leaders(new_region.id).into_iter().find(|(p, _)| {
            cluster
                .leader_of(new_region.id)
                .is_some_and(|l| l.store_id == p.store_id)
        })
    })
    .expect("the new region elects a leader");
    assert_eq!(new_leader.store_id, leader.store_id);
    assert_eq!(term, raftstore::testexport::RAFT_INIT_LOG_TERM + 1);
    cluster.clear_filters();
    cluster.must_put(b"z", b"2");
    assert_eq!(cluster.must_get(b"z").as_deref(), Some(&b"2"[..]));
}

/// Delays one region's messages from one store.
struct DelayRegionFilter {
    region_id: u64,
    from_store: u64,
    delay: Duration,
}

impl Filter for DelayRegionFilter {
    fn check(&self, from: u64, _to: u64, msg: &proto::raft_serverpb::RaftMessage) -> FilterAction {
        if from == self.from_store && msg.region_id == self.region_id {
            FilterAction::Delay(self.delay)
        } else {
            FilterAction::Pass
        }
    }
}

/// Counts the checks of each key range (start key, end key) and never splits; a check is
/// due after `TRIGGER_BYTES` written. By range, so that a check of a region from before a
/// split, finished late, does not count as one of the half sharing its start key.
#[derive(Default)]
struct CountingPolicy {
    checks: parking_lot::Mutex<std::collections::HashMap<KeyRange, usize>>,
}

/// A region's (start key, end key).
type KeyRange = (Vec<u8>, Vec<u8>);

const TRIGGER_BYTES: u64 = 4096;

impl CountingPolicy {
    fn checks_of(&self, start_key: &[u8], end_key: &[u8]) -> usize {
        self.checks
            .lock()
            .get(&(start_key.to_vec(), end_key.to_vec()))
            .copied()
            .unwrap_or(0)
    }
}

impl SplitPolicy for CountingPolicy {
    fn name(&self) -> &str {
        "counting"
    }

    fn split_keys(&self, input: &SplitCheckInput<'_>) -> raftstore::Result<Vec<Vec<u8>>> {
        *self
            .checks
            .lock()
            .entry((input.region.start_key.clone(), input.region.end_key.clone()))
            .or_default() += 1;
        Ok(Vec::new())
    }

    fn check_trigger(&self) -> raftstore::SplitCheckTrigger {
        raftstore::SplitCheckTrigger {
            bytes: TRIGGER_BYTES,
            keys: u64::MAX,
            qps: f64::INFINITY,
        }
    }
}

/// A region is checked again only once it has taken the policy's trigger of writes: small
/// writes to one region leave it alone while a busy neighbour is checked round after round,
/// and enough writes bring its check back.
#[test]
fn split_checks_wait_for_enough_written_bytes() {
    let policy = Arc::new(CountingPolicy::default());
    let mut cluster = Cluster::new(3);
    cluster.split_policy = Some(policy.clone());
    cluster.bootstrap(&[]);
    cluster.start();
    cluster.wait_leader(1);
    cluster.must_split(&[b"m"]);
    // Both halves are checked once after the split.
    let quiet = |p: &CountingPolicy| p.checks_of(b"", b"m");
    let busy = |p: &CountingPolicy| p.checks_of(b"m", b"");
    assert!(wait_until(DEFAULT_TIMEOUT, || quiet(&policy) >= 1
        && busy(&policy) >= 1));
    let quiet_before = quiet(&policy);
    // Well under the trigger: 10 x ~110 bytes.
    for i in 0..10 {
        cluster.must_put(format!("a{i:02}").as_bytes(), &[1; 100]);
    }
    let value = vec![2u8; 1024];
    for round in 0..5 {
        let busy_before = busy(&policy);
        for i in 0..8 {
            cluster.must_put(format!("m{round}-{i}").as_bytes(), &value);
        }
        assert!(
            wait_until(DEFAULT_TIMEOUT, || busy(&policy) > busy_before),
            "the busy region is checked after {TRIGGER_BYTES} bytes (round {round})"
        );
    }
    assert_eq!(
        quiet(&policy),
        quiet_before,
        "a region with fewer than {TRIGGER_BYTES} bytes written was checked again"
    );
    for i in 0..8 {
        cluster.must_put(format!("b{i}").as_bytes(), &value);
    }
    assert!(
        wait_until(DEFAULT_TIMEOUT, || quiet(&policy) > quiet_before),
        "the quiet region is checked once it has taken {TRIGGER_BYTES} bytes"
    );
}
