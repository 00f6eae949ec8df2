//! The open region heartbeat streams, one per store, so PD can send an operator step to a
//! region's leader as soon as the step is decided instead of waiting for its next heartbeat.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use proto::pdpb::RegionHeartbeatResponse;
use tokio::sync::mpsc;
use tonic::Status;

pub type ResponseSender = mpsc::Sender<Result<RegionHeartbeatResponse, Status>>;

#[derive(Default)]
pub struct HeartbeatStreams {
    next_id: AtomicU64,
    by_store: Mutex<HashMap<u64, (u64, ResponseSender)>>,
}

impl HeartbeatStreams {
    /// An id telling one stream from another.
    pub fn new_stream_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Makes `sender` the way to reach `store_id` (a store's newest stream wins).
    pub fn register(&self, store_id: u64, stream_id: u64, sender: ResponseSender) {
        self.by_store.lock().insert(store_id, (stream_id, sender));
    }

    /// Forgets a closed stream, unless the store opened a newer one meanwhile.
    pub fn unregister(&self, store_id: u64, stream_id: u64) {
        let mut map = self.by_store.lock();
        if map.get(&store_id).is_some_and(|(id, _)| *id == stream_id) {
            map.remove(&store_id);
        }
    }

    /// Whether the store has a heartbeat stream PD can send on: one a region report of the
    /// store arrived on since PD started.
    pub fn is_open(&self, store_id: u64) -> bool {
        self.by_store
            .lock()
            .get(&store_id)
            .is_some_and(|(_, s)| !s.is_closed())
    }

    /// Sends without waiting; false if the store has no open stream or it is full (the step is
    /// sent again later).
    pub fn send(&self, store_id: u64, resp: RegionHeartbeatResponse) -> bool {
        let sender = self.by_store.lock().get(&store_id).map(|(_, s)| s.clone());
        match sender {
            Some(s) => s.try_send(Ok(resp)).is_ok(),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_stream_of_a_store_receives() {
        let streams = HeartbeatStreams::default();
        let (tx1, mut rx1) = mpsc::channel(4);
        let (tx2, mut rx2) = mpsc::channel(4);
        let (a, b) = (streams.new_stream_id(), streams.new_stream_id());
        assert!(!streams.is_open(1));
        assert!(!streams.send(1, RegionHeartbeatResponse::default()));
        streams.register(1, a, tx1);
        assert!(streams.is_open(1));
        streams.register(1, b, tx2);
        streams.unregister(1, a);
        assert!(streams.send(1, RegionHeartbeatResponse::default()));
        assert!(rx1.try_recv().is_err());
        assert!(rx2.try_recv().is_ok());
        streams.unregister(1, b);
        assert!(!streams.is_open(1));
        assert!(!streams.send(1, RegionHeartbeatResponse::default()));
    }
}
