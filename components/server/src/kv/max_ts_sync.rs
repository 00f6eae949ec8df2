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
//!
//! The same PD timestamps bound max_ts from above: every timestamp fetched here, and one
//! fetched every `allowance / 12` by `spawn_limit_refresh`, sets the concurrency manager's
//! limit to that timestamp plus the allowed drift (`[storage] max-ts-drift-allowance`), so a
//! read far ahead of PD's clock is refused instead of pushing later commits that far ahead.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use parking_lot::Mutex;
use txn::concurrency_manager::ConcurrencyManager;

use super::errors::KvError;

/// Where fresh timestamps come from (PD's TSO): a composed TSO timestamp, or why not.
pub type TimestampSource = Arc<dyn Fn() -> BoxFuture<'static, Result<u64, String>> + Send + Sync>;

/// The max_ts limit a PD timestamp `pd_ts` allows: `allowance` later in physical time.
pub fn limit_after(pd_ts: u64, allowance: Duration) -> u64 {
    let allowance_ms = u64::try_from(allowance.as_millis()).unwrap_or(u64::MAX);
    txn::compose_ts(
        txn::physical_ms(pd_ts).saturating_add(allowance_ms),
        (1 << txn::TSO_LOGICAL_BITS) - 1,
    )
}

/// Keeps `cm`'s max_ts limit at a PD timestamp from at most `allowance / 12` ago plus
/// `allowance`, until `cm` is dropped. A failed fetch is retried at the next round; the limit
/// stays where it was meanwhile (so a store cut off from PD for longer than the allowance
/// refuses reads at timestamps newer than what it last heard, rather than guessing).
/// Must be called inside a tokio runtime.
pub fn spawn_limit_refresh(
    cm: Weak<ConcurrencyManager>,
    source: TimestampSource,
    allowance: Duration,
) -> tokio::task::JoinHandle<()> {
    let every = (allowance / 12).max(Duration::from_millis(100));
    tokio::spawn(async move {
        loop {
            let fetched = source().await;
            let Some(cm) = cm.upgrade() else {
                return;
            };
            match fetched {
                Ok(ts) => cm.set_max_ts_limit(limit_after(ts, allowance)),
                Err(e) => tracing::warn!("cannot refresh the max_ts limit from PD: {e}"),
            }
            drop(cm);
            tokio::time::sleep(every).await;
        }
    })
}

/// Which regions' leaderships have synced max_ts.
#[derive(Default)]
pub struct MaxTsSync {
    source: Option<TimestampSource>,
    /// How far ahead of a PD timestamp max_ts may go.
    allowance: Duration,
    /// Region id → the newest term whose leadership synced.
    synced: Mutex<HashMap<u64, u64>>,
}

impl MaxTsSync {
    /// Syncs from `source`; each timestamp fetched also allows max_ts up to `allowance`
    /// beyond it.
    pub fn new(source: TimestampSource, allowance: Duration) -> MaxTsSync {
        MaxTsSync {
            source: Some(source),
            allowance,
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
        cm.set_max_ts_limit(limit_after(ts, self.allowance));
        cm.update_max_ts(ts)?;
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
        let sync = MaxTsSync::new(
            Arc::new(|| Box::pin(async { Ok(500) })),
            Duration::from_secs(60),
        );
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
        let failing = MaxTsSync::new(
            Arc::new(|| Box::pin(async { Err("down".to_string()) })),
            Duration::from_secs(60),
        );
        assert!(failing.sync(&cm, 1, 7).await.is_err());
        assert!(!failing.is_synced(1, 7));
        assert_eq!(cm.max_ts(), 10);
    }

    #[test]
    fn the_limit_is_the_allowance_past_the_pd_timestamp() {
        let pd_ts = txn::compose_ts(1_000_000, 7);
        let limit = limit_after(pd_ts, Duration::from_secs(60));
        assert_eq!(txn::physical_ms(limit), 1_060_000);
        assert!(limit > txn::compose_ts(1_060_000, 0));
        assert!(limit < txn::compose_ts(1_060_001, 0));
    }

    #[tokio::test]
    async fn the_refresh_keeps_a_limit_and_stops_with_its_manager() {
        let pd_ts = txn::compose_ts(1_000_000, 0);
        let cm = Arc::new(ConcurrencyManager::new(0));
        let source: TimestampSource = Arc::new(move || Box::pin(async move { Ok(pd_ts) }));
        let task = spawn_limit_refresh(Arc::downgrade(&cm), source, Duration::from_secs(12));
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while cm.max_ts_limit() == 0 {
            assert!(std::time::Instant::now() < deadline, "no limit was set");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            cm.max_ts_limit(),
            limit_after(pd_ts, Duration::from_secs(12))
        );
        assert!(cm.update_max_ts(txn::compose_ts(1_011_000, 0)).is_ok());
        assert!(cm.update_max_ts(txn::compose_ts(1_013_000, 0)).is_err());
        drop(cm);
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("the refresh stops once its manager is gone")
            .unwrap();
    }
}
