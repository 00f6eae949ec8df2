//! Region snapshots as files: one SST per data column family, generated from a consistent KV
//! snapshot at the applied index, described (sizes, CRC32) inside raft's snapshot message,
//! verified on arrival and ingested on apply.

use std::path::{Path, PathBuf};

use engine::{verify_file, write_sst, IoPacer, KvEngine, KvRead, KvWriteBatch, CF_RAFT, DATA_CFS};
use prost::Message as _;
use proto::eraftpb::{Snapshot, SnapshotMetadata};
use proto::metapb::Region;
use proto::raft_serverpb::{
    PeerState, RaftApplyState, RaftSnapshotData, RaftTruncatedState, RegionLocalState,
    SnapshotCfFile, SnapshotMeta,
};

use crate::errors::{Error, Result};
use crate::operation::command::conf_change::conf_state_from_region;

/// Where a store keeps snapshot files: `<data-dir>/snap`, beside the KV engine's `db`.
pub fn snap_dir(kv: &KvEngine) -> PathBuf {
    kv.path()
        .parent()
        .map(|p| p.join("snap"))
        .unwrap_or_else(|| kv.path().join("snap"))
}

/// A snapshot file's name: `gen_` on the sender, `rev_` on the receiver.
pub fn file_name(prefix: &str, region_id: u64, term: u64, index: u64, cf: &str) -> String {
    format!("{prefix}_{region_id}_{term}_{index}_{cf}.sst")
}

/// Builds a snapshot of `region_id` at its applied index, reading the region's data no faster
/// than `io_bytes_per_sec` (0: no limit).
pub fn generate(kv: &KvEngine, region_id: u64, io_bytes_per_sec: u64) -> Result<Snapshot> {
    crate::failpoint!(crate::failpoints::SNAPSHOT_GENERATE);
    let snap = kv.snapshot();
    let state: RegionLocalState = snap
        .get_msg_cf(CF_RAFT, &keys::region_state_key(region_id))?
        .ok_or(Error::RegionNotFound(region_id))?;
    let region = state.region.ok_or(Error::RegionNotFound(region_id))?;
    let apply: RaftApplyState = snap
        .get_msg_cf(CF_RAFT, &keys::apply_state_key(region_id))?
        .ok_or(Error::RegionNotFound(region_id))?;
    let (index, term) = (apply.applied_index, apply.applied_term);
    let dir = snap_dir(kv);
    std::fs::create_dir_all(&dir).map_err(engine::Error::Io)?;
    let start = keys::enc_start_key(&region.start_key);
    let end = keys::enc_end_key(&region.end_key);
    let mut files = Vec::new();
    let mut total = 0;
    let mut pacer = IoPacer::new(io_bytes_per_sec);
    for cf in DATA_CFS {
        let path = dir.join(file_name("gen", region_id, term, index, cf));
        if let Some(f) = write_sst(&snap, cf, &start, &end, &path, &mut pacer)? {
            total += f.size;
            files.push(SnapshotCfFile {
                cf: cf.to_string(),
                size: f.size,
                checksum: f.checksum,
            });
        }
    }
    remove_files(&dir, "gen", region_id, Some(index));
    let data = RaftSnapshotData {
        region: Some(region.clone()),
        file_size: total,
        meta: Some(SnapshotMeta { cf_files: files }),
    };
    let metadata = SnapshotMetadata {
        index,
        term,
        conf_state: Some(conf_state_from_region(&region)).into(),
        ..Default::default()
    };
    Ok(Snapshot {
        data: data.encode_to_vec().into(),
        metadata: Some(metadata).into(),
        ..Default::default()
    })
}

/// The description a snapshot message carries.
pub fn decode(snapshot: &Snapshot) -> Result<RaftSnapshotData> {
    Ok(RaftSnapshotData::decode(&snapshot.data[..])?)
}

/// Files of a snapshot under `dir` with `prefix`, with their expected size and checksum.
pub fn files(
    dir: &Path,
    prefix: &str,
    region_id: u64,
    snapshot: &Snapshot,
    data: &RaftSnapshotData,
) -> Vec<(String, PathBuf, u64, u32)> {
    let (term, index) = (snapshot.get_metadata().term, snapshot.get_metadata().index);
    data.meta
        .iter()
        .flat_map(|m| m.cf_files.iter())
        .map(|f| {
            (
                f.cf.clone(),
                dir.join(file_name(prefix, region_id, term, index, &f.cf)),
                f.size,
                f.checksum,
            )
        })
        .collect()
}

/// Checks every received file of a snapshot; a missing or damaged one is an error naming it.
pub fn verify_received(
    kv: &KvEngine,
    region_id: u64,
    snapshot: &Snapshot,
) -> Result<RaftSnapshotData> {
    let data = decode(snapshot)?;
    for (_, path, size, checksum) in files(&snap_dir(kv), "rev", region_id, snapshot, &data) {
        verify_file(&path, size, checksum)?;
    }
    Ok(data)
}

/// Starts replacing a region's data with a received snapshot: the region is marked Applying
/// (with the snapshot's description and apply state) and its old range cleared, in one
/// synced batch. `ingest` (on the region worker) finishes; a crash in between resumes at
/// start.
pub fn begin_apply(
    kv: &KvEngine,
    old_region: Option<&Region>,
    snapshot: &Snapshot,
    data: &RaftSnapshotData,
) -> Result<RaftApplyState> {
    let region = data
        .region
        .clone()
        .ok_or_else(|| Error::Codec("snapshot without a region".into()))?;
    let (term, index) = (snapshot.get_metadata().term, snapshot.get_metadata().index);
    let apply_state = RaftApplyState {
        applied_index: index,
        truncated_state: Some(RaftTruncatedState { index, term }),
        commit_index: index,
        commit_term: term,
        applied_term: term,
    };
    let mut wb = KvWriteBatch::new();
    wb.put_msg_cf(
        CF_RAFT,
        &keys::region_state_key(region.id),
        &state(&region, PeerState::Applying),
    )?;
    wb.put_msg_cf(CF_RAFT, &keys::apply_state_key(region.id), &apply_state)?;
    wb.put_msg_cf(CF_RAFT, &keys::snapshot_meta_key(region.id), data)?;
    if let Some(old) = old_region.filter(|r| !r.peers.is_empty()) {
        clear_range(&mut wb, old)?;
    }
    kv.write(&wb, true)?;
    Ok(apply_state)
}

/// Finishes what `begin_apply` started: ingests the snapshot's verified files and marks the
/// region Normal.
pub fn ingest(
    kv: &KvEngine,
    region: &Region,
    apply_state: &RaftApplyState,
    data: &RaftSnapshotData,
) -> Result<()> {
    crate::failpoint!(crate::failpoints::SNAPSHOT_BEFORE_INGEST);
    finish_apply(kv, region, apply_state, data)
}

/// Completes a snapshot a crash interrupted (the region is in the Applying state).
pub fn resume(kv: &KvEngine, region: &Region) -> Result<()> {
    let apply_state: RaftApplyState = kv
        .get_msg_cf(CF_RAFT, &keys::apply_state_key(region.id))?
        .ok_or(Error::RegionNotFound(region.id))?;
    let data: RaftSnapshotData = kv
        .get_msg_cf(CF_RAFT, &keys::snapshot_meta_key(region.id))?
        .ok_or_else(|| {
            Error::Codec(format!(
                "region {} lost its snapshot description",
                region.id
            ))
        })?;
    finish_apply(kv, region, &apply_state, &data)
}

fn state(region: &Region, s: PeerState) -> RegionLocalState {
    RegionLocalState {
        state: s as i32,
        region: Some(region.clone()),
        merge_state: None,
    }
}

fn clear_range(wb: &mut KvWriteBatch, region: &Region) -> Result<()> {
    let (start, end) = (
        keys::enc_start_key(&region.start_key),
        keys::enc_end_key(&region.end_key),
    );
    for cf in DATA_CFS {
        wb.delete_range_cf(cf, &start, &end)?;
    }
    Ok(())
}

/// Clears the snapshot's range, ingests its verified files and marks the region Normal.
/// Idempotent, so a restart can run it again.
fn finish_apply(
    kv: &KvEngine,
    region: &Region,
    apply_state: &RaftApplyState,
    data: &RaftSnapshotData,
) -> Result<()> {
    let (index, term) = apply_state
        .truncated_state
        .map_or((0, 0), |t| (t.index, t.term));
    let mut wb = KvWriteBatch::new();
    clear_range(&mut wb, region)?;
    kv.write(&wb, true)?;
    let dir = snap_dir(kv);
    for f in data.meta.iter().flat_map(|m| m.cf_files.iter()) {
        let path = dir.join(file_name("rev", region.id, term, index, &f.cf));
        verify_file(&path, f.size, f.checksum)?;
        // Copied, not moved: the file stays until the region is Normal, so an interrupted
        // apply can be redone.
        kv.ingest_sst_cf(&f.cf, &[path])?;
    }
    let mut wb = KvWriteBatch::new();
    // The description stays (replaced by the next snapshot) with the files it names.
    wb.put_msg_cf(
        CF_RAFT,
        &keys::region_state_key(region.id),
        &state(region, PeerState::Normal),
    )?;
    kv.write(&wb, true)?;
    // Applied: nothing reads these files again (a crash before this line leaves them to the
    // region worker's garbage collection, `worker::snap_gc`).
    remove_files(&dir, "rev", region.id, None);
    Ok(())
}

/// Deletes a region's snapshot files with `prefix`, but for those of index `keep_index`.
pub fn remove_files(dir: &Path, prefix: &str, region_id: u64, keep_index: Option<u64>) {
    let start = format!("{prefix}_{region_id}_");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(rest) = name.strip_prefix(&start) else {
            continue;
        };
        let index = rest.split('_').nth(1).and_then(|i| i.parse::<u64>().ok());
        if index.is_none() || index != keep_index {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
