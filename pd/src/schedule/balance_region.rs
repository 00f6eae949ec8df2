//! Evens out regions: while two Up stores' region counts differ by more than the tolerance
//! (the larger of `region-balance-min-tolerance` and a share of the mean), move one healthy
//! region's peer from the fuller store to the emptier one.

use std::collections::HashMap;

use super::hot_region::placed_by_hot_scheduler;
use super::operator::{OpKind, OpStep, Operator};
use super::replica_checker::removal_steps;
use super::view::{ScheduleView, StoreView};
use super::IdSource;
use crate::cluster::{RegionInfo, StoreStatus};
use crate::error::Result;

/// A region that can move now: settled, fully replicated, nothing down or catching up, and
/// not one the hot-region scheduler places.
fn movable(view: &ScheduleView, region: &RegionInfo, to_store: u64) -> bool {
    !view.busy.contains(&region.id())
        && !placed_by_hot_scheduler(view.cfg, region)
        && region.leader.is_some()
        && !region.in_joint_state()
        && region.down_peers.is_empty()
        && region.pending_peers.is_empty()
        && region.learners().next().is_none()
        && region.voters().count() == view.cfg.max_replicas as usize
        && region.peer_on_store(to_store).is_none()
        && region
            .meta
            .peers
            .iter()
            .all(|p| view.status(p.store_id) == StoreStatus::Up)
}

fn tolerance(view: &ScheduleView, stores: &[StoreView]) -> f64 {
    let total: i64 = stores.iter().map(|s| s.regions).sum();
    let mean = total as f64 / stores.len().max(1) as f64;
    (view.cfg.region_balance_min_tolerance as f64)
        .max(view.cfg.region_balance_tolerance_ratio * mean)
}

/// New region moves, within `region-schedule-limit` together with the `running` ones.
/// `rotation` varies which of a store's regions is tried first from one round to the next.
pub fn schedule(
    view: &mut ScheduleView,
    running: usize,
    rotation: usize,
    ids: &mut IdSource<'_>,
) -> Result<Vec<Operator>> {
    let limit = view.cfg.region_schedule_limit as usize;
    if running >= limit {
        return Ok(Vec::new());
    }
    // Candidates come from this round's patrol window; a store short of regions is fed a
    // window at a time.
    let mut on_store: HashMap<u64, Vec<u64>> = HashMap::new();
    for id in view.patrol(rotation) {
        if let Some(r) = view.regions.get(id) {
            for p in &r.meta.peers {
                on_store.entry(p.store_id).or_default().push(id);
            }
        }
    }
    let mut out = Vec::new();
    while running + out.len() < limit {
        let mut stores = view.up_stores();
        if stores.len() < 2 {
            break;
        }
        stores.sort_by_key(|s| (s.regions, s.id));
        let tolerance = tolerance(view, &stores);
        let mut found = None;
        'search: for src in stores.iter().rev() {
            for dst in &stores {
                if ((src.regions - dst.regions) as f64) <= tolerance {
                    break;
                }
                if dst.busy {
                    // A store short of disk space takes no new regions.
                    continue;
                }
                let candidates = on_store.get(&src.id).map(Vec::as_slice).unwrap_or_default();
                let n = candidates.len();
                let region = (0..n)
                    .map(|i| candidates[(i + rotation) % n])
                    .filter_map(|id| view.regions.get(id))
                    .find(|r| movable(view, r, dst.id));
                if let Some(region) = region {
                    found = Some((region, src.id, dst.id));
                    break 'search;
                }
            }
        }
        let Some((region, from_store, to_store)) = found else {
            break;
        };
        let Some(source) = region.peer_on_store(from_store).copied() else {
            break;
        };
        let Some(removal) = removal_steps(view, region, &source, Some(to_store)) else {
            // Nowhere to hand leadership to; do not pick this region again this round.
            view.busy.insert(region.id());
            continue;
        };
        let peer_id = ids()?;
        let mut steps = vec![
            OpStep::AddLearner {
                store_id: to_store,
                peer_id,
            },
            OpStep::PromoteLearner {
                store_id: to_store,
                peer_id,
            },
        ];
        steps.extend(removal);
        let op = Operator::new(
            region,
            OpKind::Region,
            format!("balance region: move a peer from store {from_store} to store {to_store}"),
            steps,
            view.cfg,
            view.now,
        );
        view.record(&op);
        out.push(op);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::testkit::{counter, Fixture};

    fn regions_on_first_three(f: &mut Fixture, n: u64) {
        f.add_consecutive_regions(n, |i| 1 + i % 3);
    }

    #[test]
    fn a_new_store_receives_regions_until_balanced() {
        let mut f = Fixture::new(&[1, 2, 3, 4]);
        f.cfg.region_schedule_limit = 100;
        regions_on_first_three(&mut f, 12);
        let mut view = f.view();
        let ops = schedule(&mut view, 0, 0, &mut counter(1000)).unwrap();
        // 12/12/12/0: the new store ends within the tolerance (2) of the others.
        let counts: Vec<i64> = view.up_stores().iter().map(|s| s.regions).collect();
        let (max, min) = (*counts.iter().max().unwrap(), *counts.iter().min().unwrap());
        assert!(max - min <= 2, "{counts:?}");
        assert_eq!(ops.len() as i64, counts[3]);
        for op in &ops {
            assert!(matches!(
                op.steps[..2],
                [
                    OpStep::AddLearner { store_id: 4, .. },
                    OpStep::PromoteLearner { store_id: 4, .. }
                ]
            ));
            let last = op.steps.last().unwrap();
            assert!(matches!(
                last,
                OpStep::RemovePeer {
                    store_id: 1..=3,
                    ..
                }
            ));
            // A leader leaving its store hands leadership over first.
            let region = view.regions.get(op.region_id).unwrap();
            if let OpStep::RemovePeer { peer_id, .. } = last {
                if region.is_leader(*peer_id) {
                    assert!(matches!(op.steps[2], OpStep::TransferLeader { .. }));
                }
            }
        }
    }

    #[test]
    fn a_busy_store_receives_no_regions() {
        // Store 4 is empty but reported a full disk; store 5 is empty and healthy.
        let mut f = Fixture::new(&[1, 2, 3, 4, 5]);
        f.cfg.region_schedule_limit = 100;
        regions_on_first_three(&mut f, 12);
        f.mark_store_busy(4);
        let mut view = f.view();
        let ops = schedule(&mut view, 0, 0, &mut counter(1000)).unwrap();
        assert!(!ops.is_empty());
        for op in &ops {
            assert!(
                matches!(op.steps[0], OpStep::AddLearner { store_id: 5, .. }),
                "{:?}",
                op.steps
            );
        }
        let region = view.regions.get(1).unwrap();
        assert_eq!(view.pick_target(region), Some(5));
    }

    #[test]
    fn balanced_or_unhealthy_clusters_are_left_alone() {
        let mut f = Fixture::new(&[1, 2, 3]);
        regions_on_first_three(&mut f, 6);
        let mut view = f.view();
        assert!(schedule(&mut view, 0, 0, &mut counter(1))
            .unwrap()
            .is_empty());

        // A region with a pending peer does not move.
        let mut f = Fixture::new(&[1, 2, 3, 4]);
        regions_on_first_three(&mut f, 3);
        for id in 1..=3 {
            f.mark_peer_pending(id, id * 10 + 2);
        }
        let mut view = f.view();
        assert!(schedule(&mut view, 0, 0, &mut counter(1))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn the_limit_counts_running_moves() {
        let mut f = Fixture::new(&[1, 2, 3, 4]);
        regions_on_first_three(&mut f, 12);
        let mut view = f.view();
        assert_eq!(schedule(&mut view, 3, 0, &mut counter(1)).unwrap().len(), 1);
    }
}
