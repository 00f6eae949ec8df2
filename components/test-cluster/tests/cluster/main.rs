//! Cluster tests: several stores in one process on real engines, checked through real data.

mod bad_input;
mod commit_broadcast;
mod compact_log;
mod conf_change;
mod disk_full;
mod election;
mod errors;
mod hibernate;
mod lease;
mod merge;
mod multi_region;
mod pd_heartbeat;
mod pd_operator;
mod replication;
mod restart;
mod snapshot;
mod split;
mod transfer_leader;
