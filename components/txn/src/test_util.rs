//! Unit-test support: a real KvEngine in a temporary directory, and applying a command's
//! changes to it the way the raftstore applies them.

use engine::KvEngine;
use tempfile::TempDir;

use crate::mvcc::Modify;

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
