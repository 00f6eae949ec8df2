//! Reading MVCC data from a region snapshot: the lock on a key, the version visible at a
//! timestamp, a transaction's commit or rollback record, and key and lock scans.
//!
//! Every method takes keys in the MVCC key space (`Key`) and reads the physical data keys
//! (`keys::data_key`) of the snapshot; nothing here writes.

use engine::{KvRead, CF_DEFAULT, CF_LOCK, CF_WRITE};

use crate::errors::{Error, Result};
use crate::mvcc::key::Key;
use crate::mvcc::lock::Lock;
use crate::mvcc::write::{Write, WriteType};

/// What a key's write CF says about one transaction (by its start_ts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnCommitRecord {
    /// A commit record (`Put`, `Delete`, `Lock`) or a rollback record of the transaction.
    SingleRecord { commit_ts: u64, write: Write },
    /// Another transaction's commit record at exactly this start_ts, flagged as covering this
    /// transaction's rollback.
    OverlappedRollback { commit_ts: u64 },
    /// Nothing: neither committed nor rolled back here.
    None,
}

impl TxnCommitRecord {
    /// The commit_ts if the record is a commit (not a rollback).
    pub fn committed_ts(&self) -> Option<u64> {
        match self {
            TxnCommitRecord::SingleRecord { commit_ts, write }
                if write.write_type != WriteType::Rollback =>
            {
                Some(*commit_ts)
            }
            _ => None,
        }
    }

    /// Whether the transaction was rolled back on this key.
    pub fn is_rolled_back(&self) -> bool {
        match self {
            TxnCommitRecord::SingleRecord { write, .. } => write.write_type == WriteType::Rollback,
            TxnCommitRecord::OverlappedRollback { .. } => true,
            TxnCommitRecord::None => false,
        }
    }
}

/// Reads MVCC records from a snapshot (or the live engine in tests).
pub struct MvccReader<'a, S: KvRead> {
    snapshot: &'a S,
}

impl<'a, S: KvRead> MvccReader<'a, S> {
    pub fn new(snapshot: &'a S) -> MvccReader<'a, S> {
        MvccReader { snapshot }
    }

    /// The lock on `key`, if any.
    pub fn load_lock(&self, key: &Key) -> Result<Option<Lock>> {
        match self
            .snapshot
            .get_value_cf(CF_LOCK, &keys::data_key(key.as_encoded()))?
        {
            Some(bytes) => Ok(Some(Lock::parse(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Visits `key`'s write records from the newest with commit_ts <= `ts` down to the
    /// oldest, until `f` returns false.
    fn for_each_version(
        &self,
        key: &Key,
        ts: u64,
        mut f: impl FnMut(u64, Write) -> Result<bool>,
    ) -> Result<()> {
        let start = keys::data_key(&key.append_ts(ts));
        let end = keys::data_key(&key.versions_end());
        let mut failure = None;
        self.snapshot
            .scan(CF_WRITE, &start, &end, false, &mut |k, v| {
                let step = Key::split_on_ts(keys::origin_key(k))
                    .and_then(|(_, commit_ts)| Ok((commit_ts, Write::parse(v)?)))
                    .and_then(|(commit_ts, write)| f(commit_ts, write));
                match step {
                    Ok(go_on) => Ok(go_on),
                    Err(e) => {
                        failure = Some(e);
                        Ok(false)
                    }
                }
            })?;
        failure.map_or(Ok(()), Err)
    }

    /// The newest write record of `key` with commit_ts <= `ts`, of any type.
    pub fn seek_write(&self, key: &Key, ts: u64) -> Result<Option<(u64, Write)>> {
        let mut found = None;
        self.for_each_version(key, ts, |commit_ts, write| {
            found = Some((commit_ts, write));
            Ok(false)
        })?;
        Ok(found)
    }

    /// The newest data record (`Put` or `Delete`) of `key` with commit_ts <= `ts`, skipping
    /// `Lock` and `Rollback` records.
    pub fn get_write(&self, key: &Key, ts: u64) -> Result<Option<(u64, Write)>> {
        let mut found = None;
        self.for_each_version(key, ts, |commit_ts, write| {
            if write.is_data() {
                found = Some((commit_ts, write));
                return Ok(false);
            }
            Ok(true)
        })?;
        Ok(found)
    }

    /// The value a `Put` record stands for: inline, or in CF `default` at its start_ts.
    /// Errors with `Corrupt` when a long value is missing.
    pub fn load_data(&self, key: &Key, write: &Write) -> Result<Vec<u8>> {
        if let Some(v) = &write.short_value {
            return Ok(v.clone());
        }
        let at = keys::data_key(&key.append_ts(write.start_ts));
        self.snapshot
            .get_value_cf(CF_DEFAULT, &at)?
            .ok_or_else(|| Error::Corrupt {
                what: "mvcc value",
                detail: format!("{key:?} at {} has no value in CF default", write.start_ts),
            })
    }

    /// The value of `key` visible at `ts` (ignoring locks: the caller checks them first).
    pub fn get(&self, key: &Key, ts: u64) -> Result<Option<Vec<u8>>> {
        match self.get_write(key, ts)? {
            Some((_, w)) if w.write_type == WriteType::Put => Ok(Some(self.load_data(key, &w)?)),
            _ => Ok(None),
        }
    }

    /// What `key`'s write CF records about the transaction that started at `start_ts`.
    pub fn get_txn_commit_record(&self, key: &Key, start_ts: u64) -> Result<TxnCommitRecord> {
        let mut found = TxnCommitRecord::None;
        self.for_each_version(key, u64::MAX, |commit_ts, write| {
            if commit_ts < start_ts {
                return Ok(false);
            }
            if write.start_ts == start_ts {
                found = TxnCommitRecord::SingleRecord { commit_ts, write };
                return Ok(false);
            }
            if commit_ts == start_ts && write.has_overlapped_rollback {
                found = TxnCommitRecord::OverlappedRollback { commit_ts };
                return Ok(false);
            }
            Ok(true)
        })?;
        Ok(found)
    }

    /// Every write record of `key`, newest first (GC and `shoal-ctl mvcc`).
    pub fn all_versions(&self, key: &Key) -> Result<Vec<(u64, Write)>> {
        let mut all = Vec::new();
        self.for_each_version(key, u64::MAX, |commit_ts, write| {
            all.push((commit_ts, write));
            Ok(true)
        })?;
        Ok(all)
    }

    /// Locks with keys in `[start, end)` (encoded keys; empty `end` = unbounded), in key
    /// order, that `filter` accepts; at most `limit` of them (0 = no limit).
    pub fn scan_locks(
        &self,
        start: &[u8],
        end: &[u8],
        filter: impl Fn(&Lock) -> bool,
        limit: usize,
    ) -> Result<Vec<(Key, Lock)>> {
        self.scan_locks_in(start, end, false, filter, limit)
    }

    /// Like [`MvccReader::scan_locks`], from the last lock in `[start, end)` down (reverse
    /// scans).
    pub fn scan_locks_reverse(
        &self,
        start: &[u8],
        end: &[u8],
        filter: impl Fn(&Lock) -> bool,
        limit: usize,
    ) -> Result<Vec<(Key, Lock)>> {
        self.scan_locks_in(start, end, true, filter, limit)
    }

    fn scan_locks_in(
        &self,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        filter: impl Fn(&Lock) -> bool,
        limit: usize,
    ) -> Result<Vec<(Key, Lock)>> {
        let mut locks = Vec::new();
        let mut failure = None;
        self.snapshot.scan(
            CF_LOCK,
            &keys::data_key(start),
            &keys::data_end_key(end),
            reverse,
            &mut |k, v| match Lock::parse(v) {
                Ok(lock) => {
                    if filter(&lock) {
                        locks.push((Key::from_encoded(keys::origin_key(k).to_vec()), lock));
                    }
                    Ok(limit == 0 || locks.len() < limit)
                }
                Err(e) => {
                    failure = Some(e);
                    Ok(false)
                }
            },
        )?;
        failure.map_or(Ok(locks), Err)
    }

    /// The distinct keys that have write records in `[start, end)` (encoded keys; empty
    /// `end` = unbounded), in order (descending when `reverse`), at most `limit` (> 0).
    pub fn write_keys(
        &self,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<Key>> {
        let mut found: Vec<Key> = Vec::new();
        let mut failure = None;
        self.snapshot.scan(
            CF_WRITE,
            &keys::data_key(start),
            &keys::data_end_key(end),
            reverse,
            &mut |k, _| match Key::split_on_ts(keys::origin_key(k)) {
                Ok((key, _)) => {
                    if found.last() != Some(&key) {
                        if found.len() == limit {
                            return Ok(false);
                        }
                        found.push(key);
                    }
                    Ok(true)
                }
                Err(e) => {
                    failure = Some(e);
                    Ok(false)
                }
            },
        )?;
        failure.map_or(Ok(found), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::{LockType, MvccTxn};
    use crate::test_util::{apply, engine};

    fn put(txn: &mut MvccTxn, key: &Key, start_ts: u64, commit_ts: u64, value: &[u8]) {
        let w = Write::new(WriteType::Put, start_ts, Some(value.to_vec()));
        txn.put_write(key, commit_ts, &w);
    }

    #[test]
    fn reads_see_the_newest_data_version_at_their_timestamp() {
        let (_dir, kv) = engine();
        let k = Key::from_raw(b"k");
        let mut txn = MvccTxn::new();
        put(&mut txn, &k, 1, 2, b"v2");
        txn.put_write(&k, 4, &Write::new(WriteType::Lock, 3, None));
        txn.put_write(&k, 6, &Write::rollback(6, false));
        txn.put_write(&k, 8, &Write::new(WriteType::Delete, 7, None));
        put(&mut txn, &k, 9, 10, b"v10");
        apply(&kv, txn.modifies());
        let r = MvccReader::new(&kv);
        assert_eq!(r.get(&k, 1).unwrap(), None);
        assert_eq!(r.get(&k, 2).unwrap(), Some(b"v2".to_vec()));
        // Lock and rollback records are skipped.
        assert_eq!(r.get(&k, 7).unwrap(), Some(b"v2".to_vec()));
        assert_eq!(r.get(&k, 8).unwrap(), None);
        assert_eq!(r.get(&k, u64::MAX).unwrap(), Some(b"v10".to_vec()));
        assert_eq!(
            r.seek_write(&k, 6).unwrap().unwrap().1.write_type,
            WriteType::Rollback
        );
        assert_eq!(r.all_versions(&k).unwrap().len(), 5);
        // Another key is not mixed in.
        assert_eq!(r.get(&Key::from_raw(b"k\0"), u64::MAX).unwrap(), None);
    }

    #[test]
    fn a_transaction_is_found_committed_rolled_back_or_absent() {
        let (_dir, kv) = engine();
        let k = Key::from_raw(b"k");
        let mut txn = MvccTxn::new();
        put(&mut txn, &k, 5, 7, b"v");
        txn.put_write(&k, 9, &Write::rollback(9, true));
        let mut overlapped = Write::new(WriteType::Put, 10, Some(b"w".to_vec()));
        overlapped.has_overlapped_rollback = true;
        txn.put_write(&k, 12, &overlapped);
        apply(&kv, txn.modifies());
        let r = MvccReader::new(&kv);
        assert_eq!(
            r.get_txn_commit_record(&k, 5).unwrap().committed_ts(),
            Some(7)
        );
        assert!(r.get_txn_commit_record(&k, 9).unwrap().is_rolled_back());
        assert_eq!(
            r.get_txn_commit_record(&k, 12).unwrap(),
            TxnCommitRecord::OverlappedRollback { commit_ts: 12 }
        );
        assert_eq!(
            r.get_txn_commit_record(&k, 6).unwrap(),
            TxnCommitRecord::None
        );
        assert_eq!(
            r.get_txn_commit_record(&k, 13).unwrap(),
            TxnCommitRecord::None
        );
    }

    #[test]
    fn locks_and_keys_are_scanned_in_order_within_bounds() {
        let (_dir, kv) = engine();
        let mut txn = MvccTxn::new();
        for (i, name) in [&b"a"[..], b"b", b"c", b"d"].iter().enumerate() {
            let k = Key::from_raw(name);
            txn.put_lock(
                &k,
                &Lock::new(LockType::Put, b"a".to_vec(), 10 + i as u64, 0),
            );
            put(&mut txn, &k, 1, 2, b"x");
            put(&mut txn, &k, 3, 4, b"y");
        }
        apply(&kv, txn.modifies());
        let r = MvccReader::new(&kv);
        let b = Key::from_raw(b"b");
        let d = Key::from_raw(b"d");
        let locks = r
            .scan_locks(b.as_encoded(), d.as_encoded(), |l| l.ts <= 11, 0)
            .unwrap();
        assert_eq!(locks.len(), 1);
        assert_eq!(locks[0].0, b);
        assert_eq!(r.scan_locks(b"", b"", |_| true, 3).unwrap().len(), 3);
        let keys = r.write_keys(b.as_encoded(), b"", false, 10).unwrap();
        assert_eq!(keys, vec![b.clone(), Key::from_raw(b"c"), d.clone()]);
        let back = r.write_keys(b"", d.as_encoded(), true, 2).unwrap();
        assert_eq!(back, vec![Key::from_raw(b"c"), b.clone()]);
        let back_locks = r
            .scan_locks_reverse(b.as_encoded(), b"", |l| l.ts != 12, 2)
            .unwrap();
        let back_keys: Vec<Key> = back_locks.into_iter().map(|(k, _)| k).collect();
        assert_eq!(back_keys, vec![d.clone(), b]);
    }

    #[test]
    fn damaged_records_are_reported_not_returned() {
        let (_dir, kv) = engine();
        let k = Key::from_raw(b"k");
        let mut wb = kv.write_batch();
        wb.put_cf(CF_LOCK, &keys::data_key(k.as_encoded()), b"\xff\xff")
            .unwrap();
        wb.put_cf(CF_WRITE, &keys::data_key(&k.append_ts(3)), b"\xff\xff")
            .unwrap();
        kv.write(&wb, false).unwrap();
        let r = MvccReader::new(&kv);
        assert!(matches!(r.load_lock(&k), Err(Error::Corrupt { .. })));
        assert!(matches!(r.get(&k, 5), Err(Error::Corrupt { .. })));
        assert!(r.scan_locks(b"", b"", |_| true, 0).is_err());
    }
}
