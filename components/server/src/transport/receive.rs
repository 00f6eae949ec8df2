//! The receiving ends of the store-to-store streams: raft message batches go straight to the
//! store's router; a snapshot's files are written to the snapshot directory before its
//! message is delivered, so raft only sees a snapshot whose files are complete.

// gRPC handlers answer with `tonic::Status`, as the generated service trait requires.
#![allow(clippy::result_large_err)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::{Stream, StreamExt};
use proto::eraftpb::{self, MessageType};
use proto::raft_serverpb::{Done, RaftMessage, RaftMessageBatch, SnapshotChunk};
use raftstore::Store;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;
use tonic::{Status, Streaming};
use tracing::{debug, info, warn};

use crate::metrics::{
    result_label, GaugeGuard, RAFT_MESSAGES_RECEIVED, SNAPSHOTS_RECEIVING, SNAPSHOT_RECEIVES,
};

/// Snapshots received at once; more wait their turn.
const MAX_CONCURRENT_RECEIVES: usize = 4;
static RECEIVE_SLOTS: Semaphore = Semaphore::const_new(MAX_CONCURRENT_RECEIVES);

/// Feeds every message of a `BatchRaft` stream to the store until the sender closes it.
pub async fn handle_batch_raft(
    store: Arc<Store>,
    mut stream: Streaming<RaftMessageBatch>,
) -> Result<Done, Status> {
    while let Some(batch) = stream.message().await? {
        RAFT_MESSAGES_RECEIVED.inc_by(batch.msgs.len() as u64);
        // One stream carries one store's messages.
        if let Some(from_store) = batch
            .msgs
            .first()
            .and_then(|m| m.from_peer.map(|p| p.store_id))
        {
            store.heard_from_store(from_store);
        }
        for msg in batch.msgs {
            let region_id = msg.region_id;
            if let Err(e) = store.on_raft_message(msg) {
                // Raft resends what matters; a message for a stopping store or a region
                // that cannot take it is only logged.
                debug!(region_id, error = %e, "raft message not delivered");
            }
        }
    }
    Ok(Done {})
}

/// Receives one region snapshot: the first chunk carries the raft message, the rest the
/// snapshot's files back to back. The files are complete and synced before the message
/// reaches the store.
pub async fn handle_snapshot(
    store: Arc<Store>,
    snap_dir: PathBuf,
    stream: Streaming<SnapshotChunk>,
) -> Result<Done, Status> {
    let _slot = RECEIVE_SLOTS
        .acquire()
        .await
        .map_err(|_| Status::unavailable("snapshot receiving is shut down"))?;
    let _receiving = GaugeGuard::new(&SNAPSHOTS_RECEIVING);
    let result = receive_snapshot_files(&snap_dir, stream).await;
    let result = match result {
        Ok(msg) => {
            let region_id = msg.region_id;
            // A snapshot from a region's leader shows its store alive as much as an append
            // does: a follower takes the leader's store for silent (and stops guarding its
            // lease, see `Peer::on_store_unreachable`) only if nothing at all came from it.
            if let Some(from) = msg.from_peer.as_ref() {
                store.heard_from_store(from.store_id);
            }
            store.on_raft_message(msg).map_err(|e| {
                Status::unavailable(format!(
                    "store cannot take region {region_id}'s snapshot: {e}"
                ))
            })
        }
        Err(e) => Err(e),
    };
    SNAPSHOT_RECEIVES
        .with_label_values(&[result_label(&result)])
        .inc();
    if let Err(status) = &result {
        warn!(%status, "snapshot receive failed");
    }
    result.map(|()| Done {})
}

/// Reads a snapshot stream into its files under `snap_dir` and returns its raft message.
/// Any failure removes what was written.
pub async fn receive_snapshot_files<S>(
    snap_dir: &Path,
    mut stream: S,
) -> Result<RaftMessage, Status>
where
    S: Stream<Item = Result<SnapshotChunk, Status>> + Unpin,
{
    let first = stream
        .next()
        .await
        .transpose()?
        .ok_or_else(|| Status::invalid_argument("empty snapshot stream"))?;
    let msg = first
        .message
        .ok_or_else(|| Status::invalid_argument("first snapshot chunk carries no message"))?;
    if !first.data.is_empty() {
        return Err(Status::invalid_argument(
            "first snapshot chunk must carry no data",
        ));
    }
    let files = described_files(snap_dir, &msg)?;
    tokio::fs::create_dir_all(snap_dir)
        .await
        .map_err(|e| io_status(snap_dir, e))?;
    let mut writer = SnapshotFileWriter::new(files);
    let written = async {
        while let Some(chunk) = stream.next().await.transpose()? {
            if chunk.message.is_some() {
                return Err(Status::invalid_argument(
                    "only the first snapshot chunk may carry a message",
                ));
            }
            writer.write(&chunk.data).await?;
        }
        writer.finish().await
    }
    .await;
    if let Err(e) = written {
        writer.discard().await;
        return Err(e);
    }
    info!(region_id = msg.region_id, "snapshot received");
    Ok(msg)
}

/// Final paths and sizes of the files a snapshot message describes.
fn described_files(snap_dir: &Path, msg: &RaftMessage) -> Result<Vec<(PathBuf, u64)>, Status> {
    let m = proto::parse_raft::<eraftpb::Message>(&msg.message)
        .map_err(|e| Status::invalid_argument(format!("undecodable raft message: {e}")))?;
    if m.get_msg_type() != MessageType::MsgSnapshot {
        return Err(Status::invalid_argument(format!(
            "snapshot stream carries a {:?}, not a snapshot",
            m.get_msg_type()
        )));
    }
    let snapshot = m.get_snapshot();
    let data = raftstore::snap::decode(snapshot)
        .map_err(|e| Status::invalid_argument(format!("undecodable snapshot description: {e}")))?;
    // The column family names become file names: only known ones are accepted, each once
    // (a second file of the same name would overwrite the first).
    let mut named = Vec::new();
    for f in data.meta.iter().flat_map(|m| m.cf_files.iter()) {
        if !engine::DATA_CFS.contains(&f.cf.as_str()) {
            return Err(Status::invalid_argument(format!(
                "snapshot names unknown column family {:?}",
                f.cf
            )));
        }
        if named.contains(&f.cf.as_str()) {
            return Err(Status::invalid_argument(format!(
                "snapshot names column family {:?} twice",
                f.cf
            )));
        }
        named.push(f.cf.as_str());
    }
    Ok(
        raftstore::snap::files(snap_dir, "rev", msg.region_id, snapshot, &data)
            .into_iter()
            .map(|(_, path, size, _)| (path, size))
            .collect(),
    )
}

fn io_status(path: &Path, e: std::io::Error) -> Status {
    Status::internal(format!("snapshot file {}: {e}", path.display()))
}

/// Distinguishes temporary files of concurrent receives.
static NEXT_RECEIVE: AtomicU64 = AtomicU64::new(0);

/// Splits a byte stream into files of the described sizes. Each file is written under a
/// temporary name, synced, and renamed only once every file is complete.
pub struct SnapshotFileWriter {
    /// (final path, temporary path, size) in stream order.
    files: Vec<(PathBuf, PathBuf, u64)>,
    current: usize,
    written_in_current: u64,
    /// Bytes written to the open file since it was last synced.
    unsynced: u64,
    open: Option<tokio::fs::File>,
}

/// A received file is synced after every this-many bytes, so a large snapshot reaches the
/// disk as it arrives rather than in one burst that would hold up the write path's fsyncs.
const RECEIVE_SYNC_BYTES: u64 = 4 * 1024 * 1024;

impl SnapshotFileWriter {
    pub fn new(files: Vec<(PathBuf, u64)>) -> SnapshotFileWriter {
        let receive = NEXT_RECEIVE.fetch_add(1, Ordering::Relaxed);
        let files = files
            .into_iter()
            .map(|(path, size)| {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                // Not starting with the final prefix, so cleanup of old snapshot files
                // never touches a receive in progress.
                let tmp =
                    path.with_file_name(format!("tmp_{}_{receive}_{name}", std::process::id()));
                (path, tmp, size)
            })
            .collect();
        SnapshotFileWriter {
            files,
            current: 0,
            written_in_current: 0,
            unsynced: 0,
            open: None,
        }
    }

    /// Appends bytes of the stream; more than described is an error.
    pub async fn write(&mut self, mut data: &[u8]) -> Result<(), Status> {
        while !data.is_empty() {
            self.close_full_files().await?;
            let Some((_, tmp, size)) = self.files.get(self.current).cloned() else {
                return Err(Status::invalid_argument(
                    "snapshot stream carries more bytes than its files describe",
                ));
            };
            if self.open.is_none() {
                let f = tokio::fs::File::create(&tmp)
                    .await
                    .map_err(|e| io_status(&tmp, e))?;
                self.open = Some(f);
            }
            let room = (size - self.written_in_current) as usize;
            let (now, rest) = data.split_at(room.min(data.len()));
            if let Some(f) = self.open.as_mut() {
                f.write_all(now).await.map_err(|e| io_status(&tmp, e))?;
                self.unsynced += now.len() as u64;
                if self.unsynced >= RECEIVE_SYNC_BYTES {
                    f.sync_data().await.map_err(|e| io_status(&tmp, e))?;
                    self.unsynced = 0;
                }
            }
            self.written_in_current += now.len() as u64;
            data = rest;
        }
        Ok(())
    }

    /// Syncs and closes the files that are complete (including empty ones), moving on.
    async fn close_full_files(&mut self) -> Result<(), Status> {
        while let Some((_, tmp, size)) = self.files.get(self.current).cloned() {
            if self.written_in_current < size {
                return Ok(());
            }
            let f = match self.open.take() {
                Some(f) => f,
                None => tokio::fs::File::create(&tmp)
                    .await
                    .map_err(|e| io_status(&tmp, e))?,
            };
            f.sync_all().await.map_err(|e| io_status(&tmp, e))?;
            self.current += 1;
            self.written_in_current = 0;
            self.unsynced = 0;
        }
        Ok(())
    }

    /// Checks every file is complete and moves them to their final names.
    pub async fn finish(&mut self) -> Result<(), Status> {
        self.close_full_files().await?;
        if let Some((path, _, size)) = self.files.get(self.current) {
            return Err(Status::invalid_argument(format!(
                "snapshot stream ended early: {} has {} of {size} bytes",
                path.display(),
                self.written_in_current
            )));
        }
        for (path, tmp, _) in &self.files {
            tokio::fs::rename(tmp, path)
                .await
                .map_err(|e| io_status(path, e))?;
        }
        if let Some(dir) = self.files.first().and_then(|(p, _, _)| p.parent()) {
            sync_dir(dir).await.map_err(|e| io_status(dir, e))?;
        }
        Ok(())
    }

    /// Removes every temporary file (after a failure).
    pub async fn discard(&mut self) {
        self.open = None;
        for (_, tmp, _) in &self.files {
            if let Err(e) = tokio::fs::remove_file(tmp).await {
                if e.kind() != std::io::ErrorKind::NotFound {
                    warn!(path = %tmp.display(), error = %e, "cannot remove partial snapshot file");
                }
            }
        }
    }
}

/// Makes renames in `dir` durable.
async fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || std::fs::File::open(&dir)?.sync_all())
        .await
        .map_err(std::io::Error::other)?
}
