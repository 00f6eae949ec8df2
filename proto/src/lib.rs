//! Shoal's wire messages: wire-compatible subsets of TiKV's kvproto (`metapb`, `errorpb`) and
//! Shoal's own store-to-store and Raft command messages (`raft_serverpb`, `raft_cmdpb`).
//!
//! Raft's own messages (`eraftpb`) come from raft-rs (rust-protobuf) and are re-exported here;
//! where a prost message carries one, the field is `bytes` holding the rust-protobuf encoding.

#![allow(clippy::all)]

pub mod metapb {
    tonic::include_proto!("metapb");
}
pub mod errorpb {
    tonic::include_proto!("errorpb");
}
pub mod raft_cmdpb {
    tonic::include_proto!("raft_cmdpb");
}
pub mod raft_serverpb {
    tonic::include_proto!("raft_serverpb");
}

pub use raft_proto::eraftpb;
