//! Malformed input, fuzzed, on what PD reads back from its own RocksDB when it restarts:
//! cluster and member ids, the bootstrap flag, the id allocator's and the timestamp oracle's
//! reservations, the GC safe point, the saved schedule config (JSON), the default keyspace,
//! stores and regions, each stored as random bytes or as a damaged valid value. Opening PD on
//! such a data dir (`PdState::open`) either succeeds or fails with `Error::Corrupt` exactly
//! when a value cannot be used; never a panic or a hang. Also the hex keys of the HTTP API.
//!
//! Cases per property: `PROPTEST_CASES`, else the defaults below (`make fuzz` runs a million);
//! a case of the restart property opens RocksDB twice, so it runs `PROPTEST_CASES / 100`.

#[path = "../../proto/tests/fuzz_support/mod.rs"]
mod fuzz_support;
#[path = "../../proto/tests/fuzz_support/messages.rs"]
mod messages;
#[path = "../../proto/tests/fuzz_support/scratch.rs"]
mod scratch;

use std::path::Path;

use scratch::scratch_dir;

use engine::{KvEngine, KvWriteBatch, CF_DEFAULT};
use fuzz_support::{
    check_alloc, config_batched, guarded, mutated, random_bytes, run, run_with, DEFAULT_CASES,
};
use pd::{Config, Error, PdState, ScheduleConfig};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use prost::Message as _;
use proto::keyspacepb::KeyspaceMeta;
use proto::{metapb, pdpb};

/// Restart cases by default (each opens RocksDB twice).
const RESTART_CASES: u32 = 128;
/// How many `PROPTEST_CASES` one restart case stands for: a case writes about ten stored
/// values and opens RocksDB twice, a hundred times the work of one decode.
const INPUTS_PER_RESTART: u32 = 100;

/// A stored value: mostly valid (so that PD gets far enough to use the others), sometimes
/// absent, sometimes damaged or noise.
fn stored(
    valid: impl Strategy<Value = Vec<u8>> + Clone + 'static,
    max_random: usize,
) -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        6 => valid.clone().prop_map(Some),
        1 => Just(None),
        2 => mutated(valid).prop_map(Some),
        1 => random_bytes(max_random).prop_map(Some),
    ]
}

/// A big-endian u64 as PD writes it: ordinary values, timestamps of today, and extremes.
fn stored_u64() -> impl Strategy<Value = Option<Vec<u8>>> {
    stored(
        prop_oneof![
            fuzz_support::interesting_u64(),
            0u64..1_000_000,
            // Plausible timestamp windows: now-ish, in ms.
            1_600_000_000_000u64..2_000_000_000_000,
        ]
        .prop_map(|v| v.to_be_bytes().to_vec()),
        12,
    )
}

fn stored_schedule_config() -> impl Strategy<Value = Option<Vec<u8>>> {
    stored(
        Just(serde_json::to_vec(&ScheduleConfig::default()).expect("encode")),
        64,
    )
}

/// Everything PD reads back when it opens its data dir.
#[derive(Clone, Debug)]
struct Image {
    cluster_id: Option<Vec<u8>>,
    member_id: Option<Vec<u8>>,
    bootstrapped: Option<Vec<u8>>,
    alloc_id: Option<Vec<u8>>,
    tso_window: Option<Vec<u8>>,
    gc_safe_point: Option<Vec<u8>>,
    schedule_config: Option<Vec<u8>>,
    default_keyspace: Option<Vec<u8>>,
    stores: Vec<(u64, Option<Vec<u8>>)>,
    regions: Vec<(u64, Option<Vec<u8>>)>,
}

fn image() -> impl Strategy<Value = Image> {
    (
        (
            stored_u64(),
            stored_u64(),
            stored_u64(),
            stored_u64(),
            stored_u64(),
            stored_u64(),
        ),
        stored_schedule_config(),
        stored(
            messages::keyspace_meta().prop_map(|m| m.encode_to_vec()),
            64,
        ),
        prop::collection::vec(
            (
                any::<u64>(),
                stored(messages::store().prop_map(|m| m.encode_to_vec()), 64),
            ),
            0..3,
        ),
        prop::collection::vec(
            (
                any::<u64>(),
                stored(messages::pd_region().prop_map(|m| m.encode_to_vec()), 64),
            ),
            0..4,
        ),
    )
        .prop_map(
            |(
                (cluster_id, member_id, bootstrapped, alloc_id, tso_window, gc_safe_point),
                schedule_config,
                default_keyspace,
                stores,
                regions,
            )| Image {
                cluster_id,
                member_id,
                bootstrapped,
                alloc_id,
                tso_window,
                gc_safe_point,
                schedule_config,
                default_keyspace,
                stores,
                regions,
            },
        )
}

fn id_key(prefix: &[u8], id: u64) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// Writes `image` with PD's key layout into a fresh RocksDB at `dir`.
fn write_image(dir: &Path, image: &Image) {
    let _ = std::fs::remove_dir_all(dir);
    let kv = KvEngine::open(dir).expect("open RocksDB");
    let mut wb = KvWriteBatch::new();
    let mut put = |key: &[u8], value: &Option<Vec<u8>>| {
        if let Some(v) = value {
            wb.put_cf(CF_DEFAULT, key, v).expect("put");
        }
    };
    put(b"meta/cluster_id", &image.cluster_id);
    put(b"meta/member_id", &image.member_id);
    put(b"meta/bootstrapped", &image.bootstrapped);
    put(b"meta/alloc_id", &image.alloc_id);
    put(b"meta/tso_window", &image.tso_window);
    put(b"meta/gc_safe_point", &image.gc_safe_point);
    put(b"meta/schedule_config", &image.schedule_config);
    put(b"keyspace/DEFAULT", &image.default_keyspace);
    for (id, v) in &image.stores {
        put(&id_key(b"store/", *id), v);
    }
    for (id, v) in &image.regions {
        put(&id_key(b"region/", *id), v);
    }
    kv.write(&wb, false).expect("write");
}

/// Why PD must refuse `image`, if it must.
fn must_refuse(image: &Image) -> Option<String> {
    let u64s = [
        ("cluster id", &image.cluster_id),
        ("member id", &image.member_id),
        ("bootstrap flag", &image.bootstrapped),
        ("id allocator", &image.alloc_id),
        ("timestamp window", &image.tso_window),
        ("gc safe point", &image.gc_safe_point),
    ];
    for (what, v) in u64s {
        if let Some(v) = v {
            if v.len() != 8 {
                return Some(format!("{what} of {} bytes", v.len()));
            }
        }
    }
    if let Some(v) = &image.tso_window {
        let window = u64::from_be_bytes(v.as_slice().try_into().expect("8 bytes"));
        if window >= pd::tso::MAX_PHYSICAL - 1 {
            return Some(format!("timestamp window {window} beyond 46 bits"));
        }
    }
    if let Some(v) = &image.default_keyspace {
        if KeyspaceMeta::decode(v.as_slice()).is_err() {
            return Some("undecodable keyspace".into());
        }
    }
    // Stores and regions are read in key order; the first damaged one stops the load.
    let stored = |list: &[(u64, Option<Vec<u8>>)]| {
        list.iter()
            .filter_map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
    };
    if stored(&image.stores)
        .iter()
        .any(|v| metapb::Store::decode(v.as_slice()).is_err())
    {
        return Some("undecodable store".into());
    }
    if stored(&image.regions)
        .iter()
        .any(|v| pdpb::Region::decode(v.as_slice()).is_err())
    {
        return Some("undecodable region".into());
    }
    None
}

fn restart_case(dir: &Path, image: &Image) -> Result<(), TestCaseError> {
    write_image(dir, image);
    let cfg = Config {
        data_dir: dir.to_path_buf(),
        ..Config::default()
    };
    let marker = format!("{image:?}").into_bytes();
    let (opened, _) = guarded(&marker, || PdState::open(&cfg, "http://127.0.0.1:1".into()));
    match (must_refuse(image), opened) {
        (None, Ok(state)) => {
            // A restarted PD hands out ids and timestamps.
            let ts = state.tso.next(1);
            prop_assert!(
                ts.is_ok(),
                "a restarted PD cannot give a timestamp: {:?}",
                ts.err()
            );
            drop(state);
        }
        (Some(_), Err(Error::Corrupt { .. })) => {}
        (why, Ok(_)) => prop_assert!(false, "PD opened a data dir with {why:?}"),
        (why, Err(e)) => prop_assert!(
            false,
            "PD refused the data dir with {e} (expected refusal: {why:?})"
        ),
    }
    Ok(())
}

#[test]
fn fuzz_pd_restart_on_damaged_metadata() {
    let tmp = scratch_dir();
    let dir = tmp.path().join("pd");
    run_with(
        "fuzz_pd_restart_on_damaged_metadata",
        config_batched(RESTART_CASES, INPUTS_PER_RESTART),
        image(),
        |image| restart_case(&dir, &image),
    );
}

fn schedule_config_case(input: &[u8]) -> Result<(), TestCaseError> {
    let (parsed, peak) = guarded(input, || {
        serde_json::from_slice::<ScheduleConfig>(input).map(|c| (c.validate().is_ok(), c))
    });
    check_alloc("schedule config", input.len(), peak)?;
    if let Ok((_, cfg)) = parsed {
        let again: ScheduleConfig =
            serde_json::from_slice(&serde_json::to_vec(&cfg).expect("encode")).expect("decode");
        prop_assert_eq!(again, cfg);
    }
    Ok(())
}

#[test]
fn fuzz_pd_schedule_config_json() {
    run(
        "fuzz_pd_schedule_config_json",
        DEFAULT_CASES,
        prop_oneof![
            random_bytes(128),
            mutated(Just(
                serde_json::to_vec(&ScheduleConfig::default()).expect("encode")
            )),
        ],
        |input| schedule_config_case(&input),
    );
}

#[test]
fn fuzz_pd_hex_keys() {
    run(
        "fuzz_pd_hex_keys",
        DEFAULT_CASES,
        prop_oneof![
            any::<String>(),
            prop::collection::vec(any::<u8>(), 0..32).prop_map(|b| pd::hex::encode(&b)),
            mutated(
                prop::collection::vec(any::<u8>(), 0..32)
                    .prop_map(|b| pd::hex::encode(&b).into_bytes())
            )
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        ],
        |text| {
            let (decoded, peak) = guarded(text.as_bytes(), || pd::hex::decode(&text));
            check_alloc("hex", text.len(), peak)?;
            if let Some(bytes) = decoded {
                prop_assert_eq!(pd::hex::encode(&bytes), text.to_ascii_lowercase());
            }
            Ok(())
        },
    );
}

/// Found by `fuzz_pd_restart_on_damaged_metadata`: PD restarted on a saved timestamp window
/// above 46 bits (handing out versions that wrap around) and panicked on one near `u64::MAX`.
#[test]
fn fuzz_pd_restart_on_an_impossible_timestamp_window() {
    let tmp = scratch_dir();
    let dir = tmp.path().join("pd");
    for window in [u64::MAX, u64::MAX - 1000, 0xffff_ffff_0000_0000, 1 << 46] {
        let image = Image {
            cluster_id: Some(7u64.to_be_bytes().to_vec()),
            member_id: None,
            bootstrapped: None,
            alloc_id: None,
            tso_window: Some(window.to_be_bytes().to_vec()),
            gc_safe_point: None,
            schedule_config: None,
            default_keyspace: None,
            stores: vec![],
            regions: vec![],
        };
        restart_case(&dir, &image).unwrap();
    }
}
