//! MVCC keys: a user key memcomparable-encoded, optionally followed by a timestamp.

use std::fmt;

use crate::errors::{Error, Result};

/// Bytes of the timestamp suffix of a versioned key.
const TS_LEN: usize = 8;

/// A user key in the MVCC key space, memcomparable-encoded (`keys::encode_bytes`): the form
/// the lock CF uses as is and the write and default CFs extend with a timestamp.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(Vec<u8>);

impl Key {
    /// The MVCC key of a user key as the client sends it.
    pub fn from_raw(raw: &[u8]) -> Key {
        Key(keys::encode_bytes(raw))
    }

    /// A key already in encoded form (read back from the lock CF, or a region boundary).
    pub fn from_encoded(encoded: Vec<u8>) -> Key {
        Key(encoded)
    }

    pub fn as_encoded(&self) -> &[u8] {
        &self.0
    }

    pub fn into_encoded(self) -> Vec<u8> {
        self.0
    }

    /// The user key. Errors with `Corrupt` when the stored encoding is damaged.
    pub fn to_raw(&self) -> Result<Vec<u8>> {
        match keys::decode_bytes(&self.0) {
            Ok((raw, used)) if used == self.0.len() => Ok(raw),
            Ok((_, used)) => Err(Error::Corrupt {
                what: "mvcc key",
                detail: format!("{} trailing bytes after the key", self.0.len() - used),
            }),
            Err(e) => Err(Error::Corrupt {
                what: "mvcc key",
                detail: e.to_string(),
            }),
        }
    }

    /// This key at `ts`: `encoded ++ (u64::MAX - ts)` big-endian, so newer versions sort
    /// first.
    pub fn append_ts(&self, ts: u64) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.0.len() + TS_LEN);
        k.extend_from_slice(&self.0);
        k.extend_from_slice(&(u64::MAX - ts).to_be_bytes());
        k
    }

    /// Splits a versioned key into its key and timestamp. Errors with `Corrupt` when it is
    /// too short to carry a timestamp.
    pub fn split_on_ts(versioned: &[u8]) -> Result<(Key, u64)> {
        let Some(at) = versioned.len().checked_sub(TS_LEN) else {
            return Err(Error::Corrupt {
                what: "versioned key",
                detail: format!("{} bytes, shorter than a timestamp", versioned.len()),
            });
        };
        let mut ts = [0u8; TS_LEN];
        ts.copy_from_slice(&versioned[at..]);
        Ok((
            Key(versioned[..at].to_vec()),
            u64::MAX - u64::from_be_bytes(ts),
        ))
    }

    /// The first versioned key past every version of this key (an exclusive scan bound).
    pub fn versions_end(&self) -> Vec<u8> {
        let mut k = self.append_ts(0);
        k.push(0);
        k
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_raw() {
            Ok(raw) => write!(f, "Key({:?})", String::from_utf8_lossy(&raw)),
            Err(_) => write!(f, "Key(encoded {:?})", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_newest_first_and_stay_between_their_neighbours() {
        let a = Key::from_raw(b"a");
        let a0 = Key::from_raw(b"a\0");
        let b = Key::from_raw(b"b");
        let mut versioned = vec![
            a.append_ts(5),
            a.append_ts(9),
            a0.append_ts(1),
            b.append_ts(u64::MAX),
            a.append_ts(0),
        ];
        versioned.sort();
        assert_eq!(
            versioned,
            vec![
                a.append_ts(9),
                a.append_ts(5),
                a.append_ts(0),
                a0.append_ts(1),
                b.append_ts(u64::MAX)
            ]
        );
        // A region boundary at a whole key: every version of `a\0` lies at or after it, every
        // version of `a` before it.
        assert!(a.append_ts(0) < a0.as_encoded().to_vec());
        assert!(a0.append_ts(u64::MAX) >= a0.as_encoded().to_vec());
        assert!(a.versions_end() <= a0.append_ts(u64::MAX));
    }

    #[test]
    fn split_on_ts_gives_back_key_and_ts() {
        let k = Key::from_raw(b"key");
        let (key, ts) = Key::split_on_ts(&k.append_ts(42)).unwrap();
        assert_eq!((key, ts), (k.clone(), 42));
        assert_eq!(k.to_raw().unwrap(), b"key");
        assert!(Key::split_on_ts(b"short").is_err());
        assert!(Key::from_encoded(b"nonsense".to_vec()).to_raw().is_err());
    }
}
