//! raftstore's view of PD, over the async PD client. raftstore calls it from its own
//! threads: split-id requests wait for PD's answer, everything else is fire and forget.

use std::time::Duration;

use pd_client::{PdClient, RegionHeartbeatSender};
use proto::metapb::Region;
use proto::pdpb::{RegionHeartbeatRequest, StoreStats};
use raftstore::SplitIds;
use tokio::runtime::Handle;
use tracing::warn;

use crate::metrics::{SNAPSHOTS_RECEIVING, SNAPSHOTS_SENDING};

/// Implements `raftstore::PdClient` with a real PD.
pub struct PdAdapter {
    pd: PdClient,
    runtime: Handle,
    heartbeats: RegionHeartbeatSender,
    /// Longest wait for split ids.
    split_timeout: Duration,
}

impl PdAdapter {
    pub fn new(
        pd: PdClient,
        runtime: Handle,
        heartbeats: RegionHeartbeatSender,
        split_timeout: Duration,
    ) -> PdAdapter {
        PdAdapter {
            pd,
            runtime,
            heartbeats,
            split_timeout,
        }
    }

    /// Runs `fut` to completion from a thread that may or may not be a runtime thread.
    fn block_on<T: Send + 'static>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = T> + Send + 'static,
    ) -> raftstore::Result<T> {
        if Handle::try_current().is_err() {
            // A plain thread (raftstore workers): block right here.
            return self
                .runtime
                .block_on(async { tokio::time::timeout(self.split_timeout, fut).await })
                .map_err(|_| raftstore::Error::Timeout(format!("{what}: pd did not answer")));
        }
        // Inside the runtime a nested block_on would panic: run it as a task and wait.
        let (tx, rx) = std::sync::mpsc::channel();
        self.runtime.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv_timeout(self.split_timeout)
            .map_err(|_| raftstore::Error::Timeout(format!("{what}: pd did not answer")))
    }
}

impl raftstore::PdClient for PdAdapter {
    fn ask_batch_split(&self, region: &Region, count: usize) -> raftstore::Result<Vec<SplitIds>> {
        let pd = self.pd.clone();
        let region = region.clone();
        let region_id = region.id;
        let count = u32::try_from(count)
            .map_err(|_| raftstore::Error::InvalidRequest(format!("{count} splits at once")))?;
        let ids = self
            .block_on("ask batch split", async move {
                pd.ask_batch_split(&region, count).await
            })?
            .map_err(|e| {
                warn!(region_id, error = %e, "pd refused split ids");
                raftstore::Error::ServerIsBusy(format!("pd cannot allocate split ids: {e}"))
            })?;
        Ok(ids
            .into_iter()
            .map(|s| SplitIds {
                new_region_id: s.new_region_id,
                new_peer_ids: s.new_peer_ids,
            })
            .collect())
    }

    fn report_batch_split(&self, regions: &[Region]) {
        let pd = self.pd.clone();
        let regions = regions.to_vec();
        self.runtime.spawn(async move {
            if let Err(e) = pd.report_batch_split(regions).await {
                warn!(error = %e, "reporting a split to pd failed");
            }
        });
    }

    fn region_heartbeat(&self, req: RegionHeartbeatRequest) {
        self.heartbeats.send(req);
    }

    fn heartbeat_session(&self) -> u32 {
        self.heartbeats.session()
    }

    fn store_heartbeat(&self, mut stats: StoreStats) {
        // The transport knows the snapshots in flight; raftstore does not.
        stats.sending_snap_count = SNAPSHOTS_SENDING.get().max(0) as u32;
        stats.receiving_snap_count = SNAPSHOTS_RECEIVING.get().max(0) as u32;
        let pd = self.pd.clone();
        self.runtime.spawn(async move {
            if let Err(e) = pd.store_heartbeat(stats).await {
                warn!(error = %e, "store heartbeat to pd failed");
            }
        });
    }
}
