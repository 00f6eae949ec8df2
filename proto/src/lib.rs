//! Shoal's wire messages: wire-compatible subsets of TiKV's kvproto (`metapb`, `errorpb`,
//! `kvrpcpb`, `tikvpb`, `pdpb`, `keyspacepb`, `deadlock`) and
//! Shoal's own store-to-store and Raft command messages (`raft_serverpb`, `raft_cmdpb`).
//!
//! Raft's own messages (`eraftpb`) come from raft-rs (rust-protobuf) and are re-exported here;
//! where a prost message carries one, the field is `bytes` holding the rust-protobuf encoding.

#![allow(clippy::all)]

pub mod codec;

pub mod metapb {
    tonic::include_proto!("metapb");
}
pub mod errorpb {
    tonic::include_proto!("errorpb");
}
pub mod raft_cmdpb {
    tonic::include_proto!("raft_cmdpb");
}
pub mod raft_serverpb {
    tonic::include_proto!("raft_serverpb");
}
pub mod deadlock {
    tonic::include_proto!("deadlock");
}
pub mod kvrpcpb {
    tonic::include_proto!("kvrpcpb");
}
pub mod tikvpb {
    tonic::include_proto!("tikvpb");
}
pub mod pdpb {
    tonic::include_proto!("pdpb");
}
pub mod keyspacepb {
    tonic::include_proto!("keyspacepb");
}

pub use raft_proto::eraftpb;

/// Decodes a raft-rs (rust-protobuf) message from bytes that came from another store or
/// from disk.
///
/// Use it instead of `Message::parse_from_bytes` for any input not produced by this process:
/// rust-protobuf 2 reserves room for a `bytes` field or an unknown length-delimited field on
/// the word of its length prefix before checking that the input holds that many bytes (up to
/// 10 MB each: a 6-byte message claiming a 4 GiB field allocates 10 MB). Here the input's own
/// length is the outermost limit, which every nested length is checked against before
/// anything is reserved, and `bytes` fields are slices of one copy of the input. A length
/// prefix that overruns the input is an error (`parse_from_bytes` reads one of a packed field
/// at the top level as running to the input's end); any value returned is the one
/// `parse_from_bytes` returns.
pub fn parse_raft<M: protobuf::Message>(bytes: &[u8]) -> protobuf::ProtobufResult<M> {
    let input = bytes::Bytes::copy_from_slice(bytes);
    let mut is = protobuf::CodedInputStream::from_carllerche_bytes(&input);
    let outer = is.push_limit(input.len() as u64)?;
    let m = M::parse_from(&mut is)?;
    is.pop_limit(outer);
    is.check_eof()?;
    Ok(m)
}

/// The type field (eraftpb `Message.msg_type`, tag 1) of an encoded raft-rs message; prost
/// skips every other field without copying it, so probing an append full of entries costs
/// no allocation (a full rust-protobuf parse would copy every entry).
#[derive(Clone, PartialEq, prost::Message)]
struct MsgTypeProbe {
    #[prost(int32, tag = "1")]
    msg_type: i32,
}

/// Whether a raft message carries a snapshot (its raft-rs message is a `MsgSnapshot`).
/// Bytes that do not decode are no snapshot.
pub fn is_snapshot(msg: &raft_serverpb::RaftMessage) -> bool {
    use prost::Message as _;
    if msg.message.is_empty() {
        return false;
    }
    MsgTypeProbe::decode(&msg.message[..])
        .is_ok_and(|m| m.msg_type == eraftpb::MessageType::MsgSnapshot as i32)
}

#[cfg(test)]
mod tests {
    use prost::Message as _;
    use protobuf::Message as _;

    use super::*;

    #[test]
    fn raw_put_uses_the_client_field_numbers() {
        let req = kvrpcpb::RawPutRequest {
            context: None,
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            cf: "default".into(),
            ttl: 5,
            for_cas: true,
        };
        let mut want = vec![0x12, 1, b'k', 0x1a, 1, b'v', 0x22, 7];
        want.extend_from_slice(b"default");
        want.extend_from_slice(&[0x28, 5, 0x30, 1]);
        assert_eq!(req.encode_to_vec(), want);
    }

    #[test]
    fn context_api_version_and_keyspace_use_high_field_numbers() {
        let ctx = kvrpcpb::Context {
            region_id: 7,
            api_version: kvrpcpb::ApiVersion::V2 as i32,
            keyspace_id: 1,
            ..Default::default()
        };
        // region_id = 1, api_version = 21 (tag 0xa8 0x01), keyspace_id = 32 (tag 0x80 0x02).
        assert_eq!(
            ctx.encode_to_vec(),
            vec![0x08, 7, 0xa8, 0x01, 2, 0x80, 0x02, 1]
        );
    }

    #[test]
    fn deadlock_messages_use_the_kvproto_field_numbers() {
        let entry = deadlock::WaitForEntry {
            txn: 1,
            wait_for_txn: 2,
            key_hash: 3,
            key: b"k".to_vec(),
            resource_group_tag: b"t".to_vec(),
            wait_time: 4,
        };
        // txn = 1, wait_for_txn = 2, key_hash = 3, key = 4, resource_group_tag = 5,
        // wait_time = 6.
        let entry_bytes = vec![
            0x08, 1, 0x10, 2, 0x18, 3, 0x22, 1, b'k', 0x2a, 1, b't', 0x30, 4,
        ];
        assert_eq!(entry.encode_to_vec(), entry_bytes);
        let req = deadlock::DeadlockRequest {
            tp: deadlock::DeadlockRequestType::CleanUp as i32,
            entry: Some(entry.clone()),
        };
        // tp = 1, entry = 2.
        let mut want = vec![0x08, 2, 0x12, entry_bytes.len() as u8];
        want.extend_from_slice(&entry_bytes);
        assert_eq!(req.encode_to_vec(), want);
        let resp = deadlock::DeadlockResponse {
            entry: None,
            deadlock_key_hash: 9,
            wait_chain: vec![entry.clone()],
        };
        // deadlock_key_hash = 2, wait_chain = 3.
        let mut want = vec![0x10, 9, 0x1a, entry_bytes.len() as u8];
        want.extend_from_slice(&entry_bytes);
        assert_eq!(resp.encode_to_vec(), want);
        // kvrpcpb.Deadlock.wait_chain = 4.
        let key_error = kvrpcpb::Deadlock {
            lock_ts: 5,
            lock_key: Vec::new(),
            deadlock_key_hash: 0,
            wait_chain: vec![entry],
        };
        let mut want = vec![0x08, 5, 0x22, entry_bytes.len() as u8];
        want.extend_from_slice(&entry_bytes);
        assert_eq!(key_error.encode_to_vec(), want);
    }

    #[test]
    fn region_error_not_leader_round_trips() {
        let e = errorpb::Error {
            message: "x".into(),
            not_leader: Some(errorpb::NotLeader {
                region_id: 3,
                leader: Some(metapb::Peer {
                    id: 4,
                    store_id: 5,
                    ..Default::default()
                }),
            }),
            ..Default::default()
        };
        let bytes = e.encode_to_vec();
        // message = 1, not_leader = 2.
        assert_eq!(&bytes[..3], &[0x0a, 1, b'x']);
        assert_eq!(bytes[3], 0x12);
        assert_eq!(errorpb::Error::decode(bytes.as_slice()).unwrap(), e);
    }

    #[test]
    fn raft_message_carries_raft_rs_bytes_unchanged() {
        let mut m = eraftpb::Message::default();
        m.set_msg_type(eraftpb::MessageType::MsgHeartbeat);
        m.from = 1;
        m.to = 2;
        m.term = 9;
        let inner = m.write_to_bytes().unwrap();
        let msg = raft_serverpb::RaftMessage {
            region_id: 1,
            message: inner.clone(),
            ..Default::default()
        };
        let back = raft_serverpb::RaftMessage::decode(msg.encode_to_vec().as_slice()).unwrap();
        let parsed = eraftpb::Message::parse_from_bytes(&back.message).unwrap();
        assert_eq!(parsed.term, 9);
        assert_eq!(parsed.get_msg_type(), eraftpb::MessageType::MsgHeartbeat);
    }
}
