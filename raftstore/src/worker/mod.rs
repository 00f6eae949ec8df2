//! Background workers of a store.

pub mod split_check;
