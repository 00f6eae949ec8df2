//! Routes messages to peer and store mailboxes (the raft pollers).

use std::sync::Arc;

use batch_system::TrySendError;
use proto::raft_serverpb::{ExtraMessageType, RaftMessage};

use crate::errors::{err_resp, Error, Result};
use crate::fsm::peer::PeerFsm;
use crate::fsm::store::StoreFsm;
use crate::metrics::RAFT_MESSAGES_DROPPED_MAILBOX_FULL;
use crate::msg::{PeerMsg, RaftCommand, StoreMsg};
use crate::stats::{StoreFlow, StoreLiveness};

/// The batch-system router of the raft pollers: region id -> peer mailbox, plus the store's.
#[derive(Clone)]
pub struct RaftRouter {
    pub inner: batch_system::Router<PeerFsm, StoreFsm>,
    /// The store's flow counters; the router notes when a mailbox is full.
    flow: Arc<StoreFlow>,
    /// When each other store was last heard from; the receiving side of the store-to-store
    /// streams notes every batch (`Store::heard_from_store`).
    liveness: Arc<StoreLiveness>,
}

impl RaftRouter {
    pub fn new(inner: batch_system::Router<PeerFsm, StoreFsm>) -> RaftRouter {
        RaftRouter {
            inner,
            flow: Arc::new(StoreFlow::default()),
            liveness: Arc::new(StoreLiveness::default()),
        }
    }

    /// The store-wide flow and pressure counters.
    pub fn flow(&self) -> &Arc<StoreFlow> {
        &self.flow
    }

    /// When each other store was last heard from, and which are declared unreachable.
    pub fn liveness(&self) -> &Arc<StoreLiveness> {
        &self.liveness
    }

    /// Sends a message that may be dropped when the mailbox is full or gone.
    pub fn try_send(&self, region_id: u64, msg: PeerMsg) -> Result<()> {
        match self.inner.try_send(region_id, msg) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.flow.mark_busy();
                Err(Error::ServerIsBusy(format!(
                    "mailbox of region {region_id} is full"
                )))
            }
            Err(_) => Err(Error::RegionNotFound(region_id)),
        }
    }

    /// Sends a message that must not be lost (ticks, persistence and apply notices).
    pub fn force_send(&self, region_id: u64, msg: PeerMsg) -> Result<()> {
        self.inner
            .force_send(region_id, msg)
            .map_err(|_| Error::RegionNotFound(region_id))
    }

    pub fn send_control(&self, msg: StoreMsg) -> Result<()> {
        self.inner.send_control(msg).map_err(|_| Error::Shutdown)
    }

    /// Delivers a raft message from another store: to the region's peer, or to the store FSM
    /// when the region has no local mailbox.
    pub fn send_raft_message(&self, msg: RaftMessage) -> Result<()> {
        if msg.region_id == 0 {
            let is_ping = msg
                .extra
                .as_ref()
                .is_some_and(|e| e.r#type == ExtraMessageType::MsgStoreHeartbeat as i32);
            if is_ping {
                let from_store = msg.from_peer.as_ref().map_or(0, |p| p.store_id);
                return self.send_control(StoreMsg::StoreHeartbeat { from_store });
            }
            return Ok(());
        }
        match self.deliver_to_peer(msg) {
            Ok(()) => Ok(()),
            Err(msg) => self.send_to_store_fsm(msg),
        }
    }

    /// Queues a message for a region without a local peer on the store FSM, which creates
    /// peers and parks messages for regions a split has not created yet. Its mailbox is
    /// bounded (`mailbox_capacity`, as TiKV's store mailbox is): a store that lags behind
    /// many new regions receives their messages faster than it can look at them, and
    /// queueing them all took gigabytes. Beyond the bound a message is dropped and counted,
    /// and raft sends it again; a snapshot, expensive to send again, is always queued.
    fn send_to_store_fsm(&self, msg: Box<RaftMessage>) -> Result<()> {
        match self.inner.try_send_control(StoreMsg::RaftMessage(msg)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(StoreMsg::RaftMessage(msg))) if proto::is_snapshot(&msg) => {
                self.send_control(StoreMsg::RaftMessage(msg))
            }
            Err(TrySendError::Full(_)) => {
                self.flow.mark_busy();
                RAFT_MESSAGES_DROPPED_MAILBOX_FULL
                    .with_label_values(&["store"])
                    .inc();
                Err(Error::ServerIsBusy(
                    "the store's mailbox is full; raft message dropped".into(),
                ))
            }
            Err(_) => Err(Error::Shutdown),
        }
    }

    /// Hands a raft message to the region's local peer; gives the message back when the
    /// region has no live mailbox on this store. A peer's mailbox is bounded
    /// (`notify-capacity`, as in TiKV): a message for a peer whose mailbox is full is dropped
    /// and counted, and raft sends it again; a snapshot, expensive to send again, is always
    /// queued.
    pub fn deliver_to_peer(&self, msg: RaftMessage) -> std::result::Result<(), Box<RaftMessage>> {
        let region_id = msg.region_id;
        let sent = match self
            .inner
            .try_send(region_id, PeerMsg::RaftMessage(Box::new(msg)))
        {
            Err(TrySendError::Full(PeerMsg::RaftMessage(msg))) if proto::is_snapshot(&msg) => {
                self.inner.force_send(region_id, PeerMsg::RaftMessage(msg))
            }
            Err(TrySendError::Full(_)) => {
                self.flow.mark_busy();
                RAFT_MESSAGES_DROPPED_MAILBOX_FULL
                    .with_label_values(&["peer"])
                    .inc();
                return Ok(());
            }
            other => other,
        };
        match sent {
            Ok(()) => Ok(()),
            Err(TrySendError::NotFound(PeerMsg::RaftMessage(msg)))
            | Err(TrySendError::Disconnected(PeerMsg::RaftMessage(msg))) => Err(msg),
            // The router hands back the message it was given, which is a raft message.
            Err(_) => Ok(()),
        }
    }

    /// Hands a client command to its region's peer. When it cannot be delivered the command
    /// is answered here: `ServerIsBusy` for a full mailbox, `RegionNotFound` for no peer.
    pub fn send_command(&self, cmd: RaftCommand) {
        let region_id = cmd.request.header.as_ref().map_or(0, |h| h.region_id);
        let (err, msg) = match self
            .inner
            .try_send(region_id, PeerMsg::RaftCommand(Box::new(cmd)))
        {
            Ok(()) => return,
            Err(TrySendError::Full(m)) => {
                self.flow.mark_busy();
                (
                    Error::ServerIsBusy(format!("mailbox of region {region_id} is full")),
                    m,
                )
            }
            Err(TrySendError::NotFound(m)) | Err(TrySendError::Disconnected(m)) => {
                (Error::RegionNotFound(region_id), m)
            }
        };
        if let PeerMsg::RaftCommand(cmd) = msg {
            cmd.callback.invoke_with(err_resp(err, 0));
        }
    }

    pub fn broadcast(&self, mut make: impl FnMut() -> PeerMsg) {
        self.inner.broadcast_normal(&mut make);
    }
}

#[cfg(test)]
mod tests {
    use proto::eraftpb::{self, MessageType};
    use proto::metapb;
    use protobuf::Message as _;

    use super::*;

    fn raft_message(region_id: u64, msg_type: MessageType) -> RaftMessage {
        let mut m = eraftpb::Message::default();
        m.set_msg_type(msg_type);
        RaftMessage {
            region_id,
            to_peer: Some(metapb::Peer {
                id: region_id + 1,
                store_id: 1,
                ..Default::default()
            }),
            message: m.write_to_bytes().expect("encodes"),
            ..Default::default()
        }
    }

    #[test]
    fn messages_for_unknown_regions_are_dropped_once_the_store_mailbox_is_full() {
        let capacity = 8;
        let (tx, rx) = crossbeam_channel::unbounded();
        let cfg = batch_system::Config {
            pool_size: 1,
            mailbox_capacity: capacity,
            ..Default::default()
        };
        // No poller runs, so nothing drains the store FSM's mailbox.
        let (inner, _system) = batch_system::create_system::<PeerFsm, StoreFsm>(
            &cfg,
            tx,
            Box::new(StoreFsm::new(rx.clone())),
        );
        let router = RaftRouter::new(inner);
        let refused = (0..100u64)
            .filter(|n| {
                let msg = raft_message(1000 + n, MessageType::MsgHeartbeat);
                matches!(router.send_raft_message(msg), Err(Error::ServerIsBusy(_)))
            })
            .count();
        let queued = rx.len();
        assert_eq!(queued + refused, 100);
        assert!(
            queued <= 2 * capacity,
            "{queued} messages queued in a store mailbox of capacity {capacity}"
        );
        router
            .send_raft_message(raft_message(5000, MessageType::MsgSnapshot))
            .expect("a snapshot is queued even when the mailbox is full");
        assert_eq!(rx.len(), queued + 1);
    }
}
