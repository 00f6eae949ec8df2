//! `GET /regions/search`: one page of the regions a free-text filter matches, so that a
//! dashboard showing a few thousand rows never asks PD for every region at once (at 300,000
//! regions the full `/regions` listing is hundreds of MB of JSON and seconds to build).

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::cluster::RegionInfo;
use crate::hex;

/// A filter typed by a person: a region id (or its first digits), part of a key as hex, or
/// part of a key as text, either as stored (memcomparable-encoded, as the API and the
/// dashboard show it) or decoded (the key a client wrote, with its keyspace prefix, which the
/// encoding's group markers would otherwise cut every 8 bytes). Surrounding whitespace is
/// ignored; an empty filter matches every region.
pub struct RegionFilter {
    needle: String,
    /// The needle in lower case when it is hex digits only (of either parity: "7" matches any
    /// key whose hex holds a 7).
    hex_needle: Option<String>,
}

impl RegionFilter {
    pub fn new(text: &str) -> RegionFilter {
        let needle = text.trim().to_string();
        let lower = needle.to_ascii_lowercase();
        let hex_needle =
            (!lower.is_empty() && lower.bytes().all(|b| b.is_ascii_hexdigit())).then_some(lower);
        RegionFilter { needle, hex_needle }
    }

    /// Whether `r` matches: its id starts with the needle, its start or end key's hex
    /// contains the hex needle, or its start or end key shown as text (see [`escape_key`]),
    /// encoded or decoded, contains the needle. `scratch` is reused between calls to spare an
    /// allocation per region.
    pub fn matches(&self, r: &RegionInfo, scratch: &mut String) -> bool {
        if self.needle.is_empty() {
            return true;
        }
        scratch.clear();
        let _ = write!(scratch, "{}", r.id());
        if scratch.starts_with(&self.needle) {
            return true;
        }
        [r.start_key(), r.end_key()].into_iter().any(|key| {
            if let Some(hex_needle) = &self.hex_needle {
                scratch.clear();
                hex::encode_into(key, scratch);
                if scratch.contains(hex_needle.as_str()) {
                    return true;
                }
            }
            scratch.clear();
            escape_key(key, scratch);
            if scratch.contains(self.needle.as_str()) {
                return true;
            }
            scratch.clear();
            escape_decoded_key(key, scratch) && scratch.contains(self.needle.as_str())
        })
    }
}

/// A key as the dashboard shows it: printable ASCII as itself, every other byte (and the
/// backslash) as `\xNN` in lower-case hex.
pub fn escape_key(key: &[u8], out: &mut String) {
    for &b in key {
        if (0x20..0x7f).contains(&b) && b != b'\\' {
            out.push(b as char);
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
}

/// [`escape_key`] of the key `encoded` holds (memcomparable: groups of 8 bytes, each followed
/// by a marker of 0xff minus its padding; see `keys::encode_bytes`), written straight from the
/// groups; false, with `out` unspecified, when `encoded` is not such a key.
fn escape_decoded_key(encoded: &[u8], out: &mut String) -> bool {
    const GROUP: usize = 8;
    for group in encoded.chunks(GROUP + 1) {
        let [bytes @ .., marker] = group else {
            return false;
        };
        let pad = usize::from(0xff - marker);
        if pad > GROUP || bytes.len() != GROUP {
            return false;
        }
        escape_key(&bytes[..GROUP - pad], out);
        if pad != 0 {
            // The last group; anything after it (such as a timestamp) is not part of the key.
            return true;
        }
    }
    false
}

/// The first `limit` regions in key order that `filter` matches (every match when `limit` is
/// 0), as `{"count": <regions listed>, "matching": <regions matched>, "total": <regions>,
/// "regions": [...]}` with each region in `/regions`' shape.
pub fn search<'a>(
    regions: impl Iterator<Item = &'a RegionInfo>,
    filter: &RegionFilter,
    limit: usize,
) -> Value {
    let limit = if limit == 0 { usize::MAX } else { limit };
    let (mut total, mut matching) = (0usize, 0usize);
    let mut listed = Vec::new();
    let mut scratch = String::new();
    for r in regions {
        total += 1;
        if filter.matches(r, &mut scratch) {
            matching += 1;
            if listed.len() < limit {
                listed.push(super::views::region(r));
            }
        }
    }
    json!({"count": listed.len(), "matching": matching, "total": total, "regions": listed})
}

#[cfg(test)]
mod tests {
    use proto::metapb::PeerRole::Voter;

    use super::*;
    use crate::cluster::RegionTree;
    use crate::schedule::testkit::Fixture;

    /// A region tree holding `regions` (id, start key, end key), one voter each on store 1.
    fn tree(regions: &[(u64, &[u8], &[u8])]) -> RegionTree {
        let mut f = Fixture::new(&[1]);
        for (id, start, end) in regions {
            f.add_region(*id, start, end, &[(id + 100, 1, Voter)], id + 100);
        }
        f.state.regions
    }

    fn ids(found: &Value) -> Vec<u64> {
        found["regions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_u64().unwrap())
            .collect()
    }

    fn three() -> RegionTree {
        tree(&[
            (2, b"", b"r\0\0\0user1"),
            (14, b"r\0\0\0user1", b"r\0\0\0user5"),
            (27, b"r\0\0\0user5", b""),
        ])
    }

    #[test]
    fn text_matches_the_key_a_client_wrote_across_the_encodings_group_markers() {
        let encoded = |k: &[u8]| keys::encode_bytes(k);
        let boundary = encoded(b"r\0\0\0user00017");
        let regions = tree(&[(3, b"", &boundary), (5, &boundary, b"")]);
        let find = |q: &str| ids(&search(regions.iter(), &RegionFilter::new(q), 0));
        // Stored, "user" and "00017" sit in different 8-byte groups.
        assert_eq!(find("user00017"), vec![3, 5]);
        assert_eq!(find("user00018"), Vec::<u64>::new());
        // The stored form still matches, marker byte included.
        assert_eq!(find("user\\xff0001"), vec![3, 5]);
    }

    #[test]
    fn a_filter_matches_ids_hex_and_text_as_the_dashboard_shows_keys() {
        let regions = three();
        let find = |q: &str| ids(&search(regions.iter(), &RegionFilter::new(q), 0));
        assert_eq!(find(""), vec![2, 14, 27], "an empty filter matches all");
        assert_eq!(find("  "), vec![2, 14, 27], "whitespace is no filter");
        assert_eq!(
            find("1"),
            vec![2, 14],
            "id prefix 1 or a 1 in the keys' text"
        );
        assert_eq!(find("27"), vec![27], "the id");
        assert_eq!(find("user5"), vec![14, 27], "text in the start or end key");
        assert_eq!(find("7573657235"), vec![14, 27], "hex of user5");
        assert_eq!(find("7573657235".to_uppercase().as_str()), vec![14, 27]);
        assert_eq!(find("r\\x00\\x00\\x00user1"), vec![2, 14], "escaped bytes");
        assert_eq!(
            find("USER5"),
            Vec::<u64>::new(),
            "text matches case-sensitively"
        );
        assert_eq!(find("nothing"), Vec::<u64>::new());
    }

    #[test]
    fn a_page_lists_the_first_matches_and_counts_them_all() {
        let regions = three();
        let page = search(regions.iter(), &RegionFilter::new("user"), 1);
        assert_eq!(ids(&page), vec![2]);
        assert_eq!(page["count"], 1);
        assert_eq!(page["matching"], 3);
        assert_eq!(page["total"], 3);
        let none = search(regions.iter(), &RegionFilter::new("zzz"), 5);
        assert_eq!(
            (none["count"].as_u64(), none["matching"].as_u64()),
            (Some(0), Some(0))
        );
        assert_eq!(none["total"], 3);
    }

    #[test]
    fn decoded_escapes_agree_with_the_codec() {
        for key in [&b""[..], b"a", b"r\0\0\0user", b"r\0\0\0user00017\xff\\"] {
            let mut direct = String::new();
            assert!(escape_decoded_key(&keys::encode_bytes(key), &mut direct));
            let mut via_codec = String::new();
            escape_key(key, &mut via_codec);
            assert_eq!(direct, via_codec, "{key:?}");
        }
        let mut out = String::new();
        assert!(!escape_decoded_key(b"", &mut out), "no group");
        assert!(!escape_decoded_key(b"abcdefgh", &mut out), "no marker");
        assert!(!escape_decoded_key(b"abcdefgh\x00", &mut out), "bad marker");
        assert!(
            !escape_decoded_key(b"abcdefgh\xff", &mut out),
            "no last group"
        );
    }

    #[test]
    fn keys_are_escaped_like_the_dashboards_text() {
        let mut out = String::new();
        escape_key(b"a\\b\x7f\x00 ~", &mut out);
        assert_eq!(out, "a\\x5cb\\x7f\\x00 ~");
    }
}
