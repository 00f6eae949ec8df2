//! Snapshot reads of the transactional API: KvGet, KvBatchGet, KvScan and KvScanLock. Each
//! raises the store's max_ts to its read timestamp before it looks at locks (reference
//! pitfall #2), reads a consistent snapshot of the region, and takes no latches.

use keys::encode_bytes;
use proto::kvrpcpb::{
    BatchGetRequest, BatchGetResponse, GetRequest, GetResponse, KvPair, ScanLockRequest,
    ScanLockResponse, ScanRequest, ScanResponse,
};
use proto::metapb::Region;
use txn::actions::{read, scan_lock};
use txn::mvcc::{Key, MvccReader};

use super::errors::KvError;
use super::request::{check_txn_bound, TXN_KEY_MODE};
use super::txn::{check_ts, TxnKv};

/// The transactional key space `['x', 'y')`, encoded.
fn txn_space() -> (Vec<u8>, Vec<u8>) {
    (
        encode_bytes(&[TXN_KEY_MODE]),
        encode_bytes(&[TXN_KEY_MODE + 1]),
    )
}

/// The region's range clipped to the transactional key space `['x', 'y')` (encoded), so a
/// transactional scan never reads raw data.
fn txn_range_of(region: &Region) -> (Vec<u8>, Vec<u8>) {
    let (space_start, space_end) = txn_space();
    let start = region.start_key.clone().max(space_start);
    let end = if region.end_key.is_empty() {
        space_end
    } else {
        region.end_key.clone().min(space_end)
    };
    (start, end)
}

/// The encoded range `[lower, upper)` of raw user-key bounds (empty: unbounded), clipped to
/// the encoded region range `[region_start, region_end)`.
fn clip_to(
    lower: &[u8],
    upper: &[u8],
    region_start: &[u8],
    region_end: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    let lower = Key::from_raw(lower)
        .into_encoded()
        .max(region_start.to_vec());
    let upper = if upper.is_empty() {
        region_end.to_vec()
    } else {
        Key::from_raw(upper).into_encoded().min(region_end.to_vec())
    };
    (lower, upper)
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
        super::raw::ensure_in_region(&encode_bytes(&req.key), &snap.region)?;
        let reader = MvccReader::new(&snap.snapshot);
        let value = read::point_get(&reader, &req.key, req.version)?;
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
            super::raw::ensure_in_region(&encode_bytes(key), &snap.region)?;
        }
        let reader = MvccReader::new(&snap.snapshot);
        let pairs = read::batch_get(&reader, &req.keys, req.version)?;
        Ok(BatchGetResponse {
            pairs: pairs.into_iter().map(KvPair::from).collect(),
            ..Default::default()
        })
    }

    pub async fn scan(&self, req: ScanRequest) -> Result<ScanResponse, KvError> {
        let ctx = self.check(req.context.as_ref(), [])?;
        check_txn_bound(&req.start_key, self.cfg.max_key_size)?;
        check_txn_bound(&req.end_key, self.cfg.max_key_size)?;
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
        let (space_start, space_end) = txn_space();
        let (lower, upper) = clip_to(lower, upper, &space_start, &space_end);
        self.cm
            .read_range_check(&lower, &upper, |l| read::check_memory_lock(l, req.version))?;
        let snap = self.snapshot(&ctx).await?;
        let (region_start, region_end) = txn_range_of(&snap.region);
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
        Ok(ScanResponse {
            pairs: pairs.into_iter().map(KvPair::from).collect(),
            ..Default::default()
        })
    }

    pub async fn scan_lock(&self, req: ScanLockRequest) -> Result<ScanLockResponse, KvError> {
        let ctx = self.check(req.context.as_ref(), [])?;
        check_txn_bound(&req.start_key, self.cfg.max_key_size)?;
        check_txn_bound(&req.end_key, self.cfg.max_key_size)?;
        check_ts("max_version", req.max_version)?;
        // Lock scans resolve what they find (GC, `cleanup_locks`): like a read, they must
        // see an async-commit prewrite either in the memory table or above max_version.
        self.cm.update_max_ts(req.max_version)?;
        let (space_start, space_end) = txn_space();
        let (lower, upper) = clip_to(&req.start_key, &req.end_key, &space_start, &space_end);
        self.cm.read_range_check(&lower, &upper, |l| {
            if l.lock.ts <= req.max_version {
                return Err(txn::Error::KeyIsLocked(Box::new(
                    l.lock.to_lock_info(l.raw_key.clone()),
                )));
            }
            Ok(())
        })?;
        let snap = self.snapshot(&ctx).await?;
        let (region_start, region_end) = txn_range_of(&snap.region);
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
        Ok(ScanLockResponse {
            locks,
            ..Default::default()
        })
    }
}
