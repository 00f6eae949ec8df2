//! The store FSM: messages for regions without a local peer, store liveness, store ticks.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Instant;

use batch_system::Fsm;
use crossbeam_channel::Receiver;
use proto::metapb;
use proto::raft_serverpb::{ExtraMessage, ExtraMessageType, RaftMessage};
use tracing::{debug, info, warn};

use engine::{KvRead, CF_RAFT};
use proto::eraftpb::{self, MessageType};
use proto::raft_serverpb::{PeerState, RegionLocalState};

use crate::context::PollContext;
use crate::fsm::create::build_uninitialized_peer;
use crate::metrics::RAFT_DROPPED_MESSAGES;
use crate::msg::{PeerMsg, SignificantMsg, StoreMsg, StoreTick};
use crate::worker::pd_stats::PdTask;
use crate::worker::raftlog_gc::GcTask;

pub struct StoreFsm {
    receiver: Receiver<StoreMsg>,
    last_heard: HashMap<u64, Instant>,
    unreachable: HashSet<u64>,
    /// The region heartbeat stream session seen at the last PD store heartbeat tick
    /// ([`crate::PdClient::heartbeat_session`]).
    pd_session: u32,
}

impl StoreFsm {
    pub fn new(receiver: Receiver<StoreMsg>) -> StoreFsm {
        StoreFsm {
            receiver,
            last_heard: HashMap::new(),
            unreachable: HashSet::new(),
            pd_session: 0,
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
                    let now = Instant::now();
                    self.last_heard.insert(from_store, now);
                    ctx.store_liveness.heard(from_store, now);
                    if self.unreachable.remove(&from_store) {
                        ctx.store_liveness.set_unreachable(from_store, false);
                        info!(store_id = from_store, "store reachable again");
                    }
                }
                StoreMsg::Tick(StoreTick::StoreHeartbeat) => self.on_heartbeat_tick(ctx),
                // Purging may read and rewrite log files for a long time: the GC worker does it.
                StoreMsg::Tick(StoreTick::PurgeRaftLog) => {
                    let _ = ctx.gc.send(GcTask::Purge);
                }
                StoreMsg::Tick(StoreTick::PdStoreHeartbeat) => {
                    let region_count = ctx.store_meta.lock().region_count();
                    let region_count = u32::try_from(region_count).unwrap_or(u32::MAX);
                    let _ = ctx.pd_worker.send(PdTask::StoreHeartbeat { region_count });
                    self.check_pd_session(ctx);
                }
                StoreMsg::Start => {}
            }
        }
    }

    /// Tells every peer when the region heartbeat stream was opened again. The first
    /// opening needs no news: leaders report when they are elected, and reports made while
    /// the stream was still closing go out as it opens.
    fn check_pd_session(&mut self, ctx: &mut PollContext) {
        let session = ctx.pd.heartbeat_session();
        if session == self.pd_session {
            return;
        }
        // Opened more than once before the first tick looked: PD may have restarted in
        // between, after leaders had reported on the first stream.
        let reopened = self.pd_session != 0 || session > 1;
        self.pd_session = session;
        if reopened {
            info!(
                session,
                "region heartbeat stream reopened; leaders report to PD again"
            );
            ctx.router
                .broadcast(|| PeerMsg::Significant(SignificantMsg::PdReconnected));
        }
    }

    /// A message for a region this store has no peer of. A peer is created for it when that
    /// is safe: the message is for this store, the range does not overlap a local region, and
    /// the region was not removed from this store in a newer configuration. A message for a
    /// region that a local split is about to create waits for that split.
    fn on_unknown_region_message(&mut self, ctx: &mut PollContext, msg: RaftMessage) {
        let region_id = msg.region_id;
        // Several messages for a new region can queue here before the first creates its
        // peer; the later ones go to that peer. Creating it again would register a second
        // peer FSM for the region, and both would write its raft state.
        let msg = match ctx.router.deliver_to_peer(msg) {
            Ok(()) => return,
            Err(msg) => *msg,
        };
        match self.check_create_peer(ctx, msg) {
            Ok(msg) => self.create_peer(ctx, msg),
            Err(Refused::Delivered) | Err(Refused::AwaitingSplit) => {}
            Err(Refused::Drop(why)) => {
                RAFT_DROPPED_MESSAGES.inc();
                debug!(region_id, "message for an unknown region dropped: {why}");
            }
        }
    }

    fn create_peer(&mut self, ctx: &mut PollContext, msg: RaftMessage) {
        let region_id = msg.region_id;
        let Some(me) = msg.to_peer else {
            return;
        };
        let created = build_uninitialized_peer(
            &ctx.cfg,
            &ctx.raft_engine,
            region_id,
            me,
            &ctx.snap_generator,
            &ctx.logger,
        );
        match created {
            Ok(created) => {
                info!(region_id, peer_id = me.id, "created peer for a new region");
                created.register(&mut ctx.store_meta.lock(), &ctx.router, &ctx.apply_router);
                let _ = ctx.router.force_send(region_id, PeerMsg::Start);
                let _ = ctx.router.send_raft_message(msg);
            }
            Err(e) => warn!(region_id, "create peer: {e}"),
        }
    }

    fn check_create_peer(
        &self,
        ctx: &PollContext,
        msg: RaftMessage,
    ) -> Result<RaftMessage, Refused> {
        let to = msg.to_peer.ok_or(Refused::Drop("no target peer".into()))?;
        if to.store_id != ctx.store_id {
            return Err(Refused::Drop(format!("addressed to store {}", to.store_id)));
        }
        let m = proto::parse_raft::<eraftpb::Message>(&msg.message)
            .map_err(|e| Refused::Drop(e.to_string()))?;
        let msg_type = m.get_msg_type();
        let creates = matches!(
            msg_type,
            MessageType::MsgHeartbeat
                | MessageType::MsgAppend
                | MessageType::MsgSnapshot
                | MessageType::MsgRequestVote
                | MessageType::MsgRequestPreVote
        );
        if !creates {
            return Err(Refused::Drop(format!("{msg_type:?} cannot create a peer")));
        }
        let local: Option<RegionLocalState> = ctx
            .kv
            .get_msg_cf(CF_RAFT, &keys::region_state_key(msg.region_id))
            .map_err(|e| Refused::Drop(e.to_string()))?;
        if let Some(state) = local {
            let conf_ver = state
                .region
                .as_ref()
                .and_then(|r| r.region_epoch)
                .map_or(0, |e| e.conf_ver);
            let msg_conf_ver = msg.region_epoch.map_or(0, |e| e.conf_ver);
            if state.state() == PeerState::Tombstone && msg_conf_ver <= conf_ver {
                return Err(Refused::Drop(
                    "the region was removed from this store".into(),
                ));
            }
        }
        let mut meta = ctx.store_meta.lock();
        if meta.region(msg.region_id).is_some() {
            // A split created the peer after the message was routed here.
            drop(meta);
            let _ = ctx.router.send_raft_message(msg);
            return Err(Refused::Delivered);
        }
        let overlaps = meta.overlapping_regions(&msg.start_key, &msg.end_key);
        if overlaps.is_empty() {
            return Ok(msg);
        }
        let msg_version = msg.region_epoch.map_or(0, |e| e.version);
        let split_pending = overlaps.iter().all(|id| {
            meta.region(*id)
                .and_then(|r| r.region_epoch)
                .is_some_and(|e| e.version < msg_version)
        });
        let waits = split_pending && msg_type != MessageType::MsgSnapshot;
        if waits {
            let max_age =
                ctx.cfg.raft_base_tick_interval * (2 * ctx.cfg.raft_election_timeout_ticks as u32);
            if meta.pending_split.push(msg, Instant::now(), max_age) {
                return Err(Refused::AwaitingSplit);
            }
            return Err(Refused::Drop("too many messages wait for splits".into()));
        }
        Err(Refused::Drop(format!(
            "its range overlaps local regions {overlaps:?}"
        )))
    }

    /// Pings every store we share a region with and reports the silent ones.
    fn on_heartbeat_tick(&mut self, ctx: &mut PollContext) {
        let now = Instant::now();
        let stores: BTreeSet<u64> = ctx
            .store_meta
            .lock()
            .peer_store_ids()
            .filter(|s| *s != ctx.store_id)
            .collect();
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
            // Pings and any other traffic from the store (noted as it arrives) count.
            let last = self.last_heard.entry(store_id).or_insert(now);
            if let Some(heard) = ctx.store_liveness.last_heard(store_id) {
                *last = (*last).max(heard);
            }
            let silent = now.saturating_duration_since(*last) > ctx.cfg.store_unreachable_timeout;
            if silent && self.unreachable.insert(store_id) {
                ctx.store_liveness.set_unreachable(store_id, true);
                info!(store_id, "store unreachable; telling its regions' peers");
                ctx.router.broadcast(|| {
                    PeerMsg::Significant(SignificantMsg::StoreUnreachable { store_id })
                });
            } else if !silent && self.unreachable.remove(&store_id) {
                ctx.store_liveness.set_unreachable(store_id, false);
                info!(store_id, "store reachable again");
            }
        }
        ctx.transport.flush();
    }
}

/// Why a message for an unknown region creates no peer.
enum Refused {
    /// The region's peer exists by now; the message went to it.
    Delivered,
    /// A local split will create the region; the message waits for it.
    AwaitingSplit,
    Drop(String),
}

impl Fsm for StoreFsm {
    type Message = StoreMsg;

    fn is_stopped(&self) -> bool {
        false
    }
}
