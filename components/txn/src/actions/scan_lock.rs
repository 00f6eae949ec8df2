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
