//! How keys travel between the user, PD and the screen.
//!
//! Users type keys of the default keyspace; PD speaks memcomparable-encoded keys with the raw
//! keyspace prefix in front; the screen shows bytes escaped so any key prints on one line and
//! can be typed back.

use anyhow::{bail, Context, Result};

/// Raw keys of the default keyspace (id 0) start with `r` and the 3-byte keyspace id.
pub const DEFAULT_RAW_KEYSPACE_PREFIX: &[u8] = b"r\0\0\0";
/// Transactional keys of the default keyspace start with `x` and the 3-byte keyspace id.
pub const DEFAULT_TXN_KEYSPACE_PREFIX: &[u8] = b"x\0\0\0";

/// Escapes `bytes` for display: printable ASCII stays, `\` becomes `\\`, and every other byte
/// (and every byte in `also`) becomes `\xNN`.
pub fn escape_with(bytes: &[u8], also: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b == b'\\' {
            out.push_str("\\\\");
        } else if (0x20..0x7f).contains(&b) && !also.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Keys longer than this many characters are cut in messages.
const SHOWN_KEY_CHARS: usize = 64;

/// A key argument as an error message quotes it: in full up to 64 characters, otherwise its
/// first 64 and its length, so a key refused for its size is not printed back whole.
pub fn shown(key: &str) -> String {
    match key.char_indices().nth(SHOWN_KEY_CHARS) {
        None => format!("{key:?}"),
        Some((cut, _)) => format!("{:?}... ({} bytes)", &key[..cut], key.len()),
    }
}

/// Escapes `bytes` for display (see [`escape_with`]).
pub fn escape(bytes: &[u8]) -> String {
    escape_with(bytes, &[])
}

/// Reverses [`escape`]: `\\` and `\xNN` are turned back into bytes, the rest is taken as is.
pub fn unescape(text: &str) -> Result<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] != b'\\' {
            out.push(bytes[at]);
            at += 1;
            continue;
        }
        match bytes.get(at + 1) {
            Some(b'\\') => {
                out.push(b'\\');
                at += 2;
            }
            Some(b'x') => {
                let digits = bytes
                    .get(at + 2..at + 4)
                    .with_context(|| format!("{text:?}: \\x needs two hex digits"))?;
                // Both must be hex digits: `from_str_radix` alone would take a sign ("+1").
                let digits = Some(digits)
                    .filter(|d| d.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|d| std::str::from_utf8(d).ok())
                    .and_then(|d| u8::from_str_radix(d, 16).ok())
                    .with_context(|| format!("{text:?}: bad hex digits after \\x"))?;
                out.push(digits);
                at += 4;
            }
            _ => bail!("{text:?}: a backslash must start \\\\ or \\xNN"),
        }
    }
    Ok(out)
}

/// Formats one pair as `key=value`, with `=` inside the key escaped so the line splits
/// unambiguously at the first `=`.
pub fn key_value_line(key: &[u8], value: &[u8]) -> String {
    format!("{}={}", escape_with(key, b"="), escape(value))
}

/// The key PD stores for user key `key` of the default raw keyspace.
pub fn pd_key_for_user_key(key: &[u8]) -> Vec<u8> {
    keys::encode_bytes(&[DEFAULT_RAW_KEYSPACE_PREFIX, key].concat())
}

/// Hex of [`pd_key_for_user_key`], the form PD's HTTP API takes.
pub fn pd_hex_for_user_key(key: &[u8]) -> String {
    hex::encode(pd_key_for_user_key(key))
}

/// The user key of the default raw keyspace that PD key `hex_key` (hex of an encoded key)
/// stands for; `None` for a key outside that keyspace or one that does not decode.
pub fn user_key_for_pd_hex(hex_key: &str) -> Option<Vec<u8>> {
    let encoded = hex::decode(hex_key).ok()?;
    let (raw, used) = keys::decode_bytes(&encoded).ok()?;
    (used == encoded.len())
        .then(|| {
            raw.strip_prefix(DEFAULT_RAW_KEYSPACE_PREFIX)
                .map(<[u8]>::to_vec)
        })
        .flatten()
}

/// The key a store's transactional RPCs take for user key `key` of the default keyspace.
pub fn txn_store_key(key: &[u8]) -> Vec<u8> {
    [DEFAULT_TXN_KEYSPACE_PREFIX, key].concat()
}

/// Hex of the key PD stores for transactional user key `key` of the default keyspace.
pub fn pd_hex_for_txn_key(key: &[u8]) -> String {
    hex::encode(keys::encode_bytes(&txn_store_key(key)))
}

/// A store key shown as the user types it: without the default transactional keyspace
/// prefix, escaped (with the bytes in `also`, see [`escape_with`]); keys of other keyspaces
/// are shown whole, marked, so nothing is hidden.
pub fn display_txn_store_key(key: &[u8], also: &[u8]) -> String {
    match key.strip_prefix(DEFAULT_TXN_KEYSPACE_PREFIX) {
        Some(user_key) => escape_with(user_key, also),
        None => format!("(store-key){}", escape_with(key, also)),
    }
}

/// Which end of a region a boundary is; an empty boundary means "unbounded" on that side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Boundary {
    Start,
    End,
}

/// Shows a region boundary given by PD as hex of an encoded key: decoded and escaped, or a
/// marker for the unbounded ends. Boundaries that do not decode are shown as their hex so a
/// damaged region still prints.
pub fn display_region_boundary(hex_key: &str, side: Boundary) -> String {
    if hex_key.is_empty() {
        return match side {
            Boundary::Start => "-inf".to_string(),
            Boundary::End => "+inf".to_string(),
        };
    }
    let Ok(encoded) = hex::decode(hex_key) else {
        return format!("(bad hex {hex_key})");
    };
    match keys::decode_bytes(&encoded) {
        Ok((raw, used)) if used == encoded.len() => escape(&raw),
        _ => format!("(undecodable 0x{hex_key})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_keys_are_cut_in_messages() {
        assert_eq!(shown("abc"), "\"abc\"");
        let long = "k".repeat(120 * 1024);
        let text = shown(&long);
        assert!(text.len() < 100, "{text}");
        assert!(text.ends_with("... (122880 bytes)"), "{text}");
        assert_eq!(shown(&"é".repeat(64)), format!("{:?}", "é".repeat(64)));
    }

    #[test]
    fn pd_keys_of_the_default_keyspace_give_back_the_user_key() {
        assert_eq!(
            user_key_for_pd_hex(&pd_hex_for_user_key(b"user42")),
            Some(b"user42".to_vec())
        );
        assert_eq!(user_key_for_pd_hex(""), None);
        assert_eq!(user_key_for_pd_hex("zz"), None);
        let other_keyspace = hex::encode(keys::encode_bytes(b"r\x00\x00\x01"));
        assert_eq!(user_key_for_pd_hex(&other_keyspace), None);
    }

    #[test]
    fn printable_ascii_stays_and_the_rest_is_hex_escaped() {
        assert_eq!(escape(b"abc XYZ-09"), "abc XYZ-09");
        assert_eq!(escape(b"r\0\0\0k"), "r\\x00\\x00\\x00k");
        assert_eq!(escape(&[0xff, b'\n', 0x7f]), "\\xff\\x0a\\x7f");
        assert_eq!(escape(b"a\\b"), "a\\\\b");
    }

    #[test]
    fn unescape_reverses_escape_for_every_byte() {
        let all: Vec<u8> = (0..=255u8).collect();
        assert_eq!(unescape(&escape(&all)).unwrap(), all);
        assert_eq!(unescape("plain").unwrap(), b"plain");
        assert_eq!(unescape("\\x41\\x7A").unwrap(), b"Az");
    }

    #[test]
    fn unescape_rejects_broken_escapes() {
        assert!(unescape("a\\").is_err());
        assert!(unescape("\\x4").is_err());
        assert!(unescape("\\xzz").is_err());
        assert!(unescape("\\n").is_err());
        assert!(unescape("\\x+1").is_err());
        assert!(unescape("\\x-1").is_err());
        let e = unescape("bad\\x4").unwrap_err().to_string();
        assert!(!e.contains("key"), "{e}");
    }

    #[test]
    fn key_value_line_escapes_equals_in_the_key_only() {
        assert_eq!(key_value_line(b"a=b", b"c=d"), "a\\x3db=c=d");
        assert_eq!(key_value_line(b"k", b"\x01"), "k=\\x01");
    }

    #[test]
    fn user_keys_are_prefixed_and_memcomparable_encoded() {
        let encoded = pd_key_for_user_key(b"hello");
        // "r\0\0\0hell" is a full group, "o" the last partial one.
        assert_eq!(&encoded[..9], b"r\0\0\0hell\xff");
        assert_eq!(&encoded[9..], b"o\0\0\0\0\0\0\0\xf8");
        assert_eq!(pd_hex_for_user_key(b""), "7200000000000000fb");
    }

    #[test]
    fn txn_keys_carry_the_txn_keyspace_prefix() {
        assert_eq!(txn_store_key(b"k"), b"x\0\0\0k");
        assert_eq!(pd_hex_for_txn_key(b""), "7800000000000000fb");
        assert_eq!(display_txn_store_key(b"x\0\0\0a b", b" "), "a\\x20b");
        assert_eq!(
            display_txn_store_key(b"x\0\0\x01k", b""),
            "(store-key)x\\x00\\x00\\x01k"
        );
    }

    #[test]
    fn region_boundaries_are_decoded_and_escaped() {
        let hex_key = pd_hex_for_user_key(b"user1");
        assert_eq!(
            display_region_boundary(&hex_key, Boundary::Start),
            "r\\x00\\x00\\x00user1"
        );
        assert_eq!(display_region_boundary("", Boundary::Start), "-inf");
        assert_eq!(display_region_boundary("", Boundary::End), "+inf");
        assert!(display_region_boundary("zz", Boundary::End).contains("bad hex"));
        assert!(display_region_boundary("7200", Boundary::End).contains("undecodable"));
    }
}
