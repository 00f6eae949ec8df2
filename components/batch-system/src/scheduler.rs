//! How a woken FSM reaches the pollers: the shared queue's item type and the schedulers that
//! put normal and control FSMs on it. Mailboxes call a scheduler when a message arrives for an
//! idle FSM; the router and the pollers both hold one.

use crossbeam_channel::Sender;

use crate::fsm::Fsm;
use crate::mailbox::{BasicMailbox, FsmScheduler};

/// What travels on the pollers' shared queue.
pub(crate) enum FsmTypes<N: Fsm, C: Fsm> {
    Normal(Box<N>, BasicMailbox<N>),
    Control(Box<C>, BasicMailbox<C>),
    /// Wakes a poller so it can see the shutdown.
    Empty,
}

/// Puts woken FSMs on the pollers' shared queue.
pub(crate) struct Scheduler<N: Fsm, C: Fsm> {
    pub(crate) sender: Sender<FsmTypes<N, C>>,
}

impl<N: Fsm, C: Fsm> Clone for Scheduler<N, C> {
    fn clone(&self) -> Self {
        Scheduler {
            sender: self.sender.clone(),
        }
    }
}

impl<N: Fsm, C: Fsm> FsmScheduler<N> for Scheduler<N, C> {
    fn schedule(&self, fsm: Box<N>, mailbox: BasicMailbox<N>) {
        if let Err(e) = self.sender.send(FsmTypes::Normal(fsm, mailbox)) {
            // The system is gone: give the FSM back so it is dropped with its mailbox.
            if let FsmTypes::Normal(fsm, mailbox) = e.into_inner() {
                mailbox.release(fsm);
                mailbox.close();
            }
        }
    }
}

/// Schedules the control FSM.
pub(crate) struct ControlScheduler<N: Fsm, C: Fsm>(pub(crate) Scheduler<N, C>);

impl<N: Fsm, C: Fsm> FsmScheduler<C> for ControlScheduler<N, C> {
    fn schedule(&self, fsm: Box<C>, mailbox: BasicMailbox<C>) {
        if let Err(e) = self.0.sender.send(FsmTypes::Control(fsm, mailbox)) {
            if let FsmTypes::Control(fsm, mailbox) = e.into_inner() {
                mailbox.release(fsm);
                mailbox.close();
            }
        }
    }
}
