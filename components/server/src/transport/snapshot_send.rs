//! Streaming one region snapshot to another store: the raft message first, then the
//! snapshot's files in the order they are described, in 1 MiB chunks. Failures are logged
//! and counted; raftstore resends a snapshot that never got applied.

use std::path::PathBuf;
use std::sync::Arc;

use proto::eraftpb;
use proto::raft_serverpb::{RaftMessage, SnapshotChunk};
use protobuf::Message as _;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{info, warn};

use super::connection::Shared;
use crate::metrics::{result_label, GaugeGuard, SNAPSHOTS_SENDING, SNAPSHOT_SENDS};

const CHUNK_SIZE: usize = 1024 * 1024;

/// Sends the snapshot in `msg` to `store_id`, at most `snapshot_concurrency` at a time.
pub(crate) async fn send(shared: Arc<Shared>, store_id: u64, msg: RaftMessage) {
    let region_id = msg.region_id;
    let Ok(_slot) = shared.snapshot_slots.acquire().await else {
        return;
    };
    let _sending = GaugeGuard::new(&SNAPSHOTS_SENDING);
    let result = match tokio::time::timeout(
        shared.cfg.snapshot_timeout,
        send_files(&shared, store_id, msg),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => Err(format!("timed out after {:?}", shared.cfg.snapshot_timeout)),
    };
    SNAPSHOT_SENDS
        .with_label_values(&[result_label(&result)])
        .inc();
    match result {
        Ok(bytes) => info!(region_id, store_id, bytes, "snapshot sent"),
        Err(why) => warn!(region_id, store_id, %why, "snapshot send failed"),
    }
}

/// The snapshot files `msg` describes on the sending side: (path, size).
fn files_of(shared: &Shared, msg: &RaftMessage) -> Result<Vec<(PathBuf, u64)>, String> {
    let m = eraftpb::Message::parse_from_bytes(&msg.message)
        .map_err(|e| format!("undecodable raft message: {e}"))?;
    let snapshot = m.get_snapshot();
    let data = raftstore::snap::decode(snapshot).map_err(|e| e.to_string())?;
    Ok(
        raftstore::snap::files(&shared.snap_dir, "gen", msg.region_id, snapshot, &data)
            .into_iter()
            .map(|(_, path, size, _)| (path, size))
            .collect(),
    )
}

/// Streams the message and files; returns the file bytes sent.
async fn send_files(shared: &Shared, store_id: u64, msg: RaftMessage) -> Result<u64, String> {
    let files = files_of(shared, &msg)?;
    let mut client = shared.connect(store_id).await?;
    let (tx, rx) = mpsc::channel::<SnapshotChunk>(4);
    let call = client.snapshot(ReceiverStream::new(rx));
    let produce = async move {
        let first = SnapshotChunk {
            message: Some(msg),
            data: Vec::new(),
        };
        tx.send(first)
            .await
            .map_err(|_| "receiver closed the stream".to_string())?;
        let mut total = 0;
        for (path, size) in files {
            total += stream_file(&tx, &path, size).await?;
        }
        // Dropping the sender ends the stream, which tells the receiver it has everything.
        Ok::<u64, String>(total)
    };
    let (answer, produced) = tokio::join!(call, produce);
    let total = produced?;
    answer.map_err(|s| format!("receiver refused: {s}"))?;
    Ok(total)
}

/// Sends exactly `size` bytes of `path`; a file of another size is an error.
async fn stream_file(
    tx: &mpsc::Sender<SnapshotChunk>,
    path: &std::path::Path,
    size: u64,
) -> Result<u64, String> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut reader = file.take(size);
    let mut sent = 0u64;
    loop {
        let mut buf = vec![0u8; CHUNK_SIZE];
        let mut filled = 0;
        // Fill whole chunks so the receiver sees few, large messages.
        while filled < CHUNK_SIZE {
            let n = reader
                .read(&mut buf[filled..])
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            break;
        }
        buf.truncate(filled);
        sent += filled as u64;
        let chunk = SnapshotChunk {
            message: None,
            data: buf,
        };
        tx.send(chunk)
            .await
            .map_err(|_| "receiver closed the stream".to_string())?;
    }
    if sent != size {
        return Err(format!(
            "{} holds {sent} bytes, its snapshot describes {size}",
            path.display()
        ));
    }
    Ok(sent)
}
