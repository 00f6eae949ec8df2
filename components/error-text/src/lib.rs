//! Error text for people, as the binaries print it when they stop.

mod chain;
mod source_tags;

pub use chain::chain_text;
pub use source_tags::without_source_tags;
