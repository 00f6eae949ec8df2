//! Thin FSM shells over the batch system.

pub mod apply;
pub mod create;
pub mod peer;
pub mod store;
