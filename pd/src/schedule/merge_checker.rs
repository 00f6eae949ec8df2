//! The merge checker: a region small enough (`max-merge-region-size` and
//! `max-merge-region-keys`) merges into an adjacent region whose voters sit on the same stores,
//! the smaller neighbour first. Neither may have been split within `split-merge-interval`,
//! have an operator, lack a leader, or have down, pending or joint-state peers (PD's
//! `MergeChecker`), and a boundary the keyspace split keeps (`keyspace_split`) is never
//! merged away. Nothing merges within `split-merge-interval` of PD's start, since splits
//! before it are not remembered. The store refuses what changed since (a split or membership change in flight)
//! and rolls back a merge whose target moved on.

use super::hot_region::is_hot;
use super::operator::{OpKind, OpStep, Operator};
use super::view::ScheduleView;
use crate::cluster::{role, RegionInfo};
use proto::metapb::PeerRole;

/// Merge operators for up to `merge-schedule-limit - running` small regions, looking from
/// `rotation` on so every region gets its turn.
pub fn schedule(view: &mut ScheduleView<'_>, running: usize, rotation: usize) -> Vec<Operator> {
    let cfg = view.cfg;
    // PD remembers splits only since it started: until `split-merge-interval` has passed
    // since then, any region may have been split moments before, so none is merged.
    let since_start = view.now.unix_ms.saturating_sub(view.loaded_at_ms);
    if u128::from(since_start) < cfg.split_merge_interval.as_millis() {
        return Vec::new();
    }
    let mut budget = (cfg.merge_schedule_limit as usize).saturating_sub(running);
    let mut out = Vec::new();
    for id in view.patrol(rotation) {
        if budget == 0 {
            break;
        }
        let Some(source) = view.regions.get(id) else {
            continue;
        };
        if !is_small(view, source) || !can_take_part(view, source) {
            continue;
        }
        let Some(target) = pick_target(view, source) else {
            continue;
        };
        let op = Operator::new(
            source,
            OpKind::Merge,
            format!("merge region {} into region {}", source.id(), target.id()),
            vec![OpStep::MergeRegion {
                target: target.meta.clone(),
            }],
            cfg,
            view.now,
        );
        view.record(&op);
        out.push(op);
        budget -= 1;
    }
    out
}

/// Whether the region is small enough to merge away. A region split off moments ago reports
/// no estimates yet (zero); `split-merge-interval` keeps it from merging back meanwhile.
fn is_small(view: &ScheduleView<'_>, region: &RegionInfo) -> bool {
    let cfg = view.cfg;
    region.approximate_size <= cfg.max_merge_region_size
        && region.approximate_keys <= cfg.max_merge_region_keys
}

/// Whether a region may be a merge's source or target now. A hot region is neither: merging
/// it would only make a bigger hot spot (PD's merge checker skips hot regions too).
fn can_take_part(view: &ScheduleView<'_>, region: &RegionInfo) -> bool {
    let recently_split = view.split_at.get(&region.id()).is_some_and(|at| {
        view.now.unix_ms.saturating_sub(*at) < view.cfg.split_merge_interval.as_millis() as u64
    });
    !view.busy.contains(&region.id())
        && !recently_split
        && !is_hot(view.cfg, region)
        && region.leader.is_some()
        && region.down_peers.is_empty()
        && region.pending_peers.is_empty()
        && !region.in_joint_state()
        && region.meta.peers.iter().all(|p| role(p) == PeerRole::Voter)
}

/// The neighbour to merge into: on the same stores, able to take part, the smaller first.
fn pick_target<'a>(view: &ScheduleView<'a>, source: &RegionInfo) -> Option<&'a RegionInfo> {
    let (prev, next) = view.regions.neighbours(source);
    let stores = |r: &RegionInfo| {
        let mut s: Vec<u64> = r.meta.peers.iter().map(|p| p.store_id).collect();
        s.sort_unstable();
        s
    };
    let kept = if view.cfg.enable_keyspace_split {
        super::keyspace_split::fixed_boundaries(view.api_version)
    } else {
        Vec::new()
    };
    // The key between source and target: where the target starts, if it lies after.
    let boundary = |t: &RegionInfo| {
        if !source.end_key().is_empty() && t.start_key() == source.end_key() {
            source.end_key().to_vec()
        } else {
            source.start_key().to_vec()
        }
    };
    let mut candidates: Vec<&'a RegionInfo> = [prev, next]
        .into_iter()
        .flatten()
        .filter(|t| stores(t) == stores(source) && can_take_part(view, t))
        .filter(|t| !kept.contains(&boundary(t)))
        .collect();
    candidates.sort_by_key(|t| (t.approximate_size, t.approximate_keys, t.id()));
    candidates.into_iter().next()
}

#[cfg(test)]
mod tests {
    use proto::metapb::PeerRole::Voter;

    use super::*;
    use crate::schedule::testkit::Fixture;

    const ON_123: &[(u64, u64, PeerRole)] = &[(1, 1, Voter), (2, 2, Voter), (3, 3, Voter)];

    /// Regions 1 [.., b), 2 [b, d), 3 [d, ..) on stores 1-3, with the given sizes (bytes).
    fn three_regions(sizes: [u64; 3]) -> Fixture {
        let mut f = Fixture::new(&[1, 2, 3]);
        let ranges: [(&[u8], &[u8]); 3] = [(b"", b"b"), (b"b", b"d"), (b"d", b"")];
        for (i, (start, end)) in ranges.into_iter().enumerate() {
            let id = i as u64 + 1;
            let peers: Vec<_> = ON_123
                .iter()
                .map(|(p, s, r)| (id * 10 + p, *s, *r))
                .collect();
            f.add_region(id, start, end, &peers, id * 10 + 1);
            let r = f.state.regions.get_mut(id).unwrap();
            r.approximate_size = sizes[i];
            r.approximate_keys = sizes[i] / 100;
        }
        f
    }

    fn merges(f: &Fixture) -> Vec<(u64, u64)> {
        let mut view = f.view();
        schedule(&mut view, 0, 0)
            .into_iter()
            .map(|op| (op.region_id, op.merge_target().unwrap()))
            .collect()
    }

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn a_small_region_merges_into_its_smaller_neighbour_once() {
        let f = three_regions([30 * MIB, MIB, 10 * MIB]);
        // Region 2 is small; region 3 is the smaller neighbour. Region 3 is small too, but
        // it is now taken as the target.
        assert_eq!(merges(&f), vec![(2, 3)]);
    }

    #[test]
    fn big_regions_stay() {
        let f = three_regions([30 * MIB, 40 * MIB, 50 * MIB]);
        assert!(merges(&f).is_empty());
        let mut f = three_regions([30 * MIB, MIB, 50 * MIB]);
        f.state.regions.get_mut(2).unwrap().approximate_keys = 300_000;
        assert!(merges(&f).is_empty(), "too many keys");
    }

    #[test]
    fn recently_split_regions_are_not_merged_nor_merged_into() {
        let mut f = three_regions([30 * MIB, MIB, 30 * MIB]);
        f.state.split_at.insert(2, f.now.unix_ms - 1000);
        assert!(merges(&f).is_empty());
        let mut f = three_regions([30 * MIB, MIB, 30 * MIB]);
        f.state.split_at.insert(1, f.now.unix_ms);
        assert_eq!(merges(&f), vec![(2, 3)]);
        // Long enough ago: merged.
        let mut f = three_regions([30 * MIB, MIB, 30 * MIB]);
        let interval = f.cfg.split_merge_interval.as_millis() as u64;
        f.state.split_at.insert(2, f.now.unix_ms - interval - 1);
        assert_eq!(merges(&f).len(), 1);
    }

    #[test]
    fn nothing_merges_until_split_merge_interval_has_passed_since_pd_started() {
        let mut f = three_regions([30 * MIB, MIB, 30 * MIB]);
        let interval = f.cfg.split_merge_interval.as_millis() as u64;
        f.state.loaded_at_ms = f.now.unix_ms - interval + 1000;
        assert!(merges(&f).is_empty(), "PD started within the interval");
        f.state.loaded_at_ms = f.now.unix_ms - interval;
        assert_eq!(merges(&f).len(), 1, "the interval has passed");
    }

    #[test]
    fn neighbours_on_other_stores_or_unhealthy_are_not_targets() {
        let mut f = Fixture::new(&[1, 2, 3, 4]);
        f.add_region(
            1,
            b"",
            b"m",
            &[(11, 1, Voter), (12, 2, Voter), (13, 3, Voter)],
            11,
        );
        f.add_region(
            2,
            b"m",
            b"",
            &[(21, 1, Voter), (22, 2, Voter), (24, 4, Voter)],
            21,
        );
        assert!(merges(&f).is_empty(), "different stores");

        let mut f = three_regions([MIB, MIB, 30 * MIB]);
        f.mark_peer_pending(2, 23);
        f.mark_peer_down(1, 12, 100);
        // Region 1's only neighbour (2) is pending; 2 cannot take part; 3 is big but may
        // still be a target only of 2.
        assert!(merges(&f).is_empty());
    }

    #[test]
    fn fixed_keyspace_boundaries_are_kept() {
        let boundary = crate::schedule::keyspace_split::v1_tail_boundary();
        let mut f = Fixture::new(&[1, 2, 3]);
        f.state.api_version = 1;
        let peers = |id: u64| -> Vec<_> {
            ON_123
                .iter()
                .map(|(p, s, r)| (id * 10 + p, *s, *r))
                .collect()
        };
        f.add_region(1, b"", &boundary, &peers(1), 11);
        f.add_region(2, &boundary, b"", &peers(2), 21);
        assert!(merges(&f).is_empty());
        f.cfg.enable_keyspace_split = false;
        assert_eq!(merges(&f).len(), 1);
    }

    #[test]
    fn hot_regions_are_not_merged_nor_merged_into() {
        let mut f = three_regions([30 * MIB, MIB, MIB]);
        let hot = |f: &mut Fixture, id: u64| {
            let mut r = f.state.regions.get(id).unwrap().clone();
            r.flow = crate::cluster::RegionFlow::default().followed_by(
                &crate::cluster::RegionFlow::reported(&proto::pdpb::RegionHeartbeatRequest {
                    keys_written: 600_000,
                    interval: Some(proto::pdpb::TimeInterval {
                        start_timestamp: 0,
                        end_timestamp: 60,
                    }),
                    ..Default::default()
                }),
            );
            f.state.regions.insert(r);
        };
        assert_eq!(merges(&f), vec![(2, 3)]);
        hot(&mut f, 3);
        // Region 3 is hot: region 2 merges into its other neighbour instead, and region 3
        // stays a region of its own although small.
        assert_eq!(merges(&f), vec![(2, 1)]);
        let mut f = three_regions([30 * MIB, MIB, MIB]);
        hot(&mut f, 2);
        assert!(merges(&f).is_empty(), "region 2 is hot");
    }

    #[test]
    fn the_limit_counts_running_merges() {
        let mut f = three_regions([MIB, 30 * MIB, MIB]);
        f.cfg.merge_schedule_limit = 1;
        let mut view = f.view();
        assert_eq!(schedule(&mut view, 0, 0).len(), 1);
        let mut view = f.view();
        assert!(schedule(&mut view, 1, 0).is_empty());
        f.cfg.merge_schedule_limit = 0;
        let mut view = f.view();
        assert!(schedule(&mut view, 0, 0).is_empty());
    }
}
