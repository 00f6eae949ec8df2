//! raft-engine's files, with the space it reserves ahead of its writes filled with zeros
//! instead of reserved by `fallocate`.
//!
//! Why: raft-engine reserves its next 2 MiB of log with `fallocate`, which on ext4 and XFS
//! leaves *unwritten* extents. The first write into an unwritten extent turns it into a
//! written one, a metadata change, so every `fdatasync` after an append has to commit the
//! file system's journal. Under ext4's default `data=ordered`, a journal commit also waits
//! for the data of every other file with newly allocated blocks (RocksDB's WAL and tables).
//! Space written once as zeros is overwritten in place, and an `fdatasync` then writes the
//! log's own pages only. The cost is one extra write of each reserved chunk, and one journal
//! commit per chunk, not per sync.
//!
//! Readers see what they saw before: zeros after the last record, which
//! [`crate::raft_log::RaftLogEngine::open`] treats as the normal end of a log after a crash.

use std::io::{Result, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

use raft_engine::env::{DefaultFileSystem, FileSystem, Permission, WriteExt};

/// Zeros written at a time while filling reserved space.
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// raft-engine's default file system, with reserved space written as zeros.
pub(crate) struct ZeroFilledFileSystem(DefaultFileSystem);

impl ZeroFilledFileSystem {
    pub(crate) fn new() -> Self {
        ZeroFilledFileSystem(DefaultFileSystem)
    }
}

type DefaultHandle = <DefaultFileSystem as FileSystem>::Handle;

impl FileSystem for ZeroFilledFileSystem {
    type Handle = DefaultHandle;
    type Reader = <DefaultFileSystem as FileSystem>::Reader;
    type Writer = ZeroFilledWriter<<DefaultFileSystem as FileSystem>::Writer>;

    fn create<P: AsRef<Path>>(&self, path: P) -> Result<Self::Handle> {
        self.0.create(path)
    }

    fn open<P: AsRef<Path>>(&self, path: P, perm: Permission) -> Result<Self::Handle> {
        self.0.open(path, perm)
    }

    fn delete<P: AsRef<Path>>(&self, path: P) -> Result<()> {
        self.0.delete(path)
    }

    fn rename<P: AsRef<Path>>(&self, src_path: P, dst_path: P) -> Result<()> {
        self.0.rename(src_path, dst_path)
    }

    fn new_reader(&self, handle: Arc<Self::Handle>) -> Result<Self::Reader> {
        self.0.new_reader(handle)
    }

    fn new_writer(&self, handle: Arc<Self::Handle>) -> Result<Self::Writer> {
        Ok(ZeroFilledWriter(self.0.new_writer(handle)?))
    }
}

/// A log file writer whose [`WriteExt::allocate`] writes zeros.
pub(crate) struct ZeroFilledWriter<W>(W);

impl<W: Write> Write for ZeroFilledWriter<W> {
    fn write(&mut self, buf: &[u8]) -> Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> Result<()> {
        self.0.flush()
    }
}

impl<W: Seek> Seek for ZeroFilledWriter<W> {
    fn seek(&mut self, pos: SeekFrom) -> Result<u64> {
        self.0.seek(pos)
    }
}

impl<W: Write + Seek + WriteExt> WriteExt for ZeroFilledWriter<W> {
    fn truncate(&mut self, offset: usize) -> Result<()> {
        self.0.truncate(offset)
    }

    /// Writes zeros over `[offset, offset + size)` (bytes), leaving the write position where
    /// it was. raft-engine reserves only past the end of what it has written, so no record is
    /// overwritten. A failure leaves the position restored and the error to the caller
    /// (raft-engine logs it and appends regardless).
    fn allocate(&mut self, offset: usize, size: usize) -> Result<()> {
        let resume = self.0.stream_position()?;
        let filled = self.fill_zeros(offset as u64, size);
        self.0.seek(SeekFrom::Start(resume))?;
        filled
    }
}

impl<W: Write + Seek> ZeroFilledWriter<W> {
    fn fill_zeros(&mut self, offset: u64, size: usize) -> Result<()> {
        self.0.seek(SeekFrom::Start(offset))?;
        let mut left = size;
        while left > 0 {
            let n = left.min(ZEROS.len());
            self.0.write_all(&ZEROS[..n])?;
            left -= n;
        }
        Ok(())
    }
}

/// How many extents of the file at `path` are reserved but unwritten, from the `FS_IOC_FIEMAP`
/// ioctl (Linux's `fiemap.h`; the file is synced first). Errors with `EOPNOTSUPP` or `ENOTTY`
/// on file systems that cannot map extents.
#[cfg(test)]
pub(crate) fn unwritten_extents(path: &Path) -> Result<usize> {
    use std::os::fd::AsRawFd;

    const FS_IOC_FIEMAP: libc::c_ulong = 0xC020_660B;
    const FIEMAP_FLAG_SYNC: u32 = 0x1;
    const FIEMAP_EXTENT_LAST: u32 = 0x1;
    const FIEMAP_EXTENT_UNWRITTEN: u32 = 0x800;
    const EXTENTS: usize = 32;

    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Extent {
        logical: u64,
        physical: u64,
        length: u64,
        reserved64: [u64; 2],
        flags: u32,
        reserved: [u32; 3],
    }
    #[repr(C)]
    #[derive(Default)]
    struct Map {
        start: u64,
        length: u64,
        flags: u32,
        mapped_extents: u32,
        extent_count: u32,
        reserved: u32,
        extents: [Extent; EXTENTS],
    }

    let file = std::fs::File::open(path)?;
    let mut unwritten = 0;
    let mut start = 0;
    loop {
        let mut map = Map {
            start,
            length: u64::MAX - start,
            flags: FIEMAP_FLAG_SYNC,
            extent_count: EXTENTS as u32,
            ..Default::default()
        };
        // SAFETY: `map` is a `struct fiemap` followed by room for `extent_count` extents, as
        // the ioctl expects, and outlives the call.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), FS_IOC_FIEMAP, &mut map as *mut Map) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mapped = &map.extents[..map.mapped_extents as usize];
        unwritten += mapped
            .iter()
            .filter(|e| e.flags & FIEMAP_EXTENT_UNWRITTEN != 0)
            .count();
        match mapped.last() {
            Some(last) if last.flags & FIEMAP_EXTENT_LAST == 0 => {
                start = last.logical + last.length
            }
            _ => return Ok(unwritten),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    /// An in-memory file for the writer's position logic.
    struct Memory(Cursor<Vec<u8>>);

    impl Write for Memory {
        fn write(&mut self, buf: &[u8]) -> Result<usize> {
            self.0.write(buf)
        }
        fn flush(&mut self) -> Result<()> {
            Ok(())
        }
    }

    impl Seek for Memory {
        fn seek(&mut self, pos: SeekFrom) -> Result<u64> {
            self.0.seek(pos)
        }
    }

    impl WriteExt for Memory {
        fn truncate(&mut self, offset: usize) -> Result<()> {
            self.0.get_mut().truncate(offset);
            Ok(())
        }
        fn allocate(&mut self, _offset: usize, _size: usize) -> Result<()> {
            unreachable!("the zero-filling writer never reserves through the inner writer")
        }
    }

    #[test]
    fn reserved_space_is_zeros_and_writes_continue_where_they_were() {
        let mut w = ZeroFilledWriter(Memory(Cursor::new(Vec::new())));
        w.write_all(b"header").unwrap();
        w.allocate(6, 200_000).unwrap();
        w.write_all(b"record").unwrap();
        let bytes = w.0 .0.into_inner();
        assert_eq!(bytes.len(), 6 + 200_000);
        assert_eq!(&bytes[..12], b"headerrecord");
        assert!(bytes[12..].iter().all(|b| *b == 0));
    }
}
