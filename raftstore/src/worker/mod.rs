//! Background workers of a store.

pub mod disk;
pub mod disk_monitor;
pub mod pd_stats;
pub mod raftlog_gc;
pub mod region;
pub mod snap_gc;
pub mod split_check;
