//! The store FSM: messages for regions without a local peer, store liveness, store ticks.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Instant;

use batch_system::Fsm;
use crossbeam_channel::Receiver;
use proto::metapb;
use proto::raft_serverpb::{ExtraMessage, ExtraMessageType, RaftMessage};
use tracing::{debug, info, warn};

use crate::context::PollContext;
use crate::metrics::RAFT_DROPPED_MESSAGES;
use crate::msg::{PeerMsg, SignificantMsg, StoreMsg, StoreTick};

pub struct StoreFsm {
    receiver: Receiver<StoreMsg>,
    last_heard: HashMap<u64, Instant>,
    unreachable: HashSet<u64>,
}

impl StoreFsm {
    pub fn new(receiver: Receiver<StoreMsg>) -> StoreFsm {
        StoreFsm {
            receiver,
            last_heard: HashMap::new(),
            unreachable: HashSet::new(),
        }
    }

    pub fn pending_messages(&self) -> usize {
        self.receiver.len()
    }

    pub fn handle_messages(&mut self, ctx: &mut PollContext, limit: usize) {
        for _ in 0..limit {
            let Ok(msg) = self.receiver.try_recv() else {
                return;
            };
            match msg {
                StoreMsg::RaftMessage(m) => self.on_unknown_region_message(ctx, *m),
                StoreMsg::StoreHeartbeat { from_store } => {
                    self.last_heard.insert(from_store, Instant::now());
                    if self.unreachable.remove(&from_store) {
                        info!(store_id = from_store, "store reachable again");
                    }
                }
                StoreMsg::Tick(StoreTick::StoreHeartbeat) => self.on_heartbeat_tick(ctx),
                StoreMsg::Tick(StoreTick::PurgeRaftLog) => {
                    if let Err(e) = ctx.raft_engine.purge_expired_files() {
                        warn!("purge raft log files: {e}");
                    }
                }
                StoreMsg::Start => {}
            }
        }
    }

    /// A message for a region this store has no peer of. Creating peers on demand belongs to
    /// region lifecycle management; here such messages are dropped after checking they do not
    /// collide with a local region.
    fn on_unknown_region_message(&mut self, ctx: &mut PollContext, msg: RaftMessage) {
        RAFT_DROPPED_MESSAGES.inc();
        let meta = ctx.store_meta.lock();
        let overlaps = meta.overlapping_regions(&msg.start_key, &msg.end_key);
        debug!(
            region_id = msg.region_id,
            ?overlaps,
            "message for an unknown region dropped"
        );
    }

    /// Pings every store we share a region with and reports the silent ones.
    fn on_heartbeat_tick(&mut self, ctx: &mut PollContext) {
        let now = Instant::now();
        let stores: BTreeSet<u64> = {
            let meta = ctx.store_meta.lock();
            meta.regions()
                .flat_map(|r| r.peers.iter().map(|p| p.store_id))
                .filter(|s| *s != ctx.store_id)
                .collect()
        };
        for &store_id in &stores {
            ctx.transport.send(RaftMessage {
                region_id: 0,
                from_peer: Some(metapb::Peer {
                    store_id: ctx.store_id,
                    ..Default::default()
                }),
                to_peer: Some(metapb::Peer {
                    store_id,
                    ..Default::default()
                }),
                extra: Some(ExtraMessage {
                    r#type: ExtraMessageType::MsgStoreHeartbeat as i32,
                    ..Default::default()
                }),
                ..Default::default()
            });
            let last = *self.last_heard.entry(store_id).or_insert(now);
            let silent = now.saturating_duration_since(last) > ctx.cfg.store_unreachable_timeout;
            if silent && self.unreachable.insert(store_id) {
                info!(store_id, "store unreachable; waking its regions' peers");
                ctx.router.broadcast(|| {
                    PeerMsg::Significant(SignificantMsg::StoreUnreachable { store_id })
                });
            }
        }
        ctx.transport.flush();
    }
}

impl Fsm for StoreFsm {
    type Message = StoreMsg;

    fn is_stopped(&self) -> bool {
        false
    }
}
