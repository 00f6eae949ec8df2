//! Every region's raft log and raft state, in raft-engine.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use prost::Message as _;
use proto::raft_serverpb::RaftLocalState;
use raft::eraftpb::Entry;
use raft_engine::{Command, Config, Engine, LogBatch, MessageExt, ReadableSize, RecoveryMode};

use crate::error::{Error, Result};

const RAFT_STATE_KEY: &[u8] = b"raft_state";

#[derive(Clone)]
struct EntryExt;

impl MessageExt for EntryExt {
    type Entry = Entry;

    fn index(e: &Entry) -> u64 {
        e.index
    }
}

/// A shared handle to one store's raft log engine.
#[derive(Clone)]
pub struct RaftLogEngine {
    engine: Arc<Engine>,
    path: Arc<PathBuf>,
    repaired_tail: Option<Arc<PathBuf>>,
}

impl RaftLogEngine {
    /// Opens (creating if needed) the raft log in `dir`. A damaged record is an error that
    /// names its file, except for a torn write at the very end of the newest file: a crash in
    /// the middle of a write leaves one, and that write was never synced, so never
    /// acknowledged. Such a tail is cut off after the file is copied aside
    /// (`<file>.damaged`); `repaired_tail` names the file, so a caller that finds entries it
    /// had already applied missing can blame it.
    pub fn open(dir: &Path) -> Result<RaftLogEngine> {
        std::fs::create_dir_all(dir)?;
        let (engine, repaired_tail) =
            match Engine::open(config(dir, RecoveryMode::AbsoluteConsistency)) {
                Ok(engine) => (engine, None),
                Err(e) if is_damage(&e) => {
                    let newest = newest_append_file(dir).ok_or_else(|| open_error(dir, e))?;
                    let mut kept = newest.clone().into_os_string();
                    kept.push(".damaged");
                    std::fs::copy(&newest, &kept)?;
                    tracing::warn!(
                        file = %newest.display(),
                        "raft log ends in a torn write; cutting it off (copy kept as {})",
                        PathBuf::from(&kept).display()
                    );
                    let engine = Engine::open(config(dir, RecoveryMode::TolerateTailCorruption))
                        .map_err(|e| open_error(dir, e))?;
                    (engine, Some(newest))
                }
                Err(e) => return Err(open_error(dir, e)),
            };
        let engine = RaftLogEngine {
            engine: Arc::new(engine),
            path: Arc::new(dir.to_path_buf()),
            repaired_tail: repaired_tail.map(Arc::new),
        };
        engine.verify_entries()?;
        Ok(engine)
    }

    /// The newest log file, if opening it cut off a damaged tail.
    pub fn repaired_tail(&self) -> Option<&Path> {
        self.repaired_tail.as_deref().map(PathBuf::as_path)
    }

    /// Reads every live entry once: entry data is checksummed but only checked when read, and
    /// a store must refuse to start on a damaged log rather than fail when a follower needs it.
    fn verify_entries(&self) -> Result<()> {
        const CHUNK: usize = 8 * 1024 * 1024;
        let mut buf = Vec::new();
        for region_id in self.engine.raft_groups() {
            let (Some(first), Some(last)) =
                (self.first_index(region_id), self.last_index(region_id))
            else {
                continue;
            };
            let mut next = first;
            while next <= last {
                buf.clear();
                match self.engine.fetch_entries_to::<EntryExt>(
                    region_id,
                    next,
                    last + 1,
                    Some(CHUNK),
                    &mut buf,
                ) {
                    Ok(n) if n > 0 => next += n as u64,
                    Ok(_) => break,
                    Err(e) => {
                        let detail = format!("region {region_id} entry {next}: {e}");
                        return Err(Error::Corruption {
                            path: suspect_file(&self.path, None),
                            detail,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: raft_engine::Error) -> Error {
        Error::RaftEngine {
            path: self.path.to_path_buf(),
            msg: e.to_string(),
        }
    }

    pub fn raft_state(&self, region_id: u64) -> Result<Option<RaftLocalState>> {
        match self.engine.get(region_id, RAFT_STATE_KEY) {
            None => Ok(None),
            Some(v) => RaftLocalState::decode(v.as_slice())
                .map(Some)
                .map_err(|e| Error::Codec(format!("raft state of region {region_id}: {e}"))),
        }
    }

    pub fn entry(&self, region_id: u64, index: u64) -> Result<Option<Entry>> {
        self.engine
            .get_entry::<EntryExt>(region_id, index)
            .map_err(|e| self.err(e))
    }

    /// Appends entries `[low, high)` to `out`, stopping early past `max_size` bytes (at least
    /// one entry is returned). Returns how many were added.
    pub fn fetch_entries(
        &self,
        region_id: u64,
        low: u64,
        high: u64,
        max_size: Option<usize>,
        out: &mut Vec<Entry>,
    ) -> Result<usize> {
        self.engine
            .fetch_entries_to::<EntryExt>(region_id, low, high, max_size, out)
            .map_err(|e| self.err(e))
    }

    pub fn first_index(&self, region_id: u64) -> Option<u64> {
        self.engine.first_index(region_id)
    }

    pub fn last_index(&self, region_id: u64) -> Option<u64> {
        self.engine.last_index(region_id)
    }

    /// Writes a batch; `sync` makes it durable (one fsync shared by concurrent writers).
    pub fn write(&self, batch: &mut RaftLogBatch, sync: bool) -> Result<usize> {
        self.engine
            .write(&mut batch.inner, sync)
            .map_err(|e| self.err(e))
    }

    /// Forgets a region's entries below `index`; returns how many were dropped.
    pub fn compact_to(&self, region_id: u64, index: u64) -> u64 {
        self.engine.compact_to(region_id, index)
    }

    /// Deletes log files nothing refers to any more.
    pub fn purge_expired_files(&self) -> Result<Vec<u64>> {
        self.engine.purge_expired_files().map_err(|e| self.err(e))
    }

    pub fn raft_groups(&self) -> Vec<u64> {
        self.engine.raft_groups()
    }

    pub fn used_size(&self) -> usize {
        self.engine.get_used_size()
    }
}

/// A batch of raft log writes for many regions.
#[derive(Default)]
pub struct RaftLogBatch {
    inner: LogBatch,
}

impl RaftLogBatch {
    pub fn new() -> RaftLogBatch {
        RaftLogBatch::default()
    }

    /// Appends entries; entries at or below the region's last index replace that suffix.
    pub fn append(&mut self, region_id: u64, entries: Vec<Entry>) -> Result<()> {
        self.inner
            .add_entries::<EntryExt>(region_id, &entries)
            .map_err(|e| Error::Codec(e.to_string()))
    }

    pub fn put_raft_state(&mut self, region_id: u64, state: &RaftLocalState) -> Result<()> {
        self.inner
            .put(region_id, RAFT_STATE_KEY.to_vec(), state.encode_to_vec())
            .map_err(|e| Error::Codec(e.to_string()))
    }

    /// Removes everything of a region (its peer was destroyed).
    pub fn clean(&mut self, region_id: u64) {
        self.inner.add_command(region_id, Command::Clean);
    }

    pub fn merge(&mut self, other: &mut RaftLogBatch) -> Result<()> {
        self.inner
            .merge(&mut other.inner)
            .map_err(|e| Error::Codec(e.to_string()))
    }

    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    pub fn approximate_size(&self) -> usize {
        self.inner.approximate_size()
    }
}

/// An open failure; for corruption, find the damaged file by reading each one.
fn config(dir: &Path, recovery_mode: RecoveryMode) -> Config {
    Config {
        dir: dir.to_string_lossy().into_owned(),
        recovery_mode,
        target_file_size: ReadableSize::mb(128),
        purge_threshold: ReadableSize::gb(10),
        ..Default::default()
    }
}

fn is_damage(e: &raft_engine::Error) -> bool {
    matches!(
        e,
        raft_engine::Error::Corruption(_) | raft_engine::Error::Codec(_)
    )
}

/// The append queue's newest file: the only one a torn write can end.
fn newest_append_file(dir: &Path) -> Option<PathBuf> {
    log_files(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "raftlog"))
        .max()
}

fn open_error(dir: &Path, e: raft_engine::Error) -> Error {
    let msg = e.to_string();
    if !is_damage(&e) {
        return Error::RaftEngine {
            path: dir.to_path_buf(),
            msg,
        };
    }
    let files = log_files(dir);
    for file in &files {
        let damaged = match Engine::dump(file) {
            Err(_) => true,
            Ok(reader) => reader.into_iter().any(|item| item.is_err()),
        };
        if damaged {
            return Error::Corruption {
                path: file.clone(),
                detail: msg,
            };
        }
    }
    Error::Corruption {
        path: suspect_file(dir, Some(files)),
        detail: msg,
    }
}

/// The log file to blame when the damaged one cannot be pinned down: the only file if there
/// is one, otherwise the directory.
fn suspect_file(dir: &Path, files: Option<Vec<PathBuf>>) -> PathBuf {
    let files = files.unwrap_or_else(|| log_files(dir));
    // The rewrite queue only fills when old files are compacted away; blame the append queue.
    let appended: Vec<&PathBuf> = files
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "raftlog"))
        .collect();
    match appended.as_slice() {
        [only] => (*only).clone(),
        _ => dir.to_path_buf(),
    }
}

fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x == "raftlog" || x == "rewrite")
        })
        .collect();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
        Entry {
            index,
            term,
            data: data.to_vec().into(),
            ..Default::default()
        }
    }

    #[test]
    fn append_fetch_overwrite_compact_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = RaftLogEngine::open(dir.path()).unwrap();
            let mut b = RaftLogBatch::new();
            b.append(1, (1..=10).map(|i| entry(i, 1, b"x")).collect())
                .unwrap();
            b.put_raft_state(
                1,
                &RaftLocalState {
                    term: 1,
                    vote: 2,
                    commit: 8,
                    last_index: 10,
                },
            )
            .unwrap();
            log.write(&mut b, true).unwrap();
            // A conflicting suffix from index 8 replaces 8..=10.
            let mut b = RaftLogBatch::new();
            b.append(1, vec![entry(8, 2, b"y"), entry(9, 2, b"y")])
                .unwrap();
            log.write(&mut b, true).unwrap();
            assert_eq!(log.last_index(1), Some(9));
            assert_eq!(log.entry(1, 8).unwrap().unwrap().term, 2);
            assert_eq!(log.entry(1, 10).unwrap(), None);
            let mut out = vec![];
            log.fetch_entries(1, 3, 10, None, &mut out).unwrap();
            assert_eq!(out.len(), 7);
            log.compact_to(1, 5);
            assert_eq!(log.first_index(1), Some(5));
        }
        let log = RaftLogEngine::open(dir.path()).unwrap();
        assert_eq!(log.last_index(1), Some(9));
        assert_eq!(log.first_index(1), Some(5));
        let state = log.raft_state(1).unwrap().unwrap();
        assert_eq!((state.vote, state.commit), (2, 8));
        let mut b = RaftLogBatch::new();
        b.clean(1);
        log.write(&mut b, true).unwrap();
        assert_eq!(log.last_index(1), None);
    }
}
