//! The merge checker: a region small enough (`max-merge-region-size` and
//! `max-merge-region-keys`) merges into an adjacent region whose voters sit on the same stores,
//! the smaller neighbour first. Neither may have been split within `split-merge-interval`,
//! have an operator, lack a leader, or have down, pending or joint-state peers (PD's
//! `MergeChecker`), and a boundary the keyspace split keeps (`keyspace_split`) is never
//! merged away. Nothing merges within `split-merge-interval` of PD's start, since splits
//! before it are not remembered. The store refuses what changed since (a split or membership change in flight)
//! and rolls back a merge whose target moved on.
//!
//! With more stores than replicas, neighbours often sit on different stores. Then the small
//! region's peers move to its neighbour's stores first, one peer per operator (add a learner
//! on a store of the neighbour, promote it, remove the peer on a store the neighbour does not
//! use), as PD's merge operator moves the source's peers before merging; once they match, a
//! later round merges.
use super::hot_region::is_hot;
use super::operator::{OpKind, OpStep, Operator};
use super::replica_checker::{add_steps, removal_steps};
use super::view::ScheduleView;
use super::IdSource;
use crate::cluster::{role, RegionInfo, StoreStatus};
use crate::error::Result;
use proto::metapb::PeerRole;

/// Merge operators, and peer moves that prepare a merge, for up to `merge-schedule-limit -
/// running` small regions, looking from `rotation` on so every region gets its turn. `ids`
/// gives the id of a peer a move adds.
pub fn schedule(
    view: &mut ScheduleView<'_>,
    running: usize,
    rotation: usize,
    ids: &mut IdSource<'_>,
) -> Result<Vec<Operator>> {
    let cfg = view.cfg;
    // PD remembers splits only since it started: until `split-merge-interval` has passed
    // since then, any region may have been split moments before, so none is merged.
    let since_start = view.now.unix_ms.saturating_sub(view.loaded_at_ms);
    if u128::from(since_start) < cfg.split_merge_interval.as_millis() {
        return Ok(Vec::new());
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
            if let Some(op) = align_with_neighbour(view, source, ids)? {
                view.record(&op);
                out.push(op);
                budget -= 1;
            }
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
    Ok(out)
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

/// The stores of a region's peers, in ascending order.
fn stores(region: &RegionInfo) -> Vec<u64> {
    let mut s: Vec<u64> = region.meta.peers.iter().map(|p| p.store_id).collect();
    s.sort_unstable();
    s
}

/// The neighbour to merge into: on the same stores, able to take part, the smaller first.
fn pick_target<'a>(view: &ScheduleView<'a>, source: &RegionInfo) -> Option<&'a RegionInfo> {
    mergeable_neighbours(view, source)
        .into_iter()
        .find(|t| stores(t) == stores(source))
}

/// One move of `source`'s peers towards the stores of the neighbour it would merge into (the
/// smaller neighbour with as many voters whose stores can all take a peer): a learner added on
/// one of the neighbour's stores, promoted, and the peer on a store the neighbour does not use
/// removed (a follower's before the leader's, which hands leadership over first). The
/// neighbour is kept from other operators for this round.
fn align_with_neighbour(
    view: &mut ScheduleView<'_>,
    source: &RegionInfo,
    ids: &mut IdSource<'_>,
) -> Result<Option<Operator>> {
    let can_take_peer = |view: &ScheduleView<'_>, store: u64| {
        view.status(store) == StoreStatus::Up && !view.stores.get(&store).is_some_and(|s| s.busy)
    };
    let source_stores = stores(source);
    let target = mergeable_neighbours(view, source).into_iter().find(|t| {
        t.meta.peers.len() == source.meta.peers.len()
            && stores(t)
                .iter()
                .filter(|s| !source_stores.contains(s))
                .all(|s| can_take_peer(view, *s))
    });
    let Some(target) = target else {
        return Ok(None);
    };
    let target_stores = stores(target);
    let Some(to_store) = target_stores
        .iter()
        .copied()
        .find(|s| !source_stores.contains(s))
    else {
        return Ok(None);
    };
    let leaving = source
        .meta
        .peers
        .iter()
        .filter(|p| !target_stores.contains(&p.store_id));
    let Some(from) = leaving.min_by_key(|p| (source.is_leader(p.id), p.store_id)) else {
        return Ok(None);
    };
    let Some(removal) = removal_steps(view, source, from, Some(to_store)) else {
        return Ok(None);
    };
    let mut steps = add_steps(to_store, ids()?);
    steps.extend(removal);
    view.busy.insert(target.id());
    Ok(Some(Operator::new(
        source,
        OpKind::Merge,
        format!(
            "merge region {} into region {}: move a peer from store {} to store {to_store} first",
            source.id(),
            target.id(),
            from.store_id
        ),
        steps,
        view.cfg,
        view.now,
    )))
}

/// The neighbours `source` may merge into, wherever their peers are: able to take part, not
/// across a boundary the keyspace split keeps; the smaller first.
fn mergeable_neighbours<'a>(view: &ScheduleView<'a>, source: &RegionInfo) -> Vec<&'a RegionInfo> {
    let (prev, next) = view.regions.neighbours(source);
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
        .filter(|t| can_take_part(view, t))
        .filter(|t| !kept.contains(&boundary(t)))
        .collect();
    candidates.sort_by_key(|t| (t.approximate_size, t.approximate_keys, t.id()));
    candidates
}

#[cfg(test)]
mod tests {
    use proto::metapb::PeerRole::Voter;

    use super::*;
    use crate::schedule::testkit::{counter, Fixture};

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

    /// The operators one round makes.
    fn operators(f: &Fixture) -> Vec<Operator> {
        let mut view = f.view();
        schedule(&mut view, 0, 0, &mut counter(1000)).unwrap()
    }

    /// The (source, target) of the merges one round starts; peer moves are left out.
    fn merges(f: &Fixture) -> Vec<(u64, u64)> {
        operators(f)
            .into_iter()
            .filter_map(|op| Some((op.region_id, op.merge_target()?)))
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
        let round = |f: &Fixture, running: usize| {
            let mut view = f.view();
            schedule(&mut view, running, 0, &mut counter(1000)).unwrap()
        };
        assert_eq!(round(&f, 0).len(), 1);
        assert!(round(&f, 1).is_empty());
        f.cfg.merge_schedule_limit = 0;
        assert!(round(&f, 0).is_empty());
    }

    /// Region 1 [.., m) on stores 1-3 led from store 1, region 2 [m, ..) with peers on
    /// `stores` led from the first; region 2 is too big to merge away itself.
    fn neighbours_on(stores: [u64; 3]) -> Fixture {
        let mut f = Fixture::new(&[1, 2, 3, 4, 5, 6]);
        f.add_region(
            1,
            b"",
            b"m",
            &[(11, 1, Voter), (12, 2, Voter), (13, 3, Voter)],
            11,
        );
        let peers: Vec<_> = stores.iter().map(|s| (20 + s, *s, Voter)).collect();
        f.add_region(2, b"m", b"", &peers, 20 + stores[0]);
        f.state.regions.get_mut(2).unwrap().approximate_size = 100 * MIB;
        f
    }

    #[test]
    fn a_small_region_on_other_stores_moves_a_follower_towards_its_neighbour() {
        let f = neighbours_on([1, 2, 4]);
        let ops = operators(&f);
        assert_eq!(ops.len(), 1, "{ops:?}");
        let op = &ops[0];
        assert_eq!((op.region_id, op.kind), (1, OpKind::Merge));
        assert_eq!(op.merge_target(), None);
        assert!(
            matches!(
                op.steps[..],
                [
                    OpStep::AddLearner { store_id: 4, .. },
                    OpStep::PromoteLearner { store_id: 4, .. },
                    OpStep::RemovePeer {
                        store_id: 3,
                        peer_id: 13
                    }
                ]
            ),
            "{:?}",
            op.steps
        );
    }

    #[test]
    fn a_leader_on_a_store_the_neighbour_does_not_use_hands_over_before_it_leaves() {
        let f = neighbours_on([4, 5, 2]);
        let ops = operators(&f);
        assert_eq!(ops.len(), 1, "{ops:?}");
        // Stores 1 and 3 must go; the follower on 3 goes first.
        assert!(
            matches!(
                ops[0].steps[..],
                [
                    OpStep::AddLearner { store_id: 4, .. },
                    OpStep::PromoteLearner { store_id: 4, .. },
                    OpStep::RemovePeer { store_id: 3, .. }
                ]
            ),
            "{:?}",
            ops[0].steps
        );
        // Once only the leader's store is left to change, leadership moves first.
        let f = neighbours_on([4, 2, 3]);
        let ops = operators(&f);
        assert_eq!(ops.len(), 1, "{ops:?}");
        let steps = &ops[0].steps;
        assert!(
            matches!(
                steps[..],
                [
                    OpStep::AddLearner { store_id: 4, .. },
                    OpStep::PromoteLearner { store_id: 4, .. },
                    OpStep::TransferLeader { from_store: 1, .. },
                    OpStep::RemovePeer {
                        store_id: 1,
                        peer_id: 11
                    }
                ]
            ),
            "{steps:?}"
        );
    }

    #[test]
    fn no_move_goes_to_a_store_that_cannot_take_a_peer() {
        let mut f = neighbours_on([1, 2, 4]);
        f.mark_store_busy(4);
        assert!(operators(&f).is_empty(), "store 4 reported a full disk");
    }
}
