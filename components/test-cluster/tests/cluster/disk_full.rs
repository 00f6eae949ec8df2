//! Stores short of disk space refuse writes before their disks fill, keeps serving reads,
//! tells PD, and takes writes again by itself once space returns. Every store's data
//! directory is a small tmpfs the test mounts (root only) and unmounts on exit.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use raftstore::testexport::disk_space;
use raftstore::testexport::PLACEHOLDER_FILE_NAME;
use test_cluster::*;

const MIB: u64 = 1 << 20;
const LOW_SPACE: u64 = 48 * MIB;
const RESERVE: u64 = 16 * MIB;

/// A tmpfs mounted on a directory; lazily unmounted on drop, also when the test panics with
/// files still open in it.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size_mib: u64) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size_mib}m"))
            .arg("shoal-disk-test")
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(status.success(), "mount tmpfs on {dir:?}");
        Tmpfs(dir.to_path_buf())
    }

    /// Grows (or shrinks) the filesystem in place.
    fn resize(&self, size_mib: u64) {
        let status = Command::new("mount")
            .args(["-o"])
            .arg(format!("remount,size={size_mib}m"))
            .arg(&self.0)
            .status()
            .expect("run mount");
        assert!(status.success(), "remount {:?}", self.0);
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn can_mount() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    root && Command::new("mount").arg("--version").output().is_ok()
}

/// Three stores, each on its own tmpfs of `size_mib`, with the low-space guard on.
fn cluster_on_tmpfs(size_mib: u64) -> (Cluster, Vec<Tmpfs>) {
    let cfg = raftstore::Config {
        disk_low_space_threshold: LOW_SPACE,
        disk_reserve_space: RESERVE,
        disk_check_interval: Duration::from_millis(50),
        ..raftstore::Config::for_tests()
    };
    let mut cluster = Cluster::with_config(3, cfg);
    let mounts = cluster
        .store_ids()
        .into_iter()
        .map(|s| Tmpfs::mount(&cluster.store_dir(s), size_mib))
        .collect();
    cluster.bootstrap(&[]);
    cluster.start();
    cluster.wait_leader(1);
    (cluster, mounts)
}

fn is_disk_full(e: &RequestError) -> bool {
    matches!(e, RequestError::Region(r) if r
        .server_is_busy
        .as_ref()
        .is_some_and(|b| b.reason.contains("disk full")))
}

fn put_once(cluster: &Cluster, key: &[u8], value: &[u8]) -> Result<(), RequestError> {
    cluster
        .request_once(key, vec![put_request(key, value)], false, DEFAULT_TIMEOUT)
        .map(|_| ())
}

fn available(dir: &Path) -> u64 {
    disk_space(dir).unwrap().available
}

/// Writes `ballast` in `dir` until `free` bytes are left. The store keeps using its disk
/// meanwhile (RocksDB preallocates a new write-ahead log in one go), so one write sized from
/// an earlier reading could overshoot into "no space left"; this one re-reads as it goes and
/// gives back what the store took beyond `free`.
fn fill_until_free(dir: &Path, ballast: &Path, free: u64) {
    let mut file = std::fs::File::create(ballast).unwrap();
    let chunk = vec![7u8; MIB as usize];
    for _ in 0..100_000 {
        let left = available(dir);
        if left <= free {
            break;
        }
        let n = (left - free).min(MIB) as usize;
        match file.write_all(&chunk[..n]) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
            Err(e) => panic!("write ballast {ballast:?}: {e}"),
        }
    }
    let short = free.saturating_sub(available(dir));
    let len = file.metadata().unwrap().len();
    file.set_len(len.saturating_sub(short)).unwrap();
}

#[test]
fn stores_short_of_space_refuse_writes_keep_reading_and_recover() {
    if !can_mount() {
        eprintln!("skipped: mounting a tmpfs needs root and mount(8)");
        return;
    }
    // Room for the reserve, the threshold, RocksDB's first write-ahead log (preallocated in
    // one go, 1.1 x the 64 MiB write buffer) and the next one's, which the store counts as
    // used before it is taken.
    let (mut cluster, mounts) = cluster_on_tmpfs(256);
    for i in 0..20u32 {
        cluster.must_put(format!("k{i:02}").as_bytes(), b"before");
    }
    let stores = cluster.store_ids();
    let placeholders: Vec<PathBuf> = stores
        .iter()
        .map(|s| cluster.store_dir(*s).join(PLACEHOLDER_FILE_NAME))
        .collect();
    for p in &placeholders {
        assert_eq!(std::fs::metadata(p).unwrap().len(), RESERVE);
    }

    // Something else fills every store's disk to just under the threshold, so whichever
    // store leads is short of space.
    let ballasts: Vec<PathBuf> = stores
        .iter()
        .map(|s| {
            let dir = cluster.store_dir(*s);
            let ballast = dir.join("ballast");
            fill_until_free(&dir, &ballast, LOW_SPACE - 8 * MIB);
            ballast
        })
        .collect();

    // Writes land until the next check notices; the probe key takes them.
    let refused = wait_for(DEFAULT_TIMEOUT, || {
        match put_once(&cluster, b"probe", b"during") {
            Err(e) if is_disk_full(&e) => Some(e),
            _ => None,
        }
    });
    assert!(refused.is_some(), "writes were not refused on a full disk");
    for p in &placeholders {
        assert!(
            wait_until(DEFAULT_TIMEOUT, || !p.exists()),
            "the reserve {p:?} was not released"
        );
    }
    // Refused again, and nothing of it lands; reads go on, by lease and by ReadIndex.
    let again = put_once(&cluster, b"new-key", b"x").unwrap_err();
    assert!(is_disk_full(&again), "{again:?}");
    for i in 0..20u32 {
        let key = format!("k{i:02}");
        let want = Some(b"before".to_vec());
        assert_eq!(cluster.get(key.as_bytes(), false).unwrap(), want);
        assert_eq!(cluster.get(key.as_bytes(), true).unwrap(), want);
    }
    assert_eq!(cluster.get(b"new-key", true).unwrap(), None);
    // PD hears that the stores are busy.
    for s in &stores {
        assert!(
            wait_until(DEFAULT_TIMEOUT, || cluster
                .pd
                .store_stats(*s)
                .is_some_and(|st| st.is_busy)),
            "store {s}'s heartbeat did not report the full disk"
        );
    }

    // Space returns: writes resume by themselves and the reserve is written again.
    for b in &ballasts {
        std::fs::remove_file(b).unwrap();
    }
    assert!(
        wait_until(DEFAULT_TIMEOUT, || put_once(&cluster, b"k00", b"after")
            .is_ok()),
        "writes did not resume once space returned"
    );
    for p in &placeholders {
        assert!(
            wait_until(DEFAULT_TIMEOUT, || p.exists()),
            "{p:?} not rewritten"
        );
    }
    cluster.must_put(b"new-key", b"y");
    assert_eq!(cluster.must_get(b"k00"), Some(b"after".to_vec()));
    assert_eq!(cluster.must_get(b"k19"), Some(b"before".to_vec()));
    for s in &stores {
        assert!(
            wait_until(DEFAULT_TIMEOUT, || cluster
                .pd
                .store_stats(*s)
                .is_some_and(|st| !st.is_busy)),
            "store {s} still reports itself busy"
        );
    }
    cluster.must_replicas_consistent();
    cluster.shutdown();
    drop(mounts);
}

#[test]
fn writes_filling_the_disk_are_refused_before_it_is_full_and_lose_nothing() {
    // One byte repeated: the raft log's compressed batches take almost nothing, so the table
    // files and the write-ahead log fill the disk.
    fill_the_disks_then_grow_them(&vec![0x5au8; 256 * 1024]);
}

#[test]
fn incompressible_writes_filling_the_disk_are_refused_before_it_is_full() {
    // Every byte counts three times: in the raft log, in RocksDB's write-ahead log and in
    // the table file a memtable flush writes, which the store must leave room for.
    fill_the_disks_then_grow_them(&incompressible(256 * 1024));
}

/// Writes 256 KiB values to stores on 256 MiB disks until they are refused for lack of space,
/// checks that no store ran out and every acknowledged value is there on every replica, then
/// grows the disks and checks that writes resume without a restart.
fn fill_the_disks_then_grow_them(value: &[u8]) {
    if !can_mount() {
        eprintln!("skipped: mounting a tmpfs needs root and mount(8)");
        return;
    }
    // Room at the start for the reserve, the low-space threshold and what RocksDB takes
    // without asking: its write-ahead log preallocated in one go (1.1 x the 64 MiB write
    // buffer) and then the next one, and the flush of a full memtable. Without counting
    // those two, the store took values until its first memtable flush ran out of space.
    let (mut cluster, mounts) = cluster_on_tmpfs(256);
    let mut acked = Vec::new();
    let mut refused = None;
    // 256 MiB of disk cannot take more than 1024 values of 256 KiB: the loop ends by refusal.
    for i in 0..2000u32 {
        let key = format!("fill{i:05}").into_bytes();
        match put_once(&cluster, &key, value) {
            Ok(()) => acked.push(key),
            Err(e) if is_disk_full(&e) => {
                refused = Some(e);
                break;
            }
            // Leadership can move and the region split under load (the request then did not
            // land); anything else is a bug.
            Err(RequestError::Region(r))
                if r.not_leader.is_some() || r.epoch_not_match.is_some() => {}
            Err(e) => panic!("put {i} failed with {e:?}"),
        }
    }
    assert!(
        refused.is_some(),
        "2000 writes of 256 KiB were never refused"
    );
    assert!(
        !acked.is_empty(),
        "the first write was refused: {refused:?}; available: {:?}",
        cluster
            .store_ids()
            .into_iter()
            .map(|s| available(&cluster.store_dir(s)))
            .collect::<Vec<_>>()
    );
    // No store ran out of space: each still has room, and every replica holds what was
    // acknowledged.
    for s in cluster.store_ids() {
        assert!(
            available(&cluster.store_dir(s)) > 0,
            "store {s} ran out of space"
        );
    }
    for key in &acked {
        assert_eq!(cluster.must_get(key).as_deref(), Some(value));
    }
    cluster.must_replicas_consistent();

    // The disks grow: writes resume without a restart.
    for m in &mounts {
        m.resize(512);
    }
    assert!(
        wait_until(DEFAULT_TIMEOUT, || put_once(&cluster, b"after", b"grown")
            .is_ok()),
        "writes did not resume once the disks grew"
    );
    assert_eq!(cluster.must_get(b"after"), Some(b"grown".to_vec()));
    for key in acked.iter().step_by(37) {
        assert_eq!(cluster.must_get(key).as_deref(), Some(value));
    }
    cluster.shutdown();
    drop(mounts);
}
