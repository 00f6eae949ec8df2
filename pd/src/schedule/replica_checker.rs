//! Keeps every region at `max-replicas` voters on healthy stores: adds missing replicas, replaces
//! peers on down or offline stores, removes extra voters and leftover learners.

use proto::metapb::Peer;

use super::operator::{OpKind, OpStep, Operator};
use super::view::ScheduleView;
use super::IdSource;
use crate::cluster::RegionInfo;
use crate::error::Result;

/// Steps that remove `peer`, handing leadership away first when it leads the region.
pub fn removal_steps(
    view: &ScheduleView,
    region: &RegionInfo,
    peer: &Peer,
    fallback_leader_store: Option<u64>,
) -> Option<Vec<OpStep>> {
    let mut steps = Vec::new();
    if region.is_leader(peer.id) {
        let to_store = view.transfer_target(region, peer, fallback_leader_store)?;
        steps.push(OpStep::TransferLeader {
            from_store: peer.store_id,
            to_store,
        });
    }
    steps.push(OpStep::RemovePeer {
        store_id: peer.store_id,
        peer_id: peer.id,
    });
    Some(steps)
}

/// Adds a voter on `store_id`: as a learner first, promoted once it has caught up.
pub(crate) fn add_steps(store_id: u64, peer_id: u64) -> Vec<OpStep> {
    vec![
        OpStep::AddLearner { store_id, peer_id },
        OpStep::PromoteLearner { store_id, peer_id },
    ]
}

/// The repair one region needs, if any. Regions without a known leader, or halfway through a
/// membership change, are left alone until they settle.
pub fn check_region(
    view: &ScheduleView,
    region: &RegionInfo,
    ids: &mut IdSource<'_>,
) -> Result<Option<Operator>> {
    if region.leader.is_none() || region.in_joint_state() {
        return Ok(None);
    }
    let max = view.cfg.max_replicas as usize;
    let voters: Vec<Peer> = region.voters().copied().collect();
    let learners: Vec<Peer> = region.learners().copied().collect();
    let make = |desc: String, steps: Vec<OpStep>| {
        Some(Operator::new(
            region,
            OpKind::Replica,
            desc,
            steps,
            view.cfg,
            view.now,
        ))
    };

    // Too few voters: promote a caught-up learner, wait for one catching up, or add one.
    if voters.len() < max {
        let healthy_learners: Vec<&Peer> = learners
            .iter()
            .filter(|l| !view.is_unhealthy(region, l))
            .collect();
        if let Some(l) = healthy_learners.iter().find(|l| !region.is_pending(l.id)) {
            return Ok(make(
                format!("promote learner {} on store {}", l.id, l.store_id),
                vec![OpStep::PromoteLearner {
                    store_id: l.store_id,
                    peer_id: l.id,
                }],
            ));
        }
        if !healthy_learners.is_empty() {
            return Ok(None);
        }
        if let Some(target) = view.pick_target(region) {
            let peer_id = ids()?;
            return Ok(make(
                format!("add missing replica on store {target}"),
                add_steps(target, peer_id),
            ));
        }
    }

    // A voter on an unhealthy store: add its replacement first, then remove it.
    if let Some(bad) = voters.iter().find(|v| view.is_unhealthy(region, v)) {
        if voters.len() > max {
            return Ok(removal_steps(view, region, bad, None).and_then(|steps| {
                make(
                    format!(
                        "remove extra peer {} on unhealthy store {}",
                        bad.id, bad.store_id
                    ),
                    steps,
                )
            }));
        }
        if let Some(target) = view.pick_target(region) {
            let Some(removal) = removal_steps(view, region, bad, Some(target)) else {
                return Ok(None);
            };
            let peer_id = ids()?;
            let mut steps = add_steps(target, peer_id);
            steps.extend(removal);
            return Ok(make(
                format!(
                    "replace peer {} on store {} ({}) with a peer on store {target}",
                    bad.id,
                    bad.store_id,
                    view.status(bad.store_id).name()
                ),
                steps,
            ));
        }
    }

    // Too many voters: remove the one on the most loaded store.
    if voters.len() > max {
        let victim = voters.iter().max_by_key(|v| {
            let load = view.stores.get(&v.store_id).map_or(i64::MAX, |s| s.regions);
            (load, !region.is_leader(v.id), v.store_id)
        });
        if let Some(victim) = victim {
            return Ok(removal_steps(view, region, victim, None).and_then(|steps| {
                make(
                    format!(
                        "remove extra peer {} on store {}",
                        victim.id, victim.store_id
                    ),
                    steps,
                )
            }));
        }
    }

    // Learners nobody needs: on unhealthy stores, or beyond the voter count.
    if let Some(l) = learners
        .iter()
        .find(|l| view.is_unhealthy(region, l) || voters.len() >= max)
    {
        return Ok(make(
            format!("remove leftover learner {} on store {}", l.id, l.store_id),
            vec![OpStep::RemovePeer {
                store_id: l.store_id,
                peer_id: l.id,
            }],
        ));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use proto::metapb::{PeerRole, StoreState};

    use super::*;
    use crate::schedule::testkit::{counter, Fixture};

    fn steps(op: &Option<Operator>) -> Vec<OpStep> {
        op.as_ref().expect("an operator").steps.clone()
    }

    #[test]
    fn a_missing_replica_goes_to_the_least_loaded_free_store() {
        let mut f = Fixture::new(&[1, 2, 3, 4]);
        f.add_region(
            1,
            b"",
            b"b",
            &[(11, 1, PeerRole::Voter), (12, 2, PeerRole::Voter)],
            11,
        );
        // Store 3 already holds more regions than store 4.
        f.add_region(2, b"b", b"c", &[(21, 3, PeerRole::Voter)], 21);
        f.add_region(3, b"c", b"", &[(31, 3, PeerRole::Voter)], 31);
        let view = f.view();
        let mut ids = counter(100);
        let op = check_region(&view, view.regions.get(1).unwrap(), &mut ids).unwrap();
        assert_eq!(
            steps(&op),
            vec![
                OpStep::AddLearner {
                    store_id: 4,
                    peer_id: 100
                },
                OpStep::PromoteLearner {
                    store_id: 4,
                    peer_id: 100
                }
            ]
        );
    }

    #[test]
    fn a_healthy_region_needs_nothing_and_no_target_means_no_operator() {
        let mut f = Fixture::new(&[1, 2, 3]);
        f.add_healthy_region(1);
        let view = f.view();
        let r = view.regions.get(1).unwrap();
        assert!(check_region(&view, r, &mut counter(1)).unwrap().is_none());

        let mut f = Fixture::new(&[1]);
        f.add_region(1, b"", b"", &[(11, 1, PeerRole::Voter)], 11);
        let view = f.view();
        let r = view.regions.get(1).unwrap();
        assert!(check_region(&view, r, &mut counter(1)).unwrap().is_none());
    }

    #[test]
    fn a_caught_up_learner_is_promoted_and_a_pending_one_awaited() {
        let mut f = Fixture::new(&[1, 2, 3, 4]);
        f.add_region(
            1,
            b"",
            b"",
            &[
                (11, 1, PeerRole::Voter),
                (12, 2, PeerRole::Voter),
                (13, 3, PeerRole::Learner),
            ],
            11,
        );
        let view = f.view();
        let r = view.regions.get(1).unwrap();
        let op = check_region(&view, r, &mut counter(1)).unwrap();
        assert_eq!(
            steps(&op),
            vec![OpStep::PromoteLearner {
                store_id: 3,
                peer_id: 13
            }]
        );
        let mut pending = r.clone();
        pending.pending_peers = vec![r.peer(13).copied().unwrap()];
        assert!(check_region(&view, &pending, &mut counter(1))
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_peer_on_a_down_store_is_replaced_then_removed() {
        let mut f = Fixture::new(&[1, 2, 3, 4]);
        f.add_healthy_region(1);
        f.silence_store(3, f.cfg.max_store_down_time.as_millis() as u64 + 1);
        let view = f.view();
        let r = view.regions.get(1).unwrap();
        let op = check_region(&view, r, &mut counter(50)).unwrap();
        assert_eq!(
            steps(&op),
            vec![
                OpStep::AddLearner {
                    store_id: 4,
                    peer_id: 50
                },
                OpStep::PromoteLearner {
                    store_id: 4,
                    peer_id: 50
                },
                OpStep::RemovePeer {
                    store_id: 3,
                    peer_id: 13
                }
            ]
        );
    }

    #[test]
    fn a_reported_long_down_peer_is_replaced_too() {
        let mut f = Fixture::new(&[1, 2, 3, 4]);
        f.add_healthy_region(1);
        let down = f.cfg.max_store_down_time.as_secs();
        f.mark_peer_down(1, 13, down);
        let view = f.view();
        let op = check_region(&view, view.regions.get(1).unwrap(), &mut counter(50)).unwrap();
        assert!(steps(&op).contains(&OpStep::RemovePeer {
            store_id: 3,
            peer_id: 13
        }));
    }

    #[test]
    fn an_offline_leader_hands_over_leadership_before_removal() {
        let mut f = Fixture::new(&[1, 2, 3, 4]);
        f.add_healthy_region(1);
        f.set_store_state(1, StoreState::Offline);
        let view = f.view();
        let op = check_region(&view, view.regions.get(1).unwrap(), &mut counter(7)).unwrap();
        let s = steps(&op);
        assert_eq!(
            s[0],
            OpStep::AddLearner {
                store_id: 4,
                peer_id: 7
            }
        );
        assert!(matches!(
            s[2],
            OpStep::TransferLeader {
                from_store: 1,
                to_store: 2 | 3
            }
        ));
        assert_eq!(
            s[3],
            OpStep::RemovePeer {
                store_id: 1,
                peer_id: 11
            }
        );
    }

    #[test]
    fn extra_voters_and_leftover_learners_are_removed() {
        let mut f = Fixture::new(&[1, 2, 3, 4, 5]);
        f.add_region(
            1,
            b"",
            b"m",
            &[
                (11, 1, PeerRole::Voter),
                (12, 2, PeerRole::Voter),
                (13, 3, PeerRole::Voter),
                (14, 4, PeerRole::Voter),
            ],
            14,
        );
        // Store 4 holds the most regions, but it leads region 1: store 3 is next.
        f.add_region(
            2,
            b"m",
            b"",
            &[(21, 4, PeerRole::Voter), (22, 3, PeerRole::Voter)],
            21,
        );
        let view = f.view();
        let op = check_region(&view, view.regions.get(1).unwrap(), &mut counter(1)).unwrap();
        assert_eq!(
            steps(&op),
            vec![OpStep::RemovePeer {
                store_id: 3,
                peer_id: 13
            }]
        );

        let mut f = Fixture::new(&[1, 2, 3, 4]);
        f.add_region(
            1,
            b"",
            b"",
            &[
                (11, 1, PeerRole::Voter),
                (12, 2, PeerRole::Voter),
                (13, 3, PeerRole::Voter),
                (14, 4, PeerRole::Learner),
            ],
            11,
        );
        let view = f.view();
        let op = check_region(&view, view.regions.get(1).unwrap(), &mut counter(1)).unwrap();
        assert_eq!(
            steps(&op),
            vec![OpStep::RemovePeer {
                store_id: 4,
                peer_id: 14
            }]
        );
    }
}
