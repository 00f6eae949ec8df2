//! How raw values are stored: the user's bytes followed by a small trailer that carries an
//! optional expire time.
//!
//! Layout: `user_value ++ [expire_unix_secs: u64 BE, only with a TTL] ++ [flags: u8]`, where
//! flag bit 0 says an expire time is present. Every stored value has at least the flag byte,
//! so an empty stored value is corrupt.

use std::time::{SystemTime, UNIX_EPOCH};

use thiserror::Error;

/// Flag bit: an 8-byte expire time precedes the flag byte.
const HAS_EXPIRE: u8 = 0b1;
const KNOWN_FLAGS: u8 = HAS_EXPIRE;
const EXPIRE_LEN: usize = 8;

/// A stored value whose trailer cannot be read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ValueError {
    #[error("stored value is empty: the value trailer is missing")]
    Empty,
    #[error("stored value has unknown flags {0:#04x}")]
    UnknownFlags(u8),
    #[error("stored value of {0} bytes is too short for its expire time")]
    TruncatedExpire(usize),
}

/// A decoded stored value, borrowing the user's bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct StoredValue<'a> {
    pub user_value: &'a [u8],
    /// Unix seconds at which the value stops existing.
    pub expire_at: Option<u64>,
}

impl StoredValue<'_> {
    /// An expired value reads as if it were never written.
    pub fn is_expired(&self, now: u64) -> bool {
        self.expire_at.is_some_and(|at| at <= now)
    }

    /// Seconds left before expiry; 0 for a value without a TTL (or one already expired).
    pub fn remaining_ttl(&self, now: u64) -> u64 {
        self.expire_at.map_or(0, |at| at.saturating_sub(now))
    }
}

/// Stores `value` with a TTL of `ttl` seconds from `now` (0 = never expires).
pub fn encode(value: &[u8], ttl: u64, now: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + EXPIRE_LEN + 1);
    out.extend_from_slice(value);
    if ttl > 0 {
        out.extend_from_slice(&now.saturating_add(ttl).to_be_bytes());
        out.push(HAS_EXPIRE);
    } else {
        out.push(0);
    }
    out
}

/// Splits a stored value into the user's bytes and its expire time.
pub fn decode(stored: &[u8]) -> Result<StoredValue<'_>, ValueError> {
    let (&flags, rest) = stored.split_last().ok_or(ValueError::Empty)?;
    if flags & !KNOWN_FLAGS != 0 {
        return Err(ValueError::UnknownFlags(flags));
    }
    if flags & HAS_EXPIRE == 0 {
        return Ok(StoredValue {
            user_value: rest,
            expire_at: None,
        });
    }
    let split = rest
        .len()
        .checked_sub(EXPIRE_LEN)
        .ok_or(ValueError::TruncatedExpire(stored.len()))?;
    let (user_value, expire) = rest.split_at(split);
    let mut at = [0u8; EXPIRE_LEN];
    at.copy_from_slice(expire);
    Ok(StoredValue {
        user_value,
        expire_at: Some(u64::from_be_bytes(at)),
    })
}

/// The wall clock in Unix seconds, the unit of stored expire times.
pub fn now_unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_without_ttl_round_trips() {
        for v in [&b""[..], b"v", &[0u8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0xff]] {
            let stored = encode(v, 0, 1_000);
            assert_eq!(stored.len(), v.len() + 1);
            let d = decode(&stored).unwrap();
            assert_eq!(d.user_value, v);
            assert_eq!(d.expire_at, None);
            assert!(!d.is_expired(u64::MAX));
            assert_eq!(d.remaining_ttl(1_000), 0);
        }
    }

    #[test]
    fn value_with_ttl_round_trips_and_expires() {
        let stored = encode(b"hello", 30, 1_000);
        assert_eq!(stored.len(), 5 + 8 + 1);
        let d = decode(&stored).unwrap();
        assert_eq!(d.user_value, b"hello");
        assert_eq!(d.expire_at, Some(1_030));
        assert_eq!(d.remaining_ttl(1_000), 30);
        assert_eq!(d.remaining_ttl(1_029), 1);
        assert!(!d.is_expired(1_029));
        assert!(d.is_expired(1_030));
        assert!(d.is_expired(5_000));
        assert_eq!(d.remaining_ttl(5_000), 0);
    }

    #[test]
    fn empty_user_value_with_ttl_round_trips() {
        let stored = encode(b"", 5, 10);
        let d = decode(&stored).unwrap();
        assert_eq!(d.user_value, b"");
        assert_eq!(d.expire_at, Some(15));
    }

    #[test]
    fn huge_ttl_saturates_instead_of_wrapping() {
        let stored = encode(b"x", u64::MAX, 1_000);
        let d = decode(&stored).unwrap();
        assert_eq!(d.expire_at, Some(u64::MAX));
        assert!(!d.is_expired(1_000));
    }

    #[test]
    fn user_bytes_that_look_like_a_trailer_do_not_confuse_decoding() {
        // The user's value ends with what would be a "has expire" flag.
        let v = [9u8, 9, 9, 9, 9, 9, 9, 9, HAS_EXPIRE];
        let stored = encode(&v, 0, 0);
        let d = decode(&stored).unwrap();
        assert_eq!(d.user_value, v);
        assert_eq!(d.expire_at, None);
    }

    #[test]
    fn corrupt_trailers_are_typed_errors() {
        assert_eq!(decode(b""), Err(ValueError::Empty));
        assert_eq!(decode(&[0x80]), Err(ValueError::UnknownFlags(0x80)));
        assert_eq!(decode(b"abc\x03"), Err(ValueError::UnknownFlags(3)));
        assert_eq!(
            decode(&[1, 2, 3, HAS_EXPIRE]),
            Err(ValueError::TruncatedExpire(4))
        );
        assert_eq!(decode(&[HAS_EXPIRE]), Err(ValueError::TruncatedExpire(1)));
    }

    #[test]
    fn clock_is_after_2020() {
        assert!(now_unix_secs() > 1_577_836_800);
    }
}
