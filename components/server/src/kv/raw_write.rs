//! Writes: RawPut, RawBatchPut, RawDelete, RawBatchDelete, RawDeleteRange. Each request is
//! one raft entry, so a batch is atomic within its region. Requests flagged `for_cas` hold
//! their keys' latches so they never interleave with a compare-and-swap.

use proto::kvrpcpb::{
    RawBatchDeleteRequest, RawBatchDeleteResponse, RawBatchPutRequest, RawBatchPutResponse,
    RawDeleteRangeRequest, RawDeleteRangeResponse, RawDeleteRequest, RawDeleteResponse,
    RawPutRequest, RawPutResponse,
};
use proto::raft_cmdpb::Request;

use super::errors::KvError;
use super::range::delete_bounds;
use super::raw::RawKv;
use super::region_cmd;
use super::request::parse_cf;
use super::value::{self, now_unix_secs};

impl RawKv {
    pub async fn put(&self, req: RawPutRequest) -> Result<RawPutResponse, KvError> {
        let ctx = self.cfg.api.check_context(req.context.as_ref())?;
        let cf = parse_cf(&req.cf)?;
        self.cfg
            .api
            .check_raw_key(&req.key, self.cfg.max_key_size)?;
        let key = self.cfg.api.raw_region_key(&req.key);
        self.cfg.api.check_ttl(req.ttl)?;
        let stored = value::encode(&req.value, req.ttl, now_unix_secs());
        let requests = vec![region_cmd::put(cf, key.clone(), stored)];
        self.write_keys(ctx, req.for_cas, vec![key], requests)
            .await?;
        Ok(RawPutResponse::default())
    }

    /// Puts every pair in one entry. `ttls` gives one TTL per pair; when it is empty the
    /// single `ttl` applies to all.
    pub async fn batch_put(&self, req: RawBatchPutRequest) -> Result<RawBatchPutResponse, KvError> {
        let ctx = self.cfg.api.check_context(req.context.as_ref())?;
        let cf = parse_cf(&req.cf)?;
        if !req.ttls.is_empty() && req.ttls.len() != req.pairs.len() {
            return Err(KvError::InvalidArgument(format!(
                "{} ttls given for {} pairs; give one per pair or none",
                req.ttls.len(),
                req.pairs.len()
            )));
        }
        self.cfg.api.check_ttl(req.ttl)?;
        for ttl in &req.ttls {
            self.cfg.api.check_ttl(*ttl)?;
        }
        for pair in &req.pairs {
            self.cfg
                .api
                .check_raw_key(&pair.key, self.cfg.max_key_size)?;
        }
        let keys: Vec<Vec<u8>> = req
            .pairs
            .iter()
            .map(|p| self.cfg.api.raw_region_key(&p.key))
            .collect();
        let now = now_unix_secs();
        let requests: Vec<Request> = req
            .pairs
            .iter()
            .zip(keys.iter().cloned())
            .enumerate()
            .map(|(i, (pair, key))| {
                let ttl = req.ttls.get(i).copied().unwrap_or(req.ttl);
                region_cmd::put(cf, key, value::encode(&pair.value, ttl, now))
            })
            .collect();
        self.write_keys(ctx, req.for_cas, keys, requests).await?;
        Ok(RawBatchPutResponse::default())
    }

    pub async fn delete(&self, req: RawDeleteRequest) -> Result<RawDeleteResponse, KvError> {
        let ctx = self.cfg.api.check_context(req.context.as_ref())?;
        let cf = parse_cf(&req.cf)?;
        self.cfg
            .api
            .check_raw_key(&req.key, self.cfg.max_key_size)?;
        let key = self.cfg.api.raw_region_key(&req.key);
        let requests = vec![region_cmd::delete(cf, key.clone())];
        self.write_keys(ctx, req.for_cas, vec![key], requests)
            .await?;
        Ok(RawDeleteResponse::default())
    }

    pub async fn batch_delete(
        &self,
        req: RawBatchDeleteRequest,
    ) -> Result<RawBatchDeleteResponse, KvError> {
        let ctx = self.cfg.api.check_context(req.context.as_ref())?;
        let cf = parse_cf(&req.cf)?;
        for key in &req.keys {
            self.cfg.api.check_raw_key(key, self.cfg.max_key_size)?;
        }
        let keys: Vec<Vec<u8>> = req
            .keys
            .iter()
            .map(|k| self.cfg.api.raw_region_key(k))
            .collect();
        let requests = keys
            .iter()
            .map(|k| region_cmd::delete(cf, k.clone()))
            .collect();
        self.write_keys(ctx, req.for_cas, keys, requests).await?;
        Ok(RawBatchDeleteResponse::default())
    }

    /// Deletes `[start_key, end_key)` within the request's region; an empty end reaches the
    /// region's end.
    pub async fn delete_range(
        &self,
        req: RawDeleteRangeRequest,
    ) -> Result<RawDeleteRangeResponse, KvError> {
        let ctx = self.cfg.api.check_context(req.context.as_ref())?;
        let cf = parse_cf(&req.cf)?;
        self.cfg.check_raw_range(&req.start_key, &req.end_key)?;
        // Raftstore checks the request's epoch against the region when it proposes, so the
        // local view used for clipping cannot widen a stale request.
        let region = self.store.meta().lock().region(ctx.region_id).cloned();
        let region = region.ok_or(raftstore::Error::RegionNotFound(ctx.region_id))?;
        if let Some(range) = delete_bounds(self.cfg.api, &req.start_key, &req.end_key, &region) {
            let request = region_cmd::delete_range(cf, range.start, range.end);
            self.write(ctx, vec![request]).await?;
        }
        Ok(RawDeleteRangeResponse::default())
    }
}
