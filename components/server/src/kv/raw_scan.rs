//! Range reads: RawScan and RawBatchScan, always clipped to the region that serves them
//! (clients do not clip RawScan themselves and continue from the region's end).

use engine::{KvRead, KvSnapshot};
use proto::kvrpcpb::{
    KvPair, RawBatchScanRequest, RawBatchScanResponse, RawScanRequest, RawScanResponse,
};

use super::api::StorageApi;
use super::errors::KvError;
use super::range::{clip_to_region, scan_bounds, EncodedRange};
use super::raw::{record_pairs_read, RawKv};
use super::request::{parse_cf, show_key};
use super::value::{self, now_unix_secs};

/// One range of a scan, ready to run against a snapshot.
struct ScanJob {
    range: EncodedRange,
    reverse: bool,
    limit: usize,
    key_only: bool,
}

impl RawKv {
    fn check_limit(&self, limit: u32) -> Result<usize, KvError> {
        if limit > self.cfg.max_scan_limit {
            return Err(KvError::InvalidArgument(format!(
                "scan limit {limit} exceeds the maximum of {}",
                self.cfg.max_scan_limit
            )));
        }
        Ok(limit as usize)
    }

    pub async fn scan(&self, req: RawScanRequest) -> Result<RawScanResponse, KvError> {
        let ctx = self.cfg.api.check_context(req.context.as_ref())?;
        let cf = parse_cf(&req.cf)?;
        let limit = self.check_limit(req.limit)?;
        self.cfg.check_raw_range(&req.start_key, &req.end_key)?;
        let snap = self.snapshot(ctx).await?;
        let (lower, upper) = scan_bounds(&req.start_key, &req.end_key, req.reverse);
        let job = ScanJob {
            range: clip_to_region(self.cfg.api, lower, upper, &snap.region),
            reverse: req.reverse,
            limit,
            key_only: req.key_only,
        };
        let kvs = run_scans(self.cfg.api, snap.snapshot.clone(), cf, vec![job]).await?;
        record_pairs_read(&snap, &kvs);
        Ok(RawScanResponse {
            region_error: None,
            kvs,
        })
    }

    /// Scans each range (in the order given) with its own limit.
    pub async fn batch_scan(
        &self,
        req: RawBatchScanRequest,
    ) -> Result<RawBatchScanResponse, KvError> {
        let ctx = self.cfg.api.check_context(req.context.as_ref())?;
        let cf = parse_cf(&req.cf)?;
        let limit = self.check_limit(req.each_limit)?;
        for r in &req.ranges {
            self.cfg.check_raw_range(&r.start_key, &r.end_key)?;
        }
        let snap = self.snapshot(ctx).await?;
        let jobs = req
            .ranges
            .iter()
            .map(|r| {
                let (lower, upper) = scan_bounds(&r.start_key, &r.end_key, req.reverse);
                ScanJob {
                    range: clip_to_region(self.cfg.api, lower, upper, &snap.region),
                    reverse: req.reverse,
                    limit,
                    key_only: req.key_only,
                }
            })
            .collect();
        let kvs = run_scans(self.cfg.api, snap.snapshot.clone(), cf, jobs).await?;
        record_pairs_read(&snap, &kvs);
        Ok(RawBatchScanResponse {
            region_error: None,
            kvs,
        })
    }
}

/// Runs the scans off the async threads: a scan may visit thousands of keys.
async fn run_scans(
    api: StorageApi,
    snap: KvSnapshot,
    cf: &'static str,
    jobs: Vec<ScanJob>,
) -> Result<Vec<KvPair>, KvError> {
    tokio::task::spawn_blocking(move || {
        let now = now_unix_secs();
        let mut out = Vec::new();
        for job in &jobs {
            scan_range(api, &snap, cf, job, now, &mut out)?;
        }
        Ok(out)
    })
    .await
    .map_err(|e| KvError::Internal(format!("scan task failed: {e}")))?
}

/// Appends up to `job.limit` live pairs of `job.range` to `out`, in scan order.
fn scan_range(
    api: StorageApi,
    snap: &KvSnapshot,
    cf: &str,
    job: &ScanJob,
    now: u64,
    out: &mut Vec<KvPair>,
) -> Result<(), KvError> {
    if job.range.is_empty() || job.limit == 0 {
        return Ok(());
    }
    let (start, end) = job.range.data_bounds();
    let mut taken = 0;
    let mut failure = None;
    snap.scan(
        cf,
        &start,
        &end,
        job.reverse,
        &mut |key, stored| match decode_entry(api, key, stored, now) {
            Ok(None) => Ok(true),
            Ok(Some(mut pair)) => {
                if job.key_only {
                    pair.value.clear();
                }
                out.push(pair);
                taken += 1;
                Ok(taken < job.limit)
            }
            Err(e) => {
                failure = Some(e);
                Ok(false)
            }
        },
    )?;
    failure.map_or(Ok(()), Err)
}

/// The raw key and user value of a stored pair, or `None` if it has expired.
fn decode_entry(
    api: StorageApi,
    data_key: &[u8],
    stored: &[u8],
    now: u64,
) -> Result<Option<KvPair>, KvError> {
    let corrupt_key = || {
        KvError::Corrupt(format!(
            "stored key {} is not a raw key of {api}",
            show_key(data_key)
        ))
    };
    let encoded = data_key
        .strip_prefix(&[keys::DATA_PREFIX])
        .ok_or_else(corrupt_key)?;
    let raw = api.raw_user_key(encoded).ok_or_else(corrupt_key)?;
    let decoded = value::decode(stored)
        .map_err(|e| KvError::Corrupt(format!("value of key {}: {e}", show_key(&raw))))?;
    if decoded.is_expired(now) {
        return Ok(None);
    }
    Ok(Some(KvPair {
        error: None,
        key: raw,
        value: decoded.user_value.to_vec(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(raw: &[u8]) -> Vec<u8> {
        keys::data_key(&keys::encode_bytes(raw))
    }

    #[test]
    fn entries_decode_to_raw_keys_and_user_values() {
        let got = decode_entry(
            StorageApi::V2,
            &data(b"r\0\0\0k"),
            &value::encode(b"v", 0, 0),
            10,
        )
        .unwrap()
        .unwrap();
        assert_eq!(got.key, b"r\0\0\0k");
        assert_eq!(got.value, b"v");
    }

    #[test]
    fn expired_entries_are_skipped() {
        let stored = value::encode(b"v", 5, 100);
        assert!(
            decode_entry(StorageApi::V2, &data(b"r\0\0\0k"), &stored, 104)
                .unwrap()
                .is_some()
        );
        assert_eq!(
            decode_entry(StorageApi::V2, &data(b"r\0\0\0k"), &stored, 105).unwrap(),
            None
        );
    }

    #[test]
    fn corrupt_keys_and_values_are_errors() {
        let ok_value = value::encode(b"v", 0, 0);
        // Missing data prefix, truncated encoding, trailing garbage.
        let mut trailing = data(b"r\0\0\0k");
        trailing.push(1);
        for key in [
            keys::encode_bytes(b"r\0\0\0k"),
            b"zr\0\0".to_vec(),
            trailing,
        ] {
            assert!(matches!(
                decode_entry(StorageApi::V2, &key, &ok_value, 0),
                Err(KvError::Corrupt(_))
            ));
        }
        assert!(matches!(
            decode_entry(StorageApi::V2, &data(b"r\0\0\0k"), b"", 0),
            Err(KvError::Corrupt(_))
        ));
    }
}
