//! The write record: a committed version (`Put`, `Delete`, `Lock`) at its commit_ts, or a
//! `Rollback` at the rolled-back transaction's start_ts. Stored in CF `write`.

use prost::Message;

use crate::errors::{Error, Result};
use crate::mvcc::lock::LockType;

/// The kind of write record (TiKV's `WriteType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteType {
    Put,
    Delete,
    /// A committed `Lock` mutation: no data change, only a version readers skip.
    Lock,
    /// The transaction at this start_ts was rolled back; a late prewrite of it must fail.
    Rollback,
}

impl WriteType {
    /// The record a lock of `lock_type` commits as; `None` for a pessimistic lock, which is
    /// removed at commit without a record.
    pub fn from_lock_type(lock_type: LockType) -> Option<WriteType> {
        match lock_type {
            LockType::Put => Some(WriteType::Put),
            LockType::Delete => Some(WriteType::Delete),
            LockType::Lock => Some(WriteType::Lock),
            LockType::Pessimistic => None,
        }
    }

    fn code(self) -> u32 {
        match self {
            WriteType::Put => 1,
            WriteType::Delete => 2,
            WriteType::Lock => 3,
            WriteType::Rollback => 4,
        }
    }

    fn from_code(code: u32) -> Result<WriteType> {
        Ok(match code {
            1 => WriteType::Put,
            2 => WriteType::Delete,
            3 => WriteType::Lock,
            4 => WriteType::Rollback,
            other => {
                return Err(Error::Corrupt {
                    what: "write record",
                    detail: format!("unknown write type {other}"),
                })
            }
        })
    }
}

/// One record in CF `write`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub write_type: WriteType,
    /// The start_ts of the transaction that wrote it.
    pub start_ts: u64,
    /// A `Put`'s value when short; otherwise the value is in CF `default` at `start_ts`.
    pub short_value: Option<Vec<u8>>,
    /// A commit record whose commit_ts equals another transaction's start_ts on this key, where
    /// that transaction was rolled back: the rollback is recorded here instead of overwriting
    /// the commit (TiKV's `has_overlapped_rollback`).
    pub has_overlapped_rollback: bool,
    /// A rollback record that must survive until GC: written for primaries and by status
    /// checks, so a late prewrite of the rolled-back transaction always fails.
    pub protected: bool,
}

#[derive(Clone, PartialEq, Message)]
struct WriteRecord {
    #[prost(uint32, tag = "1")]
    write_type: u32,
    #[prost(uint64, tag = "2")]
    start_ts: u64,
    #[prost(bytes = "vec", optional, tag = "3")]
    short_value: Option<Vec<u8>>,
    #[prost(bool, tag = "4")]
    has_overlapped_rollback: bool,
    #[prost(bool, tag = "5")]
    protected: bool,
}

impl Write {
    pub fn new(write_type: WriteType, start_ts: u64, short_value: Option<Vec<u8>>) -> Write {
        Write {
            write_type,
            start_ts,
            short_value,
            has_overlapped_rollback: false,
            protected: false,
        }
    }

    /// A rollback record of the transaction at `start_ts`.
    pub fn rollback(start_ts: u64, protected: bool) -> Write {
        Write {
            protected,
            ..Write::new(WriteType::Rollback, start_ts, None)
        }
    }

    /// Whether this record carries data a reader may return (`Put`) or hide (`Delete`);
    /// `Lock` and `Rollback` records are skipped by readers.
    pub fn is_data(&self) -> bool {
        matches!(self.write_type, WriteType::Put | WriteType::Delete)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        WriteRecord {
            write_type: self.write_type.code(),
            start_ts: self.start_ts,
            short_value: self.short_value.clone(),
            has_overlapped_rollback: self.has_overlapped_rollback,
            protected: self.protected,
        }
        .encode_to_vec()
    }

    /// Decodes a stored write record. Errors with `Corrupt` on bytes that are not one.
    pub fn parse(bytes: &[u8]) -> Result<Write> {
        let r = WriteRecord::decode(bytes).map_err(|e| Error::Corrupt {
            what: "write record",
            detail: e.to_string(),
        })?;
        Ok(Write {
            write_type: WriteType::from_code(r.write_type)?,
            start_ts: r.start_ts,
            short_value: r.short_value,
            has_overlapped_rollback: r.has_overlapped_rollback,
            protected: r.protected,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_round_trips_and_damage_is_reported() {
        let w = Write::new(WriteType::Put, 7, Some(b"value".to_vec()));
        assert_eq!(Write::parse(&w.to_bytes()).unwrap(), w);
        let r = Write::rollback(9, true);
        assert_eq!(Write::parse(&r.to_bytes()).unwrap(), r);
        assert!(!r.is_data() && w.is_data());
        assert!(Write::parse(b"\xff\xff").is_err());
        assert!(Write::parse(&[0x08, 0x09]).is_err(), "write type 9");
    }

    #[test]
    fn locks_commit_as_their_write_type() {
        assert_eq!(
            WriteType::from_lock_type(LockType::Put),
            Some(WriteType::Put)
        );
        assert_eq!(WriteType::from_lock_type(LockType::Pessimistic), None);
    }
}
