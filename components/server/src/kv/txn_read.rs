//! Snapshot reads of the transactional API: KvGet, KvBatchGet, KvScan and KvScanLock. Each
//! raises the store's max_ts to its read timestamp before it looks at locks (reference
//! pitfall #2), reads a consistent snapshot of the region, and takes no latches.

use proto::kvrpcpb::{
    BatchGetRequest, BatchGetResponse, GetRequest, GetResponse, KvPair, ScanLockRequest,
    ScanLockResponse, ScanRequest, ScanResponse,
};
use txn::actions::{read, scan_lock};
use txn::mvcc::{Key, MvccReader};

use super::api::{intersect, KeySpace};
use super::errors::KvError;
use super::raw::{record_key_read, record_pairs_read};
use super::txn::{check_ts, TxnKv};

/// The encoded range `[lower, upper)` of raw user-key bounds (empty: unbounded), clipped to
/// the encoded range `[start, end)` (empty end: unbounded).
fn clip_to(lower: &[u8], upper: &[u8], start: &[u8], end: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let upper = if upper.is_empty() {
        Vec::new()
    } else {
        Key::from_raw(upper).into_encoded()
    };
    let clipped = intersect(
        &KeySpace {
            start: Key::from_raw(lower).into_encoded(),
            end: upper,
        },
        start,
        end,
    );
    (clipped.start, clipped.end)
}

impl TxnKv {
    pub async fn get(&self, req: GetRequest) -> Result<GetResponse, KvError> {
        let ctx = self.check(req.context.as_ref(), [&req.key])?;
        check_ts("version", req.version)?;
        self.cm.update_max_ts(req.version)?;
        self.cm.read_key_check(&Key::from_raw(&req.key), |l| {
            read::check_memory_lock(l, req.version)
        })?;
        let snap = self.snapshot(&ctx).await?;
        super::raw::ensure_in_region(&Key::from_raw(&req.key).into_encoded(), &snap.region)?;
        let reader = MvccReader::new(&snap.snapshot);
        let value = read::point_get(&reader, &req.key, req.version)?;
        record_key_read(&snap, &req.key, value.as_deref());
        Ok(GetResponse {
            not_found: value.is_none(),
            value: value.unwrap_or_default(),
            ..Default::default()
        })
    }

    pub async fn batch_get(&self, req: BatchGetRequest) -> Result<BatchGetResponse, KvError> {
        let ctx = self.check(req.context.as_ref(), &req.keys)?;
        check_ts("version", req.version)?;
        self.cm.update_max_ts(req.version)?;
        for key in &req.keys {
            self.cm.read_key_check(&Key::from_raw(key), |l| {
                read::check_memory_lock(l, req.version)
            })?;
        }
        let snap = self.snapshot(&ctx).await?;
        for key in &req.keys {
            super::raw::ensure_in_region(&Key::from_raw(key).into_encoded(), &snap.region)?;
        }
        let reader = MvccReader::new(&snap.snapshot);
        let pairs: Vec<KvPair> = read::batch_get(&reader, &req.keys, req.version)?
            .into_iter()
            .map(KvPair::from)
            .collect();
        record_pairs_read(&snap, &pairs);
        Ok(BatchGetResponse {
            pairs,
            ..Default::default()
        })
    }

    pub async fn scan(&self, req: ScanRequest) -> Result<ScanResponse, KvError> {
        let ctx = self.check(req.context.as_ref(), [])?;
        self.cfg.check_txn_range(&req.start_key, &req.end_key)?;
        check_ts("version", req.version)?;
        if req.limit > self.cfg.max_scan_limit {
            return Err(KvError::InvalidArgument(format!(
                "scan limit {} exceeds the maximum of {}",
                req.limit, self.cfg.max_scan_limit
            )));
        }
        self.cm.update_max_ts(req.version)?;
        // The memory locks are checked before the snapshot is taken (as for a get): a lock
        // gone by then belongs to a write the snapshot already holds. A reverse scan runs
        // from start_key (exclusive upper bound) down to end_key.
        let (lower, upper) = if req.reverse {
            (&req.end_key, &req.start_key)
        } else {
            (&req.start_key, &req.end_key)
        };
        let space = self.cfg.api.txn_key_space();
        let (lower, upper) = clip_to(lower, upper, &space.start, &space.end);
        self.cm
            .read_range_check(&lower, &upper, |l| read::check_memory_lock(l, req.version))?;
        let snap = self.snapshot(&ctx).await?;
        let KeySpace {
            start: region_start,
            end: region_end,
        } = self.cfg.api.txn_range_of(&snap.region);
        let reader = MvccReader::new(&snap.snapshot);
        let pairs = read::scan(
            &reader,
            &req.start_key,
            &req.end_key,
            req.limit as usize,
            req.version,
            req.key_only,
            req.reverse,
            &region_start,
            &region_end,
        )?;
        let pairs: Vec<KvPair> = pairs.into_iter().map(KvPair::from).collect();
        record_pairs_read(&snap, &pairs);
        Ok(ScanResponse {
            pairs,
            ..Default::default()
        })
    }

    pub async fn scan_lock(&self, req: ScanLockRequest) -> Result<ScanLockResponse, KvError> {
        let ctx = self.check(req.context.as_ref(), [])?;
        self.cfg.check_txn_range(&req.start_key, &req.end_key)?;
        check_ts("max_version", req.max_version)?;
        // Lock scans resolve what they find (GC, `cleanup_locks`): like a read, they must
        // see an async-commit prewrite either in the memory table or above max_version.
        self.cm.update_max_ts(req.max_version)?;
        let space = self.cfg.api.txn_key_space();
        let (lower, upper) = clip_to(&req.start_key, &req.end_key, &space.start, &space.end);
        // Prewrites in flight are listed with the persisted locks rather than failing the
        // scan (`scan_lock::merge_locks`). Read before the snapshot: a prewrite applied in
        // between is in both (listed once), one begun after cannot commit at or below
        // max_version, which was raised above.
        let mut in_memory = Vec::new();
        self.cm
            .read_range_check(&lower, &upper, |l| {
                if l.lock.ts <= req.max_version {
                    in_memory.push((
                        Key::from_raw(&l.raw_key).into_encoded(),
                        l.lock.to_lock_info(l.raw_key.clone()),
                    ));
                }
                Ok::<(), std::convert::Infallible>(())
            })
            .unwrap_or_else(|never| match never {});
        let snap = self.snapshot(&ctx).await?;
        let KeySpace {
            start: region_start,
            end: region_end,
        } = self.cfg.api.txn_range_of(&snap.region);
        let reader = MvccReader::new(&snap.snapshot);
        let locks = scan_lock::scan_lock(
            &reader,
            req.max_version,
            &req.start_key,
            &req.end_key,
            req.limit as usize,
            &region_start,
            &region_end,
        )?;
        // The memory table is the store's: only this region's part of the request's range.
        let range = intersect(
            &KeySpace {
                start: lower,
                end: upper,
            },
            &region_start,
            &region_end,
        );
        let in_flight = in_memory
            .into_iter()
            .filter(|(key, _)| range.contains(key))
            .map(|(_, lock)| lock);
        let locks = scan_lock::merge_locks(locks, in_flight, req.limit as usize);
        Ok(ScanLockResponse {
            locks,
            ..Default::default()
        })
    }
}
