//! KvScanLock: the locks of a range that are not newer than a timestamp (reference §2.6
//! ScanLock, §1.3 `Client::scan_locks` / `cleanup_locks` / `gc`; TiKV `Storage::scan_lock`).
//!
//! The client uses it to find every lock a GC at `max_version` would strand, then resolves
//! them; it pages through a region by asking again from the last key + `\0` while a reply
//! holds exactly `limit` locks (reference §1.4 ScanLockResponse).

use engine::KvRead;
use proto::kvrpcpb::LockInfo;

use crate::errors::Result;
use crate::mvcc::{Key, MvccReader};

/// The locks with start_ts <= `max_version` whose keys lie in `[start, end)` ∩ the region, in
/// ascending key order, at most `limit` of them, as `LockInfo` with raw user keys.
///
/// Rules (reference §2.6; TiKV `Storage::scan_lock` → `MvccReader::scan_locks`):
/// - `start` and `end` are raw user keys, empty `end` = no upper bound; the region bounds
///   `region_start`/`region_end` are encoded keys (empty end = unbounded) and the range is
///   clipped to them in the encoded key space (the client clips `start` but not `end`).
/// - Locks of every type count, pessimistic ones included (the GC path resolves them too).
/// - `limit` counts only the locks returned (newer locks are skipped, not counted);
///   `limit == 0` means no limit, as in TiKV.
pub fn scan_lock<S: KvRead>(
    reader: &MvccReader<'_, S>,
    max_version: u64,
    start: &[u8],
    end: &[u8],
    limit: usize,
    region_start: &[u8],
    region_end: &[u8],
) -> Result<Vec<LockInfo>> {
    let lower = Key::from_raw(start)
        .into_encoded()
        .max(region_start.to_vec());
    let upper = clip_upper(end, region_end);
    if !upper.is_empty() && lower >= upper {
        return Ok(Vec::new());
    }
    let locks = reader.scan_locks(&lower, &upper, |l| l.ts <= max_version, limit)?;
    locks
        .into_iter()
        .map(|(key, lock)| Ok(lock.to_lock_info(key.to_raw()?)))
        .collect()
}

/// The locks of [`scan_lock`] (`persisted`, sorted, at most `limit`) with those of prewrites
/// still in flight (`in_memory`: async-commit and 1PC prewrites not yet applied, already
/// clipped to the same range and `max_version`), by raw key, in key order, a key in both once
/// (the persisted lock), at most `limit` (0 = no limit). When `persisted` is full, locks past
/// its last key are left out: persisted locks there were not read, and the caller pages on
/// from the last key listed.
///
/// TiKV answers a lock scan that meets such a lock with `KeyIsLocked`, so listing locks or a
/// GC fails for as long as async-commit writes run in the range. A resolver that is handed an
/// in-flight lock checks its primary like any other lock's, and that check waits for the
/// prewrite (it takes the same key latches), so listing them loses nothing.
pub fn merge_locks(
    persisted: Vec<LockInfo>,
    in_memory: impl Iterator<Item = LockInfo>,
    limit: usize,
) -> Vec<LockInfo> {
    let last_read = match persisted.last() {
        Some(last) if limit > 0 && persisted.len() >= limit => Some(last.key.clone()),
        _ => None,
    };
    let mut by_key: std::collections::BTreeMap<Vec<u8>, LockInfo> = in_memory
        .filter(|l| last_read.as_ref().is_none_or(|last| l.key <= *last))
        .map(|l| (l.key.clone(), l))
        .collect();
    for lock in persisted {
        by_key.insert(lock.key.clone(), lock);
    }
    let mut out: Vec<LockInfo> = by_key.into_values().collect();
    if limit > 0 {
        out.truncate(limit);
    }
    out
}

/// The exclusive encoded upper bound: the nearer of the raw request end and the encoded region
/// end, where empty means unbounded.
fn clip_upper(raw_end: &[u8], region_end: &[u8]) -> Vec<u8> {
    if raw_end.is_empty() {
        return region_end.to_vec();
    }
    let end = Key::from_raw(raw_end).into_encoded();
    if region_end.is_empty() {
        end
    } else {
        end.min(region_end.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(key: &str, ts: u64) -> LockInfo {
        LockInfo {
            key: key.as_bytes().to_vec(),
            lock_version: ts,
            ..Default::default()
        }
    }

    #[test]
    fn locks_in_flight_are_listed_with_the_persisted_ones() {
        let persisted = vec![info("b", 1), info("d", 1)];
        let memory = vec![info("a", 2), info("d", 9), info("e", 3)];
        let all = merge_locks(persisted.clone(), memory.clone().into_iter(), 0);
        assert_eq!(keys(&all), ["a", "b", "d", "e"]);
        assert_eq!(
            all[2].lock_version, 1,
            "a key in both is the persisted lock"
        );
        let first = merge_locks(persisted.clone(), memory.clone().into_iter(), 3);
        assert_eq!(keys(&first), ["a", "b", "d"]);
        // A full page of persisted locks: past its last key nothing was read, so no memory
        // lock from there may come before the persisted locks the next page finds.
        let full = merge_locks(persisted, memory.into_iter(), 2);
        assert_eq!(keys(&full), ["a", "b"]);
        let page = merge_locks(
            vec![info("b", 1), info("d", 1)],
            [info("e", 3)].into_iter(),
            2,
        );
        assert_eq!(keys(&page), ["b", "d"]);
    }
    use crate::mvcc::{Lock, LockType, MvccTxn};
    use crate::test_util::{apply, engine};

    /// Locks on `k00`..`k19`, the lock on `kNN` at ts NN + 10 (`k05` pessimistic).
    fn locks(kv: &engine::KvEngine) {
        let mut txn = MvccTxn::new();
        for i in 0..20u64 {
            let lock_type = if i == 5 {
                LockType::Pessimistic
            } else {
                LockType::Put
            };
            let mut lock = Lock::new(lock_type, b"k00".to_vec(), i + 10, 3000);
            lock.txn_size = 20;
            txn.put_lock(&Key::from_raw(format!("k{i:02}").as_bytes()), &lock);
        }
        apply(kv, txn.modifies());
    }

    fn keys(locks: &[LockInfo]) -> Vec<String> {
        locks
            .iter()
            .map(|l| String::from_utf8_lossy(&l.key).into_owned())
            .collect()
    }

    #[test]
    fn only_locks_not_newer_than_max_version_are_returned_with_raw_keys() {
        let (_dir, kv) = engine();
        locks(&kv);
        let r = MvccReader::new(&kv);
        let got = scan_lock(&r, 14, b"", b"", 0, b"", b"").unwrap();
        assert_eq!(keys(&got), vec!["k00", "k01", "k02", "k03", "k04"]);
        assert_eq!(got[2].lock_version, 12);
        assert_eq!(got[2].primary_lock, b"k00");
        assert_eq!(got[2].txn_size, 20);
        // Pessimistic locks are reported too.
        let got = scan_lock(&r, 15, b"k05", b"k06", 0, b"", b"").unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].lock_type, LockType::Pessimistic.to_op() as i32);
    }

    #[test]
    fn the_limit_counts_returned_locks_and_zero_means_unlimited() {
        let (_dir, kv) = engine();
        locks(&kv);
        let r = MvccReader::new(&kv);
        assert_eq!(
            scan_lock(&r, u64::MAX, b"", b"", 0, b"", b"")
                .unwrap()
                .len(),
            20
        );
        let got = scan_lock(&r, u64::MAX, b"k03", b"", 4, b"", b"").unwrap();
        assert_eq!(keys(&got), vec!["k03", "k04", "k05", "k06"]);
        // Newer locks are skipped, not counted: paging as the client does finds them all.
        let mut start = Vec::new();
        let mut seen = Vec::new();
        loop {
            let page = scan_lock(&r, 23, &start, b"", 3, b"", b"").unwrap();
            seen.extend(keys(&page));
            if page.len() < 3 {
                break;
            }
            start = page[2].key.clone();
            start.push(0);
        }
        let want: Vec<String> = (0..14).map(|i| format!("k{i:02}")).collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn the_range_is_clipped_to_the_request_and_the_region() {
        let (_dir, kv) = engine();
        locks(&kv);
        let r = MvccReader::new(&kv);
        let got = scan_lock(&r, u64::MAX, b"k08", b"k11", 0, b"", b"").unwrap();
        assert_eq!(keys(&got), vec!["k08", "k09", "k10"]);
        let rs = Key::from_raw(b"k10").into_encoded();
        let re = Key::from_raw(b"k13").into_encoded();
        let got = scan_lock(&r, u64::MAX, b"k00", b"", 0, &rs, &re).unwrap();
        assert_eq!(keys(&got), vec!["k10", "k11", "k12"]);
        let got = scan_lock(&r, u64::MAX, b"k11", b"k19", 0, &rs, &re).unwrap();
        assert_eq!(keys(&got), vec!["k11", "k12"]);
        let got = scan_lock(&r, u64::MAX, b"k00", b"k12", 0, &rs, b"").unwrap();
        assert_eq!(keys(&got), vec!["k10", "k11"]);
        assert!(scan_lock(&r, u64::MAX, b"k15", b"", 0, &rs, &re)
            .unwrap()
            .is_empty());
    }
}
