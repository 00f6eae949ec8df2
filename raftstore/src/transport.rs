//! How a store hands raft messages to other stores.

use proto::raft_serverpb::RaftMessage;

/// Delivers raft messages to the store named by `to_peer.store_id`. Sending is fire and
/// forget: raft retries on its own, so a lost message costs latency, never correctness.
pub trait Transport: Send + Sync + 'static {
    fn send(&self, msg: RaftMessage);
    /// Pushes buffered messages out; called once per poller round.
    fn flush(&self) {}
}
