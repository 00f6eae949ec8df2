//! Raftstore errors and their mapping to the client-facing `errorpb::Error`.

use proto::{errorpb, metapb};
use thiserror::Error;

/// Why a command or message could not be served.
#[derive(Debug, Error)]
pub enum Error {
    #[error("peer is not leader for region {region_id}, leader may be {leader:?}")]
    NotLeader {
        region_id: u64,
        leader: Option<metapb::Peer>,
    },
    #[error("region {0} not found")]
    RegionNotFound(u64),
    #[error("key {key:?} is not in region {region_id} [{start_key:?}, {end_key:?})")]
    KeyNotInRegion {
        key: Vec<u8>,
        region_id: u64,
        start_key: Vec<u8>,
        end_key: Vec<u8>,
    },
    #[error("epoch not match: {message}")]
    EpochNotMatch {
        message: String,
        regions: Vec<metapb::Region>,
    },
    #[error("stale command")]
    StaleCommand,
    /// The region is merging into a neighbour (PrepareMerge proposed or applied): it takes
    /// no reads or writes until the merge commits (then the neighbour serves the range) or
    /// rolls back. Clients retry.
    #[error("region {0} is merging and takes no proposals")]
    ProposalInMergingMode(u64),
    #[error("raft entry of region {region_id} is too large: {entry_size} bytes")]
    RaftEntryTooLarge { region_id: u64, entry_size: u64 },
    #[error("server is busy: {0}")]
    ServerIsBusy(String),
    #[error("store not match: request for store {request}, this is store {actual}")]
    StoreNotMatch { request: u64, actual: u64 },
    #[error("storage: {0}")]
    Engine(#[from] engine::Error),
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    #[error("decode: {0}")]
    Codec(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The leader did not start handing leadership to a voter; asking again later may work.
    #[error("transfer leader to peer {peer_id} refused: {reason}")]
    TransferLeaderRefused {
        peer_id: u64,
        reason: TransferRefusal,
    },
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    #[error("store is shutting down")]
    Shutdown,
    #[error("timeout: {0}")]
    Timeout(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Why a leader refused to start a transfer to one of its voters.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TransferRefusal {
    /// The target's log is further behind than `leader_transfer_max_log_lag` allows.
    #[error(
        "peer has not caught up with the log: it has entries up to {matched}, the leader up to \
         {last}, at most {max_lag} entries behind are accepted"
    )]
    LogLag {
        matched: u64,
        last: u64,
        max_lag: u64,
    },
    /// The target has not answered this leader since it was elected, so where its log ends
    /// is not known yet (raft-rs starts every follower's progress at 0); retry shortly.
    #[error("peer has not answered this leader yet")]
    Unanswered,
    /// The target must install a snapshot first: one is on its way, or the entries it lacks
    /// are already compacted.
    #[error("peer is waiting for a snapshot")]
    NeedsSnapshot,
    /// The leader keeps no replication progress for the target.
    #[error("the leader tracks no replication progress for the peer")]
    NoProgress,
}

impl From<prost::DecodeError> for Error {
    fn from(e: prost::DecodeError) -> Self {
        Error::Codec(e.to_string())
    }
}

impl From<protobuf::ProtobufError> for Error {
    fn from(e: protobuf::ProtobufError) -> Self {
        Error::Codec(e.to_string())
    }
}

impl From<Error> for errorpb::Error {
    fn from(e: Error) -> errorpb::Error {
        let mut err = errorpb::Error {
            message: e.to_string(),
            ..Default::default()
        };
        match e {
            Error::NotLeader { region_id, leader } => {
                err.not_leader = Some(errorpb::NotLeader { region_id, leader });
            }
            Error::RegionNotFound(region_id) => {
                err.region_not_found = Some(errorpb::RegionNotFound { region_id });
            }
            Error::KeyNotInRegion {
                key,
                region_id,
                start_key,
                end_key,
            } => {
                err.key_not_in_region = Some(errorpb::KeyNotInRegion {
                    key,
                    region_id,
                    start_key,
                    end_key,
                });
            }
            Error::EpochNotMatch { regions, .. } => {
                err.epoch_not_match = Some(errorpb::EpochNotMatch {
                    current_regions: regions,
                });
            }
            Error::StaleCommand => err.stale_command = Some(errorpb::StaleCommand {}),
            Error::ProposalInMergingMode(region_id) => {
                err.proposal_in_merging_mode = Some(errorpb::ProposalInMergingMode { region_id });
            }
            Error::RaftEntryTooLarge {
                region_id,
                entry_size,
            } => {
                err.raft_entry_too_large = Some(errorpb::RaftEntryTooLarge {
                    region_id,
                    entry_size,
                });
            }
            Error::ServerIsBusy(reason) => {
                err.server_is_busy = Some(errorpb::ServerIsBusy {
                    reason,
                    ..Default::default()
                });
            }
            Error::StoreNotMatch { request, actual } => {
                err.store_not_match = Some(errorpb::StoreNotMatch {
                    request_store_id: request,
                    actual_store_id: actual,
                });
            }
            _ => {}
        }
        err
    }
}

/// Builds a response that carries only `err`.
pub fn err_resp(err: Error, current_term: u64) -> proto::raft_cmdpb::RaftCmdResponse {
    proto::raft_cmdpb::RaftCmdResponse {
        header: Some(proto::raft_cmdpb::RaftResponseHeader {
            error: Some(err.into()),
            current_term,
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_leader_carries_hint() {
        let leader = metapb::Peer {
            id: 3,
            store_id: 2,
            ..Default::default()
        };
        let e: errorpb::Error = Error::NotLeader {
            region_id: 7,
            leader: Some(leader),
        }
        .into();
        let nl = e.not_leader.unwrap();
        assert_eq!(nl.region_id, 7);
        assert_eq!(nl.leader, Some(leader));
        assert!(e.epoch_not_match.is_none());
    }

    #[test]
    fn epoch_not_match_carries_regions() {
        let r = metapb::Region {
            id: 9,
            ..Default::default()
        };
        let e: errorpb::Error = Error::EpochNotMatch {
            message: "stale".into(),
            regions: vec![r.clone()],
        }
        .into();
        assert_eq!(e.epoch_not_match.unwrap().current_regions, vec![r]);
    }
}
