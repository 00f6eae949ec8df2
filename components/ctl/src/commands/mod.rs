//! One module per group of subcommands.

pub mod cert;
pub mod gc;
pub mod inspect;
pub mod kv;
pub mod mvcc;
pub mod operator;
pub mod presplit;
pub mod store;
pub mod txn;
