//! Unit-test support: a real KvEngine in a temporary directory, applying a command's changes
//! to it the way the raftstore applies them, and setting up or reading back single records.

use engine::KvEngine;
use tempfile::TempDir;

use crate::mvcc::{Key, Lock, Modify, MvccReader, MvccTxn, TxnCommitRecord, Write};

/// A fresh engine; keep the `TempDir` alive as long as the engine.
pub fn engine() -> (TempDir, KvEngine) {
    let dir = tempfile::tempdir().expect("temp dir");
    let kv = KvEngine::open(dir.path()).expect("open engine");
    (dir, kv)
}

/// Writes `modifies` atomically under the store's data keys.
pub fn apply(kv: &KvEngine, modifies: &[Modify]) {
    let mut wb = kv.write_batch();
    for m in modifies {
        m.write_to(&mut wb).expect("write batch");
    }
    kv.write(&wb, false).expect("write");
}

/// Writes `lock` on `key` (a raw user key) directly, bypassing every action's checks.
pub fn put_lock(kv: &KvEngine, key: &[u8], lock: &Lock) {
    let mut t = MvccTxn::new();
    t.put_lock(&Key::from_raw(key), lock);
    apply(kv, t.modifies());
}

/// Writes `write` at `key` (a raw user key) + `ts` in CF `write` directly.
pub fn put_write(kv: &KvEngine, key: &[u8], ts: u64, write: &Write) {
    let mut t = MvccTxn::new();
    t.put_write(&Key::from_raw(key), ts, write);
    apply(kv, t.modifies());
}

/// What `key`'s (a raw user key) write CF records about the transaction at `start_ts`.
pub fn record(kv: &KvEngine, key: &[u8], start_ts: u64) -> TxnCommitRecord {
    MvccReader::new(kv)
        .get_txn_commit_record(&Key::from_raw(key), start_ts)
        .expect("commit record")
}
