//! Region boundaries PD keeps whatever the data: in an API V2 cluster, the default keyspace's
//! edges (clients in keyspace mode address raw keys as `r` + 3-byte keyspace id and
//! transactional keys as `x` + id; a region must end exactly where the keyspace ends, or a
//! client's scan runs on into the next keyspace); in an API V1 cluster, one boundary near the
//! top of the key space, [`V1_TAIL_BOUNDARY`].

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

/// The boundary an API V1 cluster keeps: `encode_bytes([0xff; 8])`, so user data stays out
/// of the last region. Client 0.4 continues a bounded raw scan that reaches the last region
/// (end key "") from key "" again, returning keys twice or looping; with this boundary a
/// scan ends at a region whose end is at or past its bound. As raw bytes it sorts after every
/// key that does not start with nine 0xff bytes; it is also a valid encoded key (eight 0xff
/// bytes), so transactional clients, which decode region boundaries, accept it.
pub fn v1_tail_boundary() -> Vec<u8> {
    encode_bytes(&[0xff; 8])
}

/// The boundaries PD keeps in a cluster serving `api_version` (1 or 2).
pub fn fixed_boundaries(api_version: u32) -> Vec<Vec<u8>> {
    if api_version == 1 {
        vec![v1_tail_boundary()]
    } else {
        keyspace_boundaries(DEFAULT_KEYSPACE_ID)
    }
}

/// The fixed boundaries of a cluster serving `api_version` that lie strictly inside `region`.
pub fn split_keys(region: &RegionInfo, api_version: u32) -> Vec<Vec<u8>> {
    fixed_boundaries(api_version)
        .into_iter()
        .filter(|k| region.strictly_contains(k))
        .collect()
}

/// A split at the fixed boundaries inside `region`, if there are any.
pub fn split_operator(
    region: &RegionInfo,
    api_version: u32,
    cfg: &ScheduleConfig,
    now: Now,
) -> Option<Operator> {
    let keys = split_keys(region, api_version);
    if keys.is_empty() {
        return None;
    }
    Some(Operator::new(
        region,
        OpKind::Split,
        format!("split at {} fixed boundaries", keys.len()),
        vec![OpStep::Split { keys }],
        cfg,
        now,
    ))
}

/// The regions that hold a fixed boundary strictly inside, found by key (O(log n) each), so
/// the scheduler tick can split them even when their leaders have nothing new to report.
pub fn regions_to_split(
    regions: &crate::cluster::RegionTree,
    api_version: u32,
) -> Vec<&RegionInfo> {
    let mut out: Vec<&RegionInfo> = Vec::new();
    for key in fixed_boundaries(api_version) {
        if let Some(region) = regions.find(&key).filter(|r| r.strictly_contains(&key)) {
            if !out.iter().any(|r| r.id() == region.id()) {
                out.push(region);
            }
        }
    }
    out
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
        assert_eq!(split_keys(&region(b"", b""), 2), b);
        assert_eq!(split_keys(&region(&b[0], b""), 2), b[1..].to_vec());
        assert_eq!(split_keys(&region(&b[0], &b[1]), 2), Vec::<Vec<u8>>::new());
        assert_eq!(split_keys(&region(&b[1], &b[3]), 2), vec![b[2].clone()]);
        assert_eq!(split_keys(&region(&b[3], b""), 2), Vec::<Vec<u8>>::new());
        let now = Now::current();
        let cfg = ScheduleConfig::default();
        assert!(split_operator(&region(&b[3], b""), 2, &cfg, now).is_none());
        let op = split_operator(&region(b"", b""), 2, &cfg, now).unwrap();
        assert_eq!(op.kind, OpKind::Split);
        assert_eq!(op.steps, vec![OpStep::Split { keys: b }]);
    }

    #[test]
    fn an_api_v1_cluster_keeps_only_the_tail_boundary() {
        let tail = v1_tail_boundary();
        assert_eq!(split_keys(&region(b"", b""), 1), vec![tail.clone()]);
        assert!(split_keys(&region(&tail, b""), 1).is_empty());
        // Raw keys users write sort before it; it decodes as a transactional key.
        assert!(b"\xff\xff\xff\xff\xff\xff\xff\xffz".as_slice() < tail.as_slice());
        assert_eq!(keys::decode_bytes(&tail).unwrap().0, vec![0xff; 8]);
        let op = split_operator(
            &region(b"", b""),
            1,
            &ScheduleConfig::default(),
            Now::current(),
        );
        assert_eq!(op.unwrap().steps, vec![OpStep::Split { keys: vec![tail] }]);
    }

    #[test]
    fn the_tick_finds_the_regions_that_still_hold_a_boundary() {
        use crate::cluster::RegionTree;
        let with_id = |id: u64, start: &[u8], end: &[u8]| {
            let mut r = region(start, end);
            r.meta.id = id;
            r
        };
        let b = keyspace_boundaries(DEFAULT_KEYSPACE_ID);
        let mut tree = RegionTree::new();
        tree.insert(with_id(1, b"", b""));
        let found = regions_to_split(&tree, 2);
        assert_eq!(found.iter().map(|r| r.id()).collect::<Vec<_>>(), vec![1]);
        // Split at the raw keyspace's edges only: the transactional ones remain in region 3.
        let mut tree = RegionTree::new();
        tree.insert(with_id(1, b"", &b[0]));
        tree.insert(with_id(2, &b[0], &b[1]));
        tree.insert(with_id(3, &b[1], b""));
        let found = regions_to_split(&tree, 2);
        assert_eq!(found.iter().map(|r| r.id()).collect::<Vec<_>>(), vec![3]);
        // Every boundary kept: nothing to do.
        let mut tree = RegionTree::new();
        let mut start = Vec::new();
        for (i, key) in b.iter().enumerate() {
            tree.insert(with_id(i as u64 + 1, &start, key));
            start = key.clone();
        }
        tree.insert(with_id(9, &start, b""));
        assert!(regions_to_split(&tree, 2).is_empty());
    }
}
