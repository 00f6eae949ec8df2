//! Region merge driven by PD's `Merge` step: a merge under load keeps every key, a follower
//! that missed the merge catches up by snapshot, and a merge whose target moved on is rolled
//! back by the source's next leader when the old one is isolated.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use proto::eraftpb::{self, MessageType};
use proto::metapb::{Peer, Region};
use proto::raft_cmdpb::{AdminCmdType, RaftCmdRequest};
use proto::raft_serverpb::RaftMessage;
use test_cluster::*;

/// Three stores with the key space split at "m": returns (left, right).
fn two_regions(cfg: raftstore::Config) -> (Cluster, Region, Region) {
    let mut cluster = Cluster::with_config(3, cfg);
    let (left, right) = cluster.start_two_regions(b"m");
    (cluster, left, right)
}

/// `two_regions` with both leaders moved to store 1.
fn two_regions_led_from_store_1() -> (Cluster, Region, Region) {
    let (cluster, left, right) = two_regions(raftstore::Config::for_tests());
    for r in [&left, &right] {
        cluster.must_transfer_leader(r.id, peer_on(r, 1));
    }
    (cluster, left, right)
}

/// Sends store 1 the step merging `source` into `target` until PrepareMerge has applied on
/// every store (the source's conf_ver moved on by one everywhere).
fn must_prepare_merge_everywhere(cluster: &Cluster, source: &Region, target: &Region) {
    let prepared_conf_ver = source.region_epoch.unwrap().conf_ver + 1;
    let prepared = wait_until(DEFAULT_TIMEOUT, || {
        let everywhere = cluster.store_ids().into_iter().all(|s| {
            cluster
                .store(s)
                .meta()
                .lock()
                .region(source.id)
                .is_some_and(|r| r.region_epoch.unwrap().conf_ver == prepared_conf_ver)
        });
        if !everywhere {
            cluster.pd_operator(1, merge_step(source, target));
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        everywhere
    });
    assert!(prepared, "PrepareMerge did not apply on every store");
}

fn peer_on(region: &Region, store_id: u64) -> Peer {
    *region
        .peers
        .iter()
        .find(|p| p.store_id == store_id)
        .unwrap()
}

fn version(region: &Region) -> u64 {
    region.region_epoch.map_or(0, |e| e.version)
}

/// Sends the merge step to the source's leader (as PD does on every heartbeat) until none
/// of `stores` knows the source any more.
fn must_merge(cluster: &Cluster, source: &Region, target: &Region, stores: &[u64]) {
    let merged = wait_until(DEFAULT_TIMEOUT, || {
        let gone = stores
            .iter()
            .all(|s| cluster.store(*s).meta().lock().region(source.id).is_none());
        if gone {
            return true;
        }
        let (Some(current), Some(leader)) =
            (cluster.region(source.id), cluster.leader_of(source.id))
        else {
            return false;
        };
        if stores.contains(&leader.store_id) {
            cluster.pd_operator(leader.store_id, merge_step(&current, target));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        false
    });
    assert!(
        merged,
        "region {} did not merge into {}",
        source.id, target.id
    );
}

/// Whether a store's meta holds `region_id` covering the whole key space.
fn covers_everything(cluster: &Cluster, store_id: u64, region_id: u64) -> bool {
    let meta = cluster.store(store_id).meta();
    let meta = meta.lock();
    meta.region(region_id)
        .is_some_and(|r| r.start_key.is_empty() && r.end_key.is_empty())
        && meta.region_count() == 1
}

#[test]
fn merge_under_load_keeps_every_key() {
    merge_under_load(raftstore::Config::for_tests());
}

/// The same with the raft pollers applying (`apply-pool-size = 0`, as the local fleet
/// runs): the target's CommitMerge waits for the source's peer on the same thread that must
/// bring that peer up to date.
#[test]
fn merge_under_load_keeps_every_key_when_raft_pollers_apply() {
    merge_under_load(pollers_write_and_apply());
}

fn merge_under_load(cfg: raftstore::Config) {
    let (cluster, left, right) = two_regions(cfg);
    for i in 0..50u32 {
        cluster.must_put(format!("a{i:03}").as_bytes(), b"before");
        cluster.must_put(format!("x{i:03}").as_bytes(), b"before");
    }
    let cluster = Arc::new(cluster);
    // Writers on both sides of the boundary keep going through the whole merge; writes the
    // source refuses while merging are retried against the merged region.
    let writers = Writers::start(cluster.clone(), 4, 10_000, |w, i| {
        let side = if w % 2 == 0 { "b" } else { "y" };
        format!("{side}{w}-{i:05}").into_bytes()
    });
    assert!(writers.wait_acked(100));
    must_merge(&cluster, &left, &right, &[1, 2, 3]);
    assert!(writers.wait_acked(writers.acked_count() + 100));
    let acked = writers.finish();

    for s in cluster.store_ids() {
        assert!(
            wait_until(DEFAULT_TIMEOUT, || covers_everything(&cluster, s, right.id)),
            "store {s} does not hold the merged region alone"
        );
    }
    let merged = cluster.region(right.id).unwrap();
    assert!(version(&merged) > version(&left).max(version(&right)));
    assert_eq!(cluster.region_for_key(b"a000").unwrap().id, right.id);
    for i in 0..50u32 {
        for side in ["a", "x"] {
            let key = format!("{side}{i:03}");
            assert_eq!(cluster.must_get(key.as_bytes()), Some(b"before".to_vec()));
        }
    }
    assert!(
        acked.len() > 200,
        "only {} writes acknowledged",
        acked.len()
    );
    for key in &acked {
        assert_eq!(cluster.must_get(key), Some(key.clone()), "{key:?} lost");
    }
    // Every replica holds every acknowledged key.
    let last = acked.last().unwrap();
    for s in cluster.store_ids() {
        cluster.must_engine_eq(s, last, Some(last));
        for key in acked.iter().step_by(97) {
            cluster.must_engine_eq(s, key, Some(key));
        }
    }
    // The merged region takes writes across the old boundary.
    cluster.must_put(b"after-a", b"1");
    cluster.must_put(b"z-after", b"2");
}

#[test]
fn a_follower_that_missed_the_merge_catches_up_by_snapshot() {
    follower_catches_up_with_a_merge_by_snapshot(raftstore::Config::for_tests());
}

/// The same with the raft pollers applying: the snapshot's apply waits for the entries the
/// poller itself has yet to apply.
#[test]
fn a_follower_that_missed_the_merge_catches_up_by_snapshot_when_raft_pollers_apply() {
    follower_catches_up_with_a_merge_by_snapshot(pollers_write_and_apply());
}

fn follower_catches_up_with_a_merge_by_snapshot(cfg: raftstore::Config) {
    let cfg = raftstore::Config {
        // The merged region's log is cut past the lagging follower, so only a snapshot can
        // bring it the merge.
        raft_log_gc_count_limit: 40,
        raft_log_gc_threshold: 5,
        ..cfg
    };
    let (cluster, left, right) = two_regions(cfg);
    for r in [&left, &right] {
        cluster.must_transfer_leader(r.id, peer_on(r, 1));
    }
    cluster.must_put(b"a-early", b"1");
    cluster.must_put(b"x-early", b"1");
    // Store 3 answered the new leaders before it is cut off: a leader that never heard
    // from a peer cannot tell which entries the merge must carry to it, and refuses.
    cluster.must_engine_eq(3, b"a-early", Some(b"1"));
    cluster.must_engine_eq(3, b"x-early", Some(b"1"));
    cluster.isolate(3);
    // A few writes store 3 misses: fewer than the merge's log gap allows.
    for i in 0..5u32 {
        cluster.must_put(format!("a-missed-{i}").as_bytes(), b"2");
        cluster.must_put(format!("x-missed-{i}").as_bytes(), b"2");
    }
    must_merge(&cluster, &left, &right, &[1, 2]);
    for i in 0..100u32 {
        cluster.must_put(format!("after-{i:03}").as_bytes(), b"3");
    }
    assert!(covers_everything(&cluster, 1, right.id));
    // Store 3 still has both old regions.
    assert!(cluster.store(3).meta().lock().region(left.id).is_some());

    cluster.clear_filters();
    let caught_up = wait_until(DEFAULT_TIMEOUT, || {
        covers_everything(&cluster, 3, right.id)
            && cluster.engine_get(3, b"after-099").as_deref() == Some(b"3")
    });
    assert!(caught_up, "store 3 did not catch up with the merged region");
    for key in [
        &b"a-early"[..],
        b"x-early",
        b"a-missed-4",
        b"x-missed-4",
        b"after-000",
    ] {
        assert!(
            cluster.engine_get(3, key).is_some(),
            "{key:?} missing on store 3"
        );
    }
    // Store 3 serves the merged region as leader too.
    cluster.must_transfer_leader(right.id, peer_on(&cluster.region(right.id).unwrap(), 3));
    assert_eq!(cluster.must_get(b"a-missed-0"), Some(b"2".to_vec()));
    cluster.must_put(b"a-on-3", b"4");
    cluster.must_engine_eq(3, b"a-on-3", Some(b"4"));
}

/// Phase 0: everything passes. Phase 1: the source's appends from store 1 that carry a
/// `RollbackMerge` are dropped (store 1 keeps its leadership through heartbeats but cannot
/// commit the rollback). Phase 2: store 1 is isolated.
struct RollbackHold {
    source_id: u64,
    phase: AtomicU8,
}

impl Filter for RollbackHold {
    fn check(&self, from: u64, to: u64, msg: &RaftMessage) -> FilterAction {
        match self.phase.load(Ordering::SeqCst) {
            2 if from == 1 || to == 1 => FilterAction::Drop,
            1 if from == 1 && msg.region_id == self.source_id && carries_rollback(msg) => {
                FilterAction::Drop
            }
            _ => FilterAction::Pass,
        }
    }
}

fn carries_rollback(msg: &RaftMessage) -> bool {
    let Ok(m) = proto::parse_raft::<eraftpb::Message>(&msg.message) else {
        return false;
    };
    m.get_msg_type() == MessageType::MsgAppend
        && m.get_entries().iter().any(|e| {
            <RaftCmdRequest as prost::Message>::decode(&e.data[..])
                .ok()
                .and_then(|r| r.admin_request)
                .is_some_and(|a| a.cmd_type() == AdminCmdType::RollbackMerge)
        })
}

#[test]
fn merge_is_rolled_back_by_the_next_leader_when_the_source_leader_is_isolated() {
    let (cluster, left, right) = two_regions_led_from_store_1();
    cluster.must_put(b"a-before", b"1");
    // PD's view of the target is stale: the target split after PD looked at it, so the
    // merge it prepares can never commit and must roll back.
    let stale_target = cluster.region(right.id).unwrap();
    cluster.must_split(&[b"t"]);
    let hold = Arc::new(RollbackHold {
        source_id: left.id,
        phase: AtomicU8::new(1),
    });
    cluster.add_filter(ArcFilter(hold.clone()));
    let source = cluster.region(left.id).unwrap();
    must_prepare_merge_everywhere(&cluster, &source, &stale_target);
    // The source refuses writes while merging.
    let err = cluster
        .request_once(
            b"a-during",
            vec![put_request(b"a-during", b"x")],
            false,
            DEFAULT_TIMEOUT,
        )
        .unwrap_err();
    assert!(
        matches!(&err, RequestError::Region(e) if e.proposal_in_merging_mode.is_some()),
        "{err:?}"
    );

    hold.phase.store(2, Ordering::SeqCst);
    let new_leader = cluster.wait_leader_elsewhere(left.id, 1);
    assert_ne!(new_leader.store_id, 1);
    // The new leader rolls the merge back: the source takes writes again.
    cluster.must_put(b"a-after-rollback", b"2");
    let rolled_back = cluster.region(left.id).unwrap();
    assert!(version(&rolled_back) > version(&source) + 1);
    assert_eq!(rolled_back.end_key, b"m".to_vec());

    // Store 1 rejoins and follows the rollback; nothing was lost on either side.
    cluster.clear_filters();
    cluster.must_engine_eq(1, b"a-after-rollback", Some(b"2"));
    assert_eq!(cluster.must_get(b"a-before"), Some(b"1".to_vec()));
    cluster.must_put(b"a-final", b"3");
    cluster.must_put(b"z-final", b"3");
    for s in cluster.store_ids() {
        cluster.must_engine_eq(s, b"a-final", Some(b"3"));
        cluster.must_engine_eq(s, b"z-final", Some(b"3"));
    }
    assert_eq!(cluster.region_for_key(b"a-final").unwrap().id, left.id);
}

/// Shares one filter between the test and the transport.
struct ArcFilter(Arc<RollbackHold>);

impl Filter for ArcFilter {
    fn check(&self, from: u64, to: u64, msg: &RaftMessage) -> FilterAction {
        self.0.check(from, to, msg)
    }
}

/// Drops every message of one region to or from `store` (any store when 0).
struct RegionFilter {
    region_id: u64,
    store: u64,
}

impl Filter for RegionFilter {
    fn check(&self, from: u64, to: u64, msg: &RaftMessage) -> FilterAction {
        let involved = self.store == 0 || from == self.store || to == self.store;
        if msg.region_id == self.region_id && involved {
            FilterAction::Drop
        } else {
            FilterAction::Pass
        }
    }
}

#[test]
fn a_source_peer_cut_off_from_its_region_catches_up_from_the_entries_the_merge_carries() {
    let (cluster, left, right) = two_regions_led_from_store_1();
    cluster.must_put(b"a-early", b"1");
    cluster.must_engine_eq(3, b"a-early", Some(b"1"));
    // Store 3 hears nothing more of the source region, but follows the target.
    cluster.add_filter(RegionFilter {
        region_id: left.id,
        store: 3,
    });
    for i in 0..5u32 {
        cluster.must_put(format!("a-missed-{i}").as_bytes(), b"2");
    }
    assert_eq!(cluster.engine_get(3, b"a-missed-4"), None);
    must_merge(&cluster, &left, &right, &[1, 2]);
    // Store 3 applies CommitMerge from the target's log; its source peer gets the entries it
    // missed from the CommitMerge itself (the source region still reaches it no other way).
    let caught_up = wait_until(DEFAULT_TIMEOUT, || {
        covers_everything(&cluster, 3, right.id)
            && cluster.engine_get(3, b"a-missed-4").as_deref() == Some(b"2")
    });
    assert!(caught_up, "store 3 did not take the merge in");
    for i in 0..5u32 {
        cluster.must_engine_eq(3, format!("a-missed-{i}").as_bytes(), Some(b"2"));
    }
    cluster.must_put(b"a-after", b"3");
    cluster.must_engine_eq(3, b"a-after", Some(b"3"));
}

#[test]
fn a_merge_in_progress_finishes_after_every_store_restarts() {
    let (mut cluster, left, right) = two_regions_led_from_store_1();
    cluster.must_put(b"a-before", b"1");
    cluster.must_put(b"x-before", b"1");
    // The target cannot commit anything: the merge stops after PrepareMerge.
    cluster.add_filter(RegionFilter {
        region_id: right.id,
        store: 0,
    });
    let source = cluster.region(left.id).unwrap();
    must_prepare_merge_everywhere(&cluster, &source, &right);

    for s in cluster.store_ids() {
        cluster.stop_store(s);
    }
    cluster.clear_filters();
    for s in cluster.store_ids() {
        cluster.start_store(s);
    }
    // The source comes back merging and pushes the merge on.
    for s in cluster.store_ids() {
        assert!(
            wait_until(DEFAULT_TIMEOUT, || covers_everything(&cluster, s, right.id)),
            "store {s} did not finish the merge after the restart"
        );
    }
    assert_eq!(cluster.must_get(b"a-before"), Some(b"1".to_vec()));
    assert_eq!(cluster.must_get(b"x-before"), Some(b"1".to_vec()));
    cluster.must_put(b"a-after", b"2");
}

#[test]
fn a_merge_into_a_region_that_merged_away_meanwhile_rolls_back() {
    let mut cluster = Cluster::new(3);
    let regions = cluster.bootstrap(&[b"g".to_vec(), b"p".to_vec()]);
    cluster.start();
    let by_start = |start: &[u8]| {
        regions
            .iter()
            .find(|r| r.start_key == start)
            .unwrap()
            .clone()
    };
    let (a, b, c) = (by_start(b""), by_start(b"g"), by_start(b"p"));
    for r in [&a, &b, &c] {
        cluster.wait_leader(r.id);
    }
    cluster.must_put(b"a-key", b"1");
    cluster.must_put(b"h-key", b"1");
    // PD's view of b, taken before b merges into c.
    let stale_b = cluster.region(b.id).unwrap();
    must_merge(&cluster, &b, &c, &[1, 2, 3]);
    // a prepares a merge into b, which no longer exists: its range is c's now, so the merge
    // can never commit and a's leader rolls it back.
    let source = cluster.region(a.id).unwrap();
    let leader = cluster.wait_leader(a.id);
    cluster.pd_operator(leader.store_id, merge_step(&source, &stale_b));
    let rolled_back = wait_until(DEFAULT_TIMEOUT, || {
        cluster
            .region(a.id)
            .is_some_and(|r| version(&r) == version(&source) + 2)
    });
    assert!(rolled_back, "region {} did not roll back its merge", a.id);
    cluster.must_put(b"a-after", b"2");
    assert_eq!(cluster.must_get(b"a-key"), Some(b"1".to_vec()));
    assert_eq!(cluster.must_get(b"h-key"), Some(b"1".to_vec()));
    assert_eq!(cluster.region_for_key(b"h-key").unwrap().id, c.id);
}
