//! Collecting one command's changes across CFs `lock`, `write` and `default`, to be proposed
//! through raft as one write (applied atomically with the region's applied index).

use engine::{KvWriteBatch, CF_DEFAULT, CF_LOCK, CF_WRITE};

use crate::mvcc::key::Key;
use crate::mvcc::lock::Lock;
use crate::mvcc::write::Write;

/// One change to one CF; `key` is in the MVCC key space, without the store's data prefix
/// (the raftstore adds it when it applies the write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Modify {
    Put {
        cf: &'static str,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        cf: &'static str,
        key: Vec<u8>,
    },
}

impl Modify {
    pub fn cf(&self) -> &'static str {
        match self {
            Modify::Put { cf, .. } | Modify::Delete { cf, .. } => cf,
        }
    }

    pub fn key(&self) -> &[u8] {
        match self {
            Modify::Put { key, .. } | Modify::Delete { key, .. } => key,
        }
    }

    /// Adds this change to `wb` under the store's data keys, as applying it would.
    pub fn write_to(&self, wb: &mut KvWriteBatch) -> engine::Result<()> {
        match self {
            Modify::Put { cf, key, value } => wb.put_cf(cf, &keys::data_key(key), value),
            Modify::Delete { cf, key } => wb.delete_cf(cf, &keys::data_key(key)),
        }
    }

    /// Approximate bytes this change adds to a raft entry.
    pub fn size(&self) -> usize {
        match self {
            Modify::Put { key, value, .. } => key.len() + value.len(),
            Modify::Delete { key, .. } => key.len(),
        }
    }
}

/// The changes of one transactional command, in the order they were made.
#[derive(Debug, Default)]
pub struct MvccTxn {
    modifies: Vec<Modify>,
}

impl MvccTxn {
    pub fn new() -> MvccTxn {
        MvccTxn::default()
    }

    pub fn put_lock(&mut self, key: &Key, lock: &Lock) {
        self.modifies.push(Modify::Put {
            cf: CF_LOCK,
            key: key.as_encoded().to_vec(),
            value: lock.to_bytes(),
        });
    }

    pub fn unlock_key(&mut self, key: &Key) {
        self.modifies.push(Modify::Delete {
            cf: CF_LOCK,
            key: key.as_encoded().to_vec(),
        });
    }

    /// A value too long to sit in the lock, at the transaction's start_ts.
    pub fn put_value(&mut self, key: &Key, start_ts: u64, value: Vec<u8>) {
        self.modifies.push(Modify::Put {
            cf: CF_DEFAULT,
            key: key.append_ts(start_ts),
            value,
        });
    }

    pub fn delete_value(&mut self, key: &Key, start_ts: u64) {
        self.modifies.push(Modify::Delete {
            cf: CF_DEFAULT,
            key: key.append_ts(start_ts),
        });
    }

    /// A commit record at `commit_ts`, or a rollback record at the transaction's start_ts.
    pub fn put_write(&mut self, key: &Key, ts: u64, write: &Write) {
        self.modifies.push(Modify::Put {
            cf: CF_WRITE,
            key: key.append_ts(ts),
            value: write.to_bytes(),
        });
    }

    pub fn delete_write(&mut self, key: &Key, ts: u64) {
        self.modifies.push(Modify::Delete {
            cf: CF_WRITE,
            key: key.append_ts(ts),
        });
    }

    /// Adds changes an action collected on its own (all or nothing, like a prewrite's).
    pub fn extend(&mut self, modifies: impl IntoIterator<Item = Modify>) {
        self.modifies.extend(modifies);
    }

    pub fn is_empty(&self) -> bool {
        self.modifies.is_empty()
    }

    pub fn modifies(&self) -> &[Modify] {
        &self.modifies
    }

    pub fn into_modifies(self) -> Vec<Modify> {
        self.modifies
    }
}

#[cfg(test)]
mod tests {
    use engine::{KvEngine, KvRead};

    use super::*;
    use crate::mvcc::{LockType, MvccReader, WriteType};

    #[test]
    fn changes_written_through_data_keys_read_back_through_the_reader() {
        let dir = tempfile::tempdir().unwrap();
        let kv = KvEngine::open(dir.path()).unwrap();
        let key = Key::from_raw(b"k");
        let mut txn = MvccTxn::new();
        txn.put_lock(&key, &Lock::new(LockType::Put, b"k".to_vec(), 5, 100));
        txn.put_value(&key, 5, vec![7; 300]);
        txn.put_write(
            &key,
            3,
            &Write::new(WriteType::Put, 2, Some(b"old".to_vec())),
        );
        let mut wb = kv.write_batch();
        for m in txn.into_modifies() {
            m.write_to(&mut wb).unwrap();
        }
        kv.write(&wb, false).unwrap();

        let reader = MvccReader::new(&kv);
        assert_eq!(reader.load_lock(&key).unwrap().unwrap().ts, 5);
        assert_eq!(reader.get(&key, 4).unwrap(), Some(b"old".to_vec()));
        assert_eq!(reader.get(&key, 2).unwrap(), None);
        let long = Write::new(WriteType::Put, 5, None);
        assert_eq!(reader.load_data(&key, &long).unwrap(), vec![7; 300]);
        assert!(kv
            .get_value_cf(CF_WRITE, &keys::data_key(&key.append_ts(3)))
            .unwrap()
            .is_some());
    }
}
