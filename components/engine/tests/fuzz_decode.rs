//! Malformed input, fuzzed: region and apply states, store identity, snapshot descriptions
//! and a pending bootstrap region stored in RocksDB as random bytes or damaged valid
//! encodings, then read back with `KvRead::get_msg_cf` (from the engine and from a snapshot),
//! and raft states stored in raft-engine read back with `RaftLogEngine::raft_state`: each read
//! gives the value prost decodes or `Error::Codec` naming where it came from; never a panic,
//! a hang or an allocation sized by a length prefix.
//!
//! Cases per property: `PROPTEST_CASES`, else the defaults below (`make fuzz` runs a million).

#[path = "../../../proto/tests/fuzz_support/mod.rs"]
mod fuzz_support;
#[path = "../../../proto/tests/fuzz_support/messages.rs"]
mod messages;
#[path = "../../../proto/tests/fuzz_support/scratch.rs"]
mod scratch;

use std::path::Path;

use scratch::scratch_dir;

use engine::{Error, KvEngine, KvRead, KvWriteBatch, RaftLogEngine, CF_RAFT};
use fuzz_support::{
    check_alloc, config_batched, guarded, mutated, random_bytes, run, run_with,
    valid_mutated_or_random, DEFAULT_CASES,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use proto::metapb::Region;
use proto::raft_serverpb::{
    RaftApplyState, RaftLocalState, RaftSnapshotData, RegionLocalState, StoreIdent,
};

/// Stored values read back per raft-engine reopen.
const RAFT_STATES_PER_CASE: u32 = 100;

/// Reads `key` of CF `raft` as `M` from the engine and from a snapshot; both must agree with
/// prost on the stored bytes.
fn read_back<M>(kv: &KvEngine, key: &[u8], stored: &[u8]) -> Result<(), TestCaseError>
where
    M: prost::Message + Default + PartialEq,
{
    let what = std::any::type_name::<M>();
    let direct = M::decode(stored);
    let snap = kv.snapshot();
    for (source, (got, peak)) in [
        (
            "engine",
            guarded(stored, || kv.get_msg_cf::<M>(CF_RAFT, key)),
        ),
        (
            "snapshot",
            guarded(stored, || snap.get_msg_cf::<M>(CF_RAFT, key)),
        ),
    ] {
        check_alloc(what, stored.len(), peak)?;
        match (&direct, got) {
            (Ok(want), Ok(Some(got))) => prop_assert!(got == *want, "{what} from the {source}"),
            (Err(_), Err(Error::Codec(msg))) => {
                prop_assert!(
                    msg.starts_with("raft/"),
                    "{what}: error names no key: {msg}"
                )
            }
            (want, got) => prop_assert!(
                false,
                "{what} from the {source}: prost says {:?}, get_msg_cf {:?}",
                want.as_ref().map(|_| "a value"),
                got.map(|v| v.is_some())
            ),
        }
    }
    Ok(())
}

/// Stores `value` under every state key and reads each back as its message type.
fn store_and_read(kv: &KvEngine, region_id: u64, value: &[u8]) -> Result<(), TestCaseError> {
    let state_key = keys::region_state_key(region_id);
    let apply_key = keys::apply_state_key(region_id);
    let snap_key = keys::snapshot_meta_key(region_id);
    let ident_key = keys::store_ident_key();
    let bootstrap_key = vec![keys::LOCAL_PREFIX, 0x02];
    let mut wb = KvWriteBatch::new();
    for key in [
        &state_key,
        &apply_key,
        &snap_key,
        &ident_key,
        &bootstrap_key,
    ] {
        wb.put_cf(CF_RAFT, key, value).expect("put");
    }
    kv.write(&wb, false).expect("write");
    read_back::<RegionLocalState>(kv, &state_key, value)?;
    read_back::<RaftApplyState>(kv, &apply_key, value)?;
    read_back::<RaftSnapshotData>(kv, &snap_key, value)?;
    read_back::<StoreIdent>(kv, &ident_key, value)?;
    read_back::<Region>(kv, &bootstrap_key, value)?;
    Ok(())
}

/// Valid encodings of what CF `raft` holds.
fn valid_state_encoding() -> impl Strategy<Value = Vec<u8>> + Clone {
    use prost::Message as _;
    prop_oneof![
        messages::region_local_state().prop_map(|m| m.encode_to_vec()),
        messages::apply_state().prop_map(|m| m.encode_to_vec()),
        messages::snapshot_data().prop_map(|m| m.encode_to_vec()),
        messages::store_ident().prop_map(|m| m.encode_to_vec()),
        messages::region().prop_map(|m| m.encode_to_vec()),
    ]
}

fn open_kv(dir: &Path) -> KvEngine {
    KvEngine::open(dir).expect("open the kv engine")
}

#[test]
fn fuzz_engine_get_msg_cf_random_bytes() {
    let dir = scratch_dir();
    let kv = open_kv(dir.path());
    run(
        "fuzz_engine_get_msg_cf_random_bytes",
        DEFAULT_CASES,
        (any::<u64>(), random_bytes(512)),
        |(region_id, value)| store_and_read(&kv, region_id, &value),
    );
}

#[test]
fn fuzz_engine_get_msg_cf_mutated() {
    let dir = scratch_dir();
    let kv = open_kv(dir.path());
    run(
        "fuzz_engine_get_msg_cf_mutated",
        DEFAULT_CASES,
        (any::<u64>(), mutated(valid_state_encoding())),
        |(region_id, value)| store_and_read(&kv, region_id, &value),
    );
}

/// Writes each value as a region's raft state straight into raft-engine (as a damaged disk
/// would hold it), reopens it as a `RaftLogEngine` and reads every state back.
fn raft_states_case(dir: &Path, values: &[Vec<u8>]) -> Result<(), TestCaseError> {
    let _ = std::fs::remove_dir_all(dir);
    {
        let raw = raft_engine::Engine::open(raft_engine::Config {
            dir: dir.to_string_lossy().into_owned(),
            target_file_size: raft_engine::ReadableSize::mb(128),
            purge_threshold: raft_engine::ReadableSize::gb(10),
            enable_log_recycle: false,
            ..Default::default()
        })
        .expect("open raft-engine");
        let mut batch = raft_engine::LogBatch::default();
        for (i, v) in values.iter().enumerate() {
            batch
                .put(i as u64 + 1, b"raft_state".to_vec(), v.clone())
                .expect("put");
        }
        raw.write(&mut batch, true).expect("write");
    }
    let raft = RaftLogEngine::open(dir).expect("reopen as a RaftLogEngine");
    for (i, v) in values.iter().enumerate() {
        let region_id = i as u64 + 1;
        let (got, peak) = guarded(v, || raft.raft_state(region_id));
        check_alloc("RaftLocalState", v.len(), peak)?;
        match (
            <RaftLocalState as prost::Message>::decode(v.as_slice()),
            got,
        ) {
            (Ok(want), Ok(Some(got))) => prop_assert_eq!(got, want),
            (Err(_), Err(Error::Codec(msg))) => prop_assert!(
                msg.contains(&format!("region {region_id}")),
                "error names no region: {msg}"
            ),
            (want, got) => prop_assert!(
                false,
                "region {region_id}: prost says {want:?}, raft_state {got:?}"
            ),
        }
    }
    Ok(())
}

#[test]
fn fuzz_engine_raft_state_from_raft_engine() {
    use prost::Message as _;
    let dir = scratch_dir();
    let path = dir.path().join("raft");
    run_with(
        "fuzz_engine_raft_state_from_raft_engine",
        config_batched(20, RAFT_STATES_PER_CASE),
        prop::collection::vec(
            valid_mutated_or_random(
                messages::raft_local_state().prop_map(|m| m.encode_to_vec()),
                64,
            ),
            1..=RAFT_STATES_PER_CASE as usize,
        ),
        |values| raft_states_case(&path, &values),
    );
}
