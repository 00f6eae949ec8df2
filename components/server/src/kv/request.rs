//! Checks every raw request passes before it touches the store: the context, the column
//! family, and the shape of its keys.

use proto::kvrpcpb::{ApiVersion, Context};

use super::errors::KvError;

/// First byte of every raw key in API V2.
pub const RAW_KEY_MODE: u8 = b'r';
/// First byte of every transactional key in API V2.
pub const TXN_KEY_MODE: u8 = b'x';
/// Mode byte plus the 3-byte keyspace id.
pub const KEYSPACE_PREFIX_LEN: usize = 4;

/// The request's context, which must exist and speak API V2.
pub fn check_context(ctx: Option<&Context>) -> Result<&Context, KvError> {
    let ctx = ctx.ok_or_else(|| KvError::InvalidArgument("request has no context".into()))?;
    if ctx.api_version != ApiVersion::V2 as i32 {
        let named = ApiVersion::try_from(ctx.api_version)
            .map(|v| v.as_str_name().to_string())
            .unwrap_or_else(|_| format!("unknown ({})", ctx.api_version));
        return Err(KvError::InvalidArgument(format!(
            "this cluster serves API V2 (keys prefixed with a keyspace); the request uses API {named}"
        )));
    }
    if ctx.region_epoch.is_none() {
        return Err(KvError::InvalidArgument(
            "request context has no region epoch".into(),
        ));
    }
    Ok(ctx)
}

/// The engine column family a request names ("" means the default one).
pub fn parse_cf(cf: &str) -> Result<&'static str, KvError> {
    match cf {
        "" | engine::CF_DEFAULT => Ok(engine::CF_DEFAULT),
        engine::CF_LOCK => Ok(engine::CF_LOCK),
        engine::CF_WRITE => Ok(engine::CF_WRITE),
        other => Err(KvError::InvalidArgument(format!(
            "unknown column family {other:?}; expected \"default\", \"lock\" or \"write\""
        ))),
    }
}

/// A raw key: `'r'` + keyspace id + user key, no longer than `max_key_size`.
pub fn check_key(key: &[u8], max_key_size: usize) -> Result<(), KvError> {
    check_key_of_mode(key, RAW_KEY_MODE, max_key_size)
}

/// A transactional key: `'x'` + keyspace id + user key, no longer than `max_key_size`.
pub fn check_txn_key(key: &[u8], max_key_size: usize) -> Result<(), KvError> {
    check_key_of_mode(key, TXN_KEY_MODE, max_key_size)
}

fn check_key_of_mode(key: &[u8], mode: u8, max_key_size: usize) -> Result<(), KvError> {
    if key.len() < KEYSPACE_PREFIX_LEN || key[0] != mode {
        let kind = if mode == RAW_KEY_MODE {
            "raw"
        } else {
            "transactional"
        };
        return Err(KvError::InvalidArgument(format!(
            "{kind} key {} lacks the keyspace prefix ('{}' + 3-byte keyspace id)",
            show_key(key),
            mode as char
        )));
    }
    if key.len() > max_key_size {
        return Err(KvError::Key(format!(
            "key is too large: {} bytes, the limit is {max_key_size}",
            key.len()
        )));
    }
    Ok(())
}

/// A range bound: empty (unbounded) or a raw key.
pub fn check_bound(key: &[u8], max_key_size: usize) -> Result<(), KvError> {
    if key.is_empty() {
        return Ok(());
    }
    check_key(key, max_key_size)
}

/// A transactional range bound: empty (unbounded) or a transactional key.
pub fn check_txn_bound(key: &[u8], max_key_size: usize) -> Result<(), KvError> {
    if key.is_empty() {
        return Ok(());
    }
    check_txn_key(key, max_key_size)
}

/// A key for messages: hex, shortened when long.
pub fn show_key(key: &[u8]) -> String {
    const SHOWN: usize = 32;
    let hex: String = key.iter().take(SHOWN).map(|b| format!("{b:02x}")).collect();
    if key.len() > SHOWN {
        format!("{hex}... ({} bytes)", key.len())
    } else {
        hex
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::metapb::RegionEpoch;

    fn v2() -> Context {
        Context {
            region_id: 1,
            region_epoch: Some(RegionEpoch {
                conf_ver: 1,
                version: 1,
            }),
            api_version: ApiVersion::V2 as i32,
            ..Default::default()
        }
    }

    #[test]
    fn context_must_exist_and_be_v2() {
        assert!(matches!(
            check_context(None),
            Err(KvError::InvalidArgument(_))
        ));
        assert_eq!(check_context(Some(&v2())).unwrap().region_id, 1);
        for version in [ApiVersion::V1 as i32, ApiVersion::V1ttl as i32, 9] {
            let ctx = Context {
                api_version: version,
                ..v2()
            };
            match check_context(Some(&ctx)) {
                Err(KvError::InvalidArgument(msg)) => assert!(msg.contains("API V2"), "{msg}"),
                other => panic!("unexpected {other:?}"),
            }
        }
        let no_epoch = Context {
            region_epoch: None,
            ..v2()
        };
        assert!(matches!(
            check_context(Some(&no_epoch)),
            Err(KvError::InvalidArgument(_))
        ));
    }

    #[test]
    fn column_families() {
        assert_eq!(parse_cf("").unwrap(), "default");
        assert_eq!(parse_cf("default").unwrap(), "default");
        assert_eq!(parse_cf("lock").unwrap(), "lock");
        assert_eq!(parse_cf("write").unwrap(), "write");
        for bad in ["raft", "Default", "x", " default"] {
            assert!(
                matches!(parse_cf(bad), Err(KvError::InvalidArgument(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn keys_need_the_raw_keyspace_prefix() {
        assert!(check_key(b"r\0\0\0", 16).is_ok());
        assert!(check_key(b"r\0\0\x01abc", 16).is_ok());
        for bad in [&b""[..], b"r", b"r\0\0", b"x\0\0\0k", b"abcd"] {
            assert!(
                matches!(check_key(bad, 16), Err(KvError::InvalidArgument(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn oversized_keys_are_key_errors() {
        let key = [b"r\0\0\0".as_slice(), &[7u8; 13]].concat();
        assert!(check_key(&key, 17).is_ok());
        match check_key(&key, 16) {
            Err(KvError::Key(msg)) => assert!(msg.starts_with("key is too large"), "{msg}"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn bounds_may_be_empty() {
        assert!(check_bound(b"", 16).is_ok());
        assert!(check_bound(b"r\0\0\x02", 16).is_ok());
        assert!(check_bound(b"s", 16).is_err());
    }

    #[test]
    fn long_keys_are_shortened_in_messages() {
        assert_eq!(show_key(b"ab"), "6162");
        assert!(show_key(&[0u8; 100]).ends_with("(100 bytes)"));
    }
}
