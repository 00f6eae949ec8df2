//! Debugging RPCs of the transactional API: MvccGetByKey, every MVCC record of one key (its
//! lock and all its write records, newest first), as TiKV's debug service answers it. Used by
//! `shoal-ctl mvcc`; reads a snapshot, takes no latches and does not touch max_ts, since it
//! reads no version as of a timestamp.

use keys::encode_bytes;
use proto::kvrpcpb::{
    MvccGetByKeyRequest, MvccGetByKeyResponse, MvccInfo, MvccLock, MvccValue, MvccWrite, Op,
};
use txn::mvcc::{Key, Lock, LockType, MvccReader, Write, WriteType};

use engine::KvRead;

use super::errors::KvError;
use super::txn::TxnKv;

impl TxnKv {
    /// Every MVCC record of `req.key` (a transactional key, keyspace prefix included) in the
    /// context's region: the lock if any, every write record newest first, and the values
    /// stored in CF default for those of them (and of the lock) too long to travel inline.
    pub async fn mvcc_get_by_key(
        &self,
        req: MvccGetByKeyRequest,
    ) -> Result<MvccGetByKeyResponse, KvError> {
        let ctx = self.check(req.context.as_ref(), [&req.key])?;
        let snap = self.snapshot(&ctx).await?;
        super::raw::ensure_in_region(&encode_bytes(&req.key), &snap.region)?;
        let reader = MvccReader::new(&snap.snapshot);
        let info = mvcc_info(&reader, &Key::from_raw(&req.key))?;
        Ok(MvccGetByKeyResponse {
            info: Some(info),
            ..Default::default()
        })
    }
}

/// Collects the MVCC records of `key` from `reader`.
fn mvcc_info<S: KvRead>(reader: &MvccReader<'_, S>, key: &Key) -> Result<MvccInfo, KvError> {
    let mut values = Vec::new();
    let lock = match reader.load_lock(key)? {
        Some(lock) => {
            // A prewritten long value waits in CF default at the lock's start_ts.
            if lock.lock_type == LockType::Put && lock.short_value.is_none() {
                let pending = Write::new(WriteType::Put, lock.ts, None);
                values.push(MvccValue {
                    start_ts: lock.ts,
                    value: reader.load_data(key, &pending)?,
                });
            }
            Some(mvcc_lock(lock))
        }
        None => None,
    };
    let mut writes = Vec::new();
    for (commit_ts, write) in reader.all_versions(key)? {
        if write.write_type == WriteType::Put && write.short_value.is_none() {
            values.push(MvccValue {
                start_ts: write.start_ts,
                value: reader.load_data(key, &write)?,
            });
        }
        writes.push(mvcc_write(commit_ts, write));
    }
    Ok(MvccInfo {
        lock,
        writes,
        values,
    })
}

fn mvcc_lock(lock: Lock) -> MvccLock {
    MvccLock {
        r#type: lock.lock_type.to_op() as i32,
        start_ts: lock.ts,
        primary: lock.primary,
        short_value: lock.short_value.unwrap_or_default(),
        ttl: lock.ttl,
        for_update_ts: lock.for_update_ts,
        txn_size: lock.txn_size,
        use_async_commit: lock.use_async_commit,
        secondaries: lock.secondaries,
    }
}

fn mvcc_write(commit_ts: u64, write: Write) -> MvccWrite {
    let op = match write.write_type {
        WriteType::Put => Op::Put,
        WriteType::Delete => Op::Del,
        WriteType::Lock => Op::Lock,
        WriteType::Rollback => Op::Rollback,
    };
    MvccWrite {
        r#type: op as i32,
        start_ts: write.start_ts,
        commit_ts,
        short_value: write.short_value.unwrap_or_default(),
        has_overlapped_rollback: write.has_overlapped_rollback,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_map_to_their_wire_form() {
        let mut lock = Lock::new(LockType::Delete, b"x\0\0\0pk".to_vec(), 7, 3000);
        lock.secondaries = vec![b"x\0\0\0s".to_vec()];
        let wire = mvcc_lock(lock);
        assert_eq!(wire.r#type, Op::Del as i32);
        assert_eq!((wire.start_ts, wire.ttl), (7, 3000));
        assert_eq!(wire.primary, b"x\0\0\0pk");
        assert_eq!(wire.secondaries.len(), 1);

        let mut rollback = Write::rollback(5, true);
        rollback.has_overlapped_rollback = true;
        let wire = mvcc_write(5, rollback);
        assert_eq!(wire.r#type, Op::Rollback as i32);
        assert!(wire.has_overlapped_rollback && wire.short_value.is_empty());
        let wire = mvcc_write(9, Write::new(WriteType::Put, 8, Some(b"v".to_vec())));
        assert_eq!((wire.commit_ts, wire.start_ts), (9, 8));
        assert_eq!(wire.short_value, b"v");
    }
}
