//! Malformed input, fuzzed: every Shoal message type (prost) and every raft-rs message type
//! (rust-protobuf) fed random bytes and damaged valid encodings, directly and through the
//! gRPC codec of every service (`proto::codec::WireCodec`), must decode to a value that
//! re-encodes to itself or fail with a typed error: never a panic, a hang or an allocation
//! sized by a length prefix. The codec must answer a well-framed undecodable message with
//! `INVALID_ARGUMENT`.
//!
//! Cases per property: `PROPTEST_CASES`, else the defaults below (`make fuzz` runs a million).

#[path = "fuzz_support/mod.rs"]
mod fuzz_support;
#[path = "fuzz_support/messages.rs"]
mod messages;

use std::convert::Infallible;

use bytes::Bytes;
use fuzz_support::{check_alloc, guarded, mutated, random_bytes, run, ALLOC_SLACK};
use http_body::Frame;
use http_body_util::StreamBody;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;
use proto::codec::WireCodec;
use proto::eraftpb;
use proto::{deadlock, errorpb, keyspacepb, kvrpcpb, metapb, pdpb, raft_cmdpb, raft_serverpb};
use tonic::codec::Codec;
use tonic::{Code, Streaming};

/// Cases of the properties that decode one input as every message type.
const EVERY_TYPE_CASES: u32 = 2000;
/// Cases of the codec properties (a gRPC stream per case).
const CODEC_CASES: u32 = 2000;
/// The largest message the codec properties accept, as the services configure one.
const MAX_MESSAGE: usize = 1 << 20;

/// Decodes `input` as a prost message and, if it decodes, checks it re-encodes to an
/// equal value.
fn prost_case<M>(what: &str, input: &[u8]) -> Result<(), TestCaseError>
where
    M: prost::Message + Default + PartialEq + std::fmt::Debug,
{
    let (decoded, peak) = guarded(input, || M::decode(input));
    check_alloc(what, input.len(), peak)?;
    if let Ok(m) = decoded {
        let again = M::decode(m.encode_to_vec().as_slice()).map_err(|e| {
            TestCaseError::fail(format!("{what}: re-encoding fails to decode: {e}"))
        })?;
        prop_assert_eq!(again, m, "{} does not survive re-encoding", what);
    }
    Ok(())
}

/// Decodes `input` as a raft-rs (rust-protobuf) message with `proto::parse_raft` and, if it
/// decodes, checks it re-encodes to an equal value and that rust-protobuf's own
/// `parse_from_bytes` (which must not panic either) decodes the same value. Only `parse_raft`
/// is held to the allocation bound: the library trusts length prefixes for up to 10 MB.
fn rust_protobuf_case<M>(what: &str, input: &[u8]) -> Result<(), TestCaseError>
where
    M: protobuf::Message + PartialEq + Clone,
{
    let (decoded, peak) = guarded(input, || proto::parse_raft::<M>(input));
    check_alloc(what, input.len(), peak)?;
    // The library also accepts some inputs `parse_raft` refuses: at the top level it reads a
    // packed field whose length prefix overruns the input as running to the input's end.
    let (library, _) = guarded(input, || M::parse_from_bytes(input));
    if let Ok(m) = decoded {
        prop_assert!(
            library.ok() == Some(m.clone()),
            "{}: parse_from_bytes decodes it differently",
            what
        );
        let bytes = m.write_to_bytes().map_err(|e| {
            TestCaseError::fail(format!("{what}: decoded value fails to encode: {e}"))
        })?;
        let again = proto::parse_raft::<M>(&bytes).map_err(|e| {
            TestCaseError::fail(format!("{what}: re-encoding fails to decode: {e}"))
        })?;
        prop_assert!(
            same_message(&again, &m),
            "{} does not survive re-encoding",
            what
        );
    }
    Ok(())
}

/// Whether two rust-protobuf values hold the same message. `==` alone is too strict: when a
/// nested message field occurs twice, rust-protobuf 2 clears the first value, which leaves
/// its unknown-field map present but empty, and `UnknownFields` compares a present empty map
/// unequal to an absent one. So values that `==` refuses still count as the same when every
/// known field prints the same (the text format prints no unknown fields) and they encode to
/// the same number of bytes (the unknown fields that remain take the same room).
fn same_message<M: protobuf::Message + PartialEq>(a: &M, b: &M) -> bool {
    a == b
        || (protobuf::text_format::print_to_string(a) == protobuf::text_format::print_to_string(b)
            && a.compute_size() == b.compute_size())
}

/// Runs `$case::<T>` for every listed type.
macro_rules! each_type {
    ($case:ident, $input:expr, [$($ty:path),* $(,)?]) => {{
        $( $case::<$ty>(stringify!($ty), $input)?; )*
    }};
}

/// Every prost message of the wire and of the disk.
fn every_prost_message(input: &[u8]) -> Result<(), TestCaseError> {
    each_type!(
        prost_case,
        input,
        [
            metapb::Cluster,
            metapb::StoreLabel,
            metapb::Store,
            metapb::RegionEpoch,
            metapb::Peer,
            metapb::Region,
            errorpb::NotLeader,
            errorpb::RegionNotFound,
            errorpb::KeyNotInRegion,
            errorpb::EpochNotMatch,
            errorpb::ServerIsBusy,
            errorpb::StaleCommand,
            errorpb::StoreNotMatch,
            errorpb::RaftEntryTooLarge,
            errorpb::MaxTimestampNotSynced,
            errorpb::Error,
            kvrpcpb::Context,
            kvrpcpb::KeyError,
            kvrpcpb::KvPair,
            kvrpcpb::Mutation,
            kvrpcpb::RawGetRequest,
            kvrpcpb::RawGetResponse,
            kvrpcpb::RawBatchGetRequest,
            kvrpcpb::RawBatchGetResponse,
            kvrpcpb::RawPutRequest,
            kvrpcpb::RawPutResponse,
            kvrpcpb::RawBatchPutRequest,
            kvrpcpb::RawBatchPutResponse,
            kvrpcpb::RawDeleteRequest,
            kvrpcpb::RawDeleteResponse,
            kvrpcpb::RawBatchDeleteRequest,
            kvrpcpb::RawBatchDeleteResponse,
            kvrpcpb::RawDeleteRangeRequest,
            kvrpcpb::RawDeleteRangeResponse,
            kvrpcpb::RawScanRequest,
            kvrpcpb::RawScanResponse,
            kvrpcpb::RawBatchScanRequest,
            kvrpcpb::RawBatchScanResponse,
            kvrpcpb::RawCasRequest,
            kvrpcpb::RawCasResponse,
            kvrpcpb::RawGetKeyTtlRequest,
            kvrpcpb::RawGetKeyTtlResponse,
            kvrpcpb::GetRequest,
            kvrpcpb::GetResponse,
            kvrpcpb::ScanRequest,
            kvrpcpb::ScanResponse,
            kvrpcpb::BatchGetRequest,
            kvrpcpb::BatchGetResponse,
            kvrpcpb::PrewriteRequest,
            kvrpcpb::PrewriteResponse,
            kvrpcpb::CommitRequest,
            kvrpcpb::CommitResponse,
            kvrpcpb::BatchRollbackRequest,
            kvrpcpb::BatchRollbackResponse,
            kvrpcpb::PessimisticLockRequest,
            kvrpcpb::PessimisticLockResponse,
            kvrpcpb::PessimisticRollbackRequest,
            kvrpcpb::PessimisticRollbackResponse,
            kvrpcpb::TxnHeartBeatRequest,
            kvrpcpb::TxnHeartBeatResponse,
            kvrpcpb::CheckTxnStatusRequest,
            kvrpcpb::CheckTxnStatusResponse,
            kvrpcpb::CheckSecondaryLocksRequest,
            kvrpcpb::CheckSecondaryLocksResponse,
            kvrpcpb::ResolveLockRequest,
            kvrpcpb::ResolveLockResponse,
            kvrpcpb::ScanLockRequest,
            kvrpcpb::ScanLockResponse,
            kvrpcpb::UnsafeDestroyRangeRequest,
            kvrpcpb::UnsafeDestroyRangeResponse,
            kvrpcpb::MvccGetByKeyRequest,
            kvrpcpb::MvccGetByKeyResponse,
            pdpb::GetMembersRequest,
            pdpb::GetMembersResponse,
            pdpb::TsoRequest,
            pdpb::TsoResponse,
            pdpb::GetRegionRequest,
            pdpb::GetRegionByIdRequest,
            pdpb::GetRegionResponse,
            pdpb::GetStoreRequest,
            pdpb::GetStoreResponse,
            pdpb::GetAllStoresRequest,
            pdpb::GetAllStoresResponse,
            pdpb::UpdateGcSafePointRequest,
            pdpb::UpdateGcSafePointResponse,
            pdpb::GetGcSafePointRequest,
            pdpb::GetGcSafePointResponse,
            pdpb::BootstrapRequest,
            pdpb::BootstrapResponse,
            pdpb::IsBootstrappedRequest,
            pdpb::IsBootstrappedResponse,
            pdpb::AllocIdRequest,
            pdpb::AllocIdResponse,
            pdpb::PutStoreRequest,
            pdpb::PutStoreResponse,
            pdpb::StoreHeartbeatRequest,
            pdpb::StoreHeartbeatResponse,
            pdpb::RegionHeartbeatRequest,
            pdpb::RegionHeartbeatResponse,
            pdpb::AskBatchSplitRequest,
            pdpb::AskBatchSplitResponse,
            pdpb::ReportBatchSplitRequest,
            pdpb::ReportBatchSplitResponse,
            pdpb::ScanRegionsRequest,
            pdpb::ScanRegionsResponse,
            pdpb::Region,
            keyspacepb::KeyspaceMeta,
            keyspacepb::LoadKeyspaceRequest,
            keyspacepb::LoadKeyspaceResponse,
            deadlock::WaitForEntriesRequest,
            deadlock::WaitForEntriesResponse,
            deadlock::WaitForEntry,
            deadlock::DeadlockRequest,
            deadlock::DeadlockResponse,
            raft_cmdpb::RaftCmdRequest,
            raft_cmdpb::RaftCmdResponse,
            raft_serverpb::RaftMessage,
            raft_serverpb::ExtraMessage,
            raft_serverpb::RaftMessageBatch,
            raft_serverpb::Done,
            raft_serverpb::SnapshotChunk,
            raft_serverpb::RaftTruncatedState,
            raft_serverpb::RaftApplyState,
            raft_serverpb::RaftLocalState,
            raft_serverpb::RegionLocalState,
            raft_serverpb::StoreIdent,
            raft_serverpb::SnapshotCfFile,
            raft_serverpb::SnapshotMeta,
            raft_serverpb::RaftSnapshotData,
        ]
    );
    Ok(())
}

/// Every raft-rs message (entries and conf changes come from the raft log on disk; messages
/// and snapshots from other stores).
fn every_raft_message(input: &[u8]) -> Result<(), TestCaseError> {
    each_type!(
        rust_protobuf_case,
        input,
        [
            eraftpb::Message,
            eraftpb::Entry,
            eraftpb::Snapshot,
            eraftpb::SnapshotMetadata,
            eraftpb::HardState,
            eraftpb::ConfState,
            eraftpb::ConfChange,
            eraftpb::ConfChangeSingle,
            eraftpb::ConfChangeV2,
        ]
    );
    Ok(())
}

#[test]
fn fuzz_prost_every_message_random_bytes() {
    run(
        "fuzz_prost_every_message_random_bytes",
        EVERY_TYPE_CASES,
        random_bytes(512),
        |input| every_prost_message(&input),
    );
}

#[test]
fn fuzz_prost_every_message_mutated() {
    run(
        "fuzz_prost_every_message_mutated",
        EVERY_TYPE_CASES,
        mutated(messages::any_valid_encoding()),
        |input| every_prost_message(&input),
    );
}

#[test]
fn fuzz_raft_rs_every_message_random_bytes() {
    run(
        "fuzz_raft_rs_every_message_random_bytes",
        EVERY_TYPE_CASES,
        random_bytes(512),
        |input| every_raft_message(&input),
    );
}

/// A raft message whose snapshot field occurs twice, the first time with an unknown field
/// (found by `fuzz_raft_rs_every_message_mutated`): it decodes, and re-encodes to the same
/// message.
#[test]
fn fuzz_raft_rs_repeated_nested_message_survives_re_encoding() {
    let input = hex_bytes(concat!(
        "080710808080808080800118808080808080808080012080808080808080800128808080808080808001",
        "308080808080808080013a25080110808080808080808001188080808080808080800122030000003207",
        "000000000000003a21080110808080808080808001188080808080808080012202000032053d00000000",
        "4080808080808080808001788080808080808080014a053d000000004080808080808080808001788080",
        "808080808080014a0058808080808080800162090000000000000000008001ffffffffffffffffff01",
    ));
    assert!(proto::parse_raft::<eraftpb::Message>(&input).is_ok());
    every_raft_message(&input).unwrap();
}

/// Bytes from a string of hex digits.
fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digits"))
        .collect()
}

#[test]
fn fuzz_raft_rs_every_message_mutated() {
    run(
        "fuzz_raft_rs_every_message_mutated",
        EVERY_TYPE_CASES,
        mutated(messages::any_valid_encoding()),
        |input| every_raft_message(&input),
    );
}

/// What a codec stream yielded: the messages, then how it ended (`None`: cleanly).
struct StreamOutcome<T> {
    messages: Vec<T>,
    end: Option<tonic::Status>,
}

/// Feeds `chunks` as the body of a gRPC request to the service codec decoding `T`.
fn decode_stream<T>(chunks: Vec<Vec<u8>>) -> StreamOutcome<T>
where
    T: prost::Message + Default + Send + 'static,
{
    let total: usize = chunks.iter().map(Vec::len).sum();
    let frames = futures::stream::iter(
        chunks
            .into_iter()
            .map(|c| Ok::<_, Infallible>(Frame::data(Bytes::from(c)))),
    );
    let decoder = WireCodec::<T, T>::default().decoder();
    let mut stream =
        Streaming::new_request(decoder, StreamBody::new(frames), None, Some(MAX_MESSAGE));
    let mut messages = Vec::new();
    // Each message takes at least its 5-byte header, so a stream that yields more than this
    // does not end.
    for _ in 0..=total / 5 + 1 {
        match futures::executor::block_on(stream.message()) {
            Ok(Some(m)) => messages.push(m),
            Ok(None) => {
                return StreamOutcome {
                    messages,
                    end: None,
                }
            }
            Err(status) => {
                return StreamOutcome {
                    messages,
                    end: Some(status),
                }
            }
        }
    }
    panic!(
        "a gRPC stream of {total} bytes yields more than {} messages",
        total / 5 + 1
    );
}

/// A gRPC length-prefixed message frame.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(0);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Cuts `bytes` into pieces at the given points (the HTTP/2 data frames of the body).
fn split(bytes: Vec<u8>, cuts: &[Index]) -> Vec<Vec<u8>> {
    if bytes.is_empty() {
        return vec![bytes];
    }
    let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len())).collect();
    points.sort_unstable();
    points.dedup();
    let mut out = Vec::new();
    let mut from = 0;
    for p in points {
        out.push(bytes[from..p].to_vec());
        from = p;
    }
    out.push(bytes[from..].to_vec());
    out
}

/// One well-framed body must yield exactly what prost makes of it, and an undecodable one
/// must be answered with `INVALID_ARGUMENT`.
fn framed_body_case<T>(what: &str, body: &[u8], cuts: &[Index]) -> Result<(), TestCaseError>
where
    T: prost::Message + Default + PartialEq + Send + 'static,
{
    let direct = T::decode(body);
    let framed = frame(body);
    let (out, peak) = guarded(&framed, || decode_stream::<T>(split(framed.clone(), cuts)));
    // tonic reserves the announced message length (at most MAX_MESSAGE) before it arrives.
    check_alloc(
        what,
        framed.len(),
        peak.saturating_sub(MAX_MESSAGE + ALLOC_SLACK),
    )?;
    match direct {
        Ok(m) => {
            prop_assert!(
                out.end.is_none(),
                "{}: a decodable message failed: {:?}",
                what,
                out.end
            );
            prop_assert_eq!(out.messages.len(), 1, "{}", what);
            prop_assert!(
                out.messages[0] == m,
                "{}: the codec decoded another value",
                what
            );
        }
        Err(_) => {
            prop_assert!(out.messages.is_empty(), "{}", what);
            let code = out.end.as_ref().map(|s| s.code());
            prop_assert_eq!(
                code,
                Some(Code::InvalidArgument),
                "{}: an undecodable message answered {:?}",
                what,
                out.end
            );
        }
    }
    Ok(())
}

/// The request types of the streams and calls the codec serves.
fn framed_body_every_service(body: &[u8], cuts: &[Index]) -> Result<(), TestCaseError> {
    framed_body_case::<raft_serverpb::RaftMessageBatch>("BatchRaft", body, cuts)?;
    framed_body_case::<raft_serverpb::SnapshotChunk>("Snapshot", body, cuts)?;
    framed_body_case::<kvrpcpb::RawBatchPutRequest>("RawBatchPut", body, cuts)?;
    framed_body_case::<kvrpcpb::RawCasRequest>("RawCompareAndSwap", body, cuts)?;
    framed_body_case::<pdpb::RegionHeartbeatRequest>("RegionHeartbeat", body, cuts)?;
    framed_body_case::<pdpb::TsoRequest>("Tso", body, cuts)?;
    framed_body_case::<pdpb::BootstrapRequest>("Bootstrap", body, cuts)?;
    framed_body_case::<deadlock::DeadlockRequest>("Detect", body, cuts)?;
    Ok(())
}

fn cuts() -> impl Strategy<Value = Vec<Index>> {
    prop::collection::vec(any::<Index>(), 0..4)
}

#[test]
fn fuzz_wire_codec_framed_random_bytes() {
    run(
        "fuzz_wire_codec_framed_random_bytes",
        CODEC_CASES,
        (random_bytes(512), cuts()),
        |(body, cuts)| framed_body_every_service(&body, &cuts),
    );
}

#[test]
fn fuzz_wire_codec_framed_mutated() {
    run(
        "fuzz_wire_codec_framed_mutated",
        CODEC_CASES,
        (mutated(messages::any_valid_encoding()), cuts()),
        |(body, cuts)| framed_body_every_service(&body, &cuts),
    );
}

/// A whole stream (headers included) damaged: whatever the codec yields, it ends, with a
/// gRPC error code a client can act on, and allocates no more than the message limit.
fn damaged_stream_case<T>(what: &str, bytes: &[u8], cuts: &[Index]) -> Result<(), TestCaseError>
where
    T: prost::Message + Default + Send + 'static,
{
    let (out, peak) = guarded(bytes, || decode_stream::<T>(split(bytes.to_vec(), cuts)));
    check_alloc(
        what,
        bytes.len(),
        peak.saturating_sub(MAX_MESSAGE + ALLOC_SLACK),
    )?;
    if let Some(status) = &out.end {
        prop_assert!(
            matches!(
                status.code(),
                // A malformed message; a bad compression flag (gRPC says INTERNAL); a length
                // over the limit; a stream cut inside a message.
                Code::InvalidArgument | Code::Internal | Code::OutOfRange
            ),
            "{}: the damaged stream ended with {:?}",
            what,
            status
        );
    }
    Ok(())
}

/// A valid stream of one to three messages of a kind, as bytes.
fn valid_stream() -> impl Strategy<Value = Vec<u8>> {
    use prost::Message as _;
    prop_oneof![
        prop::collection::vec(messages::raft_message_batch(), 1..=3)
            .prop_map(|ms| ms.iter().flat_map(|m| frame(&m.encode_to_vec())).collect()),
        prop::collection::vec(messages::snapshot_chunk(), 1..=3)
            .prop_map(|ms| ms.iter().flat_map(|m| frame(&m.encode_to_vec())).collect()),
        prop::collection::vec(messages::region_heartbeat(), 1..=3)
            .prop_map(|ms| ms.iter().flat_map(|m| frame(&m.encode_to_vec())).collect()),
    ]
}

#[test]
fn fuzz_wire_codec_damaged_streams() {
    run(
        "fuzz_wire_codec_damaged_streams",
        CODEC_CASES,
        (
            prop_oneof![3 => mutated(valid_stream()), 1 => random_bytes(64)],
            cuts(),
        ),
        |(bytes, cuts)| {
            damaged_stream_case::<raft_serverpb::RaftMessageBatch>("BatchRaft", &bytes, &cuts)?;
            damaged_stream_case::<raft_serverpb::SnapshotChunk>("Snapshot", &bytes, &cuts)?;
            damaged_stream_case::<pdpb::RegionHeartbeatRequest>("RegionHeartbeat", &bytes, &cuts)
        },
    );
}

/// The codec, fed a valid stream, yields its messages in order and ends cleanly: the
/// oracle the damaged-stream property departs from.
#[test]
fn fuzz_wire_codec_valid_streams_round_trip() {
    use prost::Message as _;
    run(
        "fuzz_wire_codec_valid_streams_round_trip",
        CODEC_CASES / 4,
        (
            prop::collection::vec(messages::raft_message_batch(), 0..=3),
            cuts(),
        ),
        |(batches, cuts)| {
            let bytes: Vec<u8> = batches
                .iter()
                .flat_map(|m| frame(&m.encode_to_vec()))
                .collect();
            let out = decode_stream::<raft_serverpb::RaftMessageBatch>(split(bytes, &cuts));
            prop_assert!(out.end.is_none(), "{:?}", out.end);
            prop_assert_eq!(out.messages, batches);
            Ok(())
        },
    );
}

/// A frame announcing 2^32-1 bytes is refused before anything is reserved for it.
#[test]
fn fuzz_wire_codec_huge_frame_length_is_out_of_range() {
    let mut bytes = vec![0, 0xff, 0xff, 0xff, 0xff];
    bytes.extend_from_slice(&[0x0a, 0x00]);
    let (out, peak) = guarded(&bytes, || {
        decode_stream::<raft_serverpb::RaftMessageBatch>(vec![bytes.clone()])
    });
    assert_eq!(out.end.map(|s| s.code()), Some(Code::OutOfRange));
    assert!(peak < MAX_MESSAGE, "reserved {peak} bytes");
}

/// A length-delimited field claiming 2^60 bytes is a decode error, not an allocation.
#[test]
fn fuzz_prost_length_prefix_of_2_pow_60_is_an_error() {
    use prost::Message as _;
    let mut input = vec![0x0a];
    input.extend(fuzz_support::varint(1 << 60));
    let (r, peak) = guarded(&input, || {
        raft_serverpb::RaftMessageBatch::decode(input.as_slice())
    });
    assert!(r.is_err());
    assert!(peak < ALLOC_SLACK, "allocated {peak} bytes");
}

/// Inputs on which rust-protobuf's `parse_from_bytes` reserves what a length prefix claims
/// (10 MB for a 6-byte message claiming a 4 GiB field; 160 KiB and 80 KiB for unknown
/// fields): `parse_raft` must refuse each without allocating more than the input.
#[test]
fn fuzz_raft_rs_length_prefixes_allocate_nothing() {
    let mut data_of_4_gib = vec![0x0a];
    data_of_4_gib.extend(fuzz_support::varint(u64::from(u32::MAX)));
    let mut entry_of_2_pow_40 = vec![0x3a];
    entry_of_2_pow_40.extend(fuzz_support::varint(1 << 40));
    entry_of_2_pow_40.push(0x22);
    entry_of_2_pow_40.extend(fuzz_support::varint(5 << 20));
    let inputs: [&[u8]; 4] = [
        &data_of_4_gib,
        // Unknown field 3 claiming 163,840 bytes (found by fuzz_raft_rs_every_message_mutated).
        &[26, 128, 128, 10, 0, 128, 128, 128, 128, 128, 128, 16],
        // Unknown field 15 claiming 81,920 bytes (found by the random-bytes property).
        &[176, 0, 0, 122, 128, 128, 5, 0],
        // A message's entry claiming 2^40 bytes whose data claims 5 MiB.
        &entry_of_2_pow_40,
    ];
    for input in inputs {
        let (r, peak) = guarded(input, || proto::parse_raft::<eraftpb::Snapshot>(input));
        assert!(r.is_err(), "{input:?}");
        assert!(
            peak < ALLOC_SLACK,
            "Snapshot from {input:?}: allocated {peak} bytes"
        );
        let (r, peak) = guarded(input, || proto::parse_raft::<eraftpb::Message>(input));
        assert!(r.is_err(), "{input:?}");
        assert!(
            peak < ALLOC_SLACK,
            "Message from {input:?}: allocated {peak} bytes"
        );
    }
}

/// `parse_raft` decodes what raft-rs encodes.
#[test]
fn fuzz_raft_rs_parse_raft_round_trips() {
    use protobuf::Message as _;
    run(
        "fuzz_raft_rs_parse_raft_round_trips",
        EVERY_TYPE_CASES / 4,
        messages::raft_message(),
        |m| {
            let bytes = m.write_to_bytes().expect("encode");
            let back = proto::parse_raft::<eraftpb::Message>(&bytes)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(back == m);
            Ok(())
        },
    );
}
