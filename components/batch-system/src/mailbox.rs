//! Mailboxes: push a message, then wake the FSM if it was idle.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use thiserror::Error;

use crate::fsm::{Fsm, FsmState};

/// Why a message was not delivered; the message comes back so the caller can reroute it.
#[derive(Debug, Error)]
pub enum TrySendError<T> {
    #[error("mailbox is full")]
    Full(T),
    #[error("mailbox is closed")]
    Disconnected(T),
    #[error("no mailbox at this address")]
    NotFound(T),
}

impl<T> TrySendError<T> {
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(t) | TrySendError::Disconnected(t) | TrySendError::NotFound(t) => t,
        }
    }
}

/// The sending end of a mailbox with a soft capacity.
pub struct MailboxSender<M> {
    sender: Sender<M>,
    capacity: usize,
    /// Checking the length costs a little; do it on every 8th send only.
    sends: Arc<AtomicUsize>,
}

impl<M> Clone for MailboxSender<M> {
    fn clone(&self) -> Self {
        MailboxSender {
            sender: self.sender.clone(),
            capacity: self.capacity,
            sends: self.sends.clone(),
        }
    }
}

impl<M> MailboxSender<M> {
    /// Wraps an existing channel sender.
    pub fn from_sender(sender: Sender<M>, capacity: usize) -> MailboxSender<M> {
        MailboxSender {
            sender,
            capacity,
            sends: Arc::new(AtomicUsize::new(0)),
        }
    }
}

/// A channel for a mailbox holding at most about `capacity` messages for `try_send`.
pub fn mailbox_channel<M>(capacity: usize) -> (MailboxSender<M>, Receiver<M>) {
    let (sender, receiver) = crossbeam_channel::unbounded();
    (
        MailboxSender {
            sender,
            capacity,
            sends: Arc::new(AtomicUsize::new(0)),
        },
        receiver,
    )
}

/// Schedules a woken FSM onto the pollers.
pub(crate) trait FsmScheduler<N: Fsm>: Send + Sync {
    fn schedule(&self, fsm: Box<N>, mailbox: BasicMailbox<N>);
}

/// An FSM's address: its channel and the state that holds it while idle.
pub struct BasicMailbox<N: Fsm> {
    sender: MailboxSender<N::Message>,
    state: Arc<FsmState<N>>,
}

impl<N: Fsm> Clone for BasicMailbox<N> {
    fn clone(&self) -> Self {
        BasicMailbox {
            sender: self.sender.clone(),
            state: self.state.clone(),
        }
    }
}

impl<N: Fsm> BasicMailbox<N> {
    /// A mailbox for `fsm`, which owns the matching receiver.
    pub fn new(sender: MailboxSender<N::Message>, fsm: Box<N>) -> BasicMailbox<N> {
        BasicMailbox {
            sender,
            state: Arc::new(FsmState::new(fsm)),
        }
    }

    pub fn len(&self) -> usize {
        self.sender.sender.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sender.sender.is_empty()
    }

    /// Sends unless the mailbox is over its soft capacity.
    pub(crate) fn try_send<S: FsmScheduler<N> + ?Sized>(
        &self,
        msg: N::Message,
        scheduler: &S,
    ) -> Result<(), TrySendError<N::Message>> {
        let n = self.sender.sends.fetch_add(1, Ordering::Relaxed);
        if n.is_multiple_of(8) && self.len() >= self.sender.capacity {
            return Err(TrySendError::Full(msg));
        }
        self.force_send(msg, scheduler)
    }

    /// Sends regardless of capacity (ticks and messages that must not be lost).
    pub(crate) fn force_send<S: FsmScheduler<N> + ?Sized>(
        &self,
        msg: N::Message,
        scheduler: &S,
    ) -> Result<(), TrySendError<N::Message>> {
        if self.state.is_dropped() {
            return Err(TrySendError::Disconnected(msg));
        }
        self.sender
            .sender
            .send(msg)
            .map_err(|e| TrySendError::Disconnected(e.into_inner()))?;
        self.notify(scheduler);
        Ok(())
    }

    /// Hands the FSM to the pollers if it was idle.
    pub(crate) fn notify<S: FsmScheduler<N> + ?Sized>(&self, scheduler: &S) {
        if let Some(fsm) = self.state.take_fsm() {
            scheduler.schedule(fsm, self.clone());
        }
    }

    pub(crate) fn take_fsm(&self) -> Option<Box<N>> {
        self.state.take_fsm()
    }

    pub(crate) fn release(&self, fsm: Box<N>) {
        self.state.release(fsm)
    }

    /// Drops the FSM (now if idle, else once its poller lets go).
    pub fn close(&self) {
        self.state.clear()
    }

    pub fn is_closed(&self) -> bool {
        self.state.is_dropped()
    }
}
