//! SST files of a key range: written from a consistent snapshot, checksummed, verified and
//! ingested. They carry a region's data between stores.

use std::io::Read;
use std::path::{Path, PathBuf};

use rocksdb::{IngestExternalFileOptions, Options, SstFileWriter};

use crate::error::{Error, Result};
use crate::io_pacer::IoPacer;
use crate::kv::KvEngine;
use crate::read::KvRead;
use crate::rocks::rocks_error;
use crate::snapshot::KvSnapshot;

/// One written SST file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SstFile {
    pub path: PathBuf,
    pub size: u64,
    /// CRC32 of the whole file.
    pub checksum: u32,
    pub keys: u64,
}

/// Bytes an SST file writer writes between incremental syncs, so a large file reaches the
/// disk as it is written instead of all at once when it is finished (which would hold up
/// every fsync on the same disk behind it).
const SST_BYTES_PER_SYNC: u64 = 1024 * 1024;

/// Writes `cf`'s pairs in `[start, end)` from `snapshot` into an SST file at `path`, reading
/// no faster than `pacer` allows (key + value bytes). Returns `None` when the range is empty
/// (an SST file cannot be empty).
pub fn write_sst(
    snapshot: &KvSnapshot,
    cf: &str,
    start: &[u8],
    end: &[u8],
    path: &Path,
    pacer: &mut IoPacer,
) -> Result<Option<SstFile>> {
    let mut opts = Options::default();
    opts.set_bytes_per_sync(SST_BYTES_PER_SYNC);
    let mut writer = SstFileWriter::create(&opts);
    let mut keys = 0u64;
    let mut opened = false;
    let mut write_err = None;
    snapshot.scan_cf(cf, start, end, |k, v| {
        if !opened {
            if let Err(e) = writer.open(path) {
                write_err = Some(rocks_error(path, e));
                return Ok(false);
            }
            opened = true;
        }
        if let Err(e) = writer.put(k, v) {
            write_err = Some(rocks_error(path, e));
            return Ok(false);
        }
        keys += 1;
        pacer.consume((k.len() + v.len()) as u64);
        Ok(true)
    })?;
    if let Some(e) = write_err {
        return Err(e);
    }
    if !opened {
        return Ok(None);
    }
    writer.finish().map_err(|e| rocks_error(path, e))?;
    let (size, checksum) = file_checksum(path)?;
    Ok(Some(SstFile {
        path: path.to_path_buf(),
        size,
        checksum,
        keys,
    }))
}

/// Size and CRC32 of a file.
pub fn file_checksum(path: &Path) -> Result<(u64, u32)> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((size, hasher.finalize()))
}

/// Fails with `Corruption` naming the file unless it has the expected size and checksum.
pub fn verify_file(path: &Path, size: u64, checksum: u32) -> Result<()> {
    let (got_size, got_checksum) = file_checksum(path)?;
    if got_size != size || got_checksum != checksum {
        return Err(Error::Corruption {
            path: path.to_path_buf(),
            detail: format!(
                "expected {size} bytes with crc32 {checksum:#x}, found {got_size} bytes with \
                 crc32 {got_checksum:#x}"
            ),
        });
    }
    Ok(())
}

impl KvEngine {
    /// Adds verified SST files to a column family atomically (the files are copied).
    pub fn ingest_sst_cf(&self, cf: &str, files: &[PathBuf]) -> Result<()> {
        if files.is_empty() {
            return Ok(());
        }
        let handle = self.cf(cf)?;
        let mut opts = IngestExternalFileOptions::default();
        // Copy rather than move: callers may need the files again after a crash.
        opts.set_move_files(false);
        self.db()
            .ingest_external_file_cf_opts(handle, &opts, files.to_vec())
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CF_DEFAULT, CF_WRITE};

    #[test]
    fn write_verify_and_ingest_a_range() {
        let src_dir = tempfile::tempdir().unwrap();
        let dst_dir = tempfile::tempdir().unwrap();
        let files_dir = tempfile::tempdir().unwrap();
        let src = KvEngine::open(src_dir.path()).unwrap();
        let mut wb = src.write_batch();
        for i in 0..100u32 {
            wb.put_cf(CF_DEFAULT, format!("k{i:03}").as_bytes(), &i.to_be_bytes())
                .unwrap();
        }
        src.write(&wb, false).unwrap();
        let snap = src.snapshot();
        // Written after the snapshot: must not be in the file.
        let mut wb = src.write_batch();
        wb.put_cf(CF_DEFAULT, b"k050x", b"late").unwrap();
        src.write(&wb, false).unwrap();

        let path = files_dir.path().join("default.sst");
        let sst = write_sst(
            &snap,
            CF_DEFAULT,
            b"k020",
            b"k080",
            &path,
            &mut IoPacer::unlimited(),
        )
        .unwrap()
        .expect("range has data");
        assert_eq!(sst.keys, 60);
        verify_file(&sst.path, sst.size, sst.checksum).unwrap();
        assert!(write_sst(
            &snap,
            CF_WRITE,
            b"",
            b"",
            &files_dir.path().join("w.sst"),
            &mut IoPacer::unlimited(),
        )
        .unwrap()
        .is_none());

        let dst = KvEngine::open(dst_dir.path()).unwrap();
        dst.ingest_sst_cf(CF_DEFAULT, std::slice::from_ref(&sst.path))
            .unwrap();
        assert_eq!(
            dst.get_value_cf(CF_DEFAULT, b"k020").unwrap(),
            Some(20u32.to_be_bytes().to_vec())
        );
        assert_eq!(dst.get_value_cf(CF_DEFAULT, b"k019").unwrap(), None);
        assert_eq!(dst.get_value_cf(CF_DEFAULT, b"k080").unwrap(), None);
        assert_eq!(dst.get_value_cf(CF_DEFAULT, b"k050x").unwrap(), None);
    }

    /// With values kept in blob files (`min-blob-size`), a range's file carries the values
    /// themselves, not references into the source's blob files, and the receiving engine
    /// serves them, also after a range deletion on the source.
    #[test]
    fn a_range_whose_values_sit_in_blob_files_moves_whole() {
        let options = crate::KvEngineOptions {
            min_blob_size: 64,
            block_cache_size: 16 * 1024 * 1024,
            ..Default::default()
        };
        let (src_dir, dst_dir, files_dir) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let src = KvEngine::open_with(src_dir.path(), &options).unwrap();
        let value = |i: u32| -> Vec<u8> { (0..256u32).map(|j| (i * 7 + j) as u8).collect() };
        let mut wb = src.write_batch();
        for i in 0..100u32 {
            wb.put_cf(CF_DEFAULT, format!("k{i:03}").as_bytes(), &value(i))
                .unwrap();
        }
        src.write(&wb, false).unwrap();
        src.flush().unwrap();
        let blob_files = src
            .db()
            .property_int_value_cf(src.cf(CF_DEFAULT).unwrap(), "rocksdb.num-blob-files")
            .unwrap();
        assert_eq!(blob_files, Some(1));
        let path = files_dir.path().join("default.sst");
        let sst = write_sst(
            &src.snapshot(),
            CF_DEFAULT,
            b"k000",
            b"k100",
            &path,
            &mut IoPacer::unlimited(),
        )
        .unwrap()
        .expect("range has data");
        assert_eq!(sst.keys, 100);
        src.delete_range_cf(CF_DEFAULT, b"k000", b"k100").unwrap();
        drop(src);
        std::fs::remove_dir_all(src_dir.path()).unwrap();

        let dst = KvEngine::open_with(dst_dir.path(), &options).unwrap();
        dst.ingest_sst_cf(CF_DEFAULT, std::slice::from_ref(&sst.path))
            .unwrap();
        for i in [0u32, 42, 99] {
            assert_eq!(
                dst.get_value_cf(CF_DEFAULT, format!("k{i:03}").as_bytes())
                    .unwrap(),
                Some(value(i))
            );
        }
    }

    #[test]
    fn a_damaged_file_fails_verification_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let kv = KvEngine::open(&dir.path().join("db")).unwrap();
        let mut wb = kv.write_batch();
        for i in 0..50u32 {
            wb.put_cf(CF_DEFAULT, &i.to_be_bytes(), &[1u8; 64]).unwrap();
        }
        kv.write(&wb, false).unwrap();
        let path = dir.path().join("x.sst");
        let sst = write_sst(
            &kv.snapshot(),
            CF_DEFAULT,
            b"",
            b"",
            &path,
            &mut IoPacer::unlimited(),
        )
        .unwrap()
        .unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[10] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let err = verify_file(&path, sst.size, sst.checksum).unwrap_err();
        assert!(matches!(err, Error::Corruption { .. }));
        assert!(err.to_string().contains("x.sst"));
        // A truncated file too.
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        assert!(verify_file(&path, sst.size, sst.checksum).is_err());
    }
}
