//! Evens out leaders: while two Up stores' leader counts differ by more than the tolerance,
//! transfer a leader from the busier one to a follower on the idler one. Hot regions are left
//! to the hot-region scheduler while it is on.

use std::collections::HashMap;

use super::hot_region::placed_by_hot_scheduler;
use super::operator::{OpKind, OpStep, Operator};
use super::view::ScheduleView;

/// New leader transfers, within `leader-schedule-limit` together with the `running` ones,
/// chosen among the regions of round `rotation`'s patrol window.
pub fn schedule(view: &mut ScheduleView, running: usize, rotation: usize) -> Vec<Operator> {
    let limit = view.cfg.leader_schedule_limit as usize;
    let tolerance = view.cfg.leader_balance_tolerance as i64;
    if running >= limit || !imbalanced(view, tolerance) {
        return Vec::new();
    }
    let mut led: HashMap<u64, Vec<u64>> = HashMap::new();
    for id in view.patrol(rotation) {
        if let Some(store) = view.regions.get(id).and_then(|r| r.leader_store_id()) {
            led.entry(store).or_default().push(id);
        }
    }
    let mut out = Vec::new();
    while running + out.len() < limit {
        let mut stores = view.up_stores();
        if stores.len() < 2 {
            break;
        }
        stores.sort_by_key(|s| (s.leaders, s.id));
        let mut found = None;
        'search: for src in stores.iter().rev() {
            for dst in &stores {
                if src.leaders - dst.leaders <= tolerance {
                    break;
                }
                let candidates = led.get(&src.id).map(Vec::as_slice).unwrap_or_default();
                let region = candidates
                    .iter()
                    .filter_map(|id| view.regions.get(*id))
                    .filter(|r| !placed_by_hot_scheduler(view.cfg, r))
                    .find(|r| view.can_transfer_leader(r, dst.id));
                if let Some(region) = region {
                    found = Some((region, src.id, dst.id));
                    break 'search;
                }
            }
        }
        let Some((region, from_store, to_store)) = found else {
            break;
        };
        let op = Operator::new(
            region,
            OpKind::Leader,
            format!("balance leader: store {from_store} to store {to_store}"),
            vec![OpStep::TransferLeader {
                from_store,
                to_store,
            }],
            view.cfg,
            view.now,
        );
        view.record(&op);
        out.push(op);
    }
    out
}

/// Some Up store leads more than `tolerance` regions beyond another.
fn imbalanced(view: &ScheduleView, tolerance: i64) -> bool {
    let leaders: Vec<i64> = view.up_stores().iter().map(|s| s.leaders).collect();
    match (leaders.iter().max(), leaders.iter().min()) {
        (Some(max), Some(min)) => max - min > tolerance,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use proto::metapb::PeerRole::{Learner, Voter};

    use super::*;
    use crate::schedule::testkit::Fixture;

    fn three_replicas(f: &mut Fixture, n: u64, leader_store: impl Fn(u64) -> u64) {
        f.add_consecutive_regions(n, leader_store);
    }

    #[test]
    fn leaders_move_from_the_busiest_store_until_balanced() {
        let mut f = Fixture::new(&[1, 2, 3]);
        f.cfg.leader_schedule_limit = 100;
        three_replicas(&mut f, 9, |_| 1);
        let mut view = f.view();
        let ops = schedule(&mut view, 0, 0);
        assert_eq!(ops.len(), 6);
        let mut leaders: Vec<i64> = view.up_stores().iter().map(|s| s.leaders).collect();
        leaders.sort();
        assert_eq!(leaders, vec![3, 3, 3]);
        for op in &ops {
            assert!(matches!(
                op.steps[..],
                [OpStep::TransferLeader { from_store: 1, .. }]
            ));
        }
    }

    #[test]
    fn the_limit_and_the_tolerance_are_respected() {
        let mut f = Fixture::new(&[1, 2, 3]);
        three_replicas(&mut f, 9, |_| 1);
        let mut view = f.view();
        assert_eq!(schedule(&mut view, 3, 0).len(), 1);

        let mut f = Fixture::new(&[1, 2, 3]);
        three_replicas(&mut f, 8, |i| i % 3 + 1);
        let mut view = f.view();
        assert!(schedule(&mut view, 0, 0).is_empty(), "3/3/2 is balanced");
    }

    #[test]
    fn leaders_go_only_to_caught_up_voters_on_up_stores() {
        let mut f = Fixture::new(&[1, 2, 3]);
        for i in 0..4u64 {
            let id = i + 1;
            f.add_region(
                id,
                &[i as u8],
                &[i as u8 + 1],
                &[(id * 10 + 1, 1, Voter), (id * 10 + 2, 2, Learner)],
                id * 10 + 1,
            );
        }
        let mut view = f.view();
        assert!(schedule(&mut view, 0, 0).is_empty());
    }
}
