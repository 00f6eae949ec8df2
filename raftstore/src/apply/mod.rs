//! The apply pool's logic: `exec` is the dispatch table that turns one committed entry into
//! writes in the round's batch (each replicated command's apply half lives with the command in
//! `operation::command`). The FSM shell and the poller are in `fsm::apply`; the messages to
//! and from it in `msg::apply`.

pub mod exec;
pub(crate) mod response;
