//! Region boundaries at the default keyspace's edges. Clients in keyspace mode address raw keys
//! as `r` + 3-byte keyspace id and transactional keys as `x` + id; a region must end exactly
//! where the keyspace ends, or a client's scan runs on into the next keyspace.

use keys::encode_bytes;

use super::operator::Now;
use super::operator::{OpKind, OpStep, Operator};
use crate::cluster::RegionInfo;
use crate::config::ScheduleConfig;

/// The id of the keyspace named "DEFAULT".
pub const DEFAULT_KEYSPACE_ID: u32 = 0;

fn prefix(mode: u8, keyspace_id: u32) -> Vec<u8> {
    let id = keyspace_id.to_be_bytes();
    vec![mode, id[1], id[2], id[3]]
}

/// The encoded keys where keyspace `id`'s raw and transactional ranges start and end.
pub fn keyspace_boundaries(id: u32) -> Vec<Vec<u8>> {
    vec![
        encode_bytes(&prefix(b'r', id)),
        encode_bytes(&prefix(b'r', id + 1)),
        encode_bytes(&prefix(b'x', id)),
        encode_bytes(&prefix(b'x', id + 1)),
    ]
}

/// The default keyspace's boundaries that lie strictly inside `region`.
pub fn split_keys(region: &RegionInfo) -> Vec<Vec<u8>> {
    keyspace_boundaries(DEFAULT_KEYSPACE_ID)
        .into_iter()
        .filter(|k| region.strictly_contains(k))
        .collect()
}

/// A split at the boundaries inside `region`, if there are any.
pub fn split_operator(region: &RegionInfo, cfg: &ScheduleConfig, now: Now) -> Option<Operator> {
    let keys = split_keys(region);
    if keys.is_empty() {
        return None;
    }
    Some(Operator::new(
        region,
        OpKind::Split,
        format!("split at {} keyspace boundaries", keys.len()),
        vec![OpStep::Split { keys }],
        cfg,
        now,
    ))
}

#[cfg(test)]
mod tests {
    use proto::metapb;

    use super::*;

    fn region(start: &[u8], end: &[u8]) -> RegionInfo {
        RegionInfo::new(
            metapb::Region {
                id: 1,
                start_key: start.to_vec(),
                end_key: end.to_vec(),
                ..Default::default()
            },
            None,
        )
    }

    #[test]
    fn boundaries_are_the_encoded_keyspace_prefixes() {
        let b = keyspace_boundaries(0);
        assert_eq!(b[0], encode_bytes(b"r\0\0\0"));
        assert_eq!(b[1], encode_bytes(b"r\0\0\x01"));
        assert_eq!(b[2], encode_bytes(b"x\0\0\0"));
        assert_eq!(b[3], encode_bytes(b"x\0\0\x01"));
        assert!(b.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn a_region_spanning_boundaries_splits_at_those_inside_it() {
        let b = keyspace_boundaries(0);
        assert_eq!(split_keys(&region(b"", b"")), b);
        assert_eq!(split_keys(&region(&b[0], b"")), b[1..].to_vec());
        assert_eq!(split_keys(&region(&b[0], &b[1])), Vec::<Vec<u8>>::new());
        assert_eq!(split_keys(&region(&b[1], &b[3])), vec![b[2].clone()]);
        assert_eq!(split_keys(&region(&b[3], b"")), Vec::<Vec<u8>>::new());
        let now = Now::current();
        let cfg = ScheduleConfig::default();
        assert!(split_operator(&region(&b[3], b""), &cfg, now).is_none());
        let op = split_operator(&region(b"", b""), &cfg, now).unwrap();
        assert_eq!(op.kind, OpKind::Split);
        assert_eq!(op.steps, vec![OpStep::Split { keys: b }]);
    }
}
