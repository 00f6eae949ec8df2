//! Addresses FSMs by id and delivers messages to their mailboxes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::fsm::Fsm;
use crate::mailbox::{BasicMailbox, TrySendError};
use crate::scheduler::{ControlScheduler, Scheduler};

const SHARDS: usize = 16;

type Shard<N> = RwLock<HashMap<u64, BasicMailbox<N>>>;

/// Routes messages to normal FSMs by address and to the single control FSM.
pub struct Router<N: Fsm, C: Fsm> {
    // Sharded so concurrent senders rarely contend on one lock.
    normals: Arc<Vec<Shard<N>>>,
    control: BasicMailbox<C>,
    scheduler: Scheduler<N, C>,
    shutdown: Arc<AtomicBool>,
}

impl<N: Fsm, C: Fsm> Clone for Router<N, C> {
    fn clone(&self) -> Self {
        Router {
            normals: self.normals.clone(),
            control: self.control.clone(),
            scheduler: self.scheduler.clone(),
            shutdown: self.shutdown.clone(),
        }
    }
}

impl<N: Fsm, C: Fsm> Router<N, C> {
    pub(crate) fn new(control: BasicMailbox<C>, scheduler: Scheduler<N, C>) -> Router<N, C> {
        Router {
            normals: Arc::new((0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect()),
            control,
            scheduler,
            shutdown: Arc::new(AtomicBool::new(false)),
        }
    }

    fn shard(&self, addr: u64) -> &Shard<N> {
        &self.normals[(addr as usize) % SHARDS]
    }

    /// Registers an FSM's mailbox; a mailbox it replaces is closed.
    pub fn register(&self, addr: u64, mailbox: BasicMailbox<N>) {
        if let Some(old) = self.shard(addr).write().insert(addr, mailbox) {
            old.close();
        }
    }

    pub fn register_all(&self, mailboxes: Vec<(u64, BasicMailbox<N>)>) {
        for (addr, mb) in mailboxes {
            self.register(addr, mb);
        }
    }

    pub fn mailbox(&self, addr: u64) -> Option<BasicMailbox<N>> {
        self.shard(addr).read().get(&addr).cloned()
    }

    fn with_mailbox(
        &self,
        addr: u64,
        msg: N::Message,
        f: impl FnOnce(&BasicMailbox<N>, N::Message) -> Result<(), TrySendError<N::Message>>,
    ) -> Result<(), TrySendError<N::Message>> {
        let shard = self.shard(addr).read();
        match shard.get(&addr) {
            Some(mb) => f(mb, msg),
            None => Err(TrySendError::NotFound(msg)),
        }
    }

    /// Sends unless the mailbox is over capacity.
    pub fn try_send(&self, addr: u64, msg: N::Message) -> Result<(), TrySendError<N::Message>> {
        self.with_mailbox(addr, msg, |mb, m| mb.try_send(m, &self.scheduler))
    }

    /// Sends regardless of capacity.
    pub fn force_send(&self, addr: u64, msg: N::Message) -> Result<(), TrySendError<N::Message>> {
        self.with_mailbox(addr, msg, |mb, m| mb.force_send(m, &self.scheduler))
    }

    /// Sends to the control FSM unless its mailbox is over capacity (the system's
    /// `mailbox_capacity`); for messages that may be dropped, such as raft messages, which
    /// raft sends again.
    pub fn try_send_control(&self, msg: C::Message) -> Result<(), TrySendError<C::Message>> {
        self.control
            .try_send(msg, &ControlScheduler(self.scheduler.clone()))
    }

    /// Sends to the control FSM regardless of capacity (ticks and messages that must not be
    /// lost).
    pub fn send_control(&self, msg: C::Message) -> Result<(), TrySendError<C::Message>> {
        self.control
            .force_send(msg, &ControlScheduler(self.scheduler.clone()))
    }

    /// Sends a message made by `f` to every normal FSM.
    pub fn broadcast_normal(&self, mut f: impl FnMut() -> N::Message) {
        for shard in self.normals.iter() {
            for mb in shard.read().values() {
                let _ = mb.force_send(f(), &self.scheduler);
            }
        }
    }

    /// Unregisters and closes an FSM's mailbox.
    pub fn close(&self, addr: u64) {
        if let Some(mb) = self.shard(addr).write().remove(&addr) {
            mb.close();
        }
    }

    pub fn alive_count(&self) -> usize {
        self.normals.iter().map(|s| s.read().len()).sum()
    }

    pub fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Stops routing and drops every FSM (idle ones now, polled ones when released).
    pub(crate) fn clear(&self) {
        self.shutdown.store(true, Ordering::Release);
        for shard in self.normals.iter() {
            for (_, mb) in shard.write().drain() {
                mb.close();
            }
        }
        self.control.close();
    }
}
