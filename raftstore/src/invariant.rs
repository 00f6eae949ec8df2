//! Ordering rules between raft, the log writer and the apply pool that the store enforces at
//! run time. A breach means the store's state can no longer be trusted (data would be lost or
//! served stale), so it stops the store with the region, peer and indexes in the message, as
//! TiKV's raftstore does, instead of logging and going on. Shoal binaries abort on panic.

/// Stops the store when `cond` does not hold: `enforce!(cond, region_id, peer_id, "fmt", args..)`.
/// The message names the region, the peer and what broke.
macro_rules! enforce {
    ($cond:expr, $region_id:expr, $peer_id:expr, $($fmt:tt)+) => {
        if !$cond {
            $crate::invariant::violated($region_id, $peer_id, format_args!($($fmt)+));
        }
    };
}
pub(crate) use enforce;

/// Logs the breach and panics; see the module docs.
#[track_caller]
#[cold]
pub fn violated(region_id: u64, peer_id: u64, what: std::fmt::Arguments<'_>) -> ! {
    tracing::error!(region_id, peer_id, "invariant violated: {what}");
    panic!("[region {region_id}] peer {peer_id}: invariant violated: {what}");
}

#[cfg(test)]
mod tests {
    #[test]
    #[should_panic(expected = "[region 7] peer 701: invariant violated: applied 5 -> 4")]
    fn a_breach_names_region_peer_and_indexes() {
        let (old, new) = (5, 4);
        enforce!(new >= old, 7, 701, "applied {old} -> {new}");
    }

    #[test]
    fn a_kept_rule_passes() {
        enforce!(1 + 1 == 2, 1, 1, "never");
    }
}
