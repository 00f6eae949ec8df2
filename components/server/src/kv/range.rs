//! Turning the raw key ranges of scan and delete requests into ranges of the region key space
//! (memcomparable-encoded keys), clipped to the region that serves them and to the raw
//! keyspace `['r', 's')`, so a raw request never touches transactional or other data.

use keys::encode_bytes;
use proto::metapb::Region;

use super::request::RAW_KEY_MODE;

/// `[start, end)` in the region key space; both bounds are finite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedRange {
    pub start: Vec<u8>,
    pub end: Vec<u8>,
}

impl EncodedRange {
    pub fn is_empty(&self) -> bool {
        self.start >= self.end
    }

    /// The bounds as state-machine data keys (`z` + encoded key).
    pub fn data_bounds(&self) -> (Vec<u8>, Vec<u8>) {
        (keys::data_key(&self.start), keys::data_key(&self.end))
    }
}

/// The encoded bounds of every raw key: from `"r"` up to (not including) `"s"`.
fn raw_key_space() -> (Vec<u8>, Vec<u8>) {
    (
        encode_bytes(&[RAW_KEY_MODE]),
        encode_bytes(&[RAW_KEY_MODE + 1]),
    )
}

/// Whether encoded `key` lies in the region.
fn in_region(key: &[u8], region: &Region) -> bool {
    key >= region.start_key.as_slice()
        && (region.end_key.is_empty() || key < region.end_key.as_slice())
}

/// Clips the raw range `[lower, upper)` (empty = unbounded) to the raw keyspace and the
/// region. The result may be empty when the range misses the region.
pub fn clip_to_region(lower: &[u8], upper: &[u8], region: &Region) -> EncodedRange {
    let (space_start, space_end) = raw_key_space();
    let mut start = if lower.is_empty() {
        space_start
    } else {
        encode_bytes(lower).max(space_start)
    };
    if start < region.start_key {
        start = region.start_key.clone();
    }
    let mut end = if upper.is_empty() {
        space_end
    } else {
        encode_bytes(upper).min(space_end)
    };
    if !region.end_key.is_empty() && end > region.end_key {
        end = region.end_key.clone();
    }
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
pub fn delete_bounds(start: &[u8], end: &[u8], region: &Region) -> Option<EncodedRange> {
    let clipped = clip_to_region(start, end, region);
    let start = if start.is_empty() {
        clipped.start.clone()
    } else {
        encode_bytes(start)
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
        let got = clip_to_region(b"r\0\0\0a", b"r\0\0\0m", &r);
        assert_eq!(got.start, enc(b"r\0\0\0a"));
        assert_eq!(got.end, enc(b"r\0\0\0m"));
        assert!(!got.is_empty());
    }

    #[test]
    fn range_is_clipped_at_region_end_and_start() {
        let r = region(b"r\0\0\0", b"r\0\0\x01");
        let got = clip_to_region(b"r\0\0\0a", b"r\0\0\x05", &r);
        assert_eq!(got.end, r.end_key);
        let got = clip_to_region(b"r", b"r\0\0\0z", &r);
        assert_eq!(got.start, r.start_key);
        assert_eq!(got.end, enc(b"r\0\0\0z"));
    }

    #[test]
    fn empty_bounds_mean_the_region_or_the_raw_key_space() {
        let r = region(b"r\0\0\0", b"r\0\0\x01");
        let got = clip_to_region(b"", b"", &r);
        assert_eq!(got.start, r.start_key);
        assert_eq!(got.end, r.end_key);

        // Unbounded regions stop at the raw keyspace.
        let whole = region(b"", b"");
        let got = clip_to_region(b"", b"", &whole);
        assert_eq!(got.start, enc(b"r"));
        assert_eq!(got.end, enc(b"s"));
        let tail = region(b"r\0\0\x01", b"");
        let got = clip_to_region(b"r\0\0\x01k", b"", &tail);
        assert_eq!(got.start, enc(b"r\0\0\x01k"));
        assert_eq!(got.end, enc(b"s"));
    }

    #[test]
    fn transactional_keys_are_out_of_reach() {
        let whole = region(b"", b"");
        let got = clip_to_region(b"r\0\0\0", b"y", &whole);
        assert_eq!(got.end, enc(b"s"));
        assert!(enc(b"x\0\0\0k") >= got.end);
    }

    #[test]
    fn range_outside_region_is_empty() {
        let r = region(b"r\0\0\0", b"r\0\0\x01");
        assert!(clip_to_region(b"r\0\0\x02", b"r\0\0\x03", &r).is_empty());
        assert!(clip_to_region(b"r\0\0\x01", b"", &r).is_empty());
        let later = region(b"r\0\0\x05", b"");
        assert!(clip_to_region(b"r\0\0\0", b"r\0\0\x01", &later).is_empty());
        // Inverted ranges hold nothing.
        assert!(clip_to_region(b"r\0\0\0z", b"r\0\0\0a", &r).is_empty());
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
        let got = clip_to_region(lo, hi, &r);
        assert_eq!(got.start, r.start_key);
        assert_eq!(got.end, enc(b"r\0\0\0m"));
        // And with no upper bound up to the region end.
        let (lo, hi) = scan_bounds(b"", b"r\0\0\0m", true);
        let got = clip_to_region(lo, hi, &r);
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
        let got = delete_bounds(b"r\0\0\0a", b"", &r).unwrap();
        assert_eq!(got.start, enc(b"r\0\0\0a"));
        assert_eq!(got.end, r.end_key);
        let got = delete_bounds(b"", b"r\0\0\0c", &r).unwrap();
        assert_eq!(got.start, r.start_key);
        assert_eq!(got.end, enc(b"r\0\0\0c"));
        // Nothing to delete inside the region.
        assert_eq!(delete_bounds(b"r\0\0\0c", b"r\0\0\0c", &r), None);
        assert_eq!(delete_bounds(b"r\0\0\0c", b"r\0\0\0a", &r), None);
        // A start outside the region is left for raftstore to refuse.
        let got = delete_bounds(b"r\0\0\x02", b"r\0\0\x03", &r).unwrap();
        assert_eq!(got.start, enc(b"r\0\0\x02"));
    }
}
