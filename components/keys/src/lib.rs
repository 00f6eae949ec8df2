//! Key encoding shared by every layer: data keys (user keys in the state machine), local keys
//! (per-region metadata in CF `raft`), and the memcomparable bytes codec used for region
//! boundaries on the wire.

mod codec;

pub use codec::{decode_bytes, encode_bytes, encoded_key_prefix};

use thiserror::Error;

/// A key that cannot be decoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("encoded key is truncated at byte {0}")]
    Truncated(usize),
    #[error("invalid padding marker {marker:#x} at byte {at}")]
    BadMarker { marker: u8, at: usize },
    #[error("invalid local key {0:?}")]
    BadLocalKey(Vec<u8>),
}

/// Prefix of every user key stored in the state machine.
pub const DATA_PREFIX: u8 = b'z';
pub const DATA_MIN_KEY: &[u8] = &[DATA_PREFIX];
/// Above every data key; the encoded form of an empty (unbounded) end key.
pub const DATA_MAX_KEY: &[u8] = &[DATA_PREFIX + 1];

/// Prefix of store-local metadata keys.
pub const LOCAL_PREFIX: u8 = 0x01;
const STORE_IDENT_SUFFIX: u8 = 0x01;
const REGION_META_PREFIX: u8 = 0x03;
/// Suffix of a region's `RegionLocalState` key.
pub const REGION_STATE_SUFFIX: u8 = 0x01;
/// Suffix of a region's `RaftApplyState` key.
pub const APPLY_STATE_SUFFIX: u8 = 0x03;
/// Suffix of the description of a snapshot being applied to a region.
pub const SNAPSHOT_META_SUFFIX: u8 = 0x04;

/// The state-machine key of user key `key`.
pub fn data_key(key: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(key.len() + 1);
    v.push(DATA_PREFIX);
    v.extend_from_slice(key);
    v
}

pub fn is_data_key(key: &[u8]) -> bool {
    key.first() == Some(&DATA_PREFIX)
}

/// The user key of a data key (unchanged if it lacks the prefix).
pub fn origin_key(key: &[u8]) -> &[u8] {
    if is_data_key(key) {
        &key[1..]
    } else {
        key
    }
}

/// Encoded start of a region's range.
pub fn enc_start_key(start: &[u8]) -> Vec<u8> {
    data_key(start)
}

/// Encoded end of a region's range; an empty end key means +infinity.
pub fn enc_end_key(end: &[u8]) -> Vec<u8> {
    data_end_key(end)
}

pub fn data_end_key(end: &[u8]) -> Vec<u8> {
    if end.is_empty() {
        DATA_MAX_KEY.to_vec()
    } else {
        data_key(end)
    }
}

/// Where the store's identity (cluster id, store id) lives.
pub fn store_ident_key() -> Vec<u8> {
    vec![LOCAL_PREFIX, STORE_IDENT_SUFFIX]
}

fn region_meta_key(region_id: u64, suffix: u8) -> Vec<u8> {
    let mut v = Vec::with_capacity(11);
    v.push(LOCAL_PREFIX);
    v.push(REGION_META_PREFIX);
    v.extend_from_slice(&region_id.to_be_bytes());
    v.push(suffix);
    v
}

pub fn region_state_key(region_id: u64) -> Vec<u8> {
    region_meta_key(region_id, REGION_STATE_SUFFIX)
}

pub fn apply_state_key(region_id: u64) -> Vec<u8> {
    region_meta_key(region_id, APPLY_STATE_SUFFIX)
}

/// The description of the snapshot a region is applying, kept until it is fully applied.
pub fn snapshot_meta_key(region_id: u64) -> Vec<u8> {
    region_meta_key(region_id, SNAPSHOT_META_SUFFIX)
}

/// `[start, end)` covering every region metadata key.
pub fn region_meta_range() -> (Vec<u8>, Vec<u8>) {
    (
        vec![LOCAL_PREFIX, REGION_META_PREFIX],
        vec![LOCAL_PREFIX, REGION_META_PREFIX + 1],
    )
}

/// Splits a region metadata key into (region id, suffix).
pub fn decode_region_meta_key(key: &[u8]) -> Result<(u64, u8), KeyError> {
    if key.len() != 11 || key[0] != LOCAL_PREFIX || key[1] != REGION_META_PREFIX {
        return Err(KeyError::BadLocalKey(key.to_vec()));
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&key[2..10]);
    Ok((u64::from_be_bytes(id), key[10]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_keys_sort_like_user_keys() {
        assert!(data_key(b"a") < data_key(b"b"));
        assert!(data_key(b"") < data_key(b"\x00"));
        assert!(data_key(&[0xff; 8]) < DATA_MAX_KEY.to_vec());
        assert_eq!(enc_end_key(b""), DATA_MAX_KEY);
        assert_eq!(origin_key(&data_key(b"abc")), b"abc");
    }

    #[test]
    fn region_meta_keys_round_trip_and_stay_in_range() {
        let (start, end) = region_meta_range();
        for id in [0, 1, 77, u64::MAX] {
            for key in [region_state_key(id), apply_state_key(id)] {
                assert!(key >= start && key < end);
                let (got, _) = decode_region_meta_key(&key).unwrap();
                assert_eq!(got, id);
            }
        }
        assert_eq!(
            decode_region_meta_key(&region_state_key(5)).unwrap().1,
            REGION_STATE_SUFFIX
        );
        assert!(decode_region_meta_key(b"\x01\x03short").is_err());
        assert!(store_ident_key() < start);
        assert!(end.as_slice() < DATA_MIN_KEY);
    }
}
