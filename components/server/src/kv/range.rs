//! Turning the raw key ranges of scan and delete requests into ranges of the region key space,
//! clipped to the region that serves them and to the part of the key space raw requests may
//! touch (`['r', 's')` encoded in API V2, so a raw request never reaches transactional data;
//! everything in V1).

use proto::metapb::Region;

use super::api::{intersect, StorageApi};

/// `[start, end)` in the region key space; an empty `end` is unbounded (only in API V1, on
/// the last region).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedRange {
    pub start: Vec<u8>,
    pub end: Vec<u8>,
}

impl EncodedRange {
    pub fn is_empty(&self) -> bool {
        !self.end.is_empty() && self.start >= self.end
    }

    /// The bounds as state-machine data keys (`z` + key; an unbounded end becomes the end of
    /// the data range).
    pub fn data_bounds(&self) -> (Vec<u8>, Vec<u8>) {
        (keys::data_key(&self.start), keys::data_end_key(&self.end))
    }
}

/// Whether region-space `key` lies in the region.
fn in_region(key: &[u8], region: &Region) -> bool {
    key >= region.start_key.as_slice()
        && (region.end_key.is_empty() || key < region.end_key.as_slice())
}

/// Clips the raw range `[lower, upper)` (empty = unbounded) to the raw key space of `api` and
/// the region. The result may be empty when the range misses the region.
pub fn clip_to_region(
    api: StorageApi,
    lower: &[u8],
    upper: &[u8],
    region: &Region,
) -> EncodedRange {
    let space = intersect(&api.raw_key_space(), &region.start_key, &region.end_key);
    let start = if lower.is_empty() {
        space.start
    } else {
        api.raw_region_key(lower).max(space.start)
    };
    let end = if upper.is_empty() {
        space.end
    } else if space.end.is_empty() {
        api.raw_region_key(upper)
    } else {
        api.raw_region_key(upper).min(space.end)
    };
    EncodedRange { start, end }
}

/// The raw `[lower, upper)` bounds a scan request names. Forward scans cover
/// `[start_key, end_key)`; reverse scans walk down from `start_key` (exclusive) to `end_key`
/// (inclusive), which is the same set of keys with the roles swapped.
pub fn scan_bounds<'a>(
    start_key: &'a [u8],
    end_key: &'a [u8],
    reverse: bool,
) -> (&'a [u8], &'a [u8]) {
    if reverse {
        (end_key, start_key)
    } else {
        (start_key, end_key)
    }
}

/// The range a delete-range command should carry, or `None` when there is nothing to delete.
/// The end is clipped to the region; a start outside the region is kept as given so raftstore
/// answers `KeyNotInRegion` after checking the request's epoch.
pub fn delete_bounds(
    api: StorageApi,
    start: &[u8],
    end: &[u8],
    region: &Region,
) -> Option<EncodedRange> {
    let clipped = clip_to_region(api, start, end, region);
    let start = if start.is_empty() {
        clipped.start.clone()
    } else {
        api.raw_region_key(start)
    };
    if in_region(&start, region) {
        return (!clipped.is_empty()).then_some(clipped);
    }
    Some(EncodedRange {
        start,
        end: clipped.end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use keys::encode_bytes;

    const V2: StorageApi = StorageApi::V2;

    fn region(start: &[u8], end: &[u8]) -> Region {
        Region {
            id: 2,
            start_key: if start.is_empty() {
                vec![]
            } else {
                encode_bytes(start)
            },
            end_key: if end.is_empty() {
                vec![]
            } else {
                encode_bytes(end)
            },
            ..Default::default()
        }
    }

    fn enc(k: &[u8]) -> Vec<u8> {
        encode_bytes(k)
    }

    #[test]
    fn forward_range_inside_region_is_unchanged() {
        let r = region(b"r\0\0\0", b"r\0\0\x01");
        let got = clip_to_region(V2, b"r\0\0\0a", b"r\0\0\0m", &r);
        assert_eq!(got.start, enc(b"r\0\0\0a"));
        assert_eq!(got.end, enc(b"r\0\0\0m"));
        assert!(!got.is_empty());
    }

    #[test]
    fn range_is_clipped_at_region_end_and_start() {
        let r = region(b"r\0\0\0", b"r\0\0\x01");
        let got = clip_to_region(V2, b"r\0\0\0a", b"r\0\0\x05", &r);
        assert_eq!(got.end, r.end_key);
        let got = clip_to_region(V2, b"r", b"r\0\0\0z", &r);
        assert_eq!(got.start, r.start_key);
        assert_eq!(got.end, enc(b"r\0\0\0z"));
    }

    #[test]
    fn empty_bounds_mean_the_region_or_the_raw_key_space() {
        let r = region(b"r\0\0\0", b"r\0\0\x01");
        let got = clip_to_region(V2, b"", b"", &r);
        assert_eq!(got.start, r.start_key);
        assert_eq!(got.end, r.end_key);

        // Unbounded regions stop at the raw keyspace.
        let whole = region(b"", b"");
        let got = clip_to_region(V2, b"", b"", &whole);
        assert_eq!(got.start, enc(b"r"));
        assert_eq!(got.end, enc(b"s"));
        let tail = region(b"r\0\0\x01", b"");
        let got = clip_to_region(V2, b"r\0\0\x01k", b"", &tail);
        assert_eq!(got.start, enc(b"r\0\0\x01k"));
        assert_eq!(got.end, enc(b"s"));
    }

    #[test]
    fn transactional_keys_are_out_of_reach() {
        let whole = region(b"", b"");
        let got = clip_to_region(V2, b"r\0\0\0", b"y", &whole);
        assert_eq!(got.end, enc(b"s"));
        assert!(enc(b"x\0\0\0k") >= got.end);
    }

    #[test]
    fn range_outside_region_is_empty() {
        let r = region(b"r\0\0\0", b"r\0\0\x01");
        assert!(clip_to_region(V2, b"r\0\0\x02", b"r\0\0\x03", &r).is_empty());
        assert!(clip_to_region(V2, b"r\0\0\x01", b"", &r).is_empty());
        let later = region(b"r\0\0\x05", b"");
        assert!(clip_to_region(V2, b"r\0\0\0", b"r\0\0\x01", &later).is_empty());
        // Inverted ranges hold nothing.
        assert!(clip_to_region(V2, b"r\0\0\0z", b"r\0\0\0a", &r).is_empty());
    }

    #[test]
    fn reverse_scans_swap_the_bounds() {
        assert_eq!(
            scan_bounds(b"r\0\0\0z", b"r\0\0\0a", true),
            (&b"r\0\0\0a"[..], &b"r\0\0\0z"[..])
        );
        assert_eq!(
            scan_bounds(b"r\0\0\0a", b"r\0\0\0z", false),
            (&b"r\0\0\0a"[..], &b"r\0\0\0z"[..])
        );
        // A reverse scan with no lower bound reaches down to the region start.
        let r = region(b"r\0\0\0", b"r\0\0\x01");
        let (lo, hi) = scan_bounds(b"r\0\0\0m", b"", true);
        let got = clip_to_region(V2, lo, hi, &r);
        assert_eq!(got.start, r.start_key);
        assert_eq!(got.end, enc(b"r\0\0\0m"));
        // And with no upper bound up to the region end.
        let (lo, hi) = scan_bounds(b"", b"r\0\0\0m", true);
        let got = clip_to_region(V2, lo, hi, &r);
        assert_eq!(got.start, enc(b"r\0\0\0m"));
        assert_eq!(got.end, r.end_key);
    }

    #[test]
    fn data_bounds_add_the_data_prefix() {
        let r = EncodedRange {
            start: vec![1],
            end: vec![2],
        };
        assert_eq!(r.data_bounds(), (vec![b'z', 1], vec![b'z', 2]));
    }

    #[test]
    fn delete_bounds_clip_the_end_and_keep_a_foreign_start() {
        let r = region(b"r\0\0\0", b"r\0\0\x01");
        let got = delete_bounds(V2, b"r\0\0\0a", b"", &r).unwrap();
        assert_eq!(got.start, enc(b"r\0\0\0a"));
        assert_eq!(got.end, r.end_key);
        let got = delete_bounds(V2, b"", b"r\0\0\0c", &r).unwrap();
        assert_eq!(got.start, r.start_key);
        assert_eq!(got.end, enc(b"r\0\0\0c"));
        // Nothing to delete inside the region.
        assert_eq!(delete_bounds(V2, b"r\0\0\0c", b"r\0\0\0c", &r), None);
        assert_eq!(delete_bounds(V2, b"r\0\0\0c", b"r\0\0\0a", &r), None);
        // A start outside the region is left for raftstore to refuse.
        let got = delete_bounds(V2, b"r\0\0\x02", b"r\0\0\x03", &r).unwrap();
        assert_eq!(got.start, enc(b"r\0\0\x02"));
    }

    #[test]
    fn v1_ranges_use_keys_as_given_and_reach_the_end_of_the_key_space() {
        let v1 = StorageApi::V1;
        let whole = Region::default();
        let got = clip_to_region(v1, b"", b"", &whole);
        assert_eq!(got.start, Vec::<u8>::new());
        assert!(got.end.is_empty() && !got.is_empty());
        assert_eq!(got.data_bounds().1, keys::DATA_MAX_KEY.to_vec());
        let got = clip_to_region(v1, b"b", b"d", &whole);
        assert_eq!((got.start, got.end), (b"b".to_vec(), b"d".to_vec()));
        let right = Region {
            start_key: b"m".to_vec(),
            ..Default::default()
        };
        let got = clip_to_region(v1, b"a", b"", &right);
        assert_eq!((got.start, got.end), (b"m".to_vec(), vec![]));
        let left = Region {
            end_key: b"m".to_vec(),
            ..Default::default()
        };
        let got = clip_to_region(v1, b"k", b"z", &left);
        assert_eq!((got.start, got.end), (b"k".to_vec(), b"m".to_vec()));
        assert!(clip_to_region(v1, b"n", b"z", &left).is_empty());
        let got = delete_bounds(v1, b"c", b"", &whole).unwrap();
        assert_eq!((got.start, got.end), (b"c".to_vec(), vec![]));
        assert_eq!(delete_bounds(v1, b"d", b"c", &whole), None);
    }
}
