//! One module per group of subcommands.

pub mod inspect;
pub mod kv;
pub mod operator;
pub mod store;
