//! Point reads: RawGet, RawBatchGet, RawGetKeyTTL.

use proto::kvrpcpb::{
    KvPair, RawBatchGetRequest, RawBatchGetResponse, RawGetKeyTtlRequest, RawGetKeyTtlResponse,
    RawGetRequest, RawGetResponse,
};

use super::errors::KvError;
use super::raw::{ensure_in_region, read_live, record_key_read, record_pairs_read, RawKv};
use super::request::parse_cf;
use super::value::now_unix_secs;

impl RawKv {
    pub async fn get(&self, req: RawGetRequest) -> Result<RawGetResponse, KvError> {
        let ctx = self.cfg.api.check_context(req.context.as_ref())?;
        let cf = parse_cf(&req.cf)?;
        self.cfg
            .api
            .check_raw_key(&req.key, self.cfg.max_key_size)?;
        let key = self.cfg.api.raw_region_key(&req.key);
        let snap = self.snapshot(ctx).await?;
        ensure_in_region(&key, &snap.region)?;
        let live = read_live(&snap.snapshot, cf, &req.key, &key, now_unix_secs())?;
        record_key_read(&snap, &req.key, live.as_ref().map(|l| l.value.as_slice()));
        Ok(match live {
            Some(live) => RawGetResponse {
                value: live.value,
                ..Default::default()
            },
            None => RawGetResponse {
                not_found: true,
                ..Default::default()
            },
        })
    }

    /// Answers only the keys that exist: clients count every returned pair as found.
    pub async fn batch_get(&self, req: RawBatchGetRequest) -> Result<RawBatchGetResponse, KvError> {
        let ctx = self.cfg.api.check_context(req.context.as_ref())?;
        let cf = parse_cf(&req.cf)?;
        for key in &req.keys {
            self.cfg.api.check_raw_key(key, self.cfg.max_key_size)?;
        }
        let encoded: Vec<Vec<u8>> = req
            .keys
            .iter()
            .map(|k| self.cfg.api.raw_region_key(k))
            .collect();
        let snap = self.snapshot(ctx).await?;
        for key in &encoded {
            ensure_in_region(key, &snap.region)?;
        }
        let now = now_unix_secs();
        let mut pairs = Vec::with_capacity(req.keys.len());
        for (raw, key) in req.keys.into_iter().zip(&encoded) {
            if let Some(live) = read_live(&snap.snapshot, cf, &raw, key, now)? {
                pairs.push(KvPair {
                    error: None,
                    key: raw,
                    value: live.value,
                });
            }
        }
        record_pairs_read(&snap, &pairs);
        Ok(RawBatchGetResponse {
            region_error: None,
            pairs,
        })
    }

    /// Seconds left to live (0 = no TTL), or not found.
    pub async fn get_key_ttl(
        &self,
        req: RawGetKeyTtlRequest,
    ) -> Result<RawGetKeyTtlResponse, KvError> {
        let ctx = self.cfg.api.check_context(req.context.as_ref())?;
        let cf = parse_cf(&req.cf)?;
        self.cfg
            .api
            .check_raw_key(&req.key, self.cfg.max_key_size)?;
        let key = self.cfg.api.raw_region_key(&req.key);
        let snap = self.snapshot(ctx).await?;
        ensure_in_region(&key, &snap.region)?;
        let now = now_unix_secs();
        let live = read_live(&snap.snapshot, cf, &req.key, &key, now)?;
        record_key_read(&snap, &req.key, live.as_ref().map(|l| l.value.as_slice()));
        Ok(match live {
            Some(live) => RawGetKeyTtlResponse {
                ttl: live.expire_at.map_or(0, |at| at.saturating_sub(now)),
                ..Default::default()
            },
            None => RawGetKeyTtlResponse {
                not_found: true,
                ..Default::default()
            },
        })
    }
}
