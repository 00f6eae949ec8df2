//! Receiving a snapshot stream: the bytes are split into the described files, and a stream
//! that does not match its description is refused without leaving files behind.

// Streams of `Result<_, tonic::Status>` are what gRPC hands the receiver.
#![allow(clippy::result_large_err)]

mod common;

use common::{snap_file, snapshot_message};
use proto::raft_serverpb::SnapshotChunk;
use server::transport::receive::receive_snapshot_files;
use tonic::{Code, Status};

const DEFAULT: &[u8] = b"0123456789abcdefghij";
const WRITE: &[u8] = b"WRITE-CF";

fn chunks(region_id: u64, data: &[&[u8]]) -> Vec<Result<SnapshotChunk, Status>> {
    let msg = snapshot_message(region_id, 2, &[("default", DEFAULT), ("write", WRITE)]);
    let mut v = vec![Ok(SnapshotChunk {
        message: Some(msg),
        data: vec![],
    })];
    v.extend(data.iter().map(|d| {
        Ok(SnapshotChunk {
            message: None,
            data: d.to_vec(),
        })
    }));
    v
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn a_byte_stream_is_split_into_the_described_files() {
    let dir = tempfile::tempdir().unwrap();
    let all: Vec<u8> = [DEFAULT, WRITE].concat();
    // Chunk boundaries that straddle the two files.
    let parts: Vec<&[u8]> = vec![&all[..7], &all[7..23], &all[23..]];
    let msg = receive_snapshot_files(dir.path(), tokio_stream::iter(chunks(3, &parts)))
        .await
        .unwrap();
    assert_eq!(msg.region_id, 3);
    assert_eq!(
        std::fs::read(snap_file(dir.path(), "rev", 3, "default")).unwrap(),
        DEFAULT
    );
    assert_eq!(
        std::fs::read(snap_file(dir.path(), "rev", 3, "write")).unwrap(),
        WRITE
    );
    assert_eq!(files_in(dir.path()).len(), 2, "{:?}", files_in(dir.path()));
}

#[tokio::test]
async fn a_short_stream_is_refused_and_leaves_no_files() {
    let dir = tempfile::tempdir().unwrap();
    let all: Vec<u8> = [DEFAULT, WRITE].concat();
    let short: Vec<&[u8]> = vec![&all[..all.len() - 1]];
    let err = receive_snapshot_files(dir.path(), tokio_stream::iter(chunks(3, &short)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("ended early"), "{}", err.message());
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
}

#[tokio::test]
async fn a_long_stream_is_refused_and_leaves_no_files() {
    let dir = tempfile::tempdir().unwrap();
    let all: Vec<u8> = [DEFAULT, WRITE, b"x"].concat();
    let err = receive_snapshot_files(dir.path(), tokio_stream::iter(chunks(3, &[&all])))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("more bytes"), "{}", err.message());
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
}

#[tokio::test]
async fn a_stream_without_its_message_first_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let no_message = vec![Ok(SnapshotChunk {
        message: None,
        data: b"data".to_vec(),
    })];
    let err = receive_snapshot_files(dir.path(), tokio_stream::iter(no_message))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    let empty: Vec<Result<SnapshotChunk, Status>> = vec![];
    let err = receive_snapshot_files(dir.path(), tokio_stream::iter(empty))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // A heartbeat is not a snapshot.
    let heartbeat = vec![Ok(SnapshotChunk {
        message: Some(common::heartbeat(1, 2, 1)),
        data: vec![],
    })];
    let err = receive_snapshot_files(dir.path(), tokio_stream::iter(heartbeat))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn a_column_family_name_cannot_escape_the_snapshot_directory() {
    let dir = tempfile::tempdir().unwrap();
    let msg = snapshot_message(3, 2, &[("../../evil", b"x")]);
    let stream = vec![
        Ok(SnapshotChunk {
            message: Some(msg),
            data: vec![],
        }),
        Ok(SnapshotChunk {
            message: None,
            data: b"x".to_vec(),
        }),
    ];
    let err = receive_snapshot_files(dir.path(), tokio_stream::iter(stream))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(files_in(dir.path()).is_empty());
}

#[tokio::test]
async fn an_empty_snapshot_needs_no_data() {
    let dir = tempfile::tempdir().unwrap();
    let msg = snapshot_message(4, 2, &[]);
    let stream = vec![Ok(SnapshotChunk {
        message: Some(msg),
        data: vec![],
    })];
    let got = receive_snapshot_files(dir.path(), tokio_stream::iter(stream))
        .await
        .unwrap();
    assert_eq!(got.region_id, 4);
}
