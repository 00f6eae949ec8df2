//! Reopening the raft log after a crash, after a torn write and after damage.

use std::path::{Path, PathBuf};
use std::process::Command;

use engine::{Error, RaftLogBatch, RaftLogEngine};
use raft::eraftpb::Entry;

/// Set in a child process: the directory it writes a raft log into before aborting.
const CRASH_DIR_ENV: &str = "SHOAL_RAFT_LOG_CRASH_DIR";
/// Entries the crashing child writes, one synced batch each.
const CRASH_ENTRIES: u64 = 50;

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: format!("entry {index} of term {term}").into_bytes().into(),
        ..Default::default()
    }
}

/// Appends entries `range` to region 1, one synced batch per entry.
fn write_entries(log: &RaftLogEngine, range: std::ops::RangeInclusive<u64>) {
    for i in range {
        let mut b = RaftLogBatch::new();
        b.append(1, vec![entry(i, 1)]).unwrap();
        log.write(&mut b, true).unwrap();
    }
}

fn assert_entries(log: &RaftLogEngine, first: u64, last: u64) {
    assert_eq!(log.first_index(1), Some(first));
    assert_eq!(log.last_index(1), Some(last));
    let mut out = Vec::new();
    log.fetch_entries(1, first, last + 1, None, &mut out)
        .unwrap();
    assert_eq!(out.len() as u64, last - first + 1);
    for (e, i) in out.iter().zip(first..) {
        assert_eq!(*e, entry(i, 1));
    }
}

fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    out.sort();
    out
}

fn only_log_file(dir: &Path) -> PathBuf {
    let files = files_ending(dir, ".raftlog");
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

/// Not a test of its own: the body of the child process `crash_after_synced_writes` starts.
/// It writes synced entries and then aborts, so nothing is closed or cleaned up.
#[test]
fn crashing_child() {
    let Ok(dir) = std::env::var(CRASH_DIR_ENV) else {
        return;
    };
    let log = open_log(Path::new(&dir));
    write_entries(&log, 1..=CRASH_ENTRIES);
    std::process::abort();
}

/// Runs `crashing_child` in a child process on `dir` and waits for it to abort.
fn crash_after_synced_writes(dir: &Path) {
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crashing_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_DIR_ENV, dir)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child was meant to abort: {status}");
}

#[test]
fn a_crash_leaves_a_zero_tail_that_reopens_quietly() {
    let dir = tempfile::tempdir().unwrap();
    crash_after_synced_writes(dir.path());
    let file = only_log_file(dir.path());
    let crashed = std::fs::read(&file).unwrap();
    assert_eq!(
        crashed.last(),
        Some(&0),
        "the crash left no preallocated space"
    );

    // Unaided, raft-engine calls the end of this log damage.
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(&file, copy.path().join(file.file_name().unwrap())).unwrap();
    let strict = raft_engine::Config {
        dir: copy.path().to_string_lossy().into_owned(),
        recovery_mode: raft_engine::RecoveryMode::AbsoluteConsistency,
        ..Default::default()
    };
    let err = raft_engine::Engine::open(strict)
        .err()
        .expect("strict raft-engine refuses a log ending in zeros");
    assert!(
        err.to_string()
            .contains("Log item offset is smaller than log batch header length"),
        "{err}"
    );

    let log = open_log(dir.path());
    assert_eq!(log.repaired_tail(), None);
    assert_entries(&log, 1, CRASH_ENTRIES);
    assert_eq!(
        files_ending(dir.path(), ".damaged"),
        Vec::<PathBuf>::new(),
        "nothing is copied aside"
    );
    // Only zeros were cut off: the file now ends where its last batch does.
    let end = std::fs::metadata(&file).unwrap().len() as usize;
    assert!(end < crashed.len(), "{end} >= {}", crashed.len());
    assert!(crashed[end..].iter().all(|b| *b == 0));
    assert_eq!(std::fs::read(&file).unwrap(), crashed[..end]);

    // The log goes on from there, and reopens quietly after a clean close and another crash.
    write_entries(&log, CRASH_ENTRIES + 1..=CRASH_ENTRIES + 5);
    drop(log);
    let log = open_log(dir.path());
    assert_eq!(log.repaired_tail(), None);
    assert_entries(&log, 1, CRASH_ENTRIES + 5);
    drop(log);
    crash_after_synced_writes(dir.path());
    assert_eq!(std::fs::read(&file).unwrap().last(), Some(&0));
    let log = open_log(dir.path());
    assert_eq!(log.repaired_tail(), None);
    assert_entries(&log, 1, CRASH_ENTRIES);
    assert_eq!(files_ending(dir.path(), ".damaged"), Vec::<PathBuf>::new());
}

/// Opens the log in `dir`, appends entries `range` and closes it again; returns the size of
/// its only file, where those entries' records end.
fn write_session(dir: &Path, range: std::ops::RangeInclusive<u64>) -> usize {
    let log = open_log(dir);
    write_entries(&log, range);
    drop(log);
    std::fs::metadata(only_log_file(dir)).unwrap().len() as usize
}

fn xor_byte(file: &Path, at: usize) {
    let mut bytes = std::fs::read(file).unwrap();
    bytes[at] ^= 0xa5;
    std::fs::write(file, bytes).unwrap();
}

#[test]
fn damage_inside_an_earlier_record_refuses_to_open_naming_the_file() {
    // The last byte of the first session's last record (its footer checksum), and a byte
    // near the start of the first record (its entries).
    for (case, at) in [("footer", None), ("entries", Some(100))] {
        let dir = tempfile::tempdir().unwrap();
        let first_end = write_session(dir.path(), 1..=20);
        write_session(dir.path(), 21..=40);
        let file = only_log_file(dir.path());
        xor_byte(&file, at.unwrap_or(first_end - 1));
        let damaged = std::fs::read(&file).unwrap();

        let err = RaftLogEngine::open(dir.path())
            .err()
            .unwrap_or_else(|| panic!("{case}: a damaged log opened"));
        match &err {
            Error::Corruption { path, .. } => assert_eq!(path, &file, "{case}: {err}"),
            other => panic!("{case}: not a corruption error: {other}"),
        }
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(err.to_string().contains(&name), "{case}: {err}");
        // Nothing was cut off or copied aside.
        assert_eq!(std::fs::read(&file).unwrap(), damaged, "{case}");
        assert_eq!(
            files_ending(dir.path(), ".damaged"),
            Vec::<PathBuf>::new(),
            "{case}"
        );
    }
}

/// Makes a torn write of a log file's bytes whose last record spans `[start, end)`.
type Tear = fn(&[u8], usize, usize) -> Vec<u8>;

#[test]
fn a_torn_write_is_cut_off_and_a_copy_kept() {
    let cases: [(&str, Tear); 3] = [
        // The first half of the last record reached the disk, in preallocated space.
        ("half a record", |bytes, start, end| {
            let mut torn = bytes[..start + (end - start) / 2].to_vec();
            torn.resize(end + 64 * 1024, 0);
            torn
        }),
        // Bytes that are no record run to the end of the file.
        ("garbage", |bytes, start, _| {
            let mut torn = bytes[..start].to_vec();
            torn.extend_from_slice(&[0xa5; 100]);
            torn
        }),
        // The record's header and footer reached the disk, the page of its entries did not.
        ("a hole", |bytes, start, end| {
            let mut torn = bytes[..end].to_vec();
            torn[start + 16..start + 24].fill(0);
            torn
        }),
    ];
    for (case, tear) in cases {
        let dir = tempfile::tempdir().unwrap();
        let start = write_session(dir.path(), 1..=20);
        let end = write_session(dir.path(), 21..=21);
        let file = only_log_file(dir.path());
        let torn = tear(&std::fs::read(&file).unwrap(), start, end);
        std::fs::write(&file, &torn).unwrap();

        let log = open_log(dir.path());
        assert_eq!(log.repaired_tail(), Some(file.as_path()), "{case}");
        assert_entries(&log, 1, 20);
        assert_eq!(
            std::fs::metadata(&file).unwrap().len() as usize,
            start,
            "{case}"
        );
        let copies = files_ending(dir.path(), ".damaged");
        assert_eq!(copies.len(), 1, "{case}: {copies:?}");
        assert_eq!(std::fs::read(&copies[0]).unwrap(), torn, "{case}");
        // The log goes on, and the next open has nothing to repair.
        write_entries(&log, 21..=22);
        drop(log);
        let log = open_log(dir.path());
        assert_eq!(log.repaired_tail(), None, "{case}");
        assert_entries(&log, 1, 22);
        assert_eq!(files_ending(dir.path(), ".damaged"), copies, "{case}");
    }
}

#[test]
fn only_the_newest_damaged_copies_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let end = write_session(dir.path(), 1..=20);
    let file = only_log_file(dir.path());
    // A copy named the way it used to be, without a number.
    let mut legacy = file.clone().into_os_string();
    legacy.push(".damaged");
    std::fs::write(&legacy, b"an old copy").unwrap();
    let repairs = RaftLogEngine::DAMAGED_COPIES_KEPT + 2;
    for round in 1..=repairs {
        let mut bytes = std::fs::read(&file).unwrap();
        assert_eq!(bytes.len(), end);
        bytes.extend_from_slice(&[round as u8; 100]);
        std::fs::write(&file, bytes).unwrap();
        let log = open_log(dir.path());
        assert_eq!(log.repaired_tail(), Some(file.as_path()));
        assert_entries(&log, 1, 20);
        let copies = files_ending(dir.path(), ".damaged");
        assert!(
            copies.len() <= RaftLogEngine::DAMAGED_COPIES_KEPT,
            "{copies:?}"
        );
    }
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    let expected: Vec<PathBuf> = (repairs - RaftLogEngine::DAMAGED_COPIES_KEPT + 1..=repairs)
        .map(|n| dir.path().join(format!("{name}.{n}.damaged")))
        .collect();
    assert_eq!(files_ending(dir.path(), ".damaged"), expected);
    // The newest copy holds the newest torn write.
    let newest = std::fs::read(expected.last().unwrap()).unwrap();
    assert_eq!(newest[end..], [repairs as u8; 100]);
}

#[test]
fn a_log_open_elsewhere_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    write_entries(&log, 1..=5);
    let file = only_log_file(dir.path());
    let live = std::fs::read(&file).unwrap();
    assert_eq!(live.last(), Some(&0), "no preallocated space while open");
    assert!(RaftLogEngine::open(dir.path()).is_err());
    assert_eq!(std::fs::read(&file).unwrap(), live);
    assert_entries(&log, 1, 5);
}

/// Opens the log in `dir`, waiting (bounded) while its LOCK file is still held by the copy of
/// the previous handle's descriptor that a concurrently spawned child process (the crash
/// test's) inherited between its fork and its exec: the lock goes with that exec.
fn open_log(dir: &Path) -> RaftLogEngine {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match RaftLogEngine::open(dir) {
            Ok(log) => return log,
            Err(e) if e.to_string().contains("cannot lock") => {
                assert!(std::time::Instant::now() < deadline, "{e}");
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("cannot open the raft log in {}: {e}", dir.display()),
        }
    }
}
