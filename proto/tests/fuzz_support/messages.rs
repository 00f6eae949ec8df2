//! Strategies for valid Shoal wire and disk messages, whose encodings the `fuzz_decode`
//! properties mutate (included with `#[path]` by the crates that depend on `proto`).

#![allow(dead_code)]

use proptest::prelude::*;
use proto::eraftpb;
use proto::{keyspacepb, kvrpcpb, metapb, pdpb, raft_cmdpb, raft_serverpb};

/// Short byte strings (keys, values, contexts).
pub fn small_bytes() -> impl Strategy<Value = Vec<u8>> + Clone {
    prop::collection::vec(any::<u8>(), 0..12)
}

/// Printable strings such as column family names and addresses.
pub fn small_string() -> impl Strategy<Value = String> + Clone {
    prop::collection::vec(prop::char::range('!', '~'), 0..10)
        .prop_map(|cs| cs.into_iter().collect())
}

/// An enum value: mostly known, sometimes unknown.
pub fn enum_value(known: i32) -> impl Strategy<Value = i32> + Clone {
    prop_oneof![4 => 0..known, 1 => any::<i32>()]
}

/// A peer with any ids and role.
pub fn peer() -> impl Strategy<Value = metapb::Peer> + Clone {
    (any::<u64>(), any::<u64>(), enum_value(4), any::<bool>()).prop_map(
        |(id, store_id, role, is_witness)| metapb::Peer {
            id,
            store_id,
            role,
            is_witness,
        },
    )
}

/// A region epoch.
pub fn epoch() -> impl Strategy<Value = metapb::RegionEpoch> + Clone {
    (any::<u64>(), any::<u64>())
        .prop_map(|(conf_ver, version)| metapb::RegionEpoch { conf_ver, version })
}

/// A region with short boundaries and up to three peers.
pub fn region() -> impl Strategy<Value = metapb::Region> + Clone {
    (
        any::<u64>(),
        small_bytes(),
        small_bytes(),
        prop::option::of(epoch()),
        prop::collection::vec(peer(), 0..4),
    )
        .prop_map(
            |(id, start_key, end_key, region_epoch, peers)| metapb::Region {
                id,
                start_key,
                end_key,
                region_epoch,
                peers,
            },
        )
}

/// A store as PD keeps it.
pub fn store() -> impl Strategy<Value = metapb::Store> + Clone {
    (
        any::<u64>(),
        small_string(),
        enum_value(3),
        prop::collection::vec((small_string(), small_string()), 0..3),
        small_string(),
        any::<i64>(),
        any::<i64>(),
    )
        .prop_map(
            |(id, address, state, labels, version, start_timestamp, last_heartbeat)| {
                metapb::Store {
                    id,
                    address: address.clone(),
                    state,
                    labels: labels
                        .into_iter()
                        .map(|(key, value)| metapb::StoreLabel { key, value })
                        .collect(),
                    version,
                    peer_address: address.clone(),
                    status_address: address,
                    start_timestamp,
                    last_heartbeat,
                    ..Default::default()
                }
            },
        )
}

/// A snapshot description (`RaftSnapshotData`), mostly naming data CFs.
pub fn snapshot_data() -> impl Strategy<Value = raft_serverpb::RaftSnapshotData> + Clone {
    (
        prop::option::of(region()),
        any::<u64>(),
        prop::collection::vec(
            (
                prop_oneof![
                    Just("default".to_string()),
                    Just("lock".to_string()),
                    Just("write".to_string()),
                    small_string()
                ],
                0u64..64,
                any::<u32>(),
            ),
            0..4,
        ),
    )
        .prop_map(
            |(region, file_size, files)| raft_serverpb::RaftSnapshotData {
                region,
                file_size,
                meta: Some(raft_serverpb::SnapshotMeta {
                    cf_files: files
                        .into_iter()
                        .map(|(cf, size, checksum)| raft_serverpb::SnapshotCfFile {
                            cf,
                            size,
                            checksum,
                        })
                        .collect(),
                }),
            },
        )
}

/// A raft configuration.
pub fn conf_state() -> impl Strategy<Value = eraftpb::ConfState> + Clone {
    let ids = || prop::collection::vec(any::<u64>(), 0..4);
    (ids(), ids(), ids(), ids(), any::<bool>()).prop_map(
        |(voters, learners, voters_outgoing, learners_next, auto_leave)| eraftpb::ConfState {
            voters,
            learners,
            voters_outgoing,
            learners_next,
            auto_leave,
            ..Default::default()
        },
    )
}

/// A raft snapshot whose data is a valid `RaftSnapshotData`.
pub fn raft_snapshot() -> impl Strategy<Value = eraftpb::Snapshot> + Clone {
    (
        snapshot_data(),
        any::<u64>(),
        any::<u64>(),
        prop::option::of(conf_state()),
    )
        .prop_map(|(data, index, term, conf_state)| {
            use prost::Message as _;
            eraftpb::Snapshot {
                data: data.encode_to_vec().into(),
                metadata: Some(eraftpb::SnapshotMetadata {
                    conf_state: conf_state.into(),
                    index,
                    term,
                    ..Default::default()
                })
                .into(),
                ..Default::default()
            }
        })
}

/// A raft log entry of any type.
pub fn entry() -> impl Strategy<Value = eraftpb::Entry> + Clone {
    (
        prop_oneof![
            Just(eraftpb::EntryType::EntryNormal),
            Just(eraftpb::EntryType::EntryConfChange),
            Just(eraftpb::EntryType::EntryConfChangeV2),
        ],
        any::<u64>(),
        any::<u64>(),
        small_bytes(),
        small_bytes(),
    )
        .prop_map(|(entry_type, term, index, data, context)| eraftpb::Entry {
            entry_type,
            term,
            index,
            data: data.into(),
            context: context.into(),
            ..Default::default()
        })
}

/// Every raft message type.
pub fn msg_type() -> impl Strategy<Value = eraftpb::MessageType> + Clone {
    use protobuf::ProtobufEnum as _;
    (0i32..19).prop_map(|v| eraftpb::MessageType::from_i32(v).unwrap_or_default())
}

/// A raft-rs message; a snapshot message always carries a valid snapshot.
pub fn raft_message() -> impl Strategy<Value = eraftpb::Message> + Clone {
    (
        msg_type(),
        (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()),
        (any::<u64>(), any::<u64>(), any::<u64>()),
        prop::collection::vec(entry(), 0..3),
        prop::option::of(raft_snapshot()),
        (any::<bool>(), any::<u64>(), small_bytes(), any::<i64>()),
    )
        .prop_map(
            |(
                msg_type,
                (to, from, term, log_term),
                (index, commit, commit_term),
                entries,
                snapshot,
                (reject, reject_hint, context, priority),
            )| {
                let snapshot = match (msg_type, snapshot) {
                    (eraftpb::MessageType::MsgSnapshot, None) => Some(Default::default()),
                    (_, s) => s,
                };
                eraftpb::Message {
                    msg_type,
                    to,
                    from,
                    term,
                    log_term,
                    index,
                    entries: entries.into(),
                    commit,
                    commit_term,
                    snapshot: snapshot.into(),
                    reject,
                    reject_hint,
                    context: context.into(),
                    priority,
                    ..Default::default()
                }
            },
        )
}

/// A joint-consensus configuration change, as stored in a log entry.
pub fn conf_change_v2() -> impl Strategy<Value = eraftpb::ConfChangeV2> + Clone {
    use protobuf::ProtobufEnum as _;
    (
        0i32..3,
        prop::collection::vec((0i32..3, any::<u64>()), 0..4),
        small_bytes(),
    )
        .prop_map(|(transition, changes, context)| eraftpb::ConfChangeV2 {
            transition: eraftpb::ConfChangeTransition::from_i32(transition).unwrap_or_default(),
            changes: changes
                .into_iter()
                .map(|(t, node_id)| eraftpb::ConfChangeSingle {
                    change_type: eraftpb::ConfChangeType::from_i32(t).unwrap_or_default(),
                    node_id,
                    ..Default::default()
                })
                .collect(),
            context: context.into(),
            ..Default::default()
        })
}

/// A store-to-store message carrying an encoded raft-rs message.
pub fn raft_server_message() -> impl Strategy<Value = raft_serverpb::RaftMessage> + Clone {
    (
        any::<u64>(),
        prop::option::of(peer()),
        prop::option::of(peer()),
        raft_message(),
        prop::option::of(epoch()),
        any::<bool>(),
        small_bytes(),
        small_bytes(),
        prop::option::of((enum_value(3), any::<u64>(), any::<u64>(), any::<u64>())),
    )
        .prop_map(
            |(region_id, from_peer, to_peer, m, region_epoch, is_tombstone, start, end, extra)| {
                use protobuf::Message as _;
                raft_serverpb::RaftMessage {
                    region_id,
                    from_peer,
                    to_peer,
                    message: m.write_to_bytes().expect("encode raft message"),
                    region_epoch,
                    is_tombstone,
                    start_key: start,
                    end_key: end,
                    extra: extra.map(
                        |(r#type, index, commit, term)| raft_serverpb::ExtraMessage {
                            r#type,
                            index,
                            commit,
                            term,
                        },
                    ),
                }
            },
        )
}

/// A `BatchRaft` stream message.
pub fn raft_message_batch() -> impl Strategy<Value = raft_serverpb::RaftMessageBatch> + Clone {
    prop::collection::vec(raft_server_message(), 0..3)
        .prop_map(|msgs| raft_serverpb::RaftMessageBatch { msgs })
}

/// A snapshot stream chunk, with or without a message.
pub fn snapshot_chunk() -> impl Strategy<Value = raft_serverpb::SnapshotChunk> + Clone {
    (prop::option::of(raft_server_message()), small_bytes())
        .prop_map(|(message, data)| raft_serverpb::SnapshotChunk { message, data })
}

/// A region's local state, as stored in CF `raft`.
pub fn region_local_state() -> impl Strategy<Value = raft_serverpb::RegionLocalState> + Clone {
    (enum_value(3), prop::option::of(region())).prop_map(|(state, region)| {
        raft_serverpb::RegionLocalState {
            state,
            region,
            merge_state: None,
        }
    })
}

/// A region's apply state, as stored in CF `raft`.
pub fn apply_state() -> impl Strategy<Value = raft_serverpb::RaftApplyState> + Clone {
    (
        any::<u64>(),
        prop::option::of((any::<u64>(), any::<u64>())),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(
            |(applied_index, truncated, commit_index, commit_term, applied_term)| {
                raft_serverpb::RaftApplyState {
                    applied_index,
                    truncated_state: truncated
                        .map(|(index, term)| raft_serverpb::RaftTruncatedState { index, term }),
                    commit_index,
                    commit_term,
                    applied_term,
                }
            },
        )
}

/// A region's raft state, as stored in the raft log engine.
pub fn raft_local_state() -> impl Strategy<Value = raft_serverpb::RaftLocalState> + Clone {
    any::<[u64; 5]>().prop_map(|[term, vote, commit, last_index, led_term]| {
        raft_serverpb::RaftLocalState {
            term,
            vote,
            commit,
            last_index,
            led_term,
        }
    })
}

/// A store's identity, as stored in CF `raft`.
pub fn store_ident() -> impl Strategy<Value = raft_serverpb::StoreIdent> + Clone {
    (any::<u64>(), any::<u64>()).prop_map(|(cluster_id, store_id)| raft_serverpb::StoreIdent {
        cluster_id,
        store_id,
    })
}

/// The context of a client request.
pub fn kv_context() -> impl Strategy<Value = kvrpcpb::Context> + Clone {
    (
        any::<u64>(),
        prop::option::of(epoch()),
        prop::option::of(peer()),
        any::<u64>(),
        enum_value(3),
        any::<u32>(),
    )
        .prop_map(
            |(region_id, region_epoch, peer, term, api_version, keyspace_id)| kvrpcpb::Context {
                region_id,
                region_epoch,
                peer,
                term,
                api_version,
                keyspace_id,
                ..Default::default()
            },
        )
}

/// A `RawBatchPut` request.
pub fn raw_batch_put() -> impl Strategy<Value = kvrpcpb::RawBatchPutRequest> + Clone {
    (
        prop::option::of(kv_context()),
        prop::collection::vec((small_bytes(), small_bytes()), 0..4),
        small_string(),
        any::<u64>(),
        prop::collection::vec(any::<u64>(), 0..4),
    )
        .prop_map(
            |(context, pairs, cf, ttl, ttls)| kvrpcpb::RawBatchPutRequest {
                context,
                pairs: pairs
                    .into_iter()
                    .map(|(key, value)| kvrpcpb::KvPair {
                        key,
                        value,
                        ..Default::default()
                    })
                    .collect(),
                cf,
                ttl,
                for_cas: ttl % 2 == 0,
                ttls,
            },
        )
}

/// A region heartbeat a leader sends PD.
pub fn region_heartbeat() -> impl Strategy<Value = pdpb::RegionHeartbeatRequest> + Clone {
    (
        any::<u64>(),
        prop::option::of(region()),
        prop::option::of(peer()),
        prop::collection::vec(peer(), 0..3),
        (any::<u64>(), any::<u64>(), any::<u64>()),
    )
        .prop_map(
            |(cluster_id, region, leader, pending_peers, (written, size, term))| {
                pdpb::RegionHeartbeatRequest {
                    header: Some(pdpb::RequestHeader {
                        cluster_id,
                        ..Default::default()
                    }),
                    region,
                    leader,
                    pending_peers,
                    bytes_written: written,
                    approximate_size: size,
                    term,
                    ..Default::default()
                }
            },
        )
}

/// A region as PD stores it.
pub fn pd_region() -> impl Strategy<Value = pdpb::Region> + Clone {
    (
        prop::option::of(region()),
        prop::option::of(peer()),
        prop::collection::vec(peer(), 0..3),
    )
        .prop_map(|(region, leader, pending_peers)| pdpb::Region {
            region,
            leader,
            pending_peers,
            ..Default::default()
        })
}

/// A keyspace as PD keeps it.
pub fn keyspace_meta() -> impl Strategy<Value = keyspacepb::KeyspaceMeta> + Clone {
    (
        any::<u32>(),
        small_string(),
        enum_value(4),
        any::<i64>(),
        prop::collection::hash_map(small_string(), small_string(), 0..3),
    )
        .prop_map(
            |(id, name, state, created_at, config)| keyspacepb::KeyspaceMeta {
                id,
                name,
                state,
                created_at,
                state_changed_at: created_at,
                config,
            },
        )
}

/// A write command, as proposed and stored in a log entry.
pub fn raft_cmd() -> impl Strategy<Value = raft_cmdpb::RaftCmdRequest> + Clone {
    (
        any::<u64>(),
        prop::option::of(peer()),
        prop::option::of(epoch()),
        prop::collection::vec(
            (small_string(), small_bytes(), small_bytes(), enum_value(8)),
            0..3,
        ),
    )
        .prop_map(
            |(region_id, peer, region_epoch, puts)| raft_cmdpb::RaftCmdRequest {
                header: Some(raft_cmdpb::RaftRequestHeader {
                    region_id,
                    peer,
                    region_epoch,
                    ..Default::default()
                }),
                requests: puts
                    .into_iter()
                    .map(|(cf, key, value, cmd_type)| raft_cmdpb::Request {
                        cmd_type,
                        put: Some(raft_cmdpb::PutRequest { cf, key, value }),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            },
        )
}

/// Encodings of valid messages of many kinds: the seeds that `mutated` damages. Field
/// numbers overlap between kinds, so a seed of one kind also exercises the others.
pub fn any_valid_encoding() -> impl Strategy<Value = Vec<u8>> + Clone {
    use prost::Message as _;
    use protobuf::Message as _;
    prop_oneof![
        raft_message_batch().prop_map(|m| m.encode_to_vec()),
        snapshot_chunk().prop_map(|m| m.encode_to_vec()),
        raft_server_message().prop_map(|m| m.encode_to_vec()),
        raft_message().prop_map(|m| m.write_to_bytes().expect("encode")),
        raft_snapshot().prop_map(|m| m.write_to_bytes().expect("encode")),
        entry().prop_map(|m| m.write_to_bytes().expect("encode")),
        conf_change_v2().prop_map(|m| m.write_to_bytes().expect("encode")),
        snapshot_data().prop_map(|m| m.encode_to_vec()),
        region_local_state().prop_map(|m| m.encode_to_vec()),
        apply_state().prop_map(|m| m.encode_to_vec()),
        raft_local_state().prop_map(|m| m.encode_to_vec()),
        raw_batch_put().prop_map(|m| m.encode_to_vec()),
        region_heartbeat().prop_map(|m| m.encode_to_vec()),
        pd_region().prop_map(|m| m.encode_to_vec()),
        store().prop_map(|m| m.encode_to_vec()),
        keyspace_meta().prop_map(|m| m.encode_to_vec()),
        raft_cmd().prop_map(|m| m.encode_to_vec()),
    ]
}
