//! The history format: operations on one register, with their invoke and completion times and
//! outcomes, plus a JSON Lines file format (one operation per line) for keeping histories as
//! regression tests.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A point in time, in nanoseconds on one monotonic clock shared by every client of the history
/// (for example nanoseconds since the test started, taken from `std::time::Instant`).
pub type Time = u64;

/// What a client asked the register to do.
///
/// The register model (shared by every check in this crate) holds one value or nothing
/// ("absent", `None`), and starts absent:
/// - `Read` returns the current value;
/// - `Write(v)` sets it to `v`;
/// - `Cas { expected, new }` sets it to `new` if and only if the current value equals
///   `expected` (`None` expects the key to be absent), and in both cases returns the value it
///   found, as TiKV's raw compare-and-swap returns `(previous_value, succeeded)`;
/// - `Delete` makes it absent.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command<V> {
    /// Read the current value.
    Read,
    /// Set the value.
    Write(V),
    /// Compare-and-swap: set `new` if the current value is `expected`.
    Cas {
        /// The value the register must hold for the swap to happen (`None`: absent).
        expected: Option<V>,
        /// The value written when the swap happens.
        new: V,
    },
    /// Make the value absent.
    Delete,
}

/// What the register answered to a [`Command`] that completed.
///
/// The variant must match the command: `Read` for [`Command::Read`], `Write` for
/// [`Command::Write`], `Cas` for [`Command::Cas`], `Delete` for [`Command::Delete`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response<V> {
    /// The value observed (`None`: absent).
    Read(Option<V>),
    /// The write was acknowledged.
    Write,
    /// The compare-and-swap result.
    Cas {
        /// The value the register held when the CAS took effect (`None`: absent). When
        /// `succeeded` is true this must equal the command's `expected`.
        previous: Option<V>,
        /// Whether `new` was written.
        succeeded: bool,
    },
    /// The delete was acknowledged.
    Delete,
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome<V> {
    /// The operation completed with this response; it took effect exactly once, at some
    /// instant between its invoke and completion times.
    Ok(Response<V>),
    /// Indeterminate (timed out, connection lost, unknown server error): the operation may or
    /// may not have taken effect, at any instant after its invoke time, and its result is
    /// unknown. The checker treats its completion time as +infinity. An `Info` read constrains
    /// nothing and is dropped before the search.
    Info,
    /// The operation definitely did not take effect (an error that guarantees nothing was
    /// written). It is dropped before the search.
    Fail,
}

/// One operation of a single-key history.
///
/// `invoke` and `complete` are [`Time`]s in nanoseconds on the clock shared by all clients. For
/// an `Ok` operation `complete >= invoke` is required. For `Info` and `Fail` operations
/// `complete` is only recorded (when the client gave up) and is not used by the check.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Operation<V = Vec<u8>> {
    /// The client (process) that issued the operation; used only in reports. A client whose
    /// operation ended `Info` may still have it in flight, so by convention it continues under
    /// a new process id.
    pub process: u64,
    /// When the request was sent, in nanoseconds.
    pub invoke: Time,
    /// When the response arrived (or the client gave up), in nanoseconds.
    pub complete: Time,
    /// What was asked.
    pub command: Command<V>,
    /// How it ended.
    pub outcome: Outcome<V>,
}

impl<V> Operation<V> {
    /// A completed read that observed `observed` (`None`: absent).
    pub fn read(process: u64, invoke: Time, complete: Time, observed: Option<V>) -> Self {
        Operation {
            process,
            invoke,
            complete,
            command: Command::Read,
            outcome: Outcome::Ok(Response::Read(observed)),
        }
    }

    /// A completed (acknowledged) write of `value`.
    pub fn write(process: u64, invoke: Time, complete: Time, value: V) -> Self {
        Operation {
            process,
            invoke,
            complete,
            command: Command::Write(value),
            outcome: Outcome::Ok(Response::Write),
        }
    }

    /// A completed compare-and-swap that returned `(previous, succeeded)`.
    pub fn cas(
        process: u64,
        invoke: Time,
        complete: Time,
        expected: Option<V>,
        new: V,
        previous: Option<V>,
        succeeded: bool,
    ) -> Self {
        Operation {
            process,
            invoke,
            complete,
            command: Command::Cas { expected, new },
            outcome: Outcome::Ok(Response::Cas {
                previous,
                succeeded,
            }),
        }
    }

    /// A completed (acknowledged) delete.
    pub fn delete(process: u64, invoke: Time, complete: Time) -> Self {
        Operation {
            process,
            invoke,
            complete,
            command: Command::Delete,
            outcome: Outcome::Ok(Response::Delete),
        }
    }

    /// An indeterminate operation: invoked at `invoke`, given up at `gave_up` (recorded only).
    pub fn info(process: u64, invoke: Time, gave_up: Time, command: Command<V>) -> Self {
        Operation {
            process,
            invoke,
            complete: gave_up,
            command,
            outcome: Outcome::Info,
        }
    }

    /// An operation that definitely did not take effect.
    pub fn fail(process: u64, invoke: Time, complete: Time, command: Command<V>) -> Self {
        Operation {
            process,
            invoke,
            complete,
            command,
            outcome: Outcome::Fail,
        }
    }

    /// The same operation with every value mapped through `f` (for example `u64` test values to
    /// byte strings).
    pub fn map_values<W>(self, mut f: impl FnMut(V) -> W) -> Operation<W> {
        let command = match self.command {
            Command::Read => Command::Read,
            Command::Write(v) => Command::Write(f(v)),
            Command::Cas { expected, new } => Command::Cas {
                expected: expected.map(&mut f),
                new: f(new),
            },
            Command::Delete => Command::Delete,
        };
        let outcome = match self.outcome {
            Outcome::Ok(Response::Read(v)) => Outcome::Ok(Response::Read(v.map(&mut f))),
            Outcome::Ok(Response::Write) => Outcome::Ok(Response::Write),
            Outcome::Ok(Response::Cas {
                previous,
                succeeded,
            }) => Outcome::Ok(Response::Cas {
                previous: previous.map(&mut f),
                succeeded,
            }),
            Outcome::Ok(Response::Delete) => Outcome::Ok(Response::Delete),
            Outcome::Info => Outcome::Info,
            Outcome::Fail => Outcome::Fail,
        };
        Operation {
            process: self.process,
            invoke: self.invoke,
            complete: self.complete,
            command,
            outcome,
        }
    }

    /// True if the outcome is [`Outcome::Ok`].
    pub fn is_ok(&self) -> bool {
        matches!(self.outcome, Outcome::Ok(_))
    }

    /// True if the outcome is [`Outcome::Info`].
    pub fn is_info(&self) -> bool {
        matches!(self.outcome, Outcome::Info)
    }
}

/// Shows an operation on one line, e.g.
/// `p3 1200..1450ns cas(expected Some(1), new 2) -> ok(previous Some(1), succeeded)`.
impl<V: fmt::Debug> fmt::Display for Operation<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.outcome {
            Outcome::Info => write!(f, "p{} {}..inf ns ", self.process, self.invoke)?,
            _ => write!(
                f,
                "p{} {}..{} ns ",
                self.process, self.invoke, self.complete
            )?,
        }
        match &self.command {
            Command::Read => write!(f, "read")?,
            Command::Write(v) => write!(f, "write({v:?})")?,
            Command::Cas { expected, new } => write!(f, "cas(expected {expected:?}, new {new:?})")?,
            Command::Delete => write!(f, "delete")?,
        }
        match &self.outcome {
            Outcome::Ok(Response::Read(v)) => write!(f, " -> ok({v:?})"),
            Outcome::Ok(Response::Cas {
                previous,
                succeeded,
            }) => {
                let word = if *succeeded { "succeeded" } else { "failed" };
                write!(f, " -> ok(previous {previous:?}, {word})")
            }
            Outcome::Ok(_) => write!(f, " -> ok"),
            Outcome::Info => write!(f, " -> info (indeterminate)"),
            Outcome::Fail => write!(f, " -> fail"),
        }
    }
}

/// An operation of a multi-key history: the key it touched and the operation.
///
/// In JSON the operation's fields sit beside `key`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyedOperation<K, V = Vec<u8>> {
    /// The key.
    pub key: K,
    /// The operation on that key.
    #[serde(flatten)]
    pub op: Operation<V>,
}

/// A history that cannot be checked as given.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum HistoryError {
    /// An `Ok` operation completed before it was invoked.
    #[error("operation {index} completed at {complete} ns, before it was invoked at {invoke} ns")]
    CompletedBeforeInvoked {
        /// Index of the operation in the checked history.
        index: usize,
        /// Its invoke time, ns.
        invoke: Time,
        /// Its completion time, ns.
        complete: Time,
    },
    /// An `Ok` operation's response does not belong to its command (e.g. a read answered by a
    /// CAS response).
    #[error("operation {index}: a {command} command has a {response} response")]
    ResponseMismatch {
        /// Index of the operation in the checked history.
        index: usize,
        /// The command's kind.
        command: &'static str,
        /// The response's kind.
        response: &'static str,
    },
    /// More operations than the checker can index (2^31 - 2).
    #[error("history has {len} operations; at most {max} can be checked")]
    TooLarge {
        /// Operations given.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl HistoryError {
    /// The same error with its operation index mapped through `f`.
    pub(crate) fn map_index(self, f: impl Fn(usize) -> usize) -> Self {
        match self {
            HistoryError::CompletedBeforeInvoked {
                index,
                invoke,
                complete,
            } => HistoryError::CompletedBeforeInvoked {
                index: f(index),
                invoke,
                complete,
            },
            HistoryError::ResponseMismatch {
                index,
                command,
                response,
            } => HistoryError::ResponseMismatch {
                index: f(index),
                command,
                response,
            },
            e @ HistoryError::TooLarge { .. } => e,
        }
    }
}

/// A history file that cannot be read or written.
#[derive(Debug, Error)]
pub enum FormatError {
    /// Reading or writing failed.
    #[error("history file I/O: {0}")]
    Io(#[from] io::Error),
    /// A line is not a valid operation.
    #[error("history line {line}: {source}")]
    Json {
        /// 1-based line number.
        line: usize,
        /// The parse error.
        source: serde_json::Error,
    },
    /// An item could not be encoded.
    #[error("encoding history: {0}")]
    Encode(serde_json::Error),
}

/// Writes `items` as JSON Lines: one JSON object per line.
///
/// With `Operation<u64>` a line reads
/// `{"process":1,"invoke":10,"complete":25,"command":{"write":7},"outcome":{"ok":"write"}}`.
pub fn write_jsonl<'a, T, W>(
    items: impl IntoIterator<Item = &'a T>,
    out: W,
) -> Result<(), FormatError>
where
    T: Serialize + 'a,
    W: Write,
{
    let mut out = BufWriter::new(out);
    for item in items {
        serde_json::to_writer(&mut out, item).map_err(FormatError::Encode)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// Reads JSON Lines written by [`write_jsonl`] (or by hand). Blank lines and lines whose first
/// non-blank character is `#` are skipped, so hand-written regression histories can carry
/// comments.
pub fn read_jsonl<T, R>(input: R) -> Result<Vec<T>, FormatError>
where
    T: DeserializeOwned,
    R: BufRead,
{
    let mut items = Vec::new();
    for (n, line) in input.lines().enumerate() {
        let line = line?;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let item = serde_json::from_str(trimmed).map_err(|source| FormatError::Json {
            line: n + 1,
            source,
        })?;
        items.push(item);
    }
    Ok(items)
}

/// [`write_jsonl`] to a file, replacing it.
pub fn save_jsonl<T: Serialize>(path: impl AsRef<Path>, items: &[T]) -> Result<(), FormatError> {
    write_jsonl(items, File::create(path)?)
}

/// [`read_jsonl`] from a file.
pub fn load_jsonl<T: DeserializeOwned>(path: impl AsRef<Path>) -> Result<Vec<T>, FormatError> {
    read_jsonl(BufReader::new(File::open(path)?))
}
