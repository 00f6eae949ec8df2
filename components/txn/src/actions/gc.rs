//! MVCC garbage collection below a safe point (reference §2.9, Part 3 pitfall 8; TiKV
//! `src/storage/txn/actions/gc.rs` and the GC worker's per-region key loop).
//!
//! Per key, versions with commit_ts > safe_point are kept as they are. Among the versions at
//! or below the safe point, walking from the newest down:
//! - `Lock` and `Rollback` records above the newest data version are deleted (readers skip
//!   them, and lock resolution up to the safe point has already happened);
//! - the newest data version is the one a read at the safe point sees: a `Put` is kept, and
//!   every older version is deleted; a `Delete` is deleted together with everything older,
//!   since "no value" needs no record.
//!
//! Deleting a `Put` deletes its CF `default` value when it has no inline value. The caller must
//! have resolved every lock with start_ts <= safe_point first (the client's `gc()` does), or
//! the commit record of a primary could vanish while its secondaries are still locked.
//!
//! The changes go into the caller's `MvccTxn`, to be proposed through raft; each call adds at
//! most about [`MAX_GC_WRITE_SIZE`] bytes, and says where to carry on.

use engine::KvRead;

use crate::errors::{Error, Result};
use crate::mvcc::{Key, MvccReader, MvccTxn, Write, WriteType};

/// Bytes of changes one GC call adds before it stops and reports where to continue (TiKV's
/// `MAX_TXN_WRITE_SIZE`, 32 KiB): keeps each raft proposal small.
pub const MAX_GC_WRITE_SIZE: usize = 32 * 1024;

/// What a GC call did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcStats {
    /// Keys whose versions were examined.
    pub keys: usize,
    /// Write records at or below the safe point that were read.
    pub found_versions: usize,
    /// Write records deleted (each with its CF `default` value, if it had one).
    pub deleted_versions: usize,
    /// Approximate bytes of changes added to the `MvccTxn`.
    pub write_size: usize,
    /// Whether the work was finished: for [`gc_key`], every version of the key was handled;
    /// false when it stopped at the write size cap and the key must be collected again once
    /// these changes are applied. For [`gc_range`], whether the range is done.
    pub is_completed: bool,
}

impl GcStats {
    fn add(&mut self, other: &GcStats) {
        self.keys += other.keys;
        self.found_versions += other.found_versions;
        self.deleted_versions += other.deleted_versions;
        self.write_size += other.write_size;
    }
}

/// Collects the garbage versions of `key` (encoded MVCC key) at `safe_point` into `txn`, by the
/// rules of the module doc (reference §2.9; TiKV `actions/gc.rs` states Rewind →
/// RemoveIdempotent → RemoveAll).
///
/// Stops early, with `is_completed == false`, once it has added about [`MAX_GC_WRITE_SIZE`]
/// bytes; calling it again after the changes are applied carries on where it stopped (a
/// newest `Delete` is removed only in the call that removes everything older, so a partial
/// run never lets an older `Put` reappear).
pub fn gc_key<S: KvRead>(
    reader: &MvccReader<'_, S>,
    txn: &mut MvccTxn,
    key: &Key,
    safe_point: u64,
) -> Result<GcStats> {
    gc_key_within(reader, txn, key, safe_point, MAX_GC_WRITE_SIZE)
}

/// Where a key's walk is, below the safe point (TiKV's `gc::State` without `Rewind`: the walk
/// starts at the safe point).
enum State {
    /// Deleting `Lock` and `Rollback` records until the newest data version.
    RemoveIdempotent,
    /// The newest data version was found; everything older goes. Carries that version when
    /// it is a `Delete`, removed only once everything older is.
    RemoveAll(Option<(u64, Write)>),
}

/// [`gc_key`] with a byte budget for the changes it adds.
fn gc_key_within<S: KvRead>(
    reader: &MvccReader<'_, S>,
    txn: &mut MvccTxn,
    key: &Key,
    safe_point: u64,
    budget: usize,
) -> Result<GcStats> {
    let mut stats = GcStats {
        keys: 1,
        ..GcStats::default()
    };
    let mut state = State::RemoveIdempotent;
    let mut next_ts = Some(safe_point);
    while let Some(ts) = next_ts {
        let Some((commit_ts, write)) = reader.seek_write(key, ts)? else {
            break;
        };
        if stats.write_size >= budget {
            return Ok(stats);
        }
        stats.found_versions += 1;
        next_ts = commit_ts.checked_sub(1);
        match (&state, write.write_type) {
            (State::RemoveIdempotent, WriteType::Put) => state = State::RemoveAll(None),
            (State::RemoveIdempotent, WriteType::Delete) => {
                state = State::RemoveAll(Some((commit_ts, write)))
            }
            _ => delete_version(txn, key, commit_ts, &write, &mut stats),
        }
    }
    if let State::RemoveAll(Some((commit_ts, write))) = state {
        delete_version(txn, key, commit_ts, &write, &mut stats);
    }
    stats.is_completed = true;
    Ok(stats)
}

/// Deletes the write record at `commit_ts`, and the CF `default` value of a `Put` that has no
/// inline value (TiKV `Gc::delete_write`).
fn delete_version(
    txn: &mut MvccTxn,
    key: &Key,
    commit_ts: u64,
    write: &Write,
    stats: &mut GcStats,
) {
    let before = txn.modifies().len();
    txn.delete_write(key, commit_ts);
    if write.write_type == WriteType::Put && write.short_value.is_none() {
        txn.delete_value(key, write.start_ts);
    }
    stats.write_size += txn.modifies()[before..]
        .iter()
        .map(|m| m.size())
        .sum::<usize>();
    stats.deleted_versions += 1;
}

/// Collects garbage at `safe_point` for at most `max_keys` keys with write records in the
/// encoded range `[start, end)` (empty `end` = unbounded; normally one region's range), in key
/// order, adding about [`MAX_GC_WRITE_SIZE`] bytes of changes at most.
///
/// Returns the stats and where to continue: `None` when the range is done, else the encoded
/// key to pass as `start` in the next call, made after these changes are applied (a key cut
/// short by the size cap is started again). The GC worker calls it region by region, batch by
/// batch (reference §2.9: TiKV's GC runs region by region over the leaders of a store).
/// `max_keys == 0` is an invalid request.
pub fn gc_range<S: KvRead>(
    reader: &MvccReader<'_, S>,
    txn: &mut MvccTxn,
    start: &[u8],
    end: &[u8],
    safe_point: u64,
    max_keys: usize,
) -> Result<(GcStats, Option<Vec<u8>>)> {
    gc_range_within(
        reader,
        txn,
        start,
        end,
        safe_point,
        max_keys,
        MAX_GC_WRITE_SIZE,
    )
}

/// [`gc_range`] with a byte budget for the changes it adds.
fn gc_range_within<S: KvRead>(
    reader: &MvccReader<'_, S>,
    txn: &mut MvccTxn,
    start: &[u8],
    end: &[u8],
    safe_point: u64,
    max_keys: usize,
    budget: usize,
) -> Result<(GcStats, Option<Vec<u8>>)> {
    if max_keys == 0 {
        return Err(Error::InvalidRequest(
            "gc of a range with max_keys 0".into(),
        ));
    }
    // One key more than handled, to name where the next batch starts.
    let mut keys = reader.write_keys(start, end, false, max_keys.saturating_add(1))?;
    let next = (keys.len() > max_keys).then(|| keys.remove(max_keys));
    let mut total = GcStats::default();
    for key in keys {
        if total.write_size >= budget {
            return Ok((total, Some(key.into_encoded())));
        }
        let stats = gc_key_within(reader, txn, &key, safe_point, budget - total.write_size)?;
        total.add(&stats);
        if !stats.is_completed {
            return Ok((total, Some(key.into_encoded())));
        }
    }
    total.is_completed = next.is_none();
    Ok((total, next.map(Key::into_encoded)))
}

#[cfg(test)]
mod tests {
    use engine::{KvEngine, CF_DEFAULT, CF_WRITE};

    use super::*;
    use crate::actions::read::point_get;
    use crate::mvcc::SHORT_VALUE_MAX_LEN;
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

    fn commit_record(
        txn: &mut MvccTxn,
        raw: &[u8],
        write_type: WriteType,
        start_ts: u64,
        commit_ts: u64,
    ) {
        let w = Write::new(write_type, start_ts, None);
        txn.put_write(&Key::from_raw(raw), commit_ts, &w);
    }

    /// TiKV's `test_gc` history on `raw`: Put@5→10, Put@15→20, Delete@25→30, Put@35→40,
    /// Lock@45→50, rollback of 55. Returns the four values.
    fn history(kv: &KvEngine, raw: &[u8], long: bool) -> [Vec<u8>; 3] {
        let v = |c: u8| {
            let n = if long { SHORT_VALUE_MAX_LEN + 1 } else { 2 };
            vec![c; n]
        };
        let (v1, v2, v3) = (v(b'x'), v(b'y'), v(b'z'));
        let mut txn = MvccTxn::new();
        commit_put(&mut txn, raw, 5, 10, &v1);
        commit_put(&mut txn, raw, 15, 20, &v2);
        commit_record(&mut txn, raw, WriteType::Delete, 25, 30);
        commit_put(&mut txn, raw, 35, 40, &v3);
        commit_record(&mut txn, raw, WriteType::Lock, 45, 50);
        txn.put_write(&Key::from_raw(raw), 55, &Write::rollback(55, true));
        apply(kv, txn.modifies());
        [v1, v2, v3]
    }

    /// Runs `gc_key` and applies its changes.
    fn gc(kv: &KvEngine, raw: &[u8], safe_point: u64) -> GcStats {
        let mut txn = MvccTxn::new();
        let stats = gc_key(
            &MvccReader::new(kv),
            &mut txn,
            &Key::from_raw(raw),
            safe_point,
        )
        .unwrap();
        apply(kv, txn.modifies());
        stats
    }

    /// The commit_ts of every write record of `raw`, newest first, read from CF `write`.
    fn versions(kv: &KvEngine, raw: &[u8]) -> Vec<u64> {
        let r = MvccReader::new(kv);
        let all = r.all_versions(&Key::from_raw(raw)).unwrap();
        all.into_iter().map(|(ts, _)| ts).collect()
    }

    fn has_default(kv: &KvEngine, raw: &[u8], start_ts: u64) -> bool {
        let at = keys::data_key(&Key::from_raw(raw).append_ts(start_ts));
        kv.get_value_cf(CF_DEFAULT, &at).unwrap().is_some()
    }

    fn get(kv: &KvEngine, raw: &[u8], ts: u64) -> Option<Vec<u8>> {
        point_get(&MvccReader::new(kv), raw, ts).unwrap()
    }

    /// What reads see at every ts in `from..=70` (covers every version of `history`).
    fn reads_from(kv: &KvEngine, raw: &[u8], from: u64) -> Vec<Option<Vec<u8>>> {
        (from..=70).map(|ts| get(kv, raw, ts)).collect()
    }

    #[test]
    fn gc_keeps_what_reads_at_or_after_the_safe_point_see_and_drops_the_rest() {
        for long in [false, true] {
            let (_dir, kv) = engine();
            let [v1, v2, v3] = history(&kv, b"k", long);

            let before = reads_from(&kv, b"k", 12);
            let s = gc(&kv, b"k", 12);
            assert_eq!((s.deleted_versions, s.is_completed), (0, true));
            assert_eq!(reads_from(&kv, b"k", 12), before);
            assert_eq!(get(&kv, b"k", 12), Some(v1.clone()));

            let before = reads_from(&kv, b"k", 22);
            let s = gc(&kv, b"k", 22);
            assert_eq!(s.deleted_versions, 1);
            assert_eq!(reads_from(&kv, b"k", 22), before);
            assert_eq!(get(&kv, b"k", 22), Some(v2));
            assert_eq!(get(&kv, b"k", 12), None, "the version at 10 is gone");
            assert_eq!(versions(&kv, b"k"), vec![55, 50, 40, 30, 20]);
            assert!(!has_default(&kv, b"k", 5));
            assert_eq!(has_default(&kv, b"k", 15), long);

            // The newest data version at 32 is the Delete: it goes with everything older.
            let before = reads_from(&kv, b"k", 32);
            gc(&kv, b"k", 32);
            assert_eq!(reads_from(&kv, b"k", 32), before);
            assert_eq!(versions(&kv, b"k"), vec![55, 50, 40]);
            assert!(!has_default(&kv, b"k", 15));
            assert_eq!(get(&kv, b"k", 22), None);

            // At 60: the rollback and the Lock record above the Put at 40 go; the Put stays.
            let s = gc(&kv, b"k", 60);
            assert_eq!(s.deleted_versions, 2);
            assert_eq!(versions(&kv, b"k"), vec![40]);
            assert_eq!(has_default(&kv, b"k", 35), long);
            assert_eq!(get(&kv, b"k", 62), Some(v3));

            // Nothing more to collect.
            let s = gc(&kv, b"k", 100);
            assert_eq!((s.deleted_versions, s.found_versions), (0, 1));
        }
    }

    #[test]
    fn versions_above_the_safe_point_stay_whatever_their_type() {
        let (_dir, kv) = engine();
        history(&kv, b"k", true);
        let before = reads_from(&kv, b"k", 45);
        // Safe point 45: the Put at 40 is the visible version; Lock@50 and the rollback at 55
        // are newer and stay; everything below 40 goes.
        let s = gc(&kv, b"k", 45);
        assert_eq!(s.deleted_versions, 3);
        assert_eq!(versions(&kv, b"k"), vec![55, 50, 40]);
        assert_eq!(reads_from(&kv, b"k", 45), before);
        for start_ts in [5, 15] {
            assert!(!has_default(&kv, b"k", start_ts));
        }
    }

    #[test]
    fn a_newest_delete_at_the_safe_point_removes_the_key_entirely() {
        let (_dir, kv) = engine();
        let long = vec![b'L'; SHORT_VALUE_MAX_LEN + 1];
        let mut txn = MvccTxn::new();
        commit_put(&mut txn, b"k", 1, 2, &long);
        commit_put(&mut txn, b"k", 3, 4, b"short");
        commit_record(&mut txn, b"k", WriteType::Delete, 5, 6);
        commit_record(&mut txn, b"k", WriteType::Lock, 7, 8);
        txn.put_write(&Key::from_raw(b"k"), 9, &Write::rollback(9, false));
        apply(&kv, txn.modifies());
        let s = gc(&kv, b"k", 10);
        assert_eq!((s.found_versions, s.deleted_versions), (5, 5));
        assert!(versions(&kv, b"k").is_empty());
        assert!(!has_default(&kv, b"k", 1));
        // Nothing of the key is left in CF write or CF default.
        let k = Key::from_raw(b"k");
        for cf in [CF_WRITE, CF_DEFAULT] {
            let mut n = 0;
            kv.scan_cf(
                cf,
                &keys::data_key(k.as_encoded()),
                &keys::data_key(&k.versions_end()),
                |_, _| {
                    n += 1;
                    Ok(true)
                },
            )
            .unwrap();
            assert_eq!(n, 0, "{cf}");
        }
    }

    #[test]
    fn a_key_with_nothing_at_or_below_the_safe_point_is_untouched() {
        let (_dir, kv) = engine();
        let mut txn = MvccTxn::new();
        commit_record(&mut txn, b"k", WriteType::Delete, 20, 21);
        commit_put(&mut txn, b"k", 22, 23, b"v");
        apply(&kv, txn.modifies());
        let s = gc(&kv, b"k", 19);
        assert_eq!(
            (s.found_versions, s.deleted_versions, s.is_completed),
            (0, 0, true)
        );
        assert_eq!(versions(&kv, b"k"), vec![23, 21]);
    }

    #[test]
    fn a_key_cut_short_by_the_size_cap_keeps_its_newest_delete_until_the_end() {
        let (_dir, kv) = engine();
        let mut txn = MvccTxn::new();
        for i in 0..10u64 {
            commit_put(&mut txn, b"k", 10 * i + 1, 10 * i + 2, b"v");
        }
        commit_record(&mut txn, b"k", WriteType::Delete, 200, 201);
        commit_put(&mut txn, b"k", 300, 301, b"new");
        apply(&kv, txn.modifies());
        let mut rounds = 0;
        loop {
            rounds += 1;
            let mut txn = MvccTxn::new();
            let r = MvccReader::new(&kv);
            let key = Key::from_raw(b"k");
            // Room for about three deletions per round.
            let s = gc_key_within(&r, &mut txn, &key, 250, 3 * key.append_ts(0).len()).unwrap();
            apply(&kv, txn.modifies());
            if s.is_completed {
                break;
            }
            // The Delete still hides the older Puts from reads below 301.
            assert_eq!(versions(&kv, b"k")[..2], [301, 201]);
            assert_eq!(get(&kv, b"k", 250), None);
            assert!(rounds < 10, "no progress");
        }
        assert!(rounds > 1);
        assert_eq!(versions(&kv, b"k"), vec![301]);
        assert_eq!(get(&kv, b"k", 301), Some(b"new".to_vec()));
    }

    #[test]
    fn gc_range_works_in_batches_of_keys_and_says_where_to_continue() {
        let (_dir, kv) = engine();
        let mut txn = MvccTxn::new();
        let names: Vec<Vec<u8>> = (0..25).map(|i| format!("k{i:02}").into_bytes()).collect();
        for name in &names {
            commit_put(&mut txn, name, 1, 2, b"old");
            commit_put(&mut txn, name, 3, 4, b"new");
        }
        apply(&kv, txn.modifies());
        let start = Key::from_raw(b"k03").into_encoded();
        let end = Key::from_raw(b"k20").into_encoded();
        let mut from = start.clone();
        let mut batches = 0;
        let mut deleted = 0;
        loop {
            let mut txn = MvccTxn::new();
            let (s, next) = gc_range(&MvccReader::new(&kv), &mut txn, &from, &end, 10, 5).unwrap();
            apply(&kv, txn.modifies());
            batches += 1;
            deleted += s.deleted_versions;
            assert!(s.keys <= 5);
            assert_eq!(s.is_completed, next.is_none());
            match next {
                Some(n) => from = n,
                None => break,
            }
        }
        assert_eq!((batches, deleted), (4, 17));
        for (i, name) in names.iter().enumerate() {
            let want = if (3..20).contains(&i) {
                vec![4]
            } else {
                vec![4, 2]
            };
            assert_eq!(
                versions(&kv, name),
                want,
                "{}",
                String::from_utf8_lossy(name)
            );
            assert_eq!(get(&kv, name, 10), Some(b"new".to_vec()));
        }
        let mut txn = MvccTxn::new();
        assert!(gc_range(&MvccReader::new(&kv), &mut txn, &start, &end, 10, 0).is_err());
    }

    #[test]
    fn gc_range_stops_at_the_size_cap_and_resumes_at_the_unfinished_key() {
        let (_dir, kv) = engine();
        let mut txn = MvccTxn::new();
        for name in [&b"a"[..], b"b", b"c"] {
            for i in 0..4u64 {
                commit_put(&mut txn, name, 10 * i + 1, 10 * i + 2, b"v");
            }
        }
        apply(&kv, txn.modifies());
        let budget = 2 * Key::from_raw(b"a").append_ts(0).len();
        let mut from = Vec::new();
        let mut resumed_at = Vec::new();
        loop {
            let mut txn = MvccTxn::new();
            let r = MvccReader::new(&kv);
            let (s, next) = gc_range_within(&r, &mut txn, &from, b"", 100, 10, budget).unwrap();
            assert!(s.write_size <= budget + Key::from_raw(b"a").append_ts(0).len());
            apply(&kv, txn.modifies());
            match next {
                Some(n) => {
                    resumed_at.push(Key::from_encoded(n.clone()).to_raw().unwrap());
                    from = n;
                }
                None => break,
            }
        }
        // Three deletions per key, two per call: each key is resumed once or carried on.
        assert!(resumed_at.len() >= 4, "{resumed_at:?}");
        for name in [&b"a"[..], b"b", b"c"] {
            assert_eq!(versions(&kv, name), vec![32]);
        }
    }
}
