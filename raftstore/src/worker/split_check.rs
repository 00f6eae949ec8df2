//! The split-check worker: measures a region (size and keys, reported back to its peer for
//! PD), asks the split policy for keys off the raft threads, gets ids for the new regions, and
//! hands the split to the region's peer.

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Receiver;
use engine::{KvSnapshot, CF_DEFAULT, CF_LOCK, CF_WRITE};
use proto::metapb::Region;
use tracing::{debug, info, warn};

use crate::errors::Result;
use crate::msg::router::RaftRouter;
use crate::msg::{Callback, MeasuredRegion, PeerMsg, SplitRegion};
use crate::pd_client::PdClient;
use crate::split_policy::{validate_split_keys, SplitCheckInput, SplitPolicy};

pub enum SplitCheckTask {
    /// Measure one region and ask the split policy about it.
    Check {
        region: Region,
        snapshot: KvSnapshot,
        qps: f64,
        load_keys: Vec<Vec<u8>>,
    },
    /// Split at keys decided elsewhere (a PD operator); only the ids are missing.
    SplitAt {
        region: Region,
        split_keys: Vec<Vec<u8>>,
    },
}

/// Size and key count of a region's data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegionSize {
    /// Key + value bytes over all data column families.
    pub size: u64,
    /// Keys in the default and write column families (a committed value lives in one or
    /// both; locks are transient and not counted).
    pub keys: u64,
}

/// Estimates the region's size from the engine's table-file indexes, table properties and
/// memtables (`engine::range_stats`): no read of the region's data, so it costs the same
/// for a 1 KiB and a 1 GiB region.
pub fn measure_region(snapshot: &KvSnapshot, region: &Region) -> Result<RegionSize> {
    let start = keys::enc_start_key(&region.start_key);
    let end = keys::enc_end_key(&region.end_key);
    let stats = snapshot.approximate_stats(
        &[(CF_DEFAULT, true), (CF_LOCK, false), (CF_WRITE, true)],
        &start,
        &end,
    )?;
    Ok(RegionSize {
        size: stats.bytes,
        keys: stats.keys,
    })
}

pub fn spawn(
    receiver: Receiver<SplitCheckTask>,
    policy: Arc<dyn SplitPolicy>,
    pd: Arc<dyn PdClient>,
    router: RaftRouter,
    name: String,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name).spawn(move || {
        while let Ok(task) = receiver.recv() {
            match task {
                SplitCheckTask::Check {
                    region,
                    snapshot,
                    qps,
                    load_keys,
                } => check(
                    &router,
                    pd.as_ref(),
                    policy.as_ref(),
                    &region,
                    &snapshot,
                    qps,
                    &load_keys,
                ),
                SplitCheckTask::SplitAt { region, split_keys } => {
                    info!(region_id = region.id, keys = ?split_keys, "splitting as PD asked");
                    let region_id = region.id;
                    let callback = Callback::new(move |resp| {
                        if let Some(e) = resp.response.header.and_then(|h| h.error) {
                            info!(region_id, "split asked by PD refused: {}", e.message);
                        }
                    });
                    propose_split(&router, pd.as_ref(), &region, split_keys, callback);
                }
            }
        }
    })
}

fn check(
    router: &RaftRouter,
    pd: &dyn PdClient,
    policy: &dyn SplitPolicy,
    region: &Region,
    snapshot: &KvSnapshot,
    qps: f64,
    load_keys: &[Vec<u8>],
) {
    let measured = match measure_region(snapshot, region) {
        Ok(m) => m,
        Err(e) => {
            warn!(region_id = region.id, "measuring region failed: {e}");
            return;
        }
    };
    let _ = router.force_send(
        region.id,
        PeerMsg::RegionSize(Box::new(MeasuredRegion {
            region_epoch: region.region_epoch.unwrap_or_default(),
            size: measured.size,
            keys: measured.keys,
        })),
    );
    let input = SplitCheckInput {
        region,
        snapshot,
        qps,
        load_keys,
        region_size: measured.size,
        region_keys: measured.keys,
    };
    let keys = match policy.split_keys(&input) {
        Ok(keys) => keys,
        Err(e) => {
            warn!(region_id = region.id, "split check failed: {e}");
            return;
        }
    };
    if keys.is_empty() {
        return;
    }
    if let Err(why) = validate_split_keys(region, &keys) {
        warn!(
            region_id = region.id,
            policy = policy.name(),
            "bad split keys: {why}"
        );
        return;
    }
    debug!(
        region_id = region.id,
        policy = policy.name(),
        n = keys.len(),
        "split"
    );
    propose_split(router, pd, region, keys, Callback::none());
}

/// Gets ids from PD and sends the split to the region's peer.
pub fn propose_split(
    router: &RaftRouter,
    pd: &dyn PdClient,
    region: &Region,
    split_keys: Vec<Vec<u8>>,
    callback: Callback,
) {
    let ids = match pd.ask_batch_split(region, split_keys.len()) {
        Ok(ids) if ids.len() == split_keys.len() => ids,
        Ok(ids) => {
            warn!(
                region_id = region.id,
                "asked {} split ids, got {}",
                split_keys.len(),
                ids.len()
            );
            return;
        }
        Err(e) => {
            warn!(region_id = region.id, "ask batch split: {e}");
            callback.invoke_with(crate::errors::err_resp(e, 0));
            return;
        }
    };
    let _ = router.force_send(
        region.id,
        PeerMsg::SplitRegion(Box::new(SplitRegion {
            region_epoch: region.region_epoch.unwrap_or_default(),
            split_keys,
            ids,
            callback,
        })),
    );
}
