//! Keys of the default keyspace (API V2) as PD and the stores see them.

/// Raw keys of keyspace 0 start with `r` and the 3-byte keyspace id.
pub const RAW_PREFIX: &[u8] = b"r\0\0\0";
/// First raw key after keyspace 0.
pub const RAW_PREFIX_END: &[u8] = b"r\0\0\x01";

/// Transactional keys of keyspace 0 start with `x` and the 3-byte keyspace id.
pub const TXN_PREFIX: &[u8] = b"x\0\0\0";

/// The key a store sees for transactional user key `key`.
pub fn txn_store_key(key: &[u8]) -> Vec<u8> {
    let mut out = TXN_PREFIX.to_vec();
    out.extend_from_slice(key);
    out
}

/// The memcomparable-encoded key PD uses for transactional user key `key`.
pub fn txn_pd_key(key: &[u8]) -> Vec<u8> {
    keys::encode_bytes(&txn_store_key(key))
}

/// The key a store sees for user key `key` (the client adds the prefix).
pub fn store_key(key: &[u8]) -> Vec<u8> {
    let mut out = RAW_PREFIX.to_vec();
    out.extend_from_slice(key);
    out
}

/// The memcomparable-encoded key PD uses for user key `key`.
pub fn pd_key(key: &[u8]) -> Vec<u8> {
    keys::encode_bytes(&store_key(key))
}

/// `[start, end)` of the raw default keyspace in PD's encoding.
pub fn pd_keyspace_range() -> (Vec<u8>, Vec<u8>) {
    (
        keys::encode_bytes(RAW_PREFIX),
        keys::encode_bytes(RAW_PREFIX_END),
    )
}

/// How many of `regions` (PD's HTTP API region objects) start inside the raw default
/// keyspace.
pub fn keyspace_region_count(regions: &[serde_json::Value]) -> usize {
    let (start, end) = pd_keyspace_range();
    regions
        .iter()
        .filter(|r| {
            let s = crate::pd_api::region_json::start_key(r);
            s >= start && s < end
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pd_keys_sort_inside_the_keyspace_range() {
        let (start, end) = pd_keyspace_range();
        for key in [&b""[..], b"a", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff"] {
            let k = pd_key(key);
            assert!(start <= k && k < end, "{key:?}");
        }
        assert_eq!(store_key(b"k"), b"r\0\0\0k");
    }
}
