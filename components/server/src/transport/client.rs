//! The sending side of the raft transport: one task per target store owning a `BatchRaft`
//! stream. `send` only queues, so raft threads never wait on the network. While a store
//! cannot be reached its messages are dropped (raft resends) and the stream is reopened with
//! exponential backoff, re-resolving the store's address each time.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pd_client::Backoff;
use prost::Message as _;
use proto::raft_serverpb::{RaftMessage, RaftMessageBatch};
use proto::tikvpb::tikv_client::TikvClient;
use tokio::runtime::Handle;
use tokio::sync::mpsc::{self, error::TryRecvError, UnboundedReceiver, UnboundedSender};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tracing::{debug, info, warn};

use super::connection::{Shared, TransportConfig};
use super::resolve::StoreResolver;
use super::snapshot_send;
use crate::metrics::{RAFT_MESSAGES_DROPPED, RAFT_MESSAGES_SENT, RAFT_STREAM_CONNECTS};

/// `raftstore::Transport` over gRPC.
pub struct RaftTransport {
    shared: Arc<Shared>,
    /// Queue of each target store's task. Dropping the transport ends the tasks.
    queues: Mutex<HashMap<u64, UnboundedSender<RaftMessage>>>,
}

impl RaftTransport {
    /// A transport whose tasks run on `runtime`; snapshot files are read from `snap_dir`.
    pub fn new(
        cfg: TransportConfig,
        snap_dir: PathBuf,
        resolver: Arc<dyn StoreResolver>,
        runtime: Handle,
    ) -> RaftTransport {
        RaftTransport {
            shared: Arc::new(Shared::new(cfg, snap_dir, resolver, runtime)),
            queues: Mutex::new(HashMap::new()),
        }
    }

    fn enqueue(&self, store_id: u64, msg: RaftMessage) {
        let mut queues = self.queues.lock();
        let msg = match queues.get(&store_id) {
            Some(tx) => match tx.send(msg) {
                Ok(()) => return,
                // The task ended (only if its runtime is going away); start another.
                Err(e) => e.0,
            },
            None => msg,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(msg);
        queues.insert(store_id, tx);
        self.shared
            .runtime
            .spawn(run_store_stream(self.shared.clone(), store_id, rx));
    }
}

/// Whether a raft message carries a snapshot (sent on its own stream with its files).
pub use proto::is_snapshot;

impl raftstore::Transport for RaftTransport {
    fn send(&self, msg: RaftMessage) {
        let store_id = msg.to_peer.as_ref().map_or(0, |p| p.store_id);
        if store_id == 0 {
            warn!(
                region_id = msg.region_id,
                "raft message without a target store"
            );
            return;
        }
        if is_snapshot(&msg) {
            let shared = self.shared.clone();
            self.shared
                .runtime
                .spawn(snapshot_send::send(shared, store_id, msg));
            return;
        }
        self.enqueue(store_id, msg);
    }
}

/// Owns the stream to one store until the transport is dropped.
async fn run_store_stream(
    shared: Arc<Shared>,
    store_id: u64,
    mut queue: UnboundedReceiver<RaftMessage>,
) {
    let mut backoff = Backoff::new(shared.cfg.reconnect_base, shared.cfg.reconnect_cap);
    loop {
        match shared.connect(store_id).await {
            Ok(client) => {
                RAFT_STREAM_CONNECTS.with_label_values(&["ok"]).inc();
                backoff.reset();
                info!(store_id, "raft stream connected");
                match pump(&shared.cfg, client, &mut queue).await {
                    StreamEnd::QueueClosed => return,
                    StreamEnd::Broken(why) => {
                        warn!(store_id, %why, "raft stream broke");
                        shared.forget(store_id);
                    }
                }
            }
            Err(why) => {
                RAFT_STREAM_CONNECTS.with_label_values(&["failed"]).inc();
                debug!(store_id, %why, "cannot reach store");
            }
        }
        if !drop_while_waiting(&mut queue, backoff.next_delay()).await {
            return;
        }
    }
}

enum StreamEnd {
    /// The transport is gone.
    QueueClosed,
    Broken(String),
}

/// Sends batches on one `BatchRaft` stream until it breaks or the queue closes.
async fn pump(
    cfg: &TransportConfig,
    mut client: TikvClient<Channel>,
    queue: &mut UnboundedReceiver<RaftMessage>,
) -> StreamEnd {
    let (out_tx, out_rx) = mpsc::channel::<RaftMessageBatch>(8);
    let call = client.batch_raft(ReceiverStream::new(out_rx));
    tokio::pin!(call);
    loop {
        tokio::select! {
            ended = &mut call => {
                return StreamEnd::Broken(match ended {
                    Ok(_) => "store closed the stream".to_string(),
                    Err(status) => status.to_string(),
                });
            }
            first = queue.recv() => {
                let Some(first) = first else { return StreamEnd::QueueClosed };
                let batch = collect_batch(cfg, first, queue);
                let n = batch.msgs.len() as u64;
                tokio::select! {
                    sent = out_tx.send(batch) => {
                        if sent.is_err() {
                            RAFT_MESSAGES_DROPPED.inc_by(n);
                            return StreamEnd::Broken("stream closed".into());
                        }
                        RAFT_MESSAGES_SENT.inc_by(n);
                    }
                    ended = &mut call => {
                        RAFT_MESSAGES_DROPPED.inc_by(n);
                        return StreamEnd::Broken(match ended {
                            Ok(_) => "store closed the stream".to_string(),
                            Err(status) => status.to_string(),
                        });
                    }
                }
            }
        }
    }
}

/// `first` plus whatever is queued, up to the batch limits: one flush per drained queue.
fn collect_batch(
    cfg: &TransportConfig,
    first: RaftMessage,
    queue: &mut UnboundedReceiver<RaftMessage>,
) -> RaftMessageBatch {
    let mut bytes = first.encoded_len();
    let mut msgs = vec![first];
    while msgs.len() < cfg.max_batch_messages && bytes < cfg.max_batch_bytes {
        match queue.try_recv() {
            Ok(m) => {
                bytes += m.encoded_len();
                msgs.push(m);
            }
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
        }
    }
    RaftMessageBatch { msgs }
}

/// Waits `delay`, dropping queued messages meanwhile so an unreachable store costs no
/// memory. False when the queue closed.
async fn drop_while_waiting(queue: &mut UnboundedReceiver<RaftMessage>, delay: Duration) -> bool {
    let wait = tokio::time::sleep(delay);
    tokio::pin!(wait);
    loop {
        tokio::select! {
            _ = &mut wait => return true,
            m = queue.recv() => match m {
                Some(_) => RAFT_MESSAGES_DROPPED.inc(),
                None => return false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use proto::eraftpb::{self, Entry, MessageType};
    use protobuf::Message as _;

    use super::*;

    fn encoded(msg_type: MessageType, entries: usize) -> RaftMessage {
        let mut m = eraftpb::Message::default();
        m.set_msg_type(msg_type);
        m.set_term(7);
        m.set_index(100);
        let mut es = Vec::new();
        for i in 0..entries {
            let mut e = Entry::default();
            e.set_index(101 + i as u64);
            e.set_data(vec![0xAB; 1024].into());
            es.push(e);
        }
        m.set_entries(es.into());
        if msg_type == MessageType::MsgSnapshot {
            m.mut_snapshot().mut_metadata().set_index(100);
            m.mut_snapshot().set_data(vec![1, 2, 3].into());
        }
        RaftMessage {
            region_id: 1,
            message: m.write_to_bytes().expect("encodes"),
            ..Default::default()
        }
    }

    #[test]
    fn only_snapshot_messages_are_snapshots() {
        assert!(is_snapshot(&encoded(MessageType::MsgSnapshot, 0)));
        for t in [
            MessageType::MsgAppend,
            MessageType::MsgAppendResponse,
            MessageType::MsgHeartbeat,
            MessageType::MsgRequestPreVote,
            MessageType::MsgHup,
        ] {
            assert!(!is_snapshot(&encoded(t, 3)), "{t:?}");
        }
    }

    #[test]
    fn bytes_that_do_not_decode_are_no_snapshot() {
        let mut msg = encoded(MessageType::MsgSnapshot, 0);
        // A length-delimited field whose length runs past the end.
        msg.message = vec![0x08, 7, 0x22, 0xFF, 0x01];
        assert!(!is_snapshot(&msg));
        msg.message.clear();
        assert!(!is_snapshot(&msg));
    }
}
