//! Scheduling: operators and the schedulers that make them. The schedulers are pure decisions
//! over a `ScheduleView`; the server runs them on a tick and sends the operators' steps to
//! region leaders.

pub mod admin;
pub mod balance_leader;
pub mod balance_region;
pub mod controller;
pub mod hot_region;
pub mod keyspace_split;
pub mod merge_checker;
pub mod operator;
pub mod replica_checker;
pub mod view;

pub use controller::{OperatorController, SendPolicy};
pub use operator::{Now, OpKind, OpStatus, OpStep, Operator};
pub use view::{ScheduleView, StoreView};

use crate::error::Result;

/// Where schedulers get fresh peer ids.
pub type IdSource<'a> = dyn FnMut() -> Result<u64> + 'a;

/// One scheduling round: replica repairs first (they restore safety), then merges of small
/// regions, then hot regions' leaders, then leader and region balance (which count the hot
/// moves just made). `rotation` changes where each round starts looking so no region is starved.
pub fn plan(
    view: &mut ScheduleView,
    ops: &OperatorController,
    rotation: usize,
    ids: &mut IdSource<'_>,
) -> Result<Vec<Operator>> {
    let cfg = view.cfg;
    let mut out = Vec::new();
    if cfg.enable_replica_checker {
        let mut budget =
            (cfg.replica_schedule_limit as usize).saturating_sub(ops.count(OpKind::Replica));
        let regions = view.regions;
        for id in view.patrol(rotation) {
            if budget == 0 {
                break;
            }
            let Some(region) = regions.get(id) else {
                continue;
            };
            if view.busy.contains(&id) {
                continue;
            }
            if let Some(op) = replica_checker::check_region(view, region, ids)? {
                view.record(&op);
                out.push(op);
                budget -= 1;
            }
        }
    }
    if cfg.merge_schedule_limit > 0 {
        out.extend(merge_checker::schedule(
            view,
            ops.count(OpKind::Merge),
            rotation,
            ids,
        )?);
    }
    if cfg.enable_hot_region_scheduler {
        out.extend(hot_region::schedule(view, ops.count(OpKind::HotRegion)));
    }
    if cfg.enable_balance_leader {
        out.extend(balance_leader::schedule(
            view,
            ops.count(OpKind::Leader),
            rotation,
        ));
    }
    if cfg.enable_balance_region {
        out.extend(balance_region::schedule(
            view,
            ops.count(OpKind::Region),
            rotation,
            ids,
        )?);
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod testkit {
    use std::sync::Arc;

    use proto::metapb::{self, Peer, PeerRole, RegionEpoch, StoreState};
    use proto::pdpb::PeerStats;

    use super::*;
    use crate::cluster::{ClusterState, RegionInfo, StoreInfo};
    use crate::config::ScheduleConfig;
    use crate::metrics::Metrics;

    /// A constructed cluster to run schedulers on.
    pub struct Fixture {
        pub state: ClusterState,
        pub cfg: ScheduleConfig,
        pub ops: OperatorController,
        pub now: Now,
    }

    impl Fixture {
        /// Up stores that just reported.
        pub fn new(store_ids: &[u64]) -> Fixture {
            let now = Now::current();
            let mut state = ClusterState {
                bootstrapped: true,
                ..Default::default()
            };
            for id in store_ids {
                let meta = metapb::Store {
                    id: *id,
                    address: format!("127.0.0.1:{}", 20000 + id),
                    ..Default::default()
                };
                state.stores.insert(*id, StoreInfo::new(meta, now.unix_ms));
            }
            Fixture {
                state,
                cfg: ScheduleConfig::default(),
                ops: OperatorController::new(Arc::new(Metrics::new())),
                now,
            }
        }

        pub fn add_region(
            &mut self,
            id: u64,
            start: &[u8],
            end: &[u8],
            peers: &[(u64, u64, PeerRole)],
            leader: u64,
        ) {
            let peers: Vec<Peer> = peers
                .iter()
                .map(|(id, store_id, role)| Peer {
                    id: *id,
                    store_id: *store_id,
                    role: *role as i32,
                    is_witness: false,
                })
                .collect();
            let leader = peers.iter().find(|p| p.id == leader).copied();
            let meta = metapb::Region {
                id,
                start_key: start.to_vec(),
                end_key: end.to_vec(),
                region_epoch: Some(RegionEpoch {
                    conf_ver: 1,
                    version: 1,
                }),
                peers,
            };
            self.state.regions.insert(RegionInfo::new(meta, leader));
        }

        /// Regions 1..=n over consecutive one-byte ranges (the last one open-ended), each
        /// with voters `id * 10 + s` on stores s = 1, 2, 3, the i-th (from 0) led from store
        /// `leader_store(i)`.
        pub fn add_consecutive_regions(&mut self, n: u64, leader_store: impl Fn(u64) -> u64) {
            for i in 0..n {
                let id = i + 1;
                let end = if i + 1 == n {
                    vec![]
                } else {
                    vec![i as u8 + 1]
                };
                let peers = [
                    (id * 10 + 1, 1, PeerRole::Voter),
                    (id * 10 + 2, 2, PeerRole::Voter),
                    (id * 10 + 3, 3, PeerRole::Voter),
                ];
                self.add_region(id, &[i as u8], &end, &peers, id * 10 + leader_store(i));
            }
        }

        /// Region `id` over the whole key space with voters 11, 12, 13 on stores 1, 2, 3,
        /// led by 11.
        pub fn add_healthy_region(&mut self, id: u64) {
            self.add_region(
                id,
                b"",
                b"",
                &[
                    (11, 1, PeerRole::Voter),
                    (12, 2, PeerRole::Voter),
                    (13, 3, PeerRole::Voter),
                ],
                11,
            );
        }

        pub fn silence_store(&mut self, id: u64, ms: u64) {
            let s = self.state.stores.get_mut(&id).unwrap();
            s.last_heartbeat_ms = self.now.unix_ms - ms;
        }

        /// The store's last heartbeat said it is busy (a full disk, full mailboxes).
        pub fn mark_store_busy(&mut self, id: u64) {
            self.state.stores.get_mut(&id).unwrap().stats = Some(proto::pdpb::StoreStats {
                store_id: id,
                is_busy: true,
                ..Default::default()
            });
        }

        pub fn set_store_state(&mut self, id: u64, state: StoreState) {
            self.state.stores.get_mut(&id).unwrap().meta.state = state as i32;
        }

        pub fn mark_peer_down(&mut self, region: u64, peer: u64, secs: u64) {
            let r = self.state.regions.get_mut(region).unwrap();
            let p = r.peer(peer).copied();
            r.down_peers.push(PeerStats {
                peer: p,
                down_seconds: secs,
            });
        }

        pub fn mark_peer_pending(&mut self, region: u64, peer: u64) {
            let r = self.state.regions.get_mut(region).unwrap();
            let p = r.peer(peer).copied().unwrap();
            r.pending_peers.push(p);
        }

        pub fn view(&self) -> ScheduleView<'_> {
            ScheduleView::new(&self.state, &self.ops, &self.cfg, self.now)
        }
    }

    /// Ids counting up from `start`.
    pub fn counter(start: u64) -> impl FnMut() -> Result<u64> {
        let mut next = start;
        move || {
            next += 1;
            Ok(next - 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use proto::metapb::PeerRole::Voter;
    use proto::metapb::StoreState;

    use super::testkit::{counter, Fixture};
    use super::*;

    #[test]
    fn a_round_repairs_first_and_never_gives_a_region_two_operators() {
        let mut f = Fixture::new(&[1, 2, 3, 4]);
        for i in 0..6u64 {
            let id = i + 1;
            let end = if i == 5 { vec![] } else { vec![i as u8 + 1] };
            f.add_region(
                id,
                &[i as u8],
                &end,
                &[
                    (id * 10 + 1, 1, Voter),
                    (id * 10 + 2, 2, Voter),
                    (id * 10 + 3, 3, Voter),
                ],
                id * 10 + 1,
            );
        }
        f.set_store_state(3, StoreState::Offline);
        let mut view = f.view();
        let ops = plan(&mut view, &f.ops, 0, &mut counter(100)).unwrap();
        let replica: Vec<&Operator> = ops.iter().filter(|o| o.kind == OpKind::Replica).collect();
        assert_eq!(replica.len(), 6, "every region leaves the offline store");
        let mut regions: Vec<u64> = ops.iter().map(|o| o.region_id).collect();
        regions.sort();
        regions.dedup();
        assert_eq!(regions.len(), ops.len());
    }

    #[test]
    fn running_operators_count_against_the_limits() {
        let mut f = Fixture::new(&[1, 2, 3]);
        // The regions below are adjacent and report no size: the merge checker would merge
        // them; this test is about the leader balancer's limit.
        f.cfg.merge_schedule_limit = 0;
        for i in 0..9u64 {
            let id = i + 1;
            let end = if i == 8 { vec![] } else { vec![i as u8 + 1] };
            f.add_region(
                id,
                &[i as u8],
                &end,
                &[
                    (id * 10 + 1, 1, Voter),
                    (id * 10 + 2, 2, Voter),
                    (id * 10 + 3, 3, Voter),
                ],
                id * 10 + 1,
            );
        }
        let mut view = f.view();
        let first = plan(&mut view, &f.ops, 0, &mut counter(100)).unwrap();
        assert_eq!(first.len(), f.cfg.leader_schedule_limit as usize);
        for op in first {
            assert!(f.ops.add(op));
        }
        let mut view = f.view();
        assert!(plan(&mut view, &f.ops, 1, &mut counter(200))
            .unwrap()
            .is_empty());
    }
}
