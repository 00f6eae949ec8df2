//! An atomic batch of KV writes with save points, so one failed command inside a shared batch
//! can be undone without touching the others.

use prost::Message;

use crate::error::{Error, Result};
use crate::ALL_CFS;

enum Op {
    Put {
        cf: usize,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        cf: usize,
        key: Vec<u8>,
    },
    DeleteRange {
        cf: usize,
        start: Vec<u8>,
        end: Vec<u8>,
    },
}

/// Writes collected in order and applied atomically by `KvEngine::write`.
#[derive(Default)]
pub struct KvWriteBatch {
    ops: Vec<Op>,
    data_size: usize,
    save_points: Vec<(usize, usize)>,
}

fn cf_index(cf: &str) -> Result<usize> {
    ALL_CFS
        .iter()
        .position(|c| *c == cf)
        .ok_or_else(|| Error::UnknownCf(cf.to_string()))
}

impl KvWriteBatch {
    pub fn new() -> KvWriteBatch {
        KvWriteBatch::default()
    }

    pub fn put_cf(&mut self, cf: &str, key: &[u8], value: &[u8]) -> Result<()> {
        let cf = cf_index(cf)?;
        self.data_size += key.len() + value.len();
        self.ops.push(Op::Put {
            cf,
            key: key.to_vec(),
            value: value.to_vec(),
        });
        Ok(())
    }

    pub fn put_msg_cf<M: Message>(&mut self, cf: &str, key: &[u8], msg: &M) -> Result<()> {
        self.put_cf(cf, key, &msg.encode_to_vec())
    }

    pub fn delete_cf(&mut self, cf: &str, key: &[u8]) -> Result<()> {
        let cf = cf_index(cf)?;
        self.data_size += key.len();
        self.ops.push(Op::Delete {
            cf,
            key: key.to_vec(),
        });
        Ok(())
    }

    pub fn delete_range_cf(&mut self, cf: &str, start: &[u8], end: &[u8]) -> Result<()> {
        let cf = cf_index(cf)?;
        self.data_size += start.len() + end.len();
        self.ops.push(Op::DeleteRange {
            cf,
            start: start.to_vec(),
            end: end.to_vec(),
        });
        Ok(())
    }

    pub fn count(&self) -> usize {
        self.ops.len()
    }

    pub fn data_size(&self) -> usize {
        self.data_size
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn clear(&mut self) {
        self.ops.clear();
        self.save_points.clear();
        self.data_size = 0;
    }

    /// Marks a point `rollback_to_save_point` can return to.
    pub fn set_save_point(&mut self) {
        self.save_points.push((self.ops.len(), self.data_size));
    }

    /// Drops every write since the last save point (and the save point).
    pub fn rollback_to_save_point(&mut self) -> Result<()> {
        let (len, size) = self
            .save_points
            .pop()
            .ok_or_else(|| Error::Codec("no save point to roll back to".into()))?;
        self.ops.truncate(len);
        self.data_size = size;
        Ok(())
    }

    /// Forgets the last save point, keeping the writes.
    pub fn pop_save_point(&mut self) -> Result<()> {
        self.save_points
            .pop()
            .map(|_| ())
            .ok_or_else(|| Error::Codec("no save point to pop".into()))
    }

    /// The RocksDB batch of these writes; `handles` are the column families of `ALL_CFS`,
    /// in that order.
    pub(crate) fn to_rocks(&self, handles: &[&rocksdb::ColumnFamily]) -> rocksdb::WriteBatch {
        let mut wb = rocksdb::WriteBatch::default();
        for op in &self.ops {
            match op {
                Op::Put { cf, key, value } => wb.put_cf(handles[*cf], key, value),
                Op::Delete { cf, key } => wb.delete_cf(handles[*cf], key),
                Op::DeleteRange { cf, start, end } => wb.delete_range_cf(handles[*cf], start, end),
            }
        }
        wb
    }
}
