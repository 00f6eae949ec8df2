//! Building a region's peer and apply FSMs, at recovery and when a split creates regions.

use crate::worker::region::SnapshotGenerator;
use std::sync::Arc;

use batch_system::{BasicMailbox, MailboxSender};
use engine::{KvEngine, RaftLogEngine};
use proto::metapb::Region;
use proto::raft_serverpb::PeerState;

use crate::config::Config;
use crate::errors::Result;
use crate::fsm::apply::ApplyFsm;
use crate::fsm::peer::PeerFsm;
use crate::msg::apply::ApplyMsg;
use crate::msg::apply_router::ApplyRouter;
use crate::msg::router::RaftRouter;
use crate::msg::PeerMsg;
use crate::operation::read::delegate::ReadDelegate;
use crate::peer::storage::PeerStorage;
use crate::peer::Peer;
use crate::store_meta::StoreMeta;

/// A region's FSMs, built but not yet registered.
pub struct CreatedPeer {
    pub region: Region,
    peer: (MailboxSender<PeerMsg>, PeerFsm),
    apply: (MailboxSender<ApplyMsg>, ApplyFsm),
    pub read_delegate: Arc<ReadDelegate>,
}

impl CreatedPeer {
    pub fn peer_mut(&mut self) -> &mut Peer {
        &mut self.peer.1.peer
    }

    /// Records the region in the store meta and registers both mailboxes. An uninitialized
    /// region has no range yet and only gets its mailboxes.
    pub fn register(self, meta: &mut StoreMeta, router: &RaftRouter, apply_router: &ApplyRouter) {
        let id = self.region.id;
        meta.readers.insert(id, self.read_delegate);
        if !self.region.peers.is_empty() {
            meta.set_region(self.region);
        }
        let (atx, afsm) = self.apply;
        apply_router
            .inner
            .register(id, BasicMailbox::new(atx, Box::new(afsm)));
        let (tx, fsm) = self.peer;
        router
            .inner
            .register(id, BasicMailbox::new(tx, Box::new(fsm)));
    }
}

/// Builds the FSMs of a peer for a region this store does not know yet; it waits for a
/// snapshot from the leader.
pub fn build_uninitialized_peer(
    cfg: &Config,
    raft_engine: &RaftLogEngine,
    region_id: u64,
    me: proto::metapb::Peer,
    snap_generator: &SnapshotGenerator,
    logger: &slog::Logger,
) -> Result<CreatedPeer> {
    let storage =
        PeerStorage::uninitialized(raft_engine.clone(), region_id, snap_generator.clone());
    let apply_state = *storage.apply_state();
    let region = storage.region().clone();
    let peer = Peer::new(cfg, me, storage, logger)?;
    let read_delegate = peer.read_delegate.clone();
    let (tx, rx) = batch_system::mailbox_channel(cfg.notify_capacity);
    let (atx, arx) = batch_system::mailbox_channel(usize::MAX);
    Ok(CreatedPeer {
        apply: (atx, ApplyFsm::new(arx, region.clone(), apply_state, None)),
        peer: (tx, PeerFsm::new(peer, rx)),
        region,
        read_delegate,
    })
}

/// Loads a region's state and builds its FSMs; `None` if this store has no peer in it.
pub fn build_peer(
    cfg: &Config,
    store_id: u64,
    kv: &KvEngine,
    raft_engine: &RaftLogEngine,
    region: Region,
    snap_generator: &SnapshotGenerator,
    logger: &slog::Logger,
) -> Result<Option<CreatedPeer>> {
    let Some(me) = region
        .peers
        .iter()
        .find(|p| p.store_id == store_id)
        .cloned()
    else {
        return Ok(None);
    };
    let storage = PeerStorage::load(
        kv,
        raft_engine.clone(),
        region.clone(),
        snap_generator.clone(),
    )?;
    let apply_state = *storage.apply_state();
    // A merge source stays merging across restarts until the merge commits or rolls back.
    let merge_state = crate::peer::storage::load_region_state(kv, region.id)?
        .filter(|s| s.state() == PeerState::Merging)
        .and_then(|s| s.merge_state);
    let mut peer = Peer::new(cfg, me, storage, logger)?;
    peer.pending_merge_state = merge_state.clone().map(Box::new);
    let read_delegate = peer.read_delegate.clone();
    let (tx, rx) = batch_system::mailbox_channel(cfg.notify_capacity);
    let (atx, arx) = batch_system::mailbox_channel(usize::MAX);
    Ok(Some(CreatedPeer {
        apply: (
            atx,
            ApplyFsm::new(arx, region.clone(), apply_state, merge_state),
        ),
        peer: (tx, PeerFsm::new(peer, rx)),
        region,
        read_delegate,
    }))
}
