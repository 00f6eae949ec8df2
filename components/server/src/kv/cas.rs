//! RawCompareAndSwap: read, compare and write one key atomically on this store, by holding
//! the key's latch from the linearizable read until raftstore has answered the write.

use proto::kvrpcpb::{RawCasRequest, RawCasResponse};

use super::errors::KvError;
use super::raw::{ensure_in_region, read_live, LiveValue, RawKv};
use super::region_cmd;
use super::request::parse_cf;
use super::value::{self, now_unix_secs};

/// Whether the swap may happen given the current value (`None` = absent or expired).
fn swap_allowed(current: Option<&LiveValue>, previous_not_exist: bool, previous: &[u8]) -> bool {
    match current {
        None => previous_not_exist,
        Some(live) => !previous_not_exist && live.value == previous,
    }
}

impl RawKv {
    pub async fn compare_and_swap(&self, req: RawCasRequest) -> Result<RawCasResponse, KvError> {
        let ctx = *self.cfg.api.check_context(req.context.as_ref())?;
        let cf = parse_cf(&req.cf)?;
        self.cfg
            .api
            .check_raw_key(&req.key, self.cfg.max_key_size)?;
        self.cfg.api.check_ttl(req.ttl)?;
        let key = self.cfg.api.raw_region_key(&req.key);
        let read_timeout = self.cfg.read_timeout;
        self.latched
            .run(ctx.region_id, vec![key.clone()], move |store| async move {
                let snap = region_cmd::snapshot(&store, &ctx, read_timeout).await?;
                ensure_in_region(&key, &snap.region)?;
                let current = read_live(&snap.snapshot, cf, &req.key, &key, now_unix_secs())?;
                let read_term = snap.term;
                drop(snap);

                let succeed = swap_allowed(
                    current.as_ref(),
                    req.previous_not_exist,
                    &req.previous_value,
                );
                if succeed {
                    let stored = value::encode(&req.value, req.ttl, now_unix_secs());
                    let put = region_cmd::put(cf, key, stored);
                    region_cmd::write_until_answered(&store, &ctx, read_term, vec![put]).await?;
                }
                Ok(RawCasResponse {
                    region_error: None,
                    error: String::new(),
                    succeed,
                    previous_not_exist: current.is_none(),
                    previous_value: current.map(|c| c.value).unwrap_or_default(),
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(v: &[u8]) -> LiveValue {
        LiveValue {
            value: v.to_vec(),
            expire_at: None,
        }
    }

    #[test]
    fn absent_key_swaps_only_when_absence_is_expected() {
        assert!(swap_allowed(None, true, b""));
        assert!(!swap_allowed(None, false, b""));
        assert!(!swap_allowed(None, false, b"x"));
    }

    #[test]
    fn present_key_swaps_only_on_an_equal_value() {
        assert!(swap_allowed(Some(&live(b"a")), false, b"a"));
        assert!(!swap_allowed(Some(&live(b"a")), false, b"b"));
        assert!(!swap_allowed(Some(&live(b"a")), true, b"a"));
        // An empty value is a value, not an absence.
        assert!(swap_allowed(Some(&live(b"")), false, b""));
        assert!(!swap_allowed(Some(&live(b"")), true, b""));
    }
}
