//! Spreads hot regions' leaders: a store's hot load is the keys per second its leaders of hot
//! regions read and write (`hot-region-min-key-rate` and up). While the hottest Up store's
//! load exceeds the coolest's by at least that minimum, one hot region's leader moves from the
//! hotter to the cooler store, the region whose move leaves the two closest, provided the move
//! narrows their gap by at least a tenth (so two nearly even stores do not trade a region back
//! and forth). This is PD's `balance-hot-region-scheduler` for leaders: balancing leader
//! *counts* cannot see that one region serves most of the traffic, so a range that split under
//! load would otherwise keep every half led from the store that led it whole.
//!
//! Rates come from the regions' heartbeats (see `cluster::flow_rate`); a region keeps its rate
//! when its leader moves, so a finished transfer shows at once as load on the new store.

use std::collections::BTreeMap;

use super::operator::{OpKind, OpStep, Operator};
use super::view::ScheduleView;
use crate::cluster::RegionInfo;
use crate::config::ScheduleConfig;

/// Whether the region's leader handles at least `hot-region-min-key-rate` keys per second.
pub fn is_hot(cfg: &ScheduleConfig, region: &RegionInfo) -> bool {
    region.flow.leader_key_rate() >= cfg.hot_region_min_key_rate
}

/// Whether other schedulers should leave the region alone: the hot-region scheduler is on and
/// places it.
pub fn placed_by_hot_scheduler(cfg: &ScheduleConfig, region: &RegionInfo) -> bool {
    cfg.enable_hot_region_scheduler && is_hot(cfg, region)
}

/// A hot region and where its leader is (once running operators moved it).
struct HotRegion<'a> {
    region: &'a RegionInfo,
    load: u64,
    leader_store: u64,
}

/// New hot-region leader transfers, within `hot-region-schedule-limit` together with the
/// `running` ones.
pub fn schedule(view: &mut ScheduleView, running: usize) -> Vec<Operator> {
    let cfg = view.cfg;
    let limit = cfg.hot_region_schedule_limit as usize;
    if running >= limit {
        return Vec::new();
    }
    // The tree outlives this round's view borrows: operators are recorded while its regions
    // are held.
    let tree = view.regions;
    let mut hot: Vec<HotRegion> = tree
        .with_flow()
        .filter(|r| is_hot(cfg, r))
        .filter_map(|r| {
            Some(HotRegion {
                region: r,
                load: r.flow.leader_key_rate(),
                leader_store: view.leader_store_after_moves(r)?,
            })
        })
        .collect();
    // Hottest first, then by id, so equal choices come out the same every round.
    hot.sort_by_key(|h| (std::cmp::Reverse(h.load), h.region.id()));

    let mut out = Vec::new();
    while running + out.len() < limit {
        let mut loads: BTreeMap<u64, u64> = view.up_stores().iter().map(|s| (s.id, 0u64)).collect();
        if loads.len() < 2 {
            break;
        }
        for h in &hot {
            if let Some(load) = loads.get_mut(&h.leader_store) {
                *load += h.load;
            }
        }
        let mut stores: Vec<(u64, u64)> = loads.into_iter().collect();
        stores.sort_by_key(|(id, load)| (*load, *id));
        let Some((index, src, dst)) = pick_move(view, &hot, &stores) else {
            break;
        };
        let region = hot[index].region;
        let op = Operator::new(
            region,
            OpKind::HotRegion,
            format!(
                "hot region ({} keys/s): leader from store {src} to store {dst}",
                hot[index].load
            ),
            vec![OpStep::TransferLeader {
                from_store: src,
                to_store: dst,
            }],
            cfg,
            view.now,
        );
        view.record(&op);
        hot[index].leader_store = dst;
        out.push(op);
    }
    out
}

/// The hot region to move (its index in `hot`), from which store to which, given the stores'
/// loads in ascending order: the hottest store that has a worthwhile move, to the coolest
/// store that can take one.
fn pick_move(
    view: &ScheduleView,
    hot: &[HotRegion],
    stores: &[(u64, u64)],
) -> Option<(usize, u64, u64)> {
    let min_gap = view.cfg.hot_region_min_key_rate;
    for &(src, src_load) in stores.iter().rev() {
        for &(dst, dst_load) in stores {
            let gap = src_load.saturating_sub(dst_load);
            if gap < min_gap {
                break;
            }
            let best = hot
                .iter()
                .enumerate()
                .filter(|(_, h)| h.leader_store == src)
                .filter(|(_, h)| !view.busy.contains(&h.region.id()))
                .filter_map(|(i, h)| {
                    let gap_after = gap.abs_diff(2 * h.load);
                    // At least a tenth closer: gap_after <= 0.9 * gap.
                    (gap_after * 10 <= gap * 9).then_some((gap_after, i))
                })
                .filter(|(_, i)| view.can_transfer_leader(hot[*i].region, dst))
                .min();
            if let Some((_, i)) = best {
                return Some((i, src, dst));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use proto::pdpb::{RegionHeartbeatRequest, TimeInterval};

    use super::*;
    use crate::cluster::RegionFlow;
    use crate::schedule::testkit::Fixture;
    use crate::schedule::OperatorController;

    /// Regions 1..=n (n = `rates.len()`) on stores 1-3, led from `leader_store(i)` and
    /// reading `rates[i]` keys per second.
    fn regions(f: &mut Fixture, rates: &[u64], leader_store: impl Fn(u64) -> u64) {
        f.add_consecutive_regions(rates.len() as u64, leader_store);
        for (i, rate) in rates.iter().enumerate() {
            set_read_rate(f, i as u64 + 1, *rate);
        }
    }

    fn set_read_rate(f: &mut Fixture, id: u64, keys_per_sec: u64) {
        let mut region = f.state.regions.get(id).unwrap().clone();
        region.flow =
            RegionFlow::default().followed_by(&RegionFlow::reported(&RegionHeartbeatRequest {
                keys_read: keys_per_sec * 60,
                interval: Some(TimeInterval {
                    start_timestamp: 1000,
                    end_timestamp: 1060,
                }),
                ..Default::default()
            }));
        f.state.regions.insert(region);
    }

    /// (region, from store, to store) of each operator.
    fn moves(ops: &[Operator]) -> Vec<(u64, u64, u64)> {
        ops.iter()
            .map(|op| match op.steps[..] {
                [OpStep::TransferLeader {
                    from_store,
                    to_store,
                }] => (op.region_id, from_store, to_store),
                _ => panic!("not a leader transfer: {:?}", op.steps),
            })
            .collect()
    }

    #[test]
    fn two_hot_halves_led_from_one_store_are_spread() {
        // The case seen after a load split: both halves of a hot range led from store 1,
        // while the cold regions keep the leader counts even.
        let mut f = Fixture::new(&[1, 2, 3]);
        regions(&mut f, &[15_000, 14_000, 0, 0, 0, 0], |i| {
            [1, 1, 2, 2, 3, 3][i as usize]
        });
        let mut view = f.view();
        let ops = schedule(&mut view, 0);
        // One half goes to store 2 (either leaves stores 1 and 2 1,000 keys/s apart); the
        // other stays, as moving it on to store 3 would only turn the gap around.
        let moved = moves(&ops);
        assert_eq!(moved.len(), 1, "{moved:?}");
        assert!(matches!(moved[0], (1 | 2, 1, 2)), "{moved:?}");
        assert!(ops.iter().all(|op| op.kind == OpKind::HotRegion));
    }

    #[test]
    fn three_hot_regions_on_one_store_end_one_per_store() {
        let mut f = Fixture::new(&[1, 2, 3]);
        regions(&mut f, &[5_000, 5_000, 5_000], |_| 1);
        let mut view = f.view();
        let ops = schedule(&mut view, 0);
        let mut to: Vec<u64> = moves(&ops).iter().map(|m| m.2).collect();
        to.sort();
        assert_eq!(to, vec![2, 3]);
        // The next round sees the moves under way and makes no more.
        let mut ctl = OperatorController::new(std::sync::Arc::new(crate::metrics::Metrics::new()));
        for op in ops {
            assert!(ctl.add(op));
        }
        let mut view = crate::schedule::ScheduleView::new(&f.state, &ctl, &f.cfg, f.now);
        assert!(schedule(&mut view, ctl.count(OpKind::HotRegion)).is_empty());
    }

    #[test]
    fn nothing_moves_when_loads_are_even_or_regions_are_not_hot() {
        let mut f = Fixture::new(&[1, 2, 3]);
        regions(&mut f, &[5_000, 5_100, 4_900], |i| i + 1);
        assert!(schedule(&mut f.view(), 0).is_empty(), "already spread");

        let mut f = Fixture::new(&[1, 2, 3]);
        regions(&mut f, &[99, 99, 99], |_| 1);
        assert!(
            schedule(&mut f.view(), 0).is_empty(),
            "below the minimum rate"
        );

        // One hot region alone: moving it only moves the hot spot.
        let mut f = Fixture::new(&[1, 2, 3]);
        regions(&mut f, &[20_000, 0, 0], |_| 1);
        assert!(schedule(&mut f.view(), 0).is_empty());
    }

    #[test]
    fn the_limit_and_unfit_targets_are_respected() {
        let mut f = Fixture::new(&[1, 2, 3]);
        regions(&mut f, &[5_000, 5_000, 5_000], |_| 1);
        assert_eq!(schedule(&mut f.view(), 3).len(), 1, "4 - 3 running");
        f.cfg.hot_region_schedule_limit = 0;
        assert!(schedule(&mut f.view(), 0).is_empty());

        // Stores 2 and 3 hold peers that are still catching up: no transfer to them.
        let mut f = Fixture::new(&[1, 2, 3]);
        regions(&mut f, &[5_000, 5_000], |_| 1);
        for id in [1, 2] {
            f.mark_peer_pending(id, id * 10 + 2);
            f.mark_peer_pending(id, id * 10 + 3);
        }
        assert!(schedule(&mut f.view(), 0).is_empty());
    }

    #[test]
    fn other_schedulers_leave_hot_regions_to_it() {
        let mut f = Fixture::new(&[1, 2, 3]);
        // Leader counts 4/0/0 and every region hot but even: balance-leader would move
        // three; with the hot-region scheduler on it moves none of the hot ones.
        regions(&mut f, &[1_000, 1_000, 1_000, 1_000], |_| 1);
        let hot_placed = f
            .state
            .regions
            .iter()
            .all(|r| placed_by_hot_scheduler(&f.cfg, r));
        assert!(hot_placed);
        let mut view = f.view();
        assert!(crate::schedule::balance_leader::schedule(&mut view, 0, 0).is_empty());
        f.cfg.enable_hot_region_scheduler = false;
        let mut view = f.view();
        assert!(!crate::schedule::balance_leader::schedule(&mut view, 0, 0).is_empty());
    }
}
