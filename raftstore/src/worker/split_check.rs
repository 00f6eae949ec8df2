//! The split-check worker: asks the split policy for keys off the raft threads, gets ids for
//! the new regions, and hands the split to the region's peer.

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Receiver;
use engine::KvSnapshot;
use proto::metapb::Region;
use tracing::{debug, warn};

use crate::msg::{Callback, PeerMsg};
use crate::pd_client::PdClient;
use crate::router::RaftRouter;
use crate::split_policy::{validate_split_keys, SplitCheckInput, SplitPolicy};

/// Check one region.
pub struct SplitCheckTask {
    pub region: Region,
    pub snapshot: KvSnapshot,
    pub qps: f64,
    pub load_keys: Vec<Vec<u8>>,
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
            let input = SplitCheckInput {
                region: &task.region,
                snapshot: &task.snapshot,
                qps: task.qps,
                load_keys: &task.load_keys,
            };
            let keys = match policy.split_keys(&input) {
                Ok(keys) => keys,
                Err(e) => {
                    warn!(region_id = task.region.id, "split check failed: {e}");
                    continue;
                }
            };
            if keys.is_empty() {
                continue;
            }
            if let Err(why) = validate_split_keys(&task.region, &keys) {
                warn!(
                    region_id = task.region.id,
                    policy = policy.name(),
                    "bad split keys: {why}"
                );
                continue;
            }
            debug!(
                region_id = task.region.id,
                policy = policy.name(),
                n = keys.len(),
                "split"
            );
            propose_split(&router, pd.as_ref(), &task.region, keys, Callback::none());
        }
    })
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
        PeerMsg::SplitRegion {
            region_epoch: region.region_epoch.unwrap_or_default(),
            split_keys,
            ids,
            callback,
        },
    );
}
