//! Malformed input, fuzzed: the memcomparable key codec and the local-key parser, fed random
//! bytes and damaged valid encodings, return a typed `KeyError` or a value that is exactly
//! what they read (re-encoding it gives back the bytes consumed): never a panic, a hang or an
//! allocation sized by the input.
//!
//! Cases per property: `PROPTEST_CASES`, else the defaults below (`make fuzz` runs a million).

#[path = "../../../proto/tests/fuzz_support/mod.rs"]
mod fuzz_support;

use fuzz_support::{check_alloc, guarded, mutated, random_bytes, run, DEFAULT_CASES};
use keys::{decode_bytes, decode_region_meta_key, encode_bytes, KeyError};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// Encoded keys as they appear in region boundaries and scans: one key, sometimes followed
/// by more bytes (a timestamp suffix, another key).
fn valid_encoded_key() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(any::<u8>(), 0..40),
        prop::collection::vec(any::<u8>(), 0..4),
    )
        .prop_map(|(key, suffix)| {
            let mut enc = encode_bytes(&key);
            enc.extend(suffix);
            enc
        })
}

fn decode_case(input: &[u8]) -> Result<(), TestCaseError> {
    let (decoded, peak) = guarded(input, || decode_bytes(input));
    check_alloc("decode_bytes", input.len(), peak)?;
    match decoded {
        Ok((key, used)) => {
            prop_assert!(used <= input.len());
            let again = encode_bytes(&key);
            prop_assert_eq!(
                again.as_slice(),
                &input[..used],
                "a decoded key does not re-encode to the bytes it consumed"
            );
        }
        Err(KeyError::Truncated(_)) | Err(KeyError::BadMarker { .. }) => {}
        Err(e) => prop_assert!(false, "decode_bytes answered an unexpected error: {e}"),
    }
    Ok(())
}

#[test]
fn fuzz_keys_decode_bytes_random_bytes() {
    run(
        "fuzz_keys_decode_bytes_random_bytes",
        DEFAULT_CASES * 2,
        random_bytes(256),
        |input| decode_case(&input),
    );
}

#[test]
fn fuzz_keys_decode_bytes_mutated() {
    run(
        "fuzz_keys_decode_bytes_mutated",
        DEFAULT_CASES * 2,
        mutated(valid_encoded_key()),
        |input| decode_case(&input),
    );
}

/// Valid encodings always decode to the original key.
#[test]
fn fuzz_keys_decode_bytes_round_trip() {
    run(
        "fuzz_keys_decode_bytes_round_trip",
        DEFAULT_CASES,
        prop::collection::vec(any::<u8>(), 0..64),
        |key| {
            let enc = encode_bytes(&key);
            prop_assert_eq!(decode_bytes(&enc), Ok((key, enc.len())));
            Ok(())
        },
    );
}

fn meta_key_case(input: &[u8]) -> Result<(), TestCaseError> {
    let (decoded, peak) = guarded(input, || decode_region_meta_key(input));
    check_alloc("decode_region_meta_key", input.len(), peak)?;
    match decoded {
        Ok((id, suffix)) => {
            let mut again = vec![keys::LOCAL_PREFIX, 0x03];
            again.extend_from_slice(&id.to_be_bytes());
            again.push(suffix);
            prop_assert_eq!(again.as_slice(), input);
        }
        Err(KeyError::BadLocalKey(k)) => prop_assert_eq!(k.as_slice(), input),
        Err(e) => prop_assert!(false, "unexpected error {e}"),
    }
    Ok(())
}

#[test]
fn fuzz_keys_region_meta_key() {
    run(
        "fuzz_keys_region_meta_key",
        DEFAULT_CASES,
        prop_oneof![
            random_bytes(24),
            mutated(
                (any::<u64>(), any::<bool>()).prop_map(|(id, apply)| if apply {
                    keys::apply_state_key(id)
                } else {
                    keys::region_state_key(id)
                })
            ),
        ],
        |input| meta_key_case(&input),
    );
}

/// Edge shapes every run checks, whatever the properties happen to generate.
#[test]
fn fuzz_keys_edge_inputs() {
    for input in [
        &b""[..],
        &[0xff; 9][..],
        &[0; 9][..],
        &[0, 0, 0, 0, 0, 0, 0, 0, 0xf6][..],
        &[1, 0, 0, 0, 0, 0, 0, 0, 0xf7][..],
    ] {
        decode_case(input).unwrap();
    }
}
