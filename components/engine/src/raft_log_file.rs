//! Reads the framing of raft-engine's log files without raft-engine, to tell where the
//! complete records of a file end and what follows them.
//!
//! The format (raft-engine 0.4): a file header (a magic string, the format version as a
//! big-endian u64 and, from version 2 on, the record alignment as a big-endian u64), then
//! records ("log batches"), each:
//!
//! - a 16-byte header: big-endian u64 `len << 8 | compression` and big-endian u64 `footer`,
//!   both lengths counted from the start of the record;
//! - when the record carries entries, the entries block followed by the little-endian crc32 of
//!   it;
//! - the footer (the record's items) followed by the little-endian crc32 of it, XORed, from
//!   version 2 on, with the low 32 bits of the file's sequence number, so that a record left
//!   over from another file never passes for one of this file.
//!
//! raft-engine reads records the same way when it opens a log: a record is complete when its
//! header is consistent and its footer checksum holds; it checks the entries block only of
//! the last record of each file, and checks the rest when entries are read.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

const MAGIC: &[u8] = b"RAFT-LOG-FILE-HEADER-9986AB3E47F320B394C8E84916EB0ED5";
const RECORD_HEADER_LEN: u64 = 16;
const CHECKSUM_LEN: u64 = 4;
/// The smallest footer: an item count and the checksum.
const MIN_FOOTER_LEN: u64 = 1 + CHECKSUM_LEN;
/// Bytes read from the file at a time.
const BLOCK: usize = 1 << 20;

/// What follows the last complete record of a log file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Tail {
    /// Nothing: the last complete record ends the file.
    Clean,
    /// Only zero bytes, from `end` to the end of the file: space the writer preallocated and
    /// never wrote. It is where a log ends after a crash; the records before `end` are all
    /// there. `end` is 0 when the file holds not even an intact file header.
    Zeros { end: u64 },
    /// From `end` on, bytes that hold no complete record: a write cut short. `end` is 0 when
    /// the file header itself is damaged.
    Torn { end: u64, detail: String },
    /// A damaged record at `at` with complete records after it.
    Damaged { at: u64, detail: String },
}

/// How much of each record [`inspect`] checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// Headers and footers, and the entries block of the last complete record: what
    /// raft-engine checks when it opens a log.
    Framing,
    /// Every entries block too.
    Everything,
}

/// Reads the log file at `path` (named `<sequence number>.<queue>` by raft-engine) and says
/// what follows its last complete record.
pub(crate) fn inspect(path: &Path, check: Check) -> io::Result<Tail> {
    let seq = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.get(..16))
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not named like a raft log file", path.display()),
            )
        })?;
    // Version 2 records are signed with the low 32 bits of their file's sequence number.
    let signed = Some(seq as u32);
    let mut file = Reader::open(path)?;
    let Some(format) = file.format()? else {
        // Without a file header there are no records of this file; any record that still
        // passes its checks is one under either version's rules.
        return file.classify(0, Bad::FileHeader, &[signed, None]);
    };
    let signature = if format.version == 1 { None } else { signed };
    let mut at = format.header_len;
    let mut last = None;
    let failure = loop {
        if at == file.size {
            break None;
        }
        match file.record_at(at, signature)? {
            Ok(len) => {
                if check == Check::Everything {
                    if let Err(e) = file.entries_at(at)? {
                        break Some((at, e));
                    }
                }
                last = Some(at);
                at += len;
            }
            Err(e) => {
                // Records may be padded with zeros up to the alignment.
                if format.alignment > 0 {
                    let aligned = at.checked_next_multiple_of(format.alignment);
                    if let Some(aligned) = aligned.filter(|a| *a > at && *a < file.size) {
                        if file.all_zero(at, aligned)? {
                            at = aligned;
                            continue;
                        }
                    }
                }
                break Some((at, e));
            }
        }
    };
    // Like raft-engine, check the entries of the last complete record: a crash can persist
    // its header and footer but not all the pages in between.
    if let Some(last_at) = last {
        if check == Check::Framing {
            if let Err(e) = file.entries_at(last_at)? {
                return file.classify(last_at, e, &[signature]);
            }
        }
    }
    match failure {
        None => Ok(Tail::Clean),
        Some((at, bad)) => file.classify(at, bad, &[signature]),
    }
}

struct Format {
    version: u64,
    alignment: u64,
    header_len: u64,
}

/// A log file, read a block at a time.
struct Reader {
    file: File,
    size: u64,
    buf: Vec<u8>,
    /// The file offset of `buf`.
    buf_at: u64,
}

impl Reader {
    fn open(path: &Path) -> io::Result<Reader> {
        let file = File::open(path)?;
        let size = file.metadata()?.len();
        Ok(Reader {
            file,
            size,
            buf: Vec::new(),
            buf_at: 0,
        })
    }

    /// Bytes `[at, at + len)`, which lie within the file.
    fn bytes(&mut self, at: u64, len: u64) -> io::Result<&[u8]> {
        debug_assert!(at + len <= self.size);
        let in_buf = at >= self.buf_at && at + len <= self.buf_at + self.buf.len() as u64;
        if !in_buf {
            let want = len.max(BLOCK as u64).min(self.size - at);
            self.buf.resize(want as usize, 0);
            self.file.read_exact_at(&mut self.buf, at)?;
            self.buf_at = at;
        }
        let start = (at - self.buf_at) as usize;
        Ok(&self.buf[start..start + len as usize])
    }

    /// The file header, or `None` if it is not intact.
    fn format(&mut self) -> io::Result<Option<Format>> {
        let v1_len = MAGIC.len() as u64 + 8;
        if self.size < v1_len {
            return Ok(None);
        }
        let header = self.bytes(0, v1_len)?;
        if !header.starts_with(MAGIC) {
            return Ok(None);
        }
        let version = be_u64(&header[MAGIC.len()..]);
        let (alignment, header_len) = match version {
            1 => (0, v1_len),
            2 if self.size >= v1_len + 8 => (be_u64(self.bytes(v1_len, 8)?), v1_len + 8),
            _ => return Ok(None),
        };
        Ok(Some(Format {
            version,
            alignment,
            header_len,
        }))
    }

    /// The length of the complete record at `at`, or why there is none.
    fn record_at(&mut self, at: u64, signature: Option<u32>) -> io::Result<Result<u64, Bad>> {
        let size = self.size;
        if size - at < RECORD_HEADER_LEN {
            return Ok(Err(Bad::Stray));
        }
        let header = self.bytes(at, RECORD_HEADER_LEN)?;
        let (len_and_type, footer) = (be_u64(header), be_u64(&header[8..]));
        let (len, compression) = (len_and_type >> 8, len_and_type & 0xff);
        if compression > 1
            || footer < RECORD_HEADER_LEN
            || len < footer.saturating_add(MIN_FOOTER_LEN)
        {
            return Ok(Err(Bad::Header));
        }
        if len > size - at {
            return Ok(Err(Bad::PastEnd { len }));
        }
        let footer = self.bytes(at + footer, len - footer)?;
        let (items, stored) = footer.split_at(footer.len() - CHECKSUM_LEN as usize);
        let stored = u32::from_le_bytes(stored.try_into().unwrap()) ^ signature.unwrap_or(0);
        if crc32fast::hash(items) != stored {
            return Ok(Err(Bad::Footer));
        }
        Ok(Ok(len))
    }

    /// Checks the entries block of the complete record at `at`.
    fn entries_at(&mut self, at: u64) -> io::Result<Result<(), Bad>> {
        let len = be_u64(self.bytes(at + 8, 8)?) - RECORD_HEADER_LEN;
        if len == 0 {
            return Ok(Ok(()));
        }
        if len <= CHECKSUM_LEN {
            return Ok(Err(Bad::Entries));
        }
        let block = self.bytes(at + RECORD_HEADER_LEN, len)?;
        let (entries, stored) = block.split_at(block.len() - CHECKSUM_LEN as usize);
        if crc32fast::hash(entries) != u32::from_le_bytes(stored.try_into().unwrap()) {
            return Ok(Err(Bad::Entries));
        }
        Ok(Ok(()))
    }

    fn all_zero(&mut self, from: u64, to: u64) -> io::Result<bool> {
        let mut at = from;
        while at < to {
            let n = (to - at).min(BLOCK as u64);
            if self.bytes(at, n)?.iter().any(|b| *b != 0) {
                return Ok(false);
            }
            at += n;
        }
        Ok(true)
    }

    /// Says what the bytes from `end` on are, `end` being where the complete records stop
    /// (`bad` says why): zeros, a torn write, or damage with complete records after it.
    fn classify(&mut self, end: u64, bad: Bad, signatures: &[Option<u32>]) -> io::Result<Tail> {
        if self.all_zero(end, self.size)? {
            return Ok(Tail::Zeros { end });
        }
        let detail = bad.describe(end, self.size);
        // A complete record later on means the damage is not where the log stops.
        let mut at = end + 1;
        while at + RECORD_HEADER_LEN + MIN_FOOTER_LEN <= self.size {
            for signature in signatures {
                if let Ok(len) = self.record_at(at, *signature)? {
                    let detail = format!(
                        "{detail}; a complete record of {len} bytes follows at offset {at}"
                    );
                    return Ok(Tail::Damaged { at: end, detail });
                }
            }
            at += 1;
        }
        Ok(Tail::Torn { end, detail })
    }
}

/// Why there is no complete record at an offset.
#[derive(Clone, Copy, Debug)]
enum Bad {
    /// Fewer bytes than a record header are left.
    Stray,
    /// The record header is inconsistent.
    Header,
    /// The record header gives a length that runs past the end of the file.
    PastEnd { len: u64 },
    /// The footer fails its checksum.
    Footer,
    /// The entries block fails its checksum.
    Entries,
    /// The file header is not intact.
    FileHeader,
}

impl Bad {
    fn describe(self, at: u64, size: u64) -> String {
        match self {
            Bad::Stray => format!("{} stray bytes at offset {at}", size - at),
            Bad::Header => format!("malformed record header at offset {at}"),
            Bad::PastEnd { len } => format!(
                "the record at offset {at} is {len} bytes long, past the end of the file ({size} bytes)"
            ),
            Bad::Footer => format!("checksum mismatch in the record at offset {at}"),
            Bad::Entries => format!("checksum mismatch in the entries of the record at offset {at}"),
            Bad::FileHeader => "damaged file header".to_owned(),
        }
    }
}

fn be_u64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().unwrap())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use raft::eraftpb::Entry;

    use super::*;
    use crate::{RaftLogBatch, RaftLogEngine};

    /// A log closed cleanly after `batches` synced records of one entry each; returns its
    /// only file.
    fn closed_log(dir: &Path, batches: u64) -> PathBuf {
        let log = RaftLogEngine::open(dir).unwrap();
        for index in 1..=batches {
            let mut b = RaftLogBatch::new();
            let e = Entry {
                index,
                term: 1,
                data: vec![index as u8; 40].into(),
                ..Default::default()
            };
            b.append(1, vec![e]).unwrap();
            log.write(&mut b, true).unwrap();
        }
        drop(log);
        dir.join("0000000000000001.raftlog")
    }

    fn rewrite(path: &Path, f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut bytes = std::fs::read(path).unwrap();
        f(&mut bytes);
        std::fs::write(path, &bytes).unwrap();
        bytes
    }

    fn both(path: &Path) -> (Tail, Tail) {
        (
            inspect(path, Check::Framing).unwrap(),
            inspect(path, Check::Everything).unwrap(),
        )
    }

    #[test]
    fn a_closed_log_is_clean() {
        let dir = tempfile::tempdir().unwrap();
        let file = closed_log(dir.path(), 10);
        assert_eq!(both(&file), (Tail::Clean, Tail::Clean));
    }

    #[test]
    fn zeros_after_the_last_record_are_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let file = closed_log(dir.path(), 10);
        let end = std::fs::metadata(&file).unwrap().len();
        rewrite(&file, |b| b.resize(b.len() + 3 * BLOCK + 5, 0));
        let zeros = Tail::Zeros { end };
        assert_eq!(both(&file), (zeros, Tail::Zeros { end }));
    }

    #[test]
    fn a_file_without_its_header() {
        let dir = tempfile::tempdir().unwrap();
        let file = closed_log(dir.path(), 1);
        // Created, but its header never reached the disk.
        std::fs::write(&file, b"").unwrap();
        assert_eq!(
            inspect(&file, Check::Framing).unwrap(),
            Tail::Zeros { end: 0 }
        );
        std::fs::write(&file, [0; 4096]).unwrap();
        assert_eq!(
            inspect(&file, Check::Framing).unwrap(),
            Tail::Zeros { end: 0 }
        );
        // Half of it did.
        std::fs::write(&file, &MAGIC[..30]).unwrap();
        assert!(matches!(
            inspect(&file, Check::Framing).unwrap(),
            Tail::Torn { end: 0, .. }
        ));
    }

    #[test]
    fn bytes_that_are_no_record_are_a_torn_write() {
        let dir = tempfile::tempdir().unwrap();
        let file = closed_log(dir.path(), 3);
        let end = std::fs::metadata(&file).unwrap().len();
        let mut pseudo_random = 0x9e37_79b9_7f4a_7c15_u64;
        let garbage: Vec<Vec<u8>> = vec![
            vec![0xff; 300],
            vec![0xa5; 300],
            vec![0x01; 300],
            (0..300u64)
                .map(|_| {
                    pseudo_random ^= pseudo_random << 13;
                    pseudo_random ^= pseudo_random >> 7;
                    pseudo_random ^= pseudo_random << 17;
                    pseudo_random as u8
                })
                .collect(),
        ];
        for tail in garbage {
            let bytes = rewrite(&file, |b| {
                b.truncate(end as usize);
                b.extend_from_slice(&tail);
                b.resize(b.len() + 1000, 0);
            });
            for check in [Check::Framing, Check::Everything] {
                let found = inspect(&file, check).unwrap();
                assert!(
                    matches!(found, Tail::Torn { end: e, .. } if e == end),
                    "{found:?} after {:?}",
                    &bytes[end as usize..end as usize + 8]
                );
            }
        }
    }

    #[test]
    fn a_damaged_header_before_records_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        let file = closed_log(dir.path(), 5);
        rewrite(&file, |b| b[3] ^= 0xff);
        assert!(matches!(
            inspect(&file, Check::Framing).unwrap(),
            Tail::Damaged { at: 0, .. }
        ));
    }

    #[test]
    fn records_of_another_file_are_not_records_of_this_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = closed_log(dir.path(), 5);
        let other = dir.path().join("0000000000000002.raftlog");
        std::fs::rename(&file, &other).unwrap();
        let header_len = MAGIC.len() as u64 + 16;
        assert!(matches!(
            inspect(&other, Check::Framing).unwrap(),
            Tail::Torn { end, .. } if end == header_len
        ));
        assert!(inspect(&dir.path().join("LOCK"), Check::Framing).is_err());
    }

    #[test]
    fn damaged_entries_show_when_everything_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = closed_log(dir.path(), 5);
        let first = MAGIC.len() as u64 + 16;
        // Inside the entries block of the first record.
        rewrite(&file, |b| b[first as usize + 20] ^= 0xff);
        let (framing, everything) = both(&file);
        assert_eq!(framing, Tail::Clean);
        assert!(
            matches!(everything, Tail::Damaged { at, .. } if at == first),
            "{everything:?}"
        );
    }

    #[test]
    fn a_damaged_footer_with_records_after_it_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        let file = closed_log(dir.path(), 5);
        let first = MAGIC.len() as u64 + 16;
        // The last byte of the first record: its footer checksum.
        rewrite(&file, |b| {
            let second = first + (be_u64(&b[first as usize..]) >> 8);
            b[second as usize - 1] ^= 0xff;
        });
        let (framing, everything) = both(&file);
        assert!(
            matches!(framing, Tail::Damaged { at, .. } if at == first),
            "{framing:?}"
        );
        assert_eq!(framing, everything);
    }
}
