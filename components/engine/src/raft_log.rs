//! Every region's raft log and raft state, in raft-engine.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use prost::Message as _;
use proto::raft_serverpb::RaftLocalState;
use raft::eraftpb::Entry;
use raft_engine::{Command, Config, Engine, LogBatch, MessageExt, ReadableSize, RecoveryMode};

use crate::error::{Error, Result};
use crate::raft_log_file::{self, Check, Tail};
use crate::raft_log_options::RaftLogOptions;
use crate::zero_filled_fs::ZeroFilledFileSystem;

/// raft-engine over [`ZeroFilledFileSystem`].
type LogEngine = Engine<ZeroFilledFileSystem>;

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
    engine: Arc<LogEngine>,
    path: Arc<PathBuf>,
    repaired_tail: Option<Arc<PathBuf>>,
}

impl RaftLogEngine {
    /// How many copies of cut-off log files a raft log directory keeps: each repair of a torn
    /// write keeps one (`<file>.<n>.damaged`, `n` counting up), and opening the log deletes
    /// all but the newest `DAMAGED_COPIES_KEPT` of them.
    pub const DAMAGED_COPIES_KEPT: usize = 3;

    /// Opens (creating if needed) the raft log in `dir` with the default
    /// [`RaftLogOptions`]; see [`Self::open_with`].
    pub fn open(dir: &Path) -> Result<RaftLogEngine> {
        Self::open_with(dir, &RaftLogOptions::default())
    }

    /// Opens (creating if needed) the raft log in `dir`, writing as `options` say.
    ///
    /// The newest file of each of raft-engine's queues is where a crash leaves its mark, and
    /// is read before raft-engine opens the log:
    ///
    /// - zero bytes after its last complete record are space raft-engine preallocated and
    ///   never wrote, the normal end of a log after a crash (a clean close trims them). They
    ///   are trimmed the same way, quietly, and nothing is lost.
    /// - other bytes after its last complete record, with no complete record after them, are
    ///   a write cut short by the crash: never synced, so never acknowledged. The file is
    ///   copied aside (`<file>.<n>.damaged`, see [`Self::DAMAGED_COPIES_KEPT`]) and the tail
    ///   cut off; [`Self::repaired_tail`] names the file, so a caller that finds entries it
    ///   had already applied missing can blame it.
    ///
    /// Any other damaged record (in an older file, or with complete records after it) is an
    /// error that names its file. Entry data is checksummed but only checked when read, so
    /// every live entry is read once here too.
    pub fn open_with(dir: &Path, options: &RaftLogOptions) -> Result<RaftLogEngine> {
        options.validate()?;
        std::fs::create_dir_all(dir).map_err(|e| Error::RaftEngine {
            path: dir.to_path_buf(),
            msg: format!("cannot create its directory: {e}"),
        })?;
        let repaired_tail = {
            // No other process may write the log while its tails are settled; raft-engine
            // takes the same lock when it opens the log.
            let _lock = lock_dir(dir)?;
            let repaired = settle_tails(dir)?;
            prune_damaged_copies(dir);
            repaired
        };
        let engine = LogEngine::open_with_file_system(
            config(dir, options),
            Arc::new(ZeroFilledFileSystem::new()),
        )
        .map_err(|e| open_error(dir, e))?;
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
                            path: damaged_file(&self.path)
                                .unwrap_or_else(|| suspect_file(&self.path, None)),
                            detail,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// The directory holding the log.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: raft_engine::Error) -> Error {
        Error::RaftEngine {
            path: self.path.to_path_buf(),
            msg: e.to_string(),
        }
    }

    /// A region's persisted raft state, if it has one.
    pub fn raft_state(&self, region_id: u64) -> Result<Option<RaftLocalState>> {
        match self.engine.get(region_id, RAFT_STATE_KEY) {
            None => Ok(None),
            Some(v) => RaftLocalState::decode(v.as_slice())
                .map(Some)
                .map_err(|e| Error::Codec(format!("raft state of region {region_id}: {e}"))),
        }
    }

    /// A region's entry at `index`, if the log holds it.
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

    /// The index of a region's first entry in the log.
    pub fn first_index(&self, region_id: u64) -> Option<u64> {
        self.engine.first_index(region_id)
    }

    /// The index of a region's last entry in the log.
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

    /// Reclaims space once the log passes `purge-threshold` (below it, no file of the main
    /// log is deleted; the queue of copied-forward entries is cleaned once it is a tenth of
    /// the threshold and mostly garbage): copies the few entries idle regions keep in old
    /// files forward, then deletes the files nothing refers to any more. Returns the regions that keep too many entries in the oldest
    /// files to copy: their leaders should compact their logs now (TiKV answers the same
    /// list with `ForceCompactRaftLogs`). A region left alone is asked again on the next
    /// purges and, after several, its entries are copied forward anyway. May take long
    /// (it reads and writes log files); run it off the raft threads.
    pub fn purge_expired_files(&self) -> Result<Vec<u64>> {
        self.engine.purge_expired_files().map_err(|e| self.err(e))
    }

    /// The regions with anything in the log.
    pub fn raft_groups(&self) -> Vec<u64> {
        self.engine.raft_groups()
    }

    /// Bytes of log files in use.
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
    /// An empty batch.
    pub fn new() -> RaftLogBatch {
        RaftLogBatch::default()
    }

    /// Appends entries; entries at or below the region's last index replace that suffix.
    pub fn append(&mut self, region_id: u64, entries: Vec<Entry>) -> Result<()> {
        self.inner
            .add_entries::<EntryExt>(region_id, &entries)
            .map_err(|e| Error::Codec(e.to_string()))
    }

    /// Sets a region's raft state.
    pub fn put_raft_state(&mut self, region_id: u64, state: &RaftLocalState) -> Result<()> {
        self.inner
            .put(region_id, RAFT_STATE_KEY.to_vec(), state.encode_to_vec())
            .map_err(|e| Error::Codec(e.to_string()))
    }

    /// Removes everything of a region (its peer was destroyed).
    pub fn clean(&mut self, region_id: u64) {
        self.inner.add_command(region_id, Command::Clean);
    }

    /// Moves everything of `other` into this batch.
    pub fn merge(&mut self, other: &mut RaftLogBatch) -> Result<()> {
        self.inner
            .merge(&mut other.inner)
            .map_err(|e| Error::Codec(e.to_string()))
    }

    /// Whether the batch holds nothing to write.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Roughly how many bytes the batch will take in the log.
    pub fn approximate_size(&self) -> usize {
        self.inner.approximate_size()
    }
}

/// raft-engine's settings for the log in `dir`.
///
/// Recovery is strict (`AbsoluteConsistency`): by the time raft-engine opens the log,
/// [`settle_tails`] has trimmed the ends of the newest files, so any damage raft-engine finds
/// is real and must stop the store. The tolerant modes would instead cut a log short at the
/// first bad record of its last file, and at a bad entries block ending any file, silently
/// dropping synced entries after it.
///
/// Log files are not recycled: a recycled file keeps the records of the file it was before,
/// which after a crash follow the last record written like a torn write would, while a new
/// file ends in zeros.
fn config(dir: &Path, options: &RaftLogOptions) -> Config {
    Config {
        dir: dir.to_string_lossy().into_owned(),
        recovery_mode: RecoveryMode::AbsoluteConsistency,
        target_file_size: ReadableSize(options.target_file_size),
        purge_threshold: ReadableSize(options.purge_threshold),
        enable_log_recycle: false,
        batch_compression_threshold: ReadableSize(options.batch_compression_threshold),
        ..Default::default()
    }
}

fn is_damage(e: &raft_engine::Error) -> bool {
    matches!(
        e,
        raft_engine::Error::Corruption(_) | raft_engine::Error::Codec(_)
    )
}

/// Locks `dir` against other processes the way raft-engine does (its `LOCK` file), until the
/// returned file is dropped.
fn lock_dir(dir: &Path) -> Result<DirLockGuard> {
    let path = dir.join("LOCK");
    let file = std::fs::File::create(&path)?;
    file.try_lock().map_err(|e| Error::RaftEngine {
        path: dir.to_path_buf(),
        msg: format!(
            "cannot lock {}: {e}; is another process using it?",
            path.display()
        ),
    })?;
    Ok(DirLockGuard(file))
}

/// Holds the log directory's lock; unlocks it explicitly when dropped. Closing the file alone
/// is not enough: a child process forked by another thread holds a copy of the descriptor
/// until it execs, and a lock stays taken while any copy is open, so raft-engine's own lock
/// right after would fail.
struct DirLockGuard(std::fs::File);

impl Drop for DirLockGuard {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// Reads the newest file of each queue and deals with what follows its last complete record
/// (see [`RaftLogEngine::open`]). Returns the file whose torn tail was cut off, if any.
fn settle_tails(dir: &Path) -> Result<Option<PathBuf>> {
    let mut repaired = None;
    for ext in [APPEND_EXT, REWRITE_EXT] {
        let Some(file) = newest_file(dir, ext) else {
            continue;
        };
        let io_err = |e: std::io::Error| Error::RaftEngine {
            path: file.clone(),
            msg: e.to_string(),
        };
        let size = std::fs::metadata(&file).map_err(io_err)?.len();
        match raft_log_file::inspect(&file, Check::Framing).map_err(io_err)? {
            Tail::Clean => {}
            Tail::Zeros { end } => {
                cut(dir, &file, end).map_err(io_err)?;
                tracing::debug!(
                    file = %file.display(),
                    "raft log ends in {} bytes of preallocated space; trimmed",
                    size - end
                );
            }
            Tail::Torn { end, detail } => {
                let kept = keep_copy(&file, end == 0).map_err(io_err)?;
                if end > 0 {
                    cut(dir, &file, end).map_err(io_err)?;
                }
                tracing::warn!(
                    file = %file.display(),
                    "raft log ends in a torn write ({detail}); cut off {} bytes (copy kept as {})",
                    size - end,
                    kept.display()
                );
                repaired.get_or_insert(file);
            }
            Tail::Damaged { at, detail } => {
                return Err(Error::Corruption {
                    path: file,
                    detail: format!("damaged record at offset {at}: {detail}"),
                })
            }
        }
    }
    Ok(repaired)
}

/// Cuts `file` short at `end`, durably; a file cut to nothing, not even its header, is
/// removed (raft-engine starts a new one).
fn cut(dir: &Path, file: &Path, end: u64) -> std::io::Result<()> {
    if end == 0 {
        std::fs::remove_file(file)?;
    } else {
        let f = std::fs::OpenOptions::new().write(true).open(file)?;
        f.set_len(end)?;
        f.sync_all()?;
    }
    std::fs::File::open(dir)?.sync_all()
}

const DAMAGED_EXT: &str = "damaged";

/// Keeps `file` as `<file>.<n>.damaged`, `n` one more than that of any copy kept before:
/// moved there if `whole` (nothing of it stays in the log), copied otherwise.
fn keep_copy(file: &Path, whole: bool) -> std::io::Result<PathBuf> {
    let dir = file.parent().unwrap_or(Path::new("."));
    let n = damaged_copies(dir).iter().map(|c| c.0).max().unwrap_or(0) + 1;
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{n}.{DAMAGED_EXT}"));
    let kept = dir.join(name);
    if whole {
        std::fs::rename(file, &kept)?;
    } else {
        std::fs::copy(file, &kept)?;
        std::fs::File::open(&kept)?.sync_all()?;
    }
    std::fs::File::open(dir)?.sync_all()?;
    Ok(kept)
}

/// Copies kept by [`keep_copy`] in `dir`, with their numbers; a copy named without one
/// counts as number 0, older than any numbered copy.
fn damaged_copies(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut copies: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == DAMAGED_EXT))
        .map(|p| {
            let n = p
                .file_stem()
                .map(Path::new)
                .and_then(Path::extension)
                .and_then(|n| n.to_str()?.parse().ok())
                .unwrap_or(0);
            (n, p)
        })
        .collect();
    copies.sort();
    copies
}

/// Deletes all but the newest [`RaftLogEngine::DAMAGED_COPIES_KEPT`] damaged copies in
/// `dir`. A copy that cannot be deleted is only logged.
fn prune_damaged_copies(dir: &Path) {
    let copies = damaged_copies(dir);
    let excess = copies
        .len()
        .saturating_sub(RaftLogEngine::DAMAGED_COPIES_KEPT);
    for (_, old) in &copies[..excess] {
        match std::fs::remove_file(old) {
            Ok(()) => tracing::info!(
                file = %old.display(),
                "deleted an old copy of a damaged raft log file (keeping the newest {})",
                RaftLogEngine::DAMAGED_COPIES_KEPT
            ),
            Err(e) => tracing::warn!(
                file = %old.display(),
                "cannot delete an old copy of a damaged raft log file: {e}"
            ),
        }
    }
}

const APPEND_EXT: &str = "raftlog";
const REWRITE_EXT: &str = "rewrite";

/// The newest log file of the queue whose files end in `.{ext}`: the one being written.
fn newest_file(dir: &Path, ext: &str) -> Option<PathBuf> {
    log_files(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .max()
}

/// The first log file in `dir` with a damaged record, reading every record in full.
fn damaged_file(dir: &Path) -> Option<PathBuf> {
    log_files(dir).into_iter().find(|file| {
        !matches!(
            raft_log_file::inspect(file, Check::Everything),
            Ok(Tail::Clean)
        )
    })
}

/// An open failure; for corruption, find the damaged file by reading each one.
fn open_error(dir: &Path, e: raft_engine::Error) -> Error {
    let msg = e.to_string();
    if !is_damage(&e) {
        return Error::RaftEngine {
            path: dir.to_path_buf(),
            msg,
        };
    }
    if let Some(path) = damaged_file(dir) {
        return Error::Corruption { path, detail: msg };
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
        .filter(|p| p.extension().is_some_and(|x| x == APPEND_EXT))
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
                .is_some_and(|x| x == APPEND_EXT || x == REWRITE_EXT)
        })
        .collect();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settling_lock_is_released_while_a_copy_of_its_descriptor_lives() {
        let dir = tempfile::tempdir().unwrap();
        let guard = lock_dir(dir.path()).unwrap();
        // A child forked by another thread holds a copy like this one until it execs.
        let copy = guard.0.try_clone().unwrap();
        drop(guard);
        let other = std::fs::File::open(dir.path().join("LOCK")).unwrap();
        assert!(other.try_lock().is_ok(), "the lock outlived its guard");
        drop(copy);
    }

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
                    led_term: 0,
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

    fn compressible_entries(from: u64, count: u64) -> Vec<Entry> {
        (from..from + count)
            .map(|i| entry(i, 1, &[b'a'; 1024]))
            .collect()
    }

    fn write_entries(log: &RaftLogEngine, entries: Vec<Entry>) -> usize {
        let mut b = RaftLogBatch::new();
        b.append(1, entries).unwrap();
        log.write(&mut b, true).unwrap()
    }

    #[test]
    fn batches_are_compressed_unless_the_threshold_is_zero() {
        let compressed = tempfile::tempdir().unwrap();
        let log = RaftLogEngine::open(compressed.path()).unwrap();
        let written_compressed = write_entries(&log, compressible_entries(1, 64));
        let plain = tempfile::tempdir().unwrap();
        let off = RaftLogOptions {
            batch_compression_threshold: 0,
            ..Default::default()
        };
        let log = RaftLogEngine::open_with(plain.path(), &off).unwrap();
        let written_plain = write_entries(&log, compressible_entries(1, 64));
        assert!(
            written_plain >= 64 * 1024,
            "64 KiB of entries written as {written_plain} bytes with compression off"
        );
        assert!(
            written_compressed < written_plain / 4,
            "64 KiB of one repeated byte written as {written_compressed} bytes by default"
        );
    }

    #[test]
    fn a_log_reopens_with_the_compression_switched_either_way() {
        let dir = tempfile::tempdir().unwrap();
        let on = RaftLogOptions::default();
        let off = RaftLogOptions {
            batch_compression_threshold: 0,
            ..Default::default()
        };
        let expected: Vec<Entry> = compressible_entries(1, 64)
            .into_iter()
            .chain(compressible_entries(65, 64))
            .chain(compressible_entries(129, 64))
            .collect();
        {
            let log = RaftLogEngine::open_with(dir.path(), &on).unwrap();
            write_entries(&log, compressible_entries(1, 64));
        }
        {
            let log = RaftLogEngine::open_with(dir.path(), &off).unwrap();
            write_entries(&log, compressible_entries(65, 64));
        }
        {
            let log = RaftLogEngine::open_with(dir.path(), &on).unwrap();
            write_entries(&log, compressible_entries(129, 64));
        }
        for options in [&off, &on] {
            let log = RaftLogEngine::open_with(dir.path(), options).unwrap();
            let mut out = vec![];
            log.fetch_entries(1, 1, 193, None, &mut out).unwrap();
            assert_eq!(out, expected, "entries read back with {options:?}");
        }
    }

    /// Space raft-engine reserves ahead of its writes must be real zeros: unwritten extents
    /// would make every sync of the log commit the file system's journal.
    #[test]
    fn the_space_reserved_ahead_of_the_log_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let log = RaftLogEngine::open(dir.path()).unwrap();
        let mut b = RaftLogBatch::new();
        b.append(1, (1..=10).map(|i| entry(i, 1, &[7; 100])).collect())
            .unwrap();
        log.write(&mut b, true).unwrap();
        let file = newest_file(dir.path(), APPEND_EXT).expect("a log file");
        let size = std::fs::metadata(&file).unwrap().len();
        assert!(size >= 1 << 20, "only {size} bytes reserved");
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            bytes[bytes.len() - 4096..].iter().all(|b| *b == 0),
            "the reserved space reads as zeros"
        );
        match crate::zero_filled_fs::unwritten_extents(&file) {
            Ok(unwritten) => assert_eq!(unwritten, 0, "unwritten extents in {}", file.display()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::ENOTTY)) => {
                eprintln!(
                    "{} cannot map extents ({e}); checked the zeros only",
                    file.display()
                )
            }
            Err(e) => panic!("mapping the extents of {}: {e}", file.display()),
        }
    }
}
