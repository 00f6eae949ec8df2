//! Snapshot-isolation reads: KvGet, KvBatchGet and KvScan (reference §2.2; TiKV
//! `src/storage/mod.rs` `get`/`batch_get`/`scan`, `src/storage/mvcc/reader/point_getter.rs`,
//! `scanner/forward.rs`, `scanner/backward.rs`, and `txn_types::Lock::check_ts_conflict`).
//!
//! A read at `ts` first looks at the key's lock: a lock that may still commit at or below `ts`
//! stops the read (the client resolves it and retries, reference §1.5); otherwise the read
//! returns the newest `Put` with commit_ts <= `ts`, skipping `Lock` and `Rollback` records, and
//! nothing when that newest data version is a `Delete`.
//!
//! The caller has already raised max_ts to `ts` (reference §2.2 step 1, Part 3 pitfall 2) and
//! checked the in-memory lock table of the concurrency manager; these functions only read the
//! snapshot.

use std::collections::{BTreeMap, VecDeque};

use engine::KvRead;
use proto::kvrpcpb::{KeyError, KvPair, LockInfo};

use crate::concurrency_manager::MemoryLock;
use crate::errors::{Error, Result};
use crate::mvcc::{Key, Lock, MvccReader, WriteType};

/// Fewest keys a scan fetches from each CF at a time.
const MIN_SCAN_CHUNK: usize = 16;
/// Most keys a scan fetches from each CF at a time: a scan never holds more than this many
/// keys (and locks) in memory, however large the region.
const MAX_SCAN_CHUNK: usize = 256;

/// One entry of a batch get or scan answer: a value, or the lock that stopped the read of a
/// key. Keys are raw user keys.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadPair {
    /// The value visible at the read timestamp (empty for a key-only scan).
    Value { key: Vec<u8>, value: Vec<u8> },
    /// The key's lock blocks the read; the client resolves it and reads again.
    Locked { key: Vec<u8>, lock: LockInfo },
}

impl ReadPair {
    /// The raw user key of this entry.
    pub fn key(&self) -> &[u8] {
        match self {
            ReadPair::Value { key, .. } | ReadPair::Locked { key, .. } => key,
        }
    }
}

impl From<ReadPair> for KvPair {
    /// The wire pair: a value, or `error.locked` with an empty value (reference §1.4: the
    /// client takes locks from `pairs[].error.locked`, and a pair with an error is not a value).
    fn from(pair: ReadPair) -> KvPair {
        match pair {
            ReadPair::Value { key, value } => KvPair {
                error: None,
                key,
                value,
            },
            ReadPair::Locked { key, lock } => KvPair {
                error: Some(KeyError {
                    locked: Some(lock),
                    ..KeyError::default()
                }),
                key,
                value: Vec::new(),
            },
        }
    }
}

/// Whether `lock` on the user key `raw_key` stops a snapshot read at `ts` (TiKV's
/// `Lock::check_ts_conflict` for SI, reference §2.2 step 2).
///
/// The general rule is [`Lock::blocks_read_at`]. The one exception: a read at `u64::MAX`
/// of the *primary* key of a non-async-commit transaction ignores the lock. A read at
/// `u64::MAX` asks for the latest committed version, and a 2PC transaction commits exactly
/// when its primary's lock is replaced by a commit record, so a lock still on the primary
/// means that transaction has not committed: the newest commit record is the right answer.
/// The rule does not hold for secondaries (their transaction may already be committed
/// through its primary) nor for async-commit transactions (committed as soon as every
/// prewrite succeeded, while the primary still holds its lock).
fn lock_blocks_read(lock: &Lock, raw_key: &[u8], ts: u64) -> bool {
    if ts == u64::MAX && !lock.use_async_commit && lock.primary == raw_key {
        return false;
    }
    lock.blocks_read_at(ts)
}

/// A lock of the concurrency manager's memory table met by a read at `ts` (the caller raised
/// max_ts to `ts` first): `KeyIsLocked` when it stops the read, as a persisted lock would.
/// A 1PC entry gets no "read of the latest skips a primary's lock" shortcut: its
/// transaction commits while the entry is visible.
pub fn check_memory_lock(memory_lock: &MemoryLock, ts: u64) -> Result<()> {
    let lock = &memory_lock.lock;
    let blocks = if memory_lock.one_pc {
        lock.blocks_read_at(ts)
    } else {
        lock_blocks_read(lock, &memory_lock.raw_key, ts)
    };
    if blocks {
        return Err(Error::KeyIsLocked(Box::new(
            lock.to_lock_info(memory_lock.raw_key.clone()),
        )));
    }
    Ok(())
}

/// What a read at `ts` finds for `key`, given the lock on it (if any): the blocking lock, the
/// visible value (empty when `key_only`), or nothing (no version, or a `Delete`).
fn read_key<S: KvRead>(
    reader: &MvccReader<'_, S>,
    key: &Key,
    lock: Option<&Lock>,
    ts: u64,
    key_only: bool,
) -> Result<Option<ReadPair>> {
    let raw = key.to_raw()?;
    if let Some(lock) = lock.filter(|l| lock_blocks_read(l, &raw, ts)) {
        let info = lock.to_lock_info(raw.clone());
        return Ok(Some(ReadPair::Locked {
            key: raw,
            lock: info,
        }));
    }
    let value = match reader.get_write(key, ts)? {
        Some((_, w)) if w.write_type == WriteType::Put && key_only => Vec::new(),
        Some((_, w)) if w.write_type == WriteType::Put => reader.load_data(key, &w)?,
        _ => return Ok(None),
    };
    Ok(Some(ReadPair::Value { key: raw, value }))
}

/// KvGet: the value of the raw user key `key` visible at `ts`, or `None`.
///
/// Rules (reference §2.2; TiKV `PointGetter::get`): the lock is checked first, and a lock that
/// blocks the read (see `lock_blocks_read`: a Put/Delete lock with start_ts <= `ts` and
/// min_commit_ts <= `ts`, except on the primary when `ts == u64::MAX`) fails the read with
/// [`Error::KeyIsLocked`] carrying the raw key. Then the newest `Put` at or below `ts` wins;
/// a newer `Delete` hides it; `Lock` and `Rollback` records are skipped.
pub fn point_get<S: KvRead>(
    reader: &MvccReader<'_, S>,
    key: &[u8],
    ts: u64,
) -> Result<Option<Vec<u8>>> {
    let k = Key::from_raw(key);
    let lock = reader.load_lock(&k)?;
    match read_key(reader, &k, lock.as_ref(), ts, false)? {
        Some(ReadPair::Value { value, .. }) => Ok(Some(value)),
        Some(ReadPair::Locked { lock, .. }) => Err(Error::KeyIsLocked(Box::new(lock))),
        None => Ok(None),
    }
}

/// KvBatchGet: for each raw user key, in request order, its value or the lock that blocks it;
/// keys with no visible value are omitted (reference §1.4 BatchGetResponse; TiKV
/// `Storage::batch_get`, where a `KeyIsLocked` becomes that key's pair and any other error fails
/// the request). Each key is read like [`point_get`].
pub fn batch_get<S: KvRead>(
    reader: &MvccReader<'_, S>,
    keys: &[Vec<u8>],
    ts: u64,
) -> Result<Vec<ReadPair>> {
    let mut pairs = Vec::with_capacity(keys.len());
    for raw in keys {
        let k = Key::from_raw(raw);
        let lock = reader.load_lock(&k)?;
        if let Some(pair) = read_key(reader, &k, lock.as_ref(), ts, false)? {
            pairs.push(pair);
        }
    }
    Ok(pairs)
}

/// KvScan: up to `limit` entries for the keys of a range, in key order (descending when
/// `reverse`), read at `ts` like [`point_get`].
///
/// Rules (reference §1.3, §2.2 step 4; TiKV `Storage::scan` and its forward/backward scanners):
/// - Bounds are raw user keys. Forward: `[start, end)`, empty `end` = no upper bound. Reverse:
///   `start` is the exclusive upper bound and `end` the inclusive lower bound, either empty =
///   no bound. The range is clipped to the region `[region_start, region_end)` (encoded keys,
///   empty end = unbounded), comparing in the encoded key space.
/// - Every key with a write record or a lock in range is visited: a blocking lock gives a
///   [`ReadPair::Locked`] entry (it counts toward `limit`, as in TiKV's `Scanner::scan`), a
///   visible `Put` gives a [`ReadPair::Value`] (empty value when `key_only`), a `Delete` or
///   no visible version gives nothing. `limit == 0` gives nothing.
/// - Keys and locks are fetched in bounded chunks and merged (a prewritten key may have a lock
///   but no write record yet), so a scan never loads the whole region.
#[allow(clippy::too_many_arguments)] // the fields of a ScanRequest plus the region's bounds
pub fn scan<S: KvRead>(
    reader: &MvccReader<'_, S>,
    start: &[u8],
    end: &[u8],
    limit: usize,
    ts: u64,
    key_only: bool,
    reverse: bool,
    region_start: &[u8],
    region_end: &[u8],
) -> Result<Vec<ReadPair>> {
    let chunk = limit.clamp(MIN_SCAN_CHUNK, MAX_SCAN_CHUNK);
    let range = ScanRange::new(start, end, reverse, region_start, region_end);
    scan_range(reader, range, limit, ts, key_only, chunk)
}

/// The range of a scan in the encoded key space: `[lower, upper)`, empty `upper` = unbounded.
#[derive(Debug, Clone)]
struct ScanRange {
    lower: Vec<u8>,
    upper: Vec<u8>,
    reverse: bool,
}

impl ScanRange {
    /// The request's raw bounds (reverse: `start` = upper, `end` = lower) clipped to the
    /// region's encoded bounds.
    fn new(
        start: &[u8],
        end: &[u8],
        reverse: bool,
        region_start: &[u8],
        region_end: &[u8],
    ) -> ScanRange {
        let (raw_lower, raw_upper) = if reverse { (end, start) } else { (start, end) };
        let lower = Key::from_raw(raw_lower)
            .into_encoded()
            .max(region_start.to_vec());
        let upper = min_upper(&Self::encode_bound(raw_upper), region_end);
        ScanRange {
            lower,
            upper,
            reverse,
        }
    }

    /// An upper bound as an encoded key; empty (unbounded) stays empty.
    fn encode_bound(raw: &[u8]) -> Vec<u8> {
        if raw.is_empty() {
            Vec::new()
        } else {
            Key::from_raw(raw).into_encoded()
        }
    }

    fn is_empty(&self) -> bool {
        !self.upper.is_empty() && self.lower >= self.upper
    }
}

/// The smaller of two exclusive upper bounds, where empty means unbounded.
fn min_upper(a: &[u8], b: &[u8]) -> Vec<u8> {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_vec(),
        (_, true) => a.to_vec(),
        _ => a.min(b).to_vec(),
    }
}

/// The scan proper, with the chunk size as a parameter so tests can cut small chunks.
fn scan_range<S: KvRead>(
    reader: &MvccReader<'_, S>,
    range: ScanRange,
    limit: usize,
    ts: u64,
    key_only: bool,
    chunk: usize,
) -> Result<Vec<ReadPair>> {
    let mut pairs = Vec::new();
    if limit == 0 || range.is_empty() {
        return Ok(pairs);
    }
    let mut walker = KeyWalker::new(reader, range, chunk);
    while pairs.len() < limit {
        let Some((key, lock)) = walker.next()? else {
            break;
        };
        if let Some(pair) = read_key(reader, &key, lock.as_ref(), ts, key_only)? {
            pairs.push(pair);
        }
    }
    Ok(pairs)
}

/// Walks the keys that have a write record or a lock in a range, in scan order, each with its
/// lock, fetching at most `chunk` keys from each CF at a time.
struct KeyWalker<'r, 'a, S: KvRead> {
    reader: &'r MvccReader<'a, S>,
    /// What is left to fetch; shrinks from the front (forward) or the back (reverse).
    range: ScanRange,
    chunk: usize,
    /// Keys fetched and merged but not yet handed out.
    pending: VecDeque<(Key, Option<Lock>)>,
    /// Nothing left to fetch.
    exhausted: bool,
}

impl<'r, 'a, S: KvRead> KeyWalker<'r, 'a, S> {
    fn new(reader: &'r MvccReader<'a, S>, range: ScanRange, chunk: usize) -> Self {
        KeyWalker {
            reader,
            range,
            chunk: chunk.max(1),
            pending: VecDeque::new(),
            exhausted: false,
        }
    }

    fn next(&mut self) -> Result<Option<(Key, Option<Lock>)>> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Ok(Some(item));
            }
            if self.exhausted {
                return Ok(None);
            }
            self.fill()?;
        }
    }

    /// Fetches the next chunk of write keys and of locks and queues the keys both lists are
    /// complete for: up to the nearer of the last keys of the lists that came back full (a
    /// list cut at `chunk` says nothing about keys past its last one). Then moves the range
    /// past the queued keys.
    fn fill(&mut self) -> Result<()> {
        let ScanRange {
            lower,
            upper,
            reverse,
        } = &self.range;
        let writes = self.reader.write_keys(lower, upper, *reverse, self.chunk)?;
        let locks = if *reverse {
            self.reader
                .scan_locks_reverse(lower, upper, |_| true, self.chunk)?
        } else {
            self.reader.scan_locks(lower, upper, |_| true, self.chunk)?
        };
        let write_frontier = (writes.len() == self.chunk).then(|| writes.last().cloned());
        let lock_frontier = (locks.len() == self.chunk).then(|| locks.last().map(|l| l.0.clone()));
        let frontier = match (write_frontier.flatten(), lock_frontier.flatten()) {
            (None, None) => None,
            (Some(f), None) | (None, Some(f)) => Some(f),
            (Some(a), Some(b)) if *reverse => Some(a.max(b)),
            (Some(a), Some(b)) => Some(a.min(b)),
        };

        let mut merged: BTreeMap<Key, Option<Lock>> =
            writes.into_iter().map(|k| (k, None)).collect();
        merged.extend(locks.into_iter().map(|(k, l)| (k, Some(l))));
        let within = |k: &Key| match &frontier {
            None => true,
            Some(f) if *reverse => k >= f,
            Some(f) => k <= f,
        };
        let queued = merged.into_iter().filter(|(k, _)| within(k));
        if *reverse {
            self.pending.extend(queued.rev());
        } else {
            self.pending.extend(queued);
        }
        self.advance_past(frontier);
        Ok(())
    }

    /// Shrinks the range to what lies beyond `frontier` (the last key queued), or marks the
    /// walk done when both lists were complete.
    fn advance_past(&mut self, frontier: Option<Key>) {
        match frontier {
            None => self.exhausted = true,
            // Every version of the frontier key and its lock sort below `versions_end`, and
            // every later key's records above it.
            Some(f) if !self.range.reverse => self.range.lower = f.versions_end(),
            // Every record of the frontier key sorts at or above its encoded key, and every
            // earlier key's records below it.
            Some(f) => self.range.upper = f.into_encoded(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::{LockType, MvccTxn, Write, SHORT_VALUE_MAX_LEN};
    use crate::test_util::{apply, engine};

    fn commit_put(txn: &mut MvccTxn, raw: &[u8], start_ts: u64, commit_ts: u64, value: &[u8]) {
        let k = Key::from_raw(raw);
        if value.len() > SHORT_VALUE_MAX_LEN {
            txn.put_value(&k, start_ts, value.to_vec());
            txn.put_write(&k, commit_ts, &Write::new(WriteType::Put, start_ts, None));
        } else {
            let w = Write::new(WriteType::Put, start_ts, Some(value.to_vec()));
            txn.put_write(&k, commit_ts, &w);
        }
    }

    fn commit_delete(txn: &mut MvccTxn, raw: &[u8], start_ts: u64, commit_ts: u64) {
        let w = Write::new(WriteType::Delete, start_ts, None);
        txn.put_write(&Key::from_raw(raw), commit_ts, &w);
    }

    fn lock(txn: &mut MvccTxn, raw: &[u8], lock_type: LockType, primary: &[u8], ts: u64) {
        let l = Lock::new(lock_type, primary.to_vec(), ts, 3000);
        txn.put_lock(&Key::from_raw(raw), &l);
    }

    fn value(key: &[u8], v: &[u8]) -> ReadPair {
        ReadPair::Value {
            key: key.to_vec(),
            value: v.to_vec(),
        }
    }

    fn locked_key(pair: &ReadPair) -> Option<(&[u8], u64)> {
        match pair {
            ReadPair::Locked { key, lock } => {
                assert_eq!(lock.key, *key, "the lock info carries the raw key");
                Some((key, lock.lock_version))
            }
            ReadPair::Value { .. } => None,
        }
    }

    #[test]
    fn point_get_returns_the_newest_put_at_or_below_ts_and_hides_deletes() {
        let (_dir, kv) = engine();
        let long = vec![b'L'; SHORT_VALUE_MAX_LEN + 1];
        let mut txn = MvccTxn::new();
        commit_put(&mut txn, b"k", 1, 2, b"v2");
        commit_put(&mut txn, b"k", 3, 4, &long);
        txn.put_write(
            &Key::from_raw(b"k"),
            6,
            &Write::new(WriteType::Lock, 5, None),
        );
        txn.put_write(&Key::from_raw(b"k"), 7, &Write::rollback(7, true));
        commit_delete(&mut txn, b"k", 8, 9);
        commit_put(&mut txn, b"k", 10, 11, b"");
        apply(&kv, txn.modifies());
        let r = MvccReader::new(&kv);
        assert_eq!(point_get(&r, b"k", 1).unwrap(), None);
        assert_eq!(point_get(&r, b"k", 2).unwrap(), Some(b"v2".to_vec()));
        assert_eq!(point_get(&r, b"k", 4).unwrap(), Some(long.clone()));
        // Lock and rollback records are skipped.
        assert_eq!(point_get(&r, b"k", 8).unwrap(), Some(long));
        assert_eq!(point_get(&r, b"k", 9).unwrap(), None);
        // An empty value is a value.
        assert_eq!(point_get(&r, b"k", 11).unwrap(), Some(Vec::new()));
        assert_eq!(point_get(&r, b"missing", 11).unwrap(), None);
    }

    #[test]
    fn point_get_is_blocked_only_by_older_put_and_delete_locks() {
        let (_dir, kv) = engine();
        let mut txn = MvccTxn::new();
        commit_put(&mut txn, b"p", 1, 2, b"old");
        lock(&mut txn, b"p", LockType::Put, b"pk", 5);
        commit_put(&mut txn, b"d", 1, 2, b"old");
        lock(&mut txn, b"d", LockType::Delete, b"pk", 5);
        commit_put(&mut txn, b"l", 1, 2, b"old");
        lock(&mut txn, b"l", LockType::Lock, b"pk", 5);
        commit_put(&mut txn, b"s", 1, 2, b"old");
        lock(&mut txn, b"s", LockType::Pessimistic, b"pk", 5);
        apply(&kv, txn.modifies());
        let r = MvccReader::new(&kv);
        for key in [&b"p"[..], b"d"] {
            match point_get(&r, key, 5) {
                Err(Error::KeyIsLocked(info)) => {
                    assert_eq!(info.key, key);
                    assert_eq!(info.lock_version, 5);
                    assert_eq!(info.primary_lock, b"pk");
                }
                other => panic!("expected a lock on {key:?}, got {other:?}"),
            }
            // A read older than the lock does not see it.
            assert_eq!(point_get(&r, key, 4).unwrap(), Some(b"old".to_vec()));
        }
        for key in [&b"l"[..], b"s"] {
            assert_eq!(point_get(&r, key, 9).unwrap(), Some(b"old".to_vec()));
        }
    }

    #[test]
    fn a_max_ts_read_of_a_2pc_primary_ignores_its_lock() {
        let (_dir, kv) = engine();
        let mut txn = MvccTxn::new();
        commit_put(&mut txn, b"pk", 1, 2, b"committed");
        lock(&mut txn, b"pk", LockType::Put, b"pk", 5);
        commit_put(&mut txn, b"sk", 1, 2, b"committed");
        lock(&mut txn, b"sk", LockType::Put, b"pk", 5);
        commit_put(&mut txn, b"apk", 1, 2, b"committed");
        let mut async_lock = Lock::new(LockType::Put, b"apk".to_vec(), 5, 3000);
        async_lock.use_async_commit = true;
        async_lock.min_commit_ts = 6;
        txn.put_lock(&Key::from_raw(b"apk"), &async_lock);
        apply(&kv, txn.modifies());
        let r = MvccReader::new(&kv);
        assert_eq!(
            point_get(&r, b"pk", u64::MAX).unwrap(),
            Some(b"committed".to_vec())
        );
        // Not below u64::MAX, not on a secondary, not for async commit.
        assert!(matches!(
            point_get(&r, b"pk", u64::MAX - 1),
            Err(Error::KeyIsLocked(_))
        ));
        assert!(matches!(
            point_get(&r, b"sk", u64::MAX),
            Err(Error::KeyIsLocked(_))
        ));
        assert!(matches!(
            point_get(&r, b"apk", u64::MAX),
            Err(Error::KeyIsLocked(_))
        ));
    }

    #[test]
    fn batch_get_answers_in_request_order_with_locks_and_without_missing_keys() {
        let (_dir, kv) = engine();
        let mut txn = MvccTxn::new();
        commit_put(&mut txn, b"a", 1, 2, b"va");
        commit_put(&mut txn, b"c", 1, 2, b"vc");
        lock(&mut txn, b"c", LockType::Put, b"a", 5);
        commit_put(&mut txn, b"d", 1, 2, b"vd");
        commit_delete(&mut txn, b"d", 3, 4);
        commit_put(&mut txn, b"e", 1, 2, b"ve");
        lock(&mut txn, b"f", LockType::Delete, b"a", 5);
        apply(&kv, txn.modifies());
        let r = MvccReader::new(&kv);
        let keys: Vec<Vec<u8>> = [&b"e"[..], b"f", b"b", b"d", b"c", b"a"]
            .iter()
            .map(|k| k.to_vec())
            .collect();
        let pairs = batch_get(&r, &keys, 10).unwrap();
        let got: Vec<&[u8]> = pairs.iter().map(|p| p.key()).collect();
        assert_eq!(got, vec![&b"e"[..], b"f", b"c", b"a"]);
        assert_eq!(pairs[0], value(b"e", b"ve"));
        assert_eq!(locked_key(&pairs[1]), Some((&b"f"[..], 5)));
        assert_eq!(locked_key(&pairs[2]), Some((&b"c"[..], 5)));
        assert_eq!(pairs[3], value(b"a", b"va"));
        // Below the locks' start_ts, the locks do not matter.
        let before = batch_get(&r, &keys, 4).unwrap();
        assert_eq!(
            before,
            vec![value(b"e", b"ve"), value(b"c", b"vc"), value(b"a", b"va")]
        );
    }

    #[test]
    fn read_pairs_convert_to_wire_pairs() {
        let v: KvPair = value(b"k", b"v").into();
        assert_eq!(
            (v.error, v.key, v.value),
            (None, b"k".to_vec(), b"v".to_vec())
        );
        let info = Lock::new(LockType::Put, b"pk".to_vec(), 5, 10).to_lock_info(b"k".to_vec());
        let l: KvPair = ReadPair::Locked {
            key: b"k".to_vec(),
            lock: info.clone(),
        }
        .into();
        assert_eq!(l.key, b"k");
        assert!(l.value.is_empty());
        assert_eq!(l.error.and_then(|e| e.locked), Some(info));
    }

    /// What a scan must answer, key by key, computed with `point_get` (which the tests above
    /// pin down) over every key in `names`.
    fn expected_scan(
        r: &MvccReader<'_, engine::KvEngine>,
        names: &[Vec<u8>],
        ts: u64,
        key_only: bool,
    ) -> Vec<ReadPair> {
        let mut out = Vec::new();
        for raw in names {
            match point_get(r, raw, ts) {
                Ok(Some(v)) => out.push(value(raw, if key_only { b"" } else { &v })),
                Ok(None) => {}
                Err(Error::KeyIsLocked(info)) => out.push(ReadPair::Locked {
                    key: raw.clone(),
                    lock: *info,
                }),
                Err(e) => panic!("{e}"),
            }
        }
        out
    }

    /// 120 keys. `k00`..`k59` of six kinds by `i % 6`: 0 several versions; 1 a newest
    /// Delete; 2 a blocking Put lock and no write at all; 3 a non-blocking Lock-type lock over
    /// a value; 4 a Put lock newer than the read over a value; 5 a pessimistic lock and no
    /// write. Then `m00`..`m59` in long runs of one kind (0, 2, 5, 1, 0), so that one CF has
    /// many keys in a row the other lacks. Returns the keys in order.
    fn many_keys(kv: &engine::KvEngine) -> Vec<Vec<u8>> {
        let mut txn = MvccTxn::new();
        let mut names = Vec::new();
        for i in 0..120u64 {
            let (prefix, kind) = match i {
                0..=59 => ('k', i % 6),
                60..=74 => ('m', 0),
                75..=89 => ('m', 2),
                90..=99 => ('m', 5),
                100..=109 => ('m', 1),
                _ => ('m', 0),
            };
            let name = format!("{prefix}{:02}", i % 60).into_bytes();
            let v = format!("v{i}").into_bytes();
            match kind {
                0 => {
                    commit_put(&mut txn, &name, 1, 2, b"first");
                    commit_put(&mut txn, &name, 10, 11, &v);
                    txn.put_write(&Key::from_raw(&name), 13, &Write::rollback(13, false));
                }
                1 => {
                    commit_put(&mut txn, &name, 1, 2, &v);
                    commit_delete(&mut txn, &name, 10, 11);
                }
                2 => lock(&mut txn, &name, LockType::Put, b"k00", 20),
                3 => {
                    commit_put(&mut txn, &name, 1, 2, &v);
                    lock(&mut txn, &name, LockType::Lock, b"k00", 20);
                }
                4 => {
                    commit_put(&mut txn, &name, 1, 2, &v);
                    lock(&mut txn, &name, LockType::Put, b"k00", 40);
                }
                _ => lock(&mut txn, &name, LockType::Pessimistic, b"k00", 20),
            }
            names.push(name);
        }
        apply(kv, txn.modifies());
        names
    }

    #[test]
    fn scans_merge_keys_and_locks_across_chunks_in_both_directions() {
        let (_dir, kv) = engine();
        let names = many_keys(&kv);
        let r = MvccReader::new(&kv);
        let all = expected_scan(&r, &names, 30, false);
        // `k`: 10 values (kind 0), 10 blocking locks (2), 10 + 10 old values (3, 4);
        // `m`: 15 + 10 values, 15 blocking locks.
        assert_eq!(all.len(), 80);
        assert_eq!(all.iter().filter(|p| locked_key(p).is_some()).count(), 25);
        let mut all_rev = all.clone();
        all_rev.reverse();
        for chunk in [1, 2, 3, 5, 7, 16, 256] {
            let fwd = ScanRange::new(b"", b"", false, b"", b"");
            let got = scan_range(&r, fwd, usize::MAX, 30, false, chunk).unwrap();
            assert_eq!(got, all, "forward, chunk {chunk}");
            let back = ScanRange::new(b"", b"", true, b"", b"");
            let got = scan_range(&r, back, usize::MAX, 30, false, chunk).unwrap();
            assert_eq!(got, all_rev, "reverse, chunk {chunk}");
        }
        // The public entry point agrees.
        assert_eq!(
            scan(&r, b"", b"", 100, 30, false, false, b"", b"").unwrap(),
            all
        );
        assert_eq!(
            scan(&r, b"", b"", 100, 30, false, true, b"", b"").unwrap(),
            all_rev
        );
    }

    #[test]
    fn scans_read_each_key_at_the_scan_timestamp() {
        let (_dir, kv) = engine();
        let names = many_keys(&kv);
        let r = MvccReader::new(&kv);
        for ts in [1, 2, 5, 11, 12, 20, 45] {
            let want = expected_scan(&r, &names, ts, false);
            assert_eq!(
                scan(&r, b"", b"", 1000, ts, false, false, b"", b"").unwrap(),
                want,
                "ts {ts}"
            );
        }
        // At 5: the old value of k00 and k01, the values under locks, no lock blocks yet.
        let at5 = scan(&r, b"k00", b"k02", 10, 5, false, false, b"", b"").unwrap();
        assert_eq!(at5, vec![value(b"k00", b"first"), value(b"k01", b"v1")]);
        // At 45 the Put lock at 40 blocks k04 as well as k02.
        let at45 = scan(&r, b"k02", b"k05", 10, 45, false, false, b"", b"").unwrap();
        let locked: Vec<_> = at45.iter().filter_map(locked_key).collect();
        assert_eq!(locked, vec![(&b"k02"[..], 20), (&b"k04"[..], 40)]);
    }

    #[test]
    fn scan_limits_count_values_and_locks_and_key_only_drops_values() {
        let (_dir, kv) = engine();
        let names = many_keys(&kv);
        let r = MvccReader::new(&kv);
        let all = expected_scan(&r, &names, 30, false);
        for limit in [1, 2, 3, 5, 79, 80, 81] {
            let got = scan(&r, b"", b"", limit, 30, false, false, b"", b"").unwrap();
            assert_eq!(got, all[..limit.min(all.len())], "limit {limit}");
            let back = scan(&r, b"", b"", limit, 30, false, true, b"", b"").unwrap();
            let want: Vec<_> = all.iter().rev().take(limit).cloned().collect();
            assert_eq!(back, want, "reverse limit {limit}");
        }
        assert!(scan(&r, b"", b"", 0, 30, false, false, b"", b"")
            .unwrap()
            .is_empty());
        let keys_only = scan(&r, b"", b"", 100, 30, true, false, b"", b"").unwrap();
        assert_eq!(keys_only, expected_scan(&r, &names, 30, true));
        assert!(keys_only.iter().any(|p| locked_key(p).is_some()));
        assert!(keys_only
            .iter()
            .all(|p| !matches!(p, ReadPair::Value { value, .. } if !value.is_empty())));
    }

    #[test]
    fn scan_bounds_follow_the_request_direction_and_the_region() {
        let (_dir, kv) = engine();
        let names = many_keys(&kv);
        let r = MvccReader::new(&kv);
        let keys_of = |pairs: Vec<ReadPair>| -> Vec<Vec<u8>> {
            pairs.iter().map(|p| p.key().to_vec()).collect()
        };
        let visible: Vec<Vec<u8>> = keys_of(expected_scan(&r, &names, 30, false));
        let between = |lo: &[u8], hi: &[u8]| -> Vec<Vec<u8>> {
            visible
                .iter()
                .filter(|k| k.as_slice() >= lo && k.as_slice() < hi)
                .cloned()
                .collect()
        };
        // Forward: [start, end).
        let fwd = scan(&r, b"k06", b"k12", 100, 30, false, false, b"", b"").unwrap();
        assert_eq!(keys_of(fwd), between(b"k06", b"k12"));
        // Reverse: start is the exclusive upper bound, end the inclusive lower bound.
        let back = scan(&r, b"k12", b"k06", 100, 30, false, true, b"", b"").unwrap();
        let mut want = between(b"k06", b"k12");
        want.reverse();
        assert_eq!(keys_of(back), want);
        // Clipped to the region (encoded bounds), in both directions.
        let rs = Key::from_raw(b"k20").into_encoded();
        let re = Key::from_raw(b"k30").into_encoded();
        let fwd = scan(&r, b"k00", b"", 100, 30, false, false, &rs, &re).unwrap();
        assert_eq!(keys_of(fwd), between(b"k20", b"k30"));
        let back = scan(&r, b"", b"", 100, 30, false, true, &rs, &re).unwrap();
        let mut want = between(b"k20", b"k30");
        want.reverse();
        assert_eq!(keys_of(back), want);
        // The request range inside the region wins where it is narrower.
        let fwd = scan(&r, b"k24", b"k27", 100, 30, false, false, &rs, &re).unwrap();
        assert_eq!(keys_of(fwd), between(b"k24", b"k27"));
        // An empty intersection gives nothing.
        assert!(scan(&r, b"k40", b"k50", 100, 30, false, false, &rs, &re)
            .unwrap()
            .is_empty());
        assert!(scan(&r, b"k12", b"k06", 100, 30, false, false, b"", b"")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_scan_applies_the_max_ts_primary_rule_like_point_get() {
        let (_dir, kv) = engine();
        let mut txn = MvccTxn::new();
        commit_put(&mut txn, b"a", 1, 2, b"va");
        lock(&mut txn, b"a", LockType::Put, b"a", 5);
        lock(&mut txn, b"b", LockType::Put, b"a", 5);
        apply(&kv, txn.modifies());
        let r = MvccReader::new(&kv);
        let got = scan(&r, b"", b"", 10, u64::MAX, false, false, b"", b"").unwrap();
        assert_eq!(got[0], value(b"a", b"va"));
        assert_eq!(locked_key(&got[1]), Some((&b"b"[..], 5)));
        assert_eq!(got.len(), 2);
    }
}
