//! Syncing the store's max_ts from PD before a leader serves async-commit or 1PC prewrites
//! (reference §2.8; TiKV's `update_max_ts` task on becoming leader).
//!
//! A read served by a region's previous leader raised *that* store's max_ts, not this one's.
//! Had this store chosen an async-commit timestamp from its own max_ts, the commit could land
//! at or below a read that already returned without it. Every such read used a timestamp PD
//! handed out before this store led the region, so a timestamp fetched from PD after this
//! store became leader in term T is above all of them. The first async-commit or 1PC
//! prewrite of each (region, term) fetches one and raises max_ts to it; two-phase commit
//! does not need this (its commit_ts comes from PD).

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use parking_lot::Mutex;
use txn::concurrency_manager::ConcurrencyManager;

use super::errors::KvError;

/// Where fresh timestamps come from (PD's TSO): a composed TSO timestamp, or why not.
pub type TimestampSource = Arc<dyn Fn() -> BoxFuture<'static, Result<u64, String>> + Send + Sync>;

/// Which regions' leaderships have synced max_ts.
#[derive(Default)]
pub struct MaxTsSync {
    source: Option<TimestampSource>,
    /// Region id → the newest term whose leadership synced.
    synced: Mutex<HashMap<u64, u64>>,
}

impl MaxTsSync {
    /// Syncs from `source`.
    pub fn new(source: TimestampSource) -> MaxTsSync {
        MaxTsSync {
            source: Some(source),
            synced: Mutex::default(),
        }
    }

    /// Whether this store's leadership of `region_id` in `term` has synced max_ts.
    pub fn is_synced(&self, region_id: u64, term: u64) -> bool {
        self.synced.lock().get(&region_id) == Some(&term)
    }

    /// Fetches a timestamp, raises `cm`'s max_ts to it, and marks the leadership of
    /// `region_id` in `term` synced. Call only after learning (from a leader's snapshot) that
    /// this store leads the region in `term`. Errors: no source, or PD did not answer — a
    /// region error the client may retry.
    pub async fn sync(
        &self,
        cm: &ConcurrencyManager,
        region_id: u64,
        term: u64,
    ) -> Result<(), KvError> {
        let not_synced = |why: String| {
            KvError::Region(Box::new(proto::errorpb::Error {
                message: format!("max timestamp of region {region_id} not synced: {why}"),
                max_timestamp_not_synced: Some(Default::default()),
                ..Default::default()
            }))
        };
        let source = self
            .source
            .as_ref()
            .ok_or_else(|| not_synced("this store has no timestamp source".into()))?;
        let ts = source().await.map_err(not_synced)?;
        cm.update_max_ts(ts);
        let mut synced = self.synced.lock();
        let newest = synced.entry(region_id).or_insert(term);
        *newest = (*newest).max(term);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sync_raises_max_ts_and_covers_only_its_term() {
        let sync = MaxTsSync::new(Arc::new(|| Box::pin(async { Ok(500) })));
        let cm = ConcurrencyManager::new(10);
        assert!(!sync.is_synced(1, 7));
        sync.sync(&cm, 1, 7).await.unwrap();
        assert_eq!(cm.max_ts(), 500);
        assert!(sync.is_synced(1, 7));
        assert!(!sync.is_synced(1, 8), "a later leadership syncs again");
        assert!(!sync.is_synced(2, 7));
    }

    #[tokio::test]
    async fn without_a_source_or_an_answer_the_region_is_not_synced() {
        let cm = ConcurrencyManager::new(10);
        let err = MaxTsSync::default().sync(&cm, 1, 7).await.unwrap_err();
        assert!(matches!(err, KvError::Region(e) if e.max_timestamp_not_synced.is_some()));
        let failing = MaxTsSync::new(Arc::new(|| Box::pin(async { Err("down".to_string()) })));
        assert!(failing.sync(&cm, 1, 7).await.is_err());
        assert!(!failing.is_synced(1, 7));
        assert_eq!(cm.max_ts(), 10);
    }
}
