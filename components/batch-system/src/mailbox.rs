//! Mailboxes: push a message, then wake the FSM if it was idle.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use parking_lot::RwLock;
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

/// What a mailbox's senders and its receiver share.
struct Shared<M> {
    /// The channel's sending end. Senders hold the read lock while they send, so
    /// [`MailboxReceiver::release_memory`], which takes the write lock, sees every message
    /// sent before it and none is sent to the channel it replaces.
    sender: RwLock<Sender<M>>,
    capacity: usize,
    /// Checking the length costs a little; while the mailbox is under capacity it is checked
    /// on every [`CHECK_INTERVAL`]th send only.
    sends: AtomicUsize,
    /// The last check found the mailbox at capacity: every `try_send` checks (and is refused)
    /// until one finds it drained, so a full mailbox stays bounded instead of taking all but
    /// every 8th message.
    full: AtomicBool,
}

/// Sends between two length checks of a mailbox under capacity (TiKV's loose-bounded
/// channel checks the same way): a mailbox takes about this many messages beyond its
/// capacity.
const CHECK_INTERVAL: usize = 8;

/// The sending end of a mailbox with a soft capacity.
pub struct MailboxSender<M> {
    shared: Arc<Shared<M>>,
}

impl<M> Clone for MailboxSender<M> {
    fn clone(&self) -> Self {
        MailboxSender {
            shared: self.shared.clone(),
        }
    }
}

impl<M> MailboxSender<M> {
    /// Wraps an existing channel sender (its receiver cannot release memory).
    pub fn from_sender(sender: Sender<M>, capacity: usize) -> MailboxSender<M> {
        MailboxSender {
            shared: Arc::new(Shared {
                sender: RwLock::new(sender),
                capacity,
                sends: AtomicUsize::new(0),
                full: AtomicBool::new(false),
            }),
        }
    }

    fn send(&self, msg: M) -> Result<(), M> {
        self.shared
            .sender
            .read()
            .send(msg)
            .map_err(|e| e.into_inner())
    }

    fn len(&self) -> usize {
        self.shared.sender.read().len()
    }
}

/// The receiving end of a mailbox, owned by its FSM.
pub struct MailboxReceiver<M> {
    receiver: Receiver<M>,
    shared: Arc<Shared<M>>,
}

impl<M> MailboxReceiver<M> {
    /// The next message, if one is queued.
    pub fn try_recv(&self) -> Result<M, TryRecvError> {
        self.receiver.try_recv()
    }

    /// Messages queued.
    pub fn len(&self) -> usize {
        self.receiver.len()
    }

    pub fn is_empty(&self) -> bool {
        self.receiver.is_empty()
    }

    /// Frees the channel's buffer if no message is queued; true if it did.
    ///
    /// crossbeam's unbounded channel keeps a block of 31 message slots from its first message
    /// on, even while empty: about 1 KiB a mailbox. An FSM that goes idle for long (a
    /// hibernating region) calls this to swap its channel for a fresh one, which allocates a
    /// block only when a message arrives. Senders are held off meanwhile (the write lock), so
    /// a message is never left in the channel given up.
    pub fn release_memory(&mut self) -> bool {
        let mut sender = self.shared.sender.write();
        if !self.receiver.is_empty() {
            return false;
        }
        let (fresh_sender, fresh_receiver) = crossbeam_channel::unbounded();
        *sender = fresh_sender;
        self.receiver = fresh_receiver;
        true
    }
}

/// A channel for a mailbox holding at most about `capacity` messages for `try_send`.
pub fn mailbox_channel<M>(capacity: usize) -> (MailboxSender<M>, MailboxReceiver<M>) {
    let (sender, receiver) = crossbeam_channel::unbounded();
    let sender = MailboxSender::from_sender(sender, capacity);
    let receiver = MailboxReceiver {
        receiver,
        shared: sender.shared.clone(),
    };
    (sender, receiver)
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
        self.sender.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sends unless the mailbox is over its soft capacity.
    pub(crate) fn try_send<S: FsmScheduler<N> + ?Sized>(
        &self,
        msg: N::Message,
        scheduler: &S,
    ) -> Result<(), TrySendError<N::Message>> {
        let shared = &self.sender.shared;
        let n = shared.sends.fetch_add(1, Ordering::Relaxed);
        if shared.full.load(Ordering::Relaxed) || n.is_multiple_of(CHECK_INTERVAL) {
            let full = self.len() >= shared.capacity;
            shared.full.store(full, Ordering::Relaxed);
            if full {
                return Err(TrySendError::Full(msg));
            }
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
        self.sender.send(msg).map_err(TrySendError::Disconnected)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releasing_memory_waits_for_queued_messages() {
        let (sender, mut receiver) = mailbox_channel::<u32>(usize::MAX);
        sender.send(1).unwrap();
        assert!(
            !receiver.release_memory(),
            "a queued message keeps the channel"
        );
        assert_eq!(receiver.try_recv(), Ok(1));
        assert!(receiver.release_memory());
        // The swapped-in channel serves every clone of the sender.
        sender.clone().send(2).unwrap();
        assert_eq!(sender.len(), 1);
        assert_eq!(receiver.try_recv(), Ok(2));
        assert!(receiver.is_empty());
    }

    #[test]
    fn no_message_is_lost_or_reordered_across_releases() {
        const SENDERS: u64 = 4;
        const PER_SENDER: u64 = 20_000;
        let (sender, mut receiver) = mailbox_channel::<(u64, u64)>(usize::MAX);
        let threads: Vec<_> = (0..SENDERS)
            .map(|s| {
                let sender = sender.clone();
                std::thread::spawn(move || {
                    for i in 0..PER_SENDER {
                        sender.send((s, i)).unwrap();
                    }
                })
            })
            .collect();
        let mut next = [0u64; SENDERS as usize];
        let mut received = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while received < SENDERS * PER_SENDER {
            assert!(
                std::time::Instant::now() < deadline,
                "messages went missing"
            );
            match receiver.try_recv() {
                Ok((s, i)) => {
                    assert_eq!(i, next[s as usize], "sender {s} out of order");
                    next[s as usize] += 1;
                    received += 1;
                }
                Err(_) => {
                    // Swaps the channel whenever the senders leave it empty for a moment.
                    receiver.release_memory();
                    std::thread::yield_now();
                }
            }
        }
        for t in threads {
            t.join().unwrap();
        }
        assert!(receiver.is_empty());
    }
}
