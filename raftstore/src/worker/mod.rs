//! Background workers of a store.

pub mod disk;
pub mod pd_stats;
pub mod split_check;
