//! The API version a cluster serves, fixed when the cluster is bootstrapped (TiKV's
//! `storage.api-version` and `storage.enable-ttl`), and everything that differs between them:
//! which requests are accepted, where a raw key lives in the region key space, and which part
//! of that space raw and transactional requests may touch.
//!
//! * **V2** (keyspaces): raw keys are `'r'` + 3-byte keyspace id + user key, transactional keys
//!   `'x'` + id + user key. Both are stored memcomparable-encoded (`keys::encode_bytes`), so
//!   region boundaries are encoded keys and raw and transactional data never share a range.
//! * **V1**: keys as the user gives them, no keyspace. As in TiKV, raw keys are stored as given
//!   (region boundaries of raw data are raw keys, which is what V1 raw clients send PD), while
//!   transactional keys are still encoded. One V1 cluster should serve raw or transactional
//!   clients, not both: a boundary cut from raw data is not a valid encoded key, which a
//!   transactional client cannot decode (TiKV has the same rule).
//! * **V1TTL**: V1 with raw TTLs allowed (`enable-ttl = true`); plain V1 refuses a TTL.

use std::fmt;

use proto::kvrpcpb::{ApiVersion, Context};
use proto::metapb::Region;

use super::errors::KvError;
use super::request::show_key;

/// First byte of every raw key in API V2.
pub const RAW_KEY_MODE: u8 = b'r';
/// First byte of every transactional key in API V2.
pub const TXN_KEY_MODE: u8 = b'x';
/// Mode byte plus the 3-byte keyspace id.
pub const KEYSPACE_PREFIX_LEN: usize = 4;

/// The storage API of a cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StorageApi {
    /// Keys as given; raw TTLs refused.
    V1,
    /// Keys as given; raw TTLs allowed.
    V1Ttl,
    /// Keyspace-prefixed keys; raw TTLs allowed.
    #[default]
    V2,
}

/// A key range in the region key space; an empty `end` means unbounded (as a region's
/// `end_key` does), which only V1 ranges use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpace {
    pub start: Vec<u8>,
    pub end: Vec<u8>,
}

impl StorageApi {
    /// The API of `storage.api-version` (1 or 2) and `storage.enable-ttl` (V1 only; V2 always
    /// allows TTLs). Errors on any other version number.
    pub fn from_config(api_version: u8, enable_ttl: bool) -> Result<StorageApi, String> {
        match (api_version, enable_ttl) {
            (1, false) => Ok(StorageApi::V1),
            (1, true) => Ok(StorageApi::V1Ttl),
            (2, _) => Ok(StorageApi::V2),
            (other, _) => Err(format!("storage.api-version must be 1 or 2, not {other}")),
        }
    }

    /// The `storage.api-version` number (1 or 2) PD records for the cluster.
    pub fn version_number(self) -> u32 {
        match self {
            StorageApi::V1 | StorageApi::V1Ttl => 1,
            StorageApi::V2 => 2,
        }
    }

    /// Whether raw writes may carry a TTL.
    pub fn allows_ttl(self) -> bool {
        self != StorageApi::V1
    }

    /// The request's context, which must exist, carry a region epoch and speak this API
    /// (a V1 cluster takes V1 and V1TTL requests, as TiKV does).
    pub fn check_context(self, ctx: Option<&Context>) -> Result<&Context, KvError> {
        let ctx = ctx.ok_or_else(|| KvError::InvalidArgument("request has no context".into()))?;
        let accepted = match self {
            StorageApi::V1 | StorageApi::V1Ttl => {
                ctx.api_version == ApiVersion::V1 as i32
                    || ctx.api_version == ApiVersion::V1ttl as i32
            }
            StorageApi::V2 => ctx.api_version == ApiVersion::V2 as i32,
        };
        if !accepted {
            let named = ApiVersion::try_from(ctx.api_version)
                .map(|v| v.as_str_name().to_string())
                .unwrap_or_else(|_| format!("unknown ({})", ctx.api_version));
            return Err(KvError::InvalidArgument(format!(
                "this cluster serves {self}; the request uses API {named}"
            )));
        }
        if ctx.region_epoch.is_none() {
            return Err(KvError::InvalidArgument(
                "request context has no region epoch".into(),
            ));
        }
        Ok(ctx)
    }

    /// Refuses a TTL this API does not allow (`ttl` in seconds; 0 = none).
    pub fn check_ttl(self, ttl: u64) -> Result<(), KvError> {
        if ttl > 0 && !self.allows_ttl() {
            return Err(KvError::InvalidArgument(format!(
                "a TTL of {ttl} s was given, but TTL is not enabled on this API V1 cluster \
                 (storage.enable-ttl = false)"
            )));
        }
        Ok(())
    }

    /// A raw key: in V2 `'r'` + keyspace id + user key; in V1 any non-empty key. Never longer
    /// than `max_key_size` bytes.
    pub fn check_raw_key(self, key: &[u8], max_key_size: usize) -> Result<(), KvError> {
        self.check_key_of_mode(key, RAW_KEY_MODE, max_key_size)
    }

    /// A transactional key: in V2 `'x'` + keyspace id + user key; in V1 any non-empty key.
    pub fn check_txn_key(self, key: &[u8], max_key_size: usize) -> Result<(), KvError> {
        self.check_key_of_mode(key, TXN_KEY_MODE, max_key_size)
    }

    /// A raw range bound: empty (unbounded) or a raw key.
    pub fn check_raw_bound(self, key: &[u8], max_key_size: usize) -> Result<(), KvError> {
        if key.is_empty() {
            return Ok(());
        }
        self.check_raw_key(key, max_key_size)
    }

    /// A transactional range bound: empty (unbounded) or a transactional key.
    pub fn check_txn_bound(self, key: &[u8], max_key_size: usize) -> Result<(), KvError> {
        if key.is_empty() {
            return Ok(());
        }
        self.check_txn_key(key, max_key_size)
    }

    fn check_key_of_mode(self, key: &[u8], mode: u8, max_key_size: usize) -> Result<(), KvError> {
        let kind = if mode == RAW_KEY_MODE {
            "raw"
        } else {
            "transactional"
        };
        match self {
            StorageApi::V2 if key.len() < KEYSPACE_PREFIX_LEN || key[0] != mode => {
                return Err(KvError::InvalidArgument(format!(
                    "{kind} key {} lacks the keyspace prefix ('{}' + 3-byte keyspace id)",
                    show_key(key),
                    mode as char
                )));
            }
            StorageApi::V1 | StorageApi::V1Ttl if key.is_empty() => {
                return Err(KvError::InvalidArgument(format!("{kind} key is empty")));
            }
            _ => {}
        }
        if key.len() > max_key_size {
            // In V2 the limit counts the keyspace prefix too (as TiKV's max-key-size check does);
            // say so, as the user wrote only what follows it.
            let counted = match self {
                StorageApi::V2 => format!(
                    "{} bytes with its {KEYSPACE_PREFIX_LEN}-byte keyspace prefix ({} of user key)",
                    key.len(),
                    key.len() - KEYSPACE_PREFIX_LEN
                ),
                StorageApi::V1 | StorageApi::V1Ttl => format!("{} bytes", key.len()),
            };
            return Err(KvError::Key(format!(
                "key is too large: {counted}, the limit is {max_key_size}"
            )));
        }
        Ok(())
    }

    /// Where raw key `key` lives in the region key space: encoded in V2, as given in V1.
    pub fn raw_region_key(self, key: &[u8]) -> Vec<u8> {
        match self {
            StorageApi::V2 => keys::encode_bytes(key),
            StorageApi::V1 | StorageApi::V1Ttl => key.to_vec(),
        }
    }

    /// The raw key stored under region-space key `stored`, or `None` if it is not one.
    pub fn raw_user_key(self, stored: &[u8]) -> Option<Vec<u8>> {
        match self {
            StorageApi::V2 => match keys::decode_bytes(stored) {
                Ok((raw, used)) if used == stored.len() => Some(raw),
                _ => None,
            },
            StorageApi::V1 | StorageApi::V1Ttl => Some(stored.to_vec()),
        }
    }

    /// The part of the region key space raw requests may touch: `['r', 's')` encoded in V2,
    /// everything in V1.
    pub fn raw_key_space(self) -> KeySpace {
        self.key_space_of_mode(RAW_KEY_MODE)
    }

    /// The part of the region key space transactional requests may touch: `['x', 'y')`
    /// encoded in V2, everything in V1.
    pub fn txn_key_space(self) -> KeySpace {
        self.key_space_of_mode(TXN_KEY_MODE)
    }

    fn key_space_of_mode(self, mode: u8) -> KeySpace {
        match self {
            StorageApi::V2 => KeySpace {
                start: keys::encode_bytes(&[mode]),
                end: keys::encode_bytes(&[mode + 1]),
            },
            StorageApi::V1 | StorageApi::V1Ttl => KeySpace {
                start: Vec::new(),
                end: Vec::new(),
            },
        }
    }

    /// The region's share of the transactional key space; an empty end is unbounded.
    pub fn txn_range_of(self, region: &Region) -> KeySpace {
        intersect(&self.txn_key_space(), &region.start_key, &region.end_key)
    }

    /// The context API version this store's own requests (GC, lock resolution) carry.
    pub fn context_version(self) -> ApiVersion {
        match self {
            StorageApi::V1 | StorageApi::V1Ttl => ApiVersion::V1,
            StorageApi::V2 => ApiVersion::V2,
        }
    }
}

impl fmt::Display for StorageApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StorageApi::V1 => "API V1",
            StorageApi::V1Ttl => "API V1 (with TTL)",
            StorageApi::V2 => "API V2 (keys prefixed with a keyspace)",
        })
    }
}

impl KeySpace {
    /// Whether `key` lies in `[start, end)` (an empty end is unbounded).
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start.as_slice() && (self.end.is_empty() || key < self.end.as_slice())
    }
}

/// `[start, end)` of `a` and `b` intersected; an empty end is unbounded.
pub fn intersect(a: &KeySpace, b_start: &[u8], b_end: &[u8]) -> KeySpace {
    let start = a.start.as_slice().max(b_start).to_vec();
    let end = match (a.end.is_empty(), b_end.is_empty()) {
        (true, _) => b_end.to_vec(),
        (false, true) => a.end.clone(),
        (false, false) => a.end.as_slice().min(b_end).to_vec(),
    };
    KeySpace { start, end }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::metapb::RegionEpoch;

    #[test]
    fn a_key_space_holds_its_start_but_not_its_end() {
        let bounded = KeySpace {
            start: b"b".to_vec(),
            end: b"d".to_vec(),
        };
        assert!(bounded.contains(b"b") && bounded.contains(b"c\xff"));
        assert!(!bounded.contains(b"a") && !bounded.contains(b"d"));
        let unbounded = KeySpace {
            start: b"b".to_vec(),
            end: Vec::new(),
        };
        assert!(unbounded.contains(b"\xff\xff") && !unbounded.contains(b"a"));
    }

    fn ctx(version: ApiVersion) -> Context {
        Context {
            region_id: 1,
            region_epoch: Some(RegionEpoch::default()),
            api_version: version as i32,
            ..Default::default()
        }
    }

    #[test]
    fn config_numbers_map_to_apis() {
        assert_eq!(StorageApi::from_config(1, false), Ok(StorageApi::V1));
        assert_eq!(StorageApi::from_config(1, true), Ok(StorageApi::V1Ttl));
        assert_eq!(StorageApi::from_config(2, false), Ok(StorageApi::V2));
        assert!(StorageApi::from_config(3, false)
            .unwrap_err()
            .contains("1 or 2"));
        assert_eq!(StorageApi::V1Ttl.version_number(), 1);
        assert_eq!(StorageApi::V2.version_number(), 2);
    }

    #[test]
    fn each_api_takes_only_its_own_requests() {
        for api in [StorageApi::V1, StorageApi::V1Ttl] {
            assert!(api.check_context(Some(&ctx(ApiVersion::V1))).is_ok());
            assert!(api.check_context(Some(&ctx(ApiVersion::V1ttl))).is_ok());
            let err = api.check_context(Some(&ctx(ApiVersion::V2))).unwrap_err();
            assert!(matches!(err, KvError::InvalidArgument(m) if m.contains("API V1")));
        }
        assert!(StorageApi::V2
            .check_context(Some(&ctx(ApiVersion::V2)))
            .is_ok());
        let err = StorageApi::V2
            .check_context(Some(&ctx(ApiVersion::V1)))
            .unwrap_err();
        assert!(matches!(err, KvError::InvalidArgument(m) if m.contains("API V2")));
        assert!(StorageApi::V1.check_context(None).is_err());
        let no_epoch = Context {
            region_epoch: None,
            ..ctx(ApiVersion::V1)
        };
        assert!(StorageApi::V1.check_context(Some(&no_epoch)).is_err());
    }

    #[test]
    fn only_plain_v1_refuses_ttls() {
        assert!(StorageApi::V1.check_ttl(0).is_ok());
        let err = StorageApi::V1.check_ttl(5).unwrap_err();
        assert!(matches!(err, KvError::InvalidArgument(m) if m.contains("enable-ttl")));
        assert!(StorageApi::V1Ttl.check_ttl(5).is_ok());
        assert!(StorageApi::V2.check_ttl(5).is_ok());
    }

    #[test]
    fn v1_keys_need_no_prefix_but_must_not_be_empty_or_too_long() {
        assert!(StorageApi::V1.check_raw_key(b"k", 8).is_ok());
        assert!(StorageApi::V1.check_txn_key(b"k", 8).is_ok());
        assert!(StorageApi::V1.check_raw_key(b"", 8).is_err());
        assert!(matches!(
            StorageApi::V1.check_raw_key(&[b'k'; 9], 8),
            Err(KvError::Key(_))
        ));
        assert!(StorageApi::V1.check_raw_bound(b"", 8).is_ok());
        assert!(StorageApi::V2.check_raw_key(b"k", 8).is_err());
        assert!(StorageApi::V2.check_raw_key(b"r\0\0\0k", 8).is_ok());
        assert!(StorageApi::V2.check_txn_key(b"r\0\0\0k", 8).is_err());
    }

    #[test]
    fn v1_raw_keys_are_stored_as_given_and_v2_ones_encoded() {
        assert_eq!(StorageApi::V1.raw_region_key(b"abc"), b"abc".to_vec());
        assert_eq!(
            StorageApi::V2.raw_region_key(b"r\0\0\0a"),
            keys::encode_bytes(b"r\0\0\0a")
        );
        for api in [StorageApi::V1, StorageApi::V2] {
            let stored = api.raw_region_key(b"r\0\0\0key");
            assert_eq!(api.raw_user_key(&stored), Some(b"r\0\0\0key".to_vec()));
        }
        assert_eq!(StorageApi::V2.raw_user_key(b"not encoded"), None);
    }

    #[test]
    fn v1_spaces_are_unbounded_and_v2_ones_are_the_mode_ranges() {
        let v1 = StorageApi::V1.raw_key_space();
        assert!(v1.start.is_empty() && v1.end.is_empty());
        let v2 = StorageApi::V2.txn_key_space();
        assert_eq!(v2.start, keys::encode_bytes(b"x"));
        assert_eq!(v2.end, keys::encode_bytes(b"y"));
    }

    #[test]
    fn intersections_treat_an_empty_end_as_unbounded() {
        let all = StorageApi::V1.raw_key_space();
        assert_eq!(
            intersect(&all, b"b", b""),
            KeySpace {
                start: b"b".to_vec(),
                end: vec![]
            }
        );
        assert_eq!(intersect(&all, b"b", b"d").end, b"d".to_vec());
        let bounded = KeySpace {
            start: b"a".to_vec(),
            end: b"m".to_vec(),
        };
        assert_eq!(intersect(&bounded, b"", b"").end, b"m".to_vec());
        assert_eq!(intersect(&bounded, b"c", b"k").end, b"k".to_vec());
        assert_eq!(intersect(&bounded, b"c", b"z").end, b"m".to_vec());
    }

    #[test]
    fn v2_keys_need_their_keyspace_prefix() {
        let v2 = StorageApi::V2;
        assert!(v2.check_raw_key(b"r\0\0\0", 16).is_ok());
        assert!(v2.check_raw_key(b"r\0\0\x01abc", 16).is_ok());
        for bad in [&b""[..], b"r", b"r\0\0", b"x\0\0\0k", b"abcd"] {
            assert!(
                matches!(v2.check_raw_key(bad, 16), Err(KvError::InvalidArgument(_))),
                "{bad:?}"
            );
        }
        let key = [b"r\0\0\0".as_slice(), &[7u8; 13]].concat();
        assert!(v2.check_raw_key(&key, 17).is_ok());
        match v2.check_raw_key(&key, 16) {
            Err(KvError::Key(msg)) => assert_eq!(
                msg,
                "key is too large: 17 bytes with its 4-byte keyspace prefix (13 of user key), \
                 the limit is 16"
            ),
            other => panic!("unexpected {other:?}"),
        }
        assert!(v2.check_raw_bound(b"", 16).is_ok());
        assert!(v2.check_raw_bound(b"r\0\0\x02", 16).is_ok());
        assert!(v2.check_raw_bound(b"s", 16).is_err());
    }
}
