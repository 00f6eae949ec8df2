//! Memcomparable bytes encoding: groups of 8 bytes, each followed by a marker telling how many
//! of them are real; byte order of the encoding equals byte order of the input.

use crate::KeyError;

const GROUP: usize = 8;
const MARKER: u8 = 0xff;
const PAD: u8 = 0;

/// Encodes `key` so that encoded keys compare like the raw keys.
pub fn encode_bytes(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity((key.len() / GROUP + 1) * (GROUP + 1));
    let mut chunks = key.chunks_exact(GROUP);
    for chunk in &mut chunks {
        out.extend_from_slice(chunk);
        out.push(MARKER);
    }
    let rest = chunks.remainder();
    out.extend_from_slice(rest);
    out.extend(std::iter::repeat_n(PAD, GROUP - rest.len()));
    out.push(MARKER - (GROUP - rest.len()) as u8);
    out
}

/// Decodes one encoded key from the front of `encoded`; returns it and the bytes consumed.
pub fn decode_bytes(encoded: &[u8]) -> Result<(Vec<u8>, usize), KeyError> {
    let mut out = Vec::with_capacity(encoded.len() / (GROUP + 1) * GROUP);
    let mut at = 0;
    loop {
        let Some(group) = encoded.get(at..at + GROUP + 1) else {
            return Err(KeyError::Truncated(encoded.len()));
        };
        let marker = group[GROUP];
        let pad = (MARKER - marker) as usize;
        if pad > GROUP {
            return Err(KeyError::BadMarker {
                marker,
                at: at + GROUP,
            });
        }
        let real = GROUP - pad;
        out.extend_from_slice(&group[..real]);
        at += GROUP + 1;
        if pad != 0 {
            if group[real..GROUP].iter().any(|b| *b != PAD) {
                return Err(KeyError::BadMarker { marker, at: at - 1 });
            }
            return Ok((out, at));
        }
    }
}

/// The memcomparable-encoded key at the front of `key`, without whatever follows it (such as
/// the timestamp of an MVCC version); `key` itself when it does not start with a valid
/// encoding. Region boundaries are cut with it, so every version of one user key stays in
/// one region.
pub fn encoded_key_prefix(key: &[u8]) -> &[u8] {
    match decode_bytes(key) {
        Ok((_, used)) => &key[..used],
        Err(_) => key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encoded_prefix_drops_what_follows_the_key() {
        let enc = encode_bytes(b"user key");
        let mut versioned = enc.clone();
        versioned.extend_from_slice(&[0xff; 8]);
        assert_eq!(encoded_key_prefix(&versioned), enc.as_slice());
        assert_eq!(encoded_key_prefix(&enc), enc.as_slice());
        assert_eq!(encoded_key_prefix(b"not encoded"), b"not encoded");
    }

    fn samples() -> Vec<Vec<u8>> {
        let mut keys = vec![
            vec![],
            vec![0],
            vec![0xff],
            b"a".to_vec(),
            b"abcdefgh".to_vec(),
        ];
        // Deterministic pseudo-random keys of many lengths.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for len in 0..40 {
            for _ in 0..5 {
                let mut k = Vec::with_capacity(len);
                for _ in 0..len {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    k.push((x % 4) as u8 * 85);
                }
                keys.push(k);
            }
        }
        keys
    }

    #[test]
    fn empty_key_is_one_padded_group() {
        assert_eq!(encode_bytes(b""), vec![0, 0, 0, 0, 0, 0, 0, 0, 0xf7]);
        assert_eq!(encode_bytes(b"abcdefgh").len(), 18);
    }

    #[test]
    fn round_trip() {
        for k in samples() {
            let enc = encode_bytes(&k);
            let (dec, used) = decode_bytes(&enc).unwrap();
            assert_eq!(dec, k);
            assert_eq!(used, enc.len());
        }
    }

    #[test]
    fn order_is_preserved() {
        let keys = samples();
        for a in &keys {
            for b in &keys {
                assert_eq!(
                    a.cmp(b),
                    encode_bytes(a).cmp(&encode_bytes(b)),
                    "{a:?} vs {b:?}"
                );
            }
        }
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert!(matches!(decode_bytes(b"abc"), Err(KeyError::Truncated(_))));
        let mut bad = encode_bytes(b"abc");
        let last = bad.len() - 1;
        bad[last] = 0x10;
        assert!(matches!(
            decode_bytes(&bad),
            Err(KeyError::BadMarker { .. })
        ));
        let mut bad_pad = encode_bytes(b"abc");
        bad_pad[5] = 1;
        assert!(decode_bytes(&bad_pad).is_err());
    }
}
