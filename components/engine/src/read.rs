//! Reading the KV engine, the same way from the live engine or from a snapshot.

use crate::error::{Error, Result};

/// Visits key-value pairs; returning false stops the scan.
pub type ScanVisitor<'a> = dyn FnMut(&[u8], &[u8]) -> Result<bool> + 'a;

/// Point reads and bounded scans over column families.
pub trait KvRead {
    fn get_value_cf(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Visits `[start, end)` (empty end = unbounded), forwards or backwards, until `f`
    /// returns false.
    fn scan(
        &self,
        cf: &str,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        f: &mut ScanVisitor<'_>,
    ) -> Result<()>;

    /// Reads and decodes a protobuf message, naming where it came from on failure.
    fn get_msg_cf<M: prost::Message + Default>(&self, cf: &str, key: &[u8]) -> Result<Option<M>>
    where
        Self: Sized,
    {
        match self.get_value_cf(cf, key)? {
            None => Ok(None),
            Some(v) => M::decode(v.as_slice())
                .map(Some)
                .map_err(|e| Error::Codec(format!("{cf}/{key:?}: {e}"))),
        }
    }

    /// Calls `f` for each pair in `[start, end)` in key order until it returns false.
    fn scan_cf(
        &self,
        cf: &str,
        start: &[u8],
        end: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<()>
    where
        Self: Sized,
    {
        self.scan(cf, start, end, false, &mut f)
    }

    /// Like `scan_cf`, from the last key down.
    fn reverse_scan_cf(
        &self,
        cf: &str,
        start: &[u8],
        end: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<()>
    where
        Self: Sized,
    {
        self.scan(cf, start, end, true, &mut f)
    }
}
