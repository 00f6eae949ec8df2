//! Storage errors.

use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("rocksdb at {path:?}: {msg}")]
    RocksDb { path: PathBuf, msg: String },
    #[error("raft log engine at {path:?}: {msg}")]
    RaftEngine { path: PathBuf, msg: String },
    /// Data on disk failed its checks; `path` names the damaged file when it is known.
    #[error("corruption in {path:?}: {detail}")]
    Corruption { path: PathBuf, detail: String },
    #[error("cannot decode stored message: {0}")]
    Codec(String),
    #[error("unknown column family {0:?}")]
    UnknownCf(String),
    /// A `KvEngineOptions` or `RaftLogOptions` value the engine cannot use, naming the
    /// setting.
    #[error("invalid engine options: {0}")]
    InvalidOptions(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, Error>;
