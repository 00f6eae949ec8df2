//! The store-wide max_ts: the highest timestamp any read or status check has used on this
//! store. Async-commit and 1PC prewrites take their commit timestamps above it, so a commit
//! never lands below a read that has already happened (reference pitfall #2; TiKV's
//! `components/concurrency_manager`).

use std::sync::atomic::{AtomicU64, Ordering};

/// Shared by every command of a store.
#[derive(Debug, Default)]
pub struct ConcurrencyManager {
    max_ts: AtomicU64,
}

impl ConcurrencyManager {
    /// A manager whose max_ts starts at `initial` (a fresh PD timestamp at start-up).
    pub fn new(initial: u64) -> ConcurrencyManager {
        ConcurrencyManager {
            max_ts: AtomicU64::new(initial),
        }
    }

    /// The highest timestamp seen so far.
    pub fn max_ts(&self) -> u64 {
        self.max_ts.load(Ordering::SeqCst)
    }

    /// Raises max_ts to `ts`; it never goes down. `u64::MAX` (a read of "the latest"
    /// version, not a real timestamp) is ignored, as TiKV does, so it cannot push every later
    /// commit timestamp out of reach.
    pub fn update_max_ts(&self, ts: u64) {
        if ts != u64::MAX {
            self.max_ts.fetch_max(ts, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_ts_only_grows_and_ignores_the_latest_marker() {
        let cm = ConcurrencyManager::new(10);
        cm.update_max_ts(5);
        assert_eq!(cm.max_ts(), 10);
        cm.update_max_ts(20);
        assert_eq!(cm.max_ts(), 20);
        cm.update_max_ts(u64::MAX);
        assert_eq!(cm.max_ts(), 20);
    }
}
