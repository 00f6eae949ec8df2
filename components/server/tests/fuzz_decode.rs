//! Malformed input, fuzzed, on a store's own decoders:
//! - the value trailer (`server::kv::value::decode`), on random bytes and damaged values;
//! - raft messages as the store-to-store path decodes them: the `RaftMessage` batch (prost),
//!   the raft-rs message it carries (rust-protobuf), and a snapshot's description
//!   (`raftstore::snap::decode`);
//! - the snapshot stream receiver (`transport::receive::receive_snapshot_files`) fed damaged
//!   first chunks, descriptions and file bytes, cut anywhere.
//!
//! Each must give a valid value or a typed error (`INVALID_ARGUMENT` for a stream): never a
//! panic, a hang or an allocation sized by a length prefix; a refused snapshot stream leaves
//! no file behind.
//!
//! Cases per property: `PROPTEST_CASES`, else the defaults below (`make fuzz` runs a million).

// Streams of `Result<_, tonic::Status>` are what gRPC hands the receiver.
#![allow(clippy::result_large_err)]

#[path = "../../../proto/tests/fuzz_support/mod.rs"]
mod fuzz_support;
#[path = "../../../proto/tests/fuzz_support/messages.rs"]
mod messages;
#[path = "../../../proto/tests/fuzz_support/scratch.rs"]
mod scratch;

use std::path::Path;

use scratch::scratch_dir;

use fuzz_support::{
    check_alloc, guarded, mutated, mutation, random_bytes, run, valid_mutated_or_random, Mutation,
    DEFAULT_CASES,
};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;
use prost::Message as _;
use proto::eraftpb::{self, MessageType};
use proto::raft_serverpb::{RaftMessage, RaftMessageBatch, RaftSnapshotData, SnapshotChunk};
use protobuf::Message as _;
use server::kv::value::{self, ValueError};
use server::transport::client::is_snapshot;
use server::transport::receive::receive_snapshot_files;
use tonic::{Code, Status};

/// Cases of the snapshot-stream properties (each writes and syncs files).
const SNAPSHOT_STREAM_CASES: u32 = 2000;

fn value_case(stored: &[u8]) -> Result<(), TestCaseError> {
    let (decoded, peak) = guarded(stored, || value::decode(stored));
    check_alloc("value::decode", stored.len(), peak)?;
    match decoded {
        Ok(v) => {
            // The parts are exactly the stored bytes, in layout order.
            let mut again = v.user_value.to_vec();
            if let Some(at) = v.expire_at {
                again.extend_from_slice(&at.to_be_bytes());
            }
            again.push(u8::from(v.expire_at.is_some()));
            prop_assert_eq!(again.as_slice(), stored);
        }
        Err(ValueError::Empty) => prop_assert!(stored.is_empty()),
        Err(ValueError::UnknownFlags(f)) => prop_assert_eq!(Some(&f), stored.last()),
        Err(ValueError::TruncatedExpire(n)) => prop_assert!(n == stored.len() && n < 9),
    }
    Ok(())
}

fn valid_stored_value() -> impl Strategy<Value = Vec<u8>> + Clone {
    (
        prop::collection::vec(any::<u8>(), 0..24),
        prop_oneof![Just(0u64), any::<u64>()],
        any::<u64>(),
    )
        .prop_map(|(v, ttl, now)| value::encode(&v, ttl, now))
}

#[test]
fn fuzz_server_value_trailer_random_bytes() {
    run(
        "fuzz_server_value_trailer_random_bytes",
        DEFAULT_CASES,
        random_bytes(64),
        |stored| value_case(&stored),
    );
}

#[test]
fn fuzz_server_value_trailer_mutated() {
    run(
        "fuzz_server_value_trailer_mutated",
        DEFAULT_CASES,
        mutated(valid_stored_value()),
        |stored| value_case(&stored),
    );
}

/// Decodes a batch as the receiving store does: the batch, each raft-rs message (with
/// `proto::parse_raft`, the decoder for untrusted raft-rs bytes), and the description of a
/// snapshot it carries. The sender's `is_snapshot` check (rust-protobuf's own parser, on
/// messages this store made) must not panic either.
fn raft_batch_case(input: &[u8]) -> Result<(), TestCaseError> {
    let (batch, peak) = guarded(input, || -> Option<RaftMessageBatch> {
        let batch = RaftMessageBatch::decode(input).ok()?;
        for msg in &batch.msgs {
            let Ok(m) = proto::parse_raft::<eraftpb::Message>(&msg.message) else {
                continue;
            };
            if m.get_msg_type() == MessageType::MsgSnapshot {
                let _ = raftstore::snap::decode(m.get_snapshot());
            }
        }
        Some(batch)
    });
    check_alloc("raft message batch", input.len(), peak)?;
    for msg in batch.iter().flat_map(|b| &b.msgs) {
        let _ = is_snapshot(msg);
    }
    Ok(())
}

fn valid_batch() -> impl Strategy<Value = Vec<u8>> + Clone {
    messages::raft_message_batch().prop_map(|b| b.encode_to_vec())
}

#[test]
fn fuzz_server_raft_message_batch_random_bytes() {
    run(
        "fuzz_server_raft_message_batch_random_bytes",
        DEFAULT_CASES,
        random_bytes(512),
        |input| raft_batch_case(&input),
    );
}

#[test]
fn fuzz_server_raft_message_batch_mutated() {
    run(
        "fuzz_server_raft_message_batch_mutated",
        DEFAULT_CASES,
        mutated(valid_batch()),
        |input| raft_batch_case(&input),
    );
}

/// `raftstore::snap::decode` on a snapshot whose data is noise or a damaged description.
fn snap_decode_case(data: &[u8]) -> Result<(), TestCaseError> {
    let snapshot = eraftpb::Snapshot {
        data: data.to_vec().into(),
        ..Default::default()
    };
    let (decoded, peak) = guarded(data, || raftstore::snap::decode(&snapshot));
    check_alloc("snap::decode", data.len(), peak)?;
    match (decoded, RaftSnapshotData::decode(data)) {
        (Ok(got), Ok(want)) => prop_assert_eq!(got, want),
        (Err(raftstore::Error::Codec(_)), Err(_)) => {}
        (got, want) => prop_assert!(false, "snap::decode {got:?}, prost {want:?}"),
    }
    Ok(())
}

#[test]
fn fuzz_server_snap_decode() {
    run(
        "fuzz_server_snap_decode",
        DEFAULT_CASES,
        valid_mutated_or_random(
            messages::snapshot_data().prop_map(|d| d.encode_to_vec()),
            256,
        ),
        |data| snap_decode_case(&data),
    );
}

/// What of a valid snapshot stream a case damages.
#[derive(Clone, Debug)]
enum Damage {
    /// The encoded first chunk (then decoded again as the codec would; an undecodable one
    /// never reaches the receiver).
    FirstChunk(Vec<Mutation>),
    /// The raft-rs message inside the first chunk.
    RaftMessage(Vec<Mutation>),
    /// The snapshot description inside the raft-rs message.
    Description(Vec<Mutation>),
    /// The file bytes that follow.
    Files(Vec<Mutation>),
    /// Data in the first chunk.
    DataInFirstChunk(Vec<u8>),
    /// A second chunk carrying a message.
    SecondMessage,
    /// Nothing.
    None,
}

fn damage() -> impl Strategy<Value = Damage> {
    let ms = || prop::collection::vec(mutation(), 1..=3);
    prop_oneof![
        2 => ms().prop_map(Damage::FirstChunk),
        2 => ms().prop_map(Damage::RaftMessage),
        3 => ms().prop_map(Damage::Description),
        2 => ms().prop_map(Damage::Files),
        1 => prop::collection::vec(any::<u8>(), 1..4).prop_map(Damage::DataInFirstChunk),
        1 => Just(Damage::SecondMessage),
        1 => Just(Damage::None),
    ]
}

/// A snapshot message describing files of the data CFs, and file bytes matching the
/// description.
fn valid_snapshot_stream() -> impl Strategy<Value = (RaftMessage, Vec<u8>)> {
    (
        messages::raft_server_message(),
        messages::raft_snapshot(),
        // Usually each data CF at most once, as senders describe them; sometimes one twice.
        prop_oneof![
            3 => prop::sample::subsequence(vec!["default", "lock", "write"], 0..=3),
            1 => prop::collection::vec(prop::sample::select(vec!["default", "lock", "write"]), 2..=4),
        ],
        prop::collection::vec(0usize..48, 4),
        any::<u8>(),
    )
        .prop_map(|(mut msg, mut snapshot, cfs, sizes, fill)| {
            let mut data = RaftSnapshotData::decode(&snapshot.data[..]).expect("valid data");
            let mut bytes = Vec::new();
            let files = cfs
                .iter()
                .zip(&sizes)
                .map(|(cf, &size)| {
                    let file: Vec<u8> = (0..size).map(|i| fill.wrapping_add(i as u8)).collect();
                    bytes.extend_from_slice(&file);
                    proto::raft_serverpb::SnapshotCfFile {
                        cf: cf.to_string(),
                        size: size as u64,
                        checksum: crc32fast::hash(&file),
                    }
                })
                .collect();
            data.meta = Some(proto::raft_serverpb::SnapshotMeta { cf_files: files });
            snapshot.data = data.encode_to_vec().into();
            let mut m = eraftpb::Message::parse_from_bytes(&msg.message).expect("valid message");
            m.set_msg_type(MessageType::MsgSnapshot);
            m.set_snapshot(snapshot);
            msg.message = m.write_to_bytes().expect("encode");
            (msg, bytes)
        })
}

fn apply_all(bytes: &mut Vec<u8>, ms: &[Mutation]) {
    for m in ms {
        fuzz_support::apply(bytes, m);
    }
}

/// The chunks of the damaged stream, or `None` when the damage makes the first chunk
/// undecodable (the codec refuses it before the receiver sees it).
fn damaged_chunks(
    msg: &RaftMessage,
    files: &[u8],
    damage: &Damage,
    cuts: &[Index],
) -> Option<Vec<SnapshotChunk>> {
    let mut msg = msg.clone();
    let mut files = files.to_vec();
    let mut first_data = Vec::new();
    let mut second_message = false;
    match damage {
        Damage::RaftMessage(ms) => apply_all(&mut msg.message, ms),
        Damage::Description(ms) => {
            let mut m = eraftpb::Message::parse_from_bytes(&msg.message).expect("valid message");
            let mut data = m.get_snapshot().data.to_vec();
            apply_all(&mut data, ms);
            m.mut_snapshot().data = data.into();
            msg.message = m.write_to_bytes().expect("encode");
        }
        Damage::Files(ms) => apply_all(&mut files, ms),
        Damage::DataInFirstChunk(d) => first_data = d.clone(),
        Damage::SecondMessage => second_message = true,
        Damage::FirstChunk(_) | Damage::None => {}
    }
    let mut first = SnapshotChunk {
        message: Some(msg.clone()),
        data: first_data,
    };
    if let Damage::FirstChunk(ms) = damage {
        let mut enc = first.encode_to_vec();
        apply_all(&mut enc, ms);
        first = SnapshotChunk::decode(enc.as_slice()).ok()?;
    }
    let mut chunks = vec![first];
    let mut points: Vec<usize> = cuts.iter().map(|i| i.index(files.len() + 1)).collect();
    points.sort_unstable();
    let mut from = 0;
    for p in points.into_iter().chain([files.len()]) {
        if p > from {
            chunks.push(SnapshotChunk {
                message: None,
                data: files[from..p].to_vec(),
            });
            from = p;
        }
    }
    if second_message {
        chunks.push(SnapshotChunk {
            message: Some(msg),
            data: Vec::new(),
        });
    }
    Some(chunks)
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Receives the stream into an empty `dir`: success leaves exactly the described files with
/// the described sizes; a refusal is `INVALID_ARGUMENT` and leaves nothing.
fn snapshot_stream_case(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    chunks: Vec<SnapshotChunk>,
) -> Result<(), TestCaseError> {
    let _ = std::fs::remove_dir_all(dir);
    let input = chunks
        .first()
        .map(|c| c.encode_to_vec())
        .unwrap_or_default();
    let total: usize = chunks.iter().map(|c| c.encoded_len()).sum();
    let items: Vec<Result<SnapshotChunk, Status>> = chunks.into_iter().map(Ok).collect();
    let (result, peak) = guarded(&input, || {
        rt.block_on(receive_snapshot_files(dir, tokio_stream::iter(items)))
    });
    check_alloc("snapshot stream", total, peak)?;
    match result {
        Ok(msg) => {
            let m = eraftpb::Message::parse_from_bytes(&msg.message).map_err(|e| {
                TestCaseError::fail(format!("accepted an undecodable message: {e}"))
            })?;
            prop_assert_eq!(m.get_msg_type(), MessageType::MsgSnapshot);
            let data = raftstore::snap::decode(m.get_snapshot())
                .map_err(|e| TestCaseError::fail(format!("accepted a bad description: {e}")))?;
            let files = raftstore::snap::files(dir, "rev", msg.region_id, m.get_snapshot(), &data);
            for (cf, path, size, _) in &files {
                prop_assert!(
                    engine::DATA_CFS.contains(&cf.as_str()),
                    "accepted CF {:?}",
                    cf
                );
                let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(u64::MAX);
                prop_assert_eq!(len, *size, "{} has the wrong size", path.display());
            }
            let mut want: Vec<String> = files
                .iter()
                .map(|(_, p, _, _)| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect();
            want.sort();
            want.dedup();
            prop_assert_eq!(
                dir_entries(dir),
                want,
                "files other than the described ones"
            );
        }
        Err(status) => {
            prop_assert_eq!(
                status.code(),
                Code::InvalidArgument,
                "refused with {:?}",
                status
            );
            prop_assert_eq!(
                dir_entries(dir),
                Vec::<String>::new(),
                "a refused stream left files behind ({:?})",
                status
            );
        }
    }
    Ok(())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn fuzz_server_snapshot_stream_damaged() {
    let rt = runtime();
    let tmp = scratch_dir();
    let dir = tmp.path().join("snap");
    run(
        "fuzz_server_snapshot_stream_damaged",
        SNAPSHOT_STREAM_CASES,
        (
            valid_snapshot_stream(),
            damage(),
            prop::collection::vec(any::<Index>(), 0..4),
        ),
        |((msg, files), damage, cuts)| match damaged_chunks(&msg, &files, &damage, &cuts) {
            Some(chunks) => snapshot_stream_case(&rt, &dir, chunks),
            None => Ok(()),
        },
    );
}

/// A first chunk whose message is any (possibly damaged) raft message batch member: most are
/// not snapshots, some carry undecodable raft messages or descriptions.
#[test]
fn fuzz_server_snapshot_stream_first_chunk() {
    let rt = runtime();
    let tmp = scratch_dir();
    let dir = tmp.path().join("snap");
    run(
        "fuzz_server_snapshot_stream_first_chunk",
        SNAPSHOT_STREAM_CASES,
        (
            valid_mutated_or_random(
                messages::snapshot_chunk().prop_map(|c| c.encode_to_vec()),
                256,
            ),
            random_bytes(64),
        ),
        |(first, files)| {
            let Ok(first) = SnapshotChunk::decode(first.as_slice()) else {
                return Ok(());
            };
            let chunks = vec![
                first,
                SnapshotChunk {
                    message: None,
                    data: files,
                },
            ];
            snapshot_stream_case(&rt, &dir, chunks)
        },
    );
}

/// Found by `fuzz_server_snapshot_stream_damaged`: a description naming a column family twice
/// made the receiver write both files under one name, fail with `INTERNAL` when moving the
/// second into place, and leave the first behind.
#[test]
fn fuzz_server_snapshot_naming_a_cf_twice_is_refused() {
    let rt = runtime();
    let tmp = scratch_dir();
    let dir = tmp.path().join("snap");
    let files: Vec<u8> = (0u8..8).collect();
    let data = RaftSnapshotData {
        region: Some(proto::metapb::Region {
            id: 3,
            ..Default::default()
        }),
        file_size: 8,
        meta: Some(proto::raft_serverpb::SnapshotMeta {
            cf_files: [("default", &files[..3]), ("default", &files[3..])]
                .iter()
                .map(|(cf, bytes)| proto::raft_serverpb::SnapshotCfFile {
                    cf: cf.to_string(),
                    size: bytes.len() as u64,
                    checksum: crc32fast::hash(bytes),
                })
                .collect(),
        }),
    };
    let mut m = eraftpb::Message::default();
    m.set_msg_type(MessageType::MsgSnapshot);
    m.mut_snapshot().data = data.encode_to_vec().into();
    m.mut_snapshot().mut_metadata().index = 10;
    m.mut_snapshot().mut_metadata().term = 5;
    let msg = RaftMessage {
        region_id: 3,
        message: m.write_to_bytes().unwrap(),
        ..Default::default()
    };
    let chunks = vec![
        SnapshotChunk {
            message: Some(msg),
            data: vec![],
        },
        SnapshotChunk {
            message: None,
            data: files,
        },
    ];
    let items: Vec<Result<SnapshotChunk, Status>> = chunks.into_iter().map(Ok).collect();
    let refused = rt
        .block_on(receive_snapshot_files(&dir, tokio_stream::iter(items)))
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("twice"), "{refused:?}");
    assert_eq!(dir_entries(&dir), Vec::<String>::new());
}
