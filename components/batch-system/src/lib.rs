//! Generic FSM scheduling: many FSMs, each with a FIFO mailbox, driven by a few poller
//! threads. An FSM with nothing to do costs nothing: it sits in its mailbox until a message
//! arrives, which hands it to the pollers.

mod batch;
mod config;
mod fsm;
mod mailbox;
mod metrics;
mod router;
mod scheduler;

pub use batch::{
    create_system, BatchSystem, HandleResult, HandlerBuilder, InlinePoller, PollHandler,
};
pub use config::{Config, ConfigError};
pub use fsm::{Fsm, FsmState};
pub use mailbox::{mailbox_channel, BasicMailbox, MailboxReceiver, MailboxSender, TrySendError};
pub use router::Router;
