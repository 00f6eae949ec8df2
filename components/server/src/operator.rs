//! Hands the operator steps PD sends back on the heartbeat stream to the store.

use std::sync::Arc;

use proto::pdpb::RegionHeartbeatResponse;
use raftstore::Store;
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::debug;

/// Forwards every step until the stream's sender side goes away.
pub async fn dispatch_operators(
    store: Arc<Store>,
    mut steps: UnboundedReceiver<RegionHeartbeatResponse>,
) {
    while let Some(step) = steps.recv().await {
        if is_empty_step(&step) {
            continue;
        }
        debug!(region_id = step.region_id, "operator step from pd");
        store.on_pd_operator(step);
    }
}

/// A response that asks for nothing (PD acknowledging a heartbeat).
fn is_empty_step(step: &RegionHeartbeatResponse) -> bool {
    step.change_peer.is_none()
        && step.change_peer_v2.is_none()
        && step.transfer_leader.is_none()
        && step.split_region.is_none()
        && step.merge.is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_responses_with_a_step_count_as_operators() {
        let mut r = RegionHeartbeatResponse {
            region_id: 1,
            ..Default::default()
        };
        assert!(is_empty_step(&r));
        r.split_region = Some(Default::default());
        assert!(!is_empty_step(&r));
        let merge = RegionHeartbeatResponse {
            region_id: 1,
            merge: Some(Default::default()),
            ..Default::default()
        };
        assert!(!is_empty_step(&merge));
    }
}
