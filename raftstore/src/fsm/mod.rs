//! Thin FSM shells over the batch system.

pub mod peer;
pub mod store;
