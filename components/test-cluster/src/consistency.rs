//! Checking that every replica of every region holds the same data: the end-of-test check
//! any cluster test can call after its faults are healed and its load stopped.

use std::collections::BTreeMap;
use std::time::Instant;

use engine::{KvRead, KvSnapshot, CF_RAFT, DATA_CFS};
use proto::metapb::Region;
use proto::raft_serverpb::{PeerState, RaftApplyState, RegionLocalState};

use crate::cluster::{Cluster, DEFAULT_TIMEOUT};

/// What `Cluster::must_replicas_consistent` compared.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConsistencyReport {
    pub regions: usize,
    /// Key-value pairs compared across all column families, counted once per region.
    pub pairs: usize,
}

/// A replica's key-value pairs of one column family, in key order.
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// One store's view of one region at one instant.
struct ReplicaView {
    store_id: u64,
    snapshot: KvSnapshot,
    applied_index: u64,
    /// The replica is in the middle of applying a snapshot: its range is cleared and the
    /// snapshot's files are not yet ingested, so its data is not comparable yet.
    applying_snapshot: bool,
}

impl Cluster {
    /// The newest version of every region any running store knows, by id.
    fn known_regions(&self) -> BTreeMap<u64, Region> {
        let mut regions: BTreeMap<u64, Region> = BTreeMap::new();
        for store_id in self.store_ids().into_iter().filter(|s| self.is_running(*s)) {
            let meta = self.store(store_id).meta().lock();
            for r in meta.regions() {
                let epoch = |r: &Region| {
                    r.region_epoch
                        .as_ref()
                        .map_or((0, 0), |e| (e.version, e.conf_ver))
                };
                let newer = regions.get(&r.id).is_none_or(|old| epoch(r) > epoch(old));
                if newer {
                    regions.insert(r.id, r.clone());
                }
            }
        }
        regions
    }

    /// Snapshots of `region` on every running store holding one of its peers, each with the
    /// applied index and region state recorded in that same snapshot (data and applied index
    /// are written in one batch, so they agree once no snapshot is half applied).
    fn replica_views(&self, region: &Region) -> Vec<ReplicaView> {
        region
            .peers
            .iter()
            .filter(|p| self.is_running(p.store_id))
            .map(|p| {
                let snapshot = self.store(p.store_id).kv().snapshot();
                let applied_index = snapshot
                    .get_msg_cf::<RaftApplyState>(CF_RAFT, &keys::apply_state_key(region.id))
                    .expect("read apply state")
                    .map_or(0, |s| s.applied_index);
                let applying_snapshot = snapshot
                    .get_msg_cf::<RegionLocalState>(CF_RAFT, &keys::region_state_key(region.id))
                    .expect("read region state")
                    .is_some_and(|s| s.state() == PeerState::Applying);
                ReplicaView {
                    store_id: p.store_id,
                    snapshot,
                    applied_index,
                    applying_snapshot,
                }
            })
            .collect()
    }

    /// Waits until every region's replicas on running stores have applied the same index, then
    /// compares their data key by key in every data column family. Call it once load has
    /// stopped and faults are healed. Panics naming the region, the stores and the first key
    /// that differs, or the applied indexes that never converged within `DEFAULT_TIMEOUT`.
    pub fn must_replicas_consistent(&self) -> ConsistencyReport {
        let mut report = ConsistencyReport::default();
        for region in self.known_regions().values() {
            let deadline = Instant::now() + DEFAULT_TIMEOUT;
            let views = loop {
                let views = self.replica_views(region);
                let first = views.first().map_or(0, |v| v.applied_index);
                if views
                    .iter()
                    .all(|v| v.applied_index == first && !v.applying_snapshot)
                {
                    break views;
                }
                if Instant::now() > deadline {
                    let indexes: Vec<(u64, u64, bool)> = views
                        .iter()
                        .map(|v| (v.store_id, v.applied_index, v.applying_snapshot))
                        .collect();
                    panic!(
                        "region {}: replicas never settled at one applied index: (store, index, applying a snapshot) {indexes:?}",
                        region.id
                    );
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            };
            report.regions += 1;
            report.pairs += compare_views(region, &views);
        }
        report
    }
}

/// Compares the region's range in every data CF across the views; returns pairs compared.
fn compare_views(region: &Region, views: &[ReplicaView]) -> usize {
    let start = keys::enc_start_key(&region.start_key);
    let end = keys::enc_end_key(&region.end_key);
    let mut pairs = 0;
    for cf in DATA_CFS {
        let mut reference: Option<(u64, Pairs)> = None;
        for view in views {
            let mut data = Vec::new();
            view.snapshot
                .scan_cf(cf, &start, &end, |k, v| {
                    data.push((k.to_vec(), v.to_vec()));
                    Ok(true)
                })
                .expect("scan replica");
            match &reference {
                None => {
                    pairs += data.len();
                    reference = Some((view.store_id, data));
                }
                Some((ref_store, ref_data)) => {
                    if let Some(diff) = first_difference(ref_data, &data) {
                        panic!(
                            "region {} (applied index {}), cf {cf}: store {ref_store} and store {} differ at key {:?}: {diff}",
                            region.id,
                            view.applied_index,
                            view.store_id,
                            String::from_utf8_lossy(diff_key(ref_data, &data)),
                        );
                    }
                }
            }
        }
    }
    pairs
}

fn first_index_differing(a: &[(Vec<u8>, Vec<u8>)], b: &[(Vec<u8>, Vec<u8>)]) -> Option<usize> {
    (0..a.len().max(b.len())).find(|i| a.get(*i) != b.get(*i))
}

fn first_difference(a: &[(Vec<u8>, Vec<u8>)], b: &[(Vec<u8>, Vec<u8>)]) -> Option<String> {
    let i = first_index_differing(a, b)?;
    let show = |p: Option<&(Vec<u8>, Vec<u8>)>| {
        p.map_or("<nothing>".to_string(), |(k, v)| {
            format!(
                "{:?}={:?}",
                String::from_utf8_lossy(k),
                String::from_utf8_lossy(v)
            )
        })
    };
    Some(format!("{} vs {}", show(a.get(i)), show(b.get(i))))
}

fn diff_key<'a>(a: &'a [(Vec<u8>, Vec<u8>)], b: &'a [(Vec<u8>, Vec<u8>)]) -> &'a [u8] {
    let i = first_index_differing(a, b).unwrap_or(0);
    a.get(i).or_else(|| b.get(i)).map_or(&[], |(k, _)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(k: &str, v: &str) -> (Vec<u8>, Vec<u8>) {
        (k.as_bytes().to_vec(), v.as_bytes().to_vec())
    }

    #[test]
    fn differences_are_found_and_named() {
        let a = vec![kv("a", "1"), kv("b", "2")];
        assert_eq!(first_difference(&a, &a.clone()), None);
        let b = vec![kv("a", "1"), kv("b", "3")];
        assert_eq!(
            first_difference(&a, &b).as_deref(),
            Some("\"b\"=\"2\" vs \"b\"=\"3\"")
        );
        let c = vec![kv("a", "1")];
        assert_eq!(
            first_difference(&a, &c).as_deref(),
            Some("\"b\"=\"2\" vs <nothing>")
        );
        assert_eq!(diff_key(&a, &c), b"b");
    }
}
