//! Which client errors prove that a write was never applied.
//!
//! A store answers some region errors only before it proposes anything (not the leader, stale
//! epoch, key outside the region, a full mailbox, a store-id mismatch, an oversized entry, a
//! stale term in the header) or for a proposal that raft dropped or a newer leader overwrote
//! (stale command), or when the epoch check at apply refuses the entry: the write did not
//! happen. Neither did it when the client could not connect to the store at all. Everything
//! else may hide an applied write: a transport error or timeout on a connection (the store
//! may have applied it and died before answering), a region error that carries only a message
//! (the store's own timeout while the proposal is still in flight), `RegionNotFound` (a peer
//! being destroyed fails its pending proposals, which the remaining peers may still commit),
//! and any error at all when the client retries, since an earlier attempt may have been
//! applied.

use tikv_client::{Error, ProtoRegionError};

/// What an error says about whether the operation took effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// The operation certainly did not take effect.
    NotApplied,
    /// It may or may not have taken effect.
    Indeterminate,
}

/// Classifies an error of one client call. `retries` says whether the client was allowed to
/// retry (then no error is conclusive).
pub fn classify(error: &Error, retries: bool) -> ErrorClass {
    if retries {
        return ErrorClass::Indeterminate;
    }
    match error {
        Error::RegionError(e) if region_error_before_apply(e) => ErrorClass::NotApplied,
        e if is_connect_error(e) => ErrorClass::NotApplied,
        // No store was asked: the client could not find where to send the request.
        Error::LeaderNotFound { .. } | Error::RegionForKeyNotFound { .. } => ErrorClass::NotApplied,
        _ => ErrorClass::Indeterminate,
    }
}

/// Whether a region error guarantees the request was not applied (see the module docs).
pub fn region_error_before_apply(e: &ProtoRegionError) -> bool {
    e.not_leader.is_some()
        || e.epoch_not_match.is_some()
        || e.key_not_in_region.is_some()
        || e.server_is_busy.is_some()
        || e.store_not_match.is_some()
        || e.raft_entry_too_large.is_some()
        || e.stale_command.is_some()
}

/// Whether the client failed to open a connection to the store, so no request was sent
/// (a connection that breaks later is a different error).
pub fn is_connect_error(error: &Error) -> bool {
    matches!(error, Error::Grpc(_) | Error::GrpcAPI(_))
        && error.to_string().contains("error trying to connect")
}

/// Whether the client's region cache may be stale after `error` (a region error, which a
/// client without retries does not act on; a transport error already drops the cache).
pub fn needs_cache_refresh(error: &Error) -> bool {
    !matches!(error, Error::Grpc(_) | Error::GrpcAPI(_))
}

/// A short name for an error, for counting.
pub fn error_kind(error: &Error) -> &'static str {
    match error {
        Error::RegionError(e) => {
            if e.not_leader.is_some() {
                "not_leader"
            } else if e.epoch_not_match.is_some() {
                "epoch_not_match"
            } else if e.region_not_found.is_some() {
                "region_not_found"
            } else if e.key_not_in_region.is_some() {
                "key_not_in_region"
            } else if e.server_is_busy.is_some() {
                "server_is_busy"
            } else if e.stale_command.is_some() {
                "stale_command"
            } else if e.store_not_match.is_some() {
                "store_not_match"
            } else {
                "region_error_message"
            }
        }
        e @ (Error::Grpc(_) | Error::GrpcAPI(_)) if is_connect_error(e) => "grpc_connect",
        Error::Grpc(_) | Error::GrpcAPI(_) => "grpc",
        Error::LeaderNotFound { .. } => "leader_not_found",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(f: impl FnOnce(&mut ProtoRegionError)) -> Error {
        let mut e = ProtoRegionError::default();
        f(&mut e);
        Error::RegionError(Box::new(e))
    }

    #[test]
    fn only_errors_before_proposing_are_conclusive() {
        let not_leader = region(|e| e.not_leader = Some(Default::default()));
        let epoch = region(|e| e.epoch_not_match = Some(Default::default()));
        let busy = region(|e| e.server_is_busy = Some(Default::default()));
        let stale = region(|e| e.stale_command = Some(Default::default()));
        for e in [&not_leader, &epoch, &busy, &stale] {
            assert_eq!(classify(e, false), ErrorClass::NotApplied, "{e}");
            assert_eq!(classify(e, true), ErrorClass::Indeterminate, "{e}");
        }
        let timed_out = region(|e| e.message = "did not answer within 5s".into());
        let not_found = region(|e| e.region_not_found = Some(Default::default()));
        let io = Error::Io(std::io::Error::other("connection reset"));
        for e in [&timed_out, &not_found, &io] {
            assert_eq!(classify(e, false), ErrorClass::Indeterminate, "{e}");
        }
        let refused = Error::GrpcAPI(tikv_tonic::Status::unavailable(
            "error trying to connect: tcp connect error: Connection refused (os error 111)",
        ));
        let reset = Error::GrpcAPI(tikv_tonic::Status::unknown("transport error"));
        assert_eq!(classify(&refused, false), ErrorClass::NotApplied);
        assert_eq!(classify(&refused, true), ErrorClass::Indeterminate);
        assert_eq!(classify(&reset, false), ErrorClass::Indeterminate);
        assert_eq!(error_kind(&refused), "grpc_connect");
        assert_eq!(error_kind(&reset), "grpc");
        assert!(!needs_cache_refresh(&reset));
        assert!(needs_cache_refresh(&not_leader));
        assert_eq!(error_kind(&timed_out), "region_error_message");
        assert_eq!(error_kind(&epoch), "epoch_not_match");
    }
}
