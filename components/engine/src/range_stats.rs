//! Approximate size and key count of a key range, and keys that cut a range into pieces of
//! a given size, without reading the range's data.
//!
//! Table files: RocksDB estimates the stored bytes of a range from the files' index blocks
//! (`GetApproximateSizes`), and the column family's aggregated table properties (raw key and
//! value bytes, entries and data-block bytes over all its files) turn stored bytes into
//! logical key + value bytes and a key count. Memtables: their entries in the range are read
//! from memory (a memtable-only iterator), never from disk. This is how TiKV sizes regions
//! for its split check (range properties plus the memtable), with RocksDB's own per-file
//! index in place of a custom properties collector.

use std::path::Path;

use rocksdb::{ColumnFamily, Range, ReadOptions, ReadTier, DB};

use crate::error::Result;
use crate::rocks::rocks_error;

/// Logical size of a key range: `bytes` of key + value as written (before compression) and
/// the number of `keys` (entries). Both are estimates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RangeStats {
    pub bytes: u64,
    pub keys: u64,
}

/// How [`approximate_split_keys`] cuts a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SplitPieces {
    /// Logical bytes (key + value) of each piece before the last.
    pub size: u64,
    /// Logical bytes the part after the last cut must hold at least (0 counts as 1). A
    /// smaller rest stays with the piece before it, as TiKV's size checker keeps a last
    /// piece under `region-max-size - region-split-size` with the one before, so a region
    /// just over its maximum size is cut in two rather than left for a scan.
    pub min_last: u64,
    /// Cuts at most.
    pub limit: usize,
}

impl std::ops::AddAssign for RangeStats {
    fn add_assign(&mut self, other: RangeStats) {
        self.bytes += other.bytes;
        self.keys += other.keys;
    }
}

/// How a column family's table files relate stored bytes to logical bytes and entries, from
/// its aggregated table properties.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct CfShape {
    /// Logical (raw key + value) bytes per stored data-block byte; > 1 with compression.
    raw_per_stored_byte: f64,
    /// Logical bytes per entry.
    raw_bytes_per_entry: f64,
}

impl CfShape {
    /// Parses RocksDB's `rocksdb.aggregated-table-properties` text (`name=value; ...`);
    /// `blob_bytes` are the live bytes of the column family's blob files (values kept beside
    /// the tree, whose table files hold only references to them), counted as spread over the
    /// key space as the table files' bytes are (as RocksDB's own `include_blob_files` size
    /// approximation prorates them). `None` when the column family has no table files yet
    /// (nothing to scale).
    pub(crate) fn parse(text: &str, blob_bytes: u64) -> Option<CfShape> {
        let field = |name: &str| -> Option<f64> {
            text.split(';').find_map(|item| {
                let (k, v) = item.split_once('=')?;
                (k.trim() == name).then(|| v.trim().parse::<f64>().ok())?
            })
        };
        let entries = field("# entries")?;
        let raw = field("raw key size")? + field("raw value size")? + blob_bytes as f64;
        let stored = field("data block size")?;
        if entries <= 0.0 || raw <= 0.0 || stored <= 0.0 {
            return None;
        }
        Some(CfShape {
            raw_per_stored_byte: raw / stored,
            raw_bytes_per_entry: raw / entries,
        })
    }
}

/// Bytes of live values in the column family's blob files: their size less the garbage
/// (values since overwritten or deleted) RocksDB has counted in them; 0 without blob files.
fn live_blob_bytes(db: &DB, cf: &ColumnFamily) -> std::result::Result<u64, rocksdb::Error> {
    let size = db
        .property_int_value_cf(cf, "rocksdb.live-blob-file-size")?
        .unwrap_or(0);
    let garbage = db
        .property_int_value_cf(cf, "rocksdb.live-blob-file-garbage-size")?
        .unwrap_or(0);
    Ok(size.saturating_sub(garbage))
}

/// A range's end as RocksDB needs it: an empty end means "no end", which RocksDB's range
/// functions do not accept, so it becomes a key after every data key (data keys start with
/// one byte below 0xff).
fn finite_end(end: &[u8]) -> &[u8] {
    const AFTER_EVERYTHING: &[u8] = &[0xff; 16];
    if end.is_empty() {
        AFTER_EVERYTHING
    } else {
        end
    }
}

/// Estimates of one column family's data over sub-ranges of one range.
pub(crate) struct RangeSizer<'a> {
    db: &'a DB,
    cf: &'a ColumnFamily,
    shape: Option<CfShape>,
    /// The memtable entries of the range: (key, key + value bytes), in key order.
    memtable: Vec<(Vec<u8>, u64)>,
}

impl<'a> RangeSizer<'a> {
    /// Reads the column family's shape and the memtable entries of `[start, end)`.
    pub(crate) fn new(
        db: &'a DB,
        cf: &'a ColumnFamily,
        start: &[u8],
        end: &[u8],
    ) -> std::result::Result<RangeSizer<'a>, rocksdb::Error> {
        let blob_bytes = live_blob_bytes(db, cf)?;
        let shape = db
            .property_value_cf(cf, "rocksdb.aggregated-table-properties")?
            .and_then(|t| CfShape::parse(&t, blob_bytes));
        let mut opts = ReadOptions::default();
        opts.set_read_tier(ReadTier::Memtable);
        opts.set_iterate_lower_bound(start.to_vec());
        opts.set_iterate_upper_bound(finite_end(end).to_vec());
        let mut iter = db.raw_iterator_cf_opt(cf, opts);
        iter.seek_to_first();
        let mut memtable = Vec::new();
        while iter.valid() {
            if let (Some(k), Some(v)) = (iter.key(), iter.value()) {
                memtable.push((k.to_vec(), (k.len() + v.len()) as u64));
            }
            iter.next();
        }
        iter.status()?;
        Ok(RangeSizer {
            db,
            cf,
            shape,
            memtable,
        })
    }

    /// Estimated logical size of `[start, end)` (a sub-range of the sizer's range).
    pub(crate) fn stats(&self, start: &[u8], end: &[u8]) -> RangeStats {
        let mut out = RangeStats::default();
        if let Some(shape) = self.shape {
            let stored = self
                .db
                .get_approximate_sizes_cf(self.cf, &[Range::new(start, finite_end(end))])
                .first()
                .copied()
                .unwrap_or(0);
            let raw = stored as f64 * shape.raw_per_stored_byte;
            out.bytes += raw as u64;
            out.keys += (raw / shape.raw_bytes_per_entry) as u64;
        }
        let end = finite_end(end);
        let lo = self.memtable.partition_point(|(k, _)| k.as_slice() < start);
        let hi = self.memtable.partition_point(|(k, _)| k.as_slice() < end);
        for (_, size) in &self.memtable[lo..hi.max(lo)] {
            out.bytes += size;
            out.keys += 1;
        }
        out
    }
}

/// Estimates at or under this many logical bytes are checked for a key before they are
/// believed. RocksDB sizes a range from the table files' indexes, so a range without a single
/// key that spans the separator between two data blocks is given a whole block (a few KiB,
/// tens of small keys); an empty pre-split region would report that forever. One seek per
/// column family tells such a range apart; larger estimates are never off by enough to be
/// worth it.
const CHECK_EMPTY_UNDER: u64 = 256 * 1024;

/// Estimated size of `[start, end)` over `cfs`; `counted_keys` says which column families'
/// entries count as keys. A range holding no key at all is reported as exactly empty.
pub(crate) fn approximate_stats(
    db: &DB,
    cfs: &[(&ColumnFamily, bool)],
    start: &[u8],
    end: &[u8],
) -> std::result::Result<RangeStats, rocksdb::Error> {
    let mut total = RangeStats::default();
    for (cf, counts_keys) in cfs {
        let s = RangeSizer::new(db, cf, start, end)?.stats(start, end);
        total.bytes += s.bytes;
        if *counts_keys {
            total.keys += s.keys;
        }
    }
    if total.bytes > 0 && total.bytes <= CHECK_EMPTY_UNDER {
        let handles: Vec<&ColumnFamily> = cfs.iter().map(|(cf, _)| *cf).collect();
        if first_key_at_or_after(db, &handles, start, finite_end(end))?.is_none() {
            return Ok(RangeStats::default());
        }
    }
    Ok(total)
}

/// Keys that cut `[start, end)` into pieces of about `pieces.size` logical bytes (over `cfs`
/// together), at most `pieces.limit` of them, each an existing key of one of `cfs`, sorted,
/// unique and strictly inside the range, the part after the last cut holding at least
/// `pieces.min_last` bytes. Empty when the range is smaller than one piece plus that last
/// part or no key can be found (the caller may then fall back to scanning).
///
/// Each cut is found by bisecting the key space between the previous cut and `end` on the
/// estimated size (about 100 estimates, each an index lookup per table file plus a binary
/// search in the range's memtable entries), then moved to the first existing key at or
/// after the bisected position.
pub(crate) fn approximate_split_keys(
    db: &DB,
    cfs: &[&ColumnFamily],
    start: &[u8],
    end: &[u8],
    pieces: SplitPieces,
) -> std::result::Result<Vec<Vec<u8>>, rocksdb::Error> {
    let piece = pieces.size.max(1);
    let min_last = pieces.min_last.max(1);
    let sizers = cfs
        .iter()
        .map(|cf| RangeSizer::new(db, cf, start, end))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let size = |a: &[u8], b: &[u8]| sizers.iter().map(|s| s.stats(a, b).bytes).sum::<u64>();
    let end = finite_end(end);
    let mut cuts: Vec<Vec<u8>> = Vec::new();
    let mut from = start.to_vec();
    while cuts.len() < pieces.limit {
        // A cut here must leave at least `min_last` bytes after it.
        if size(&from, end) < piece.saturating_add(min_last) {
            break;
        }
        let Some(position) = bisect(&from, end, |k| size(&from, k) >= piece) else {
            break;
        };
        let Some(key) = first_key_at_or_after(db, cfs, &position, end)? else {
            break;
        };
        if key.as_slice() <= from.as_slice() || key.as_slice() <= start {
            break;
        }
        from = key.clone();
        cuts.push(key);
    }
    Ok(cuts)
}

/// The smallest key `k` in `(lo, hi)` (at 16 bytes of precision past their common prefix)
/// with `reached(k)`, assuming `reached` is monotonic; `None` if the interval cannot be
/// split at that precision.
fn bisect(lo: &[u8], hi: &[u8], reached: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
    let (mut lo, mut hi) = (lo.to_vec(), hi.to_vec());
    let mut found = None;
    // 128 bits of precision below the common prefix: at most 128 halvings per prefix, and
    // the prefix only grows.
    for _ in 0..256 {
        let Some(mid) = midpoint(&lo, &hi) else {
            break;
        };
        if reached(&mid) {
            hi = mid.clone();
            found = Some(mid);
        } else {
            lo = mid;
        }
    }
    found.or(Some(hi)).filter(|k| !k.is_empty())
}

/// A key strictly between `lo` and `hi` near their middle, or `None` when none exists at 16
/// bytes past their common prefix.
fn midpoint(lo: &[u8], hi: &[u8]) -> Option<Vec<u8>> {
    let common = lo.iter().zip(hi).take_while(|(a, b)| a == b).count();
    let window = |k: &[u8]| {
        let mut bytes = [0u8; 16];
        for (slot, b) in bytes.iter_mut().zip(k.iter().skip(common)) {
            *slot = *b;
        }
        u128::from_be_bytes(bytes)
    };
    let (a, b) = (window(lo), window(hi));
    if b <= a.checked_add(1)? {
        return None;
    }
    let m = a + (b - a) / 2;
    let mut key = lo[..common].to_vec();
    key.extend_from_slice(&m.to_be_bytes());
    while key.len() > common + 1 && key.last() == Some(&0) {
        key.pop();
    }
    Some(key)
}

/// The smallest existing key in `[from, end)` over `cfs`.
fn first_key_at_or_after(
    db: &DB,
    cfs: &[&ColumnFamily],
    from: &[u8],
    end: &[u8],
) -> std::result::Result<Option<Vec<u8>>, rocksdb::Error> {
    let mut best: Option<Vec<u8>> = None;
    for cf in cfs {
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(end.to_vec());
        let mut iter = db.raw_iterator_cf_opt(cf, opts);
        iter.seek(from);
        if let Some(k) = iter.valid().then(|| iter.key()).flatten() {
            if best.as_deref().is_none_or(|b| k < b) {
                best = Some(k.to_vec());
            }
        }
        iter.status()?;
    }
    Ok(best)
}

/// The column family handles for `names`.
fn handles<'a>(db: &'a DB, names: &[&str]) -> Result<Vec<&'a ColumnFamily>> {
    names
        .iter()
        .map(|n| {
            db.cf_handle(n)
                .ok_or_else(|| crate::Error::UnknownCf(n.to_string()))
        })
        .collect()
}

/// [`approximate_stats`] by column family names, with errors naming the engine's path.
pub(crate) fn stats_by_name(
    db: &DB,
    path: &Path,
    cfs: &[(&str, bool)],
    start: &[u8],
    end: &[u8],
) -> Result<RangeStats> {
    let names: Vec<&str> = cfs.iter().map(|(n, _)| *n).collect();
    let hs = handles(db, &names)?;
    let with_flags: Vec<(&ColumnFamily, bool)> =
        hs.into_iter().zip(cfs.iter().map(|(_, k)| *k)).collect();
    approximate_stats(db, &with_flags, start, end).map_err(|e| rocks_error(path, e))
}

/// [`approximate_split_keys`] by column family names, with errors naming the engine's path.
pub(crate) fn split_keys_by_name(
    db: &DB,
    path: &Path,
    cfs: &[&str],
    start: &[u8],
    end: &[u8],
    pieces: SplitPieces,
) -> Result<Vec<Vec<u8>>> {
    let hs = handles(db, cfs)?;
    approximate_split_keys(db, &hs, start, end, pieces).map_err(|e| rocks_error(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_parses_aggregated_properties() {
        let text = "# data blocks=3; # entries=100; raw key size=1000; raw average key size=10; \
                    raw value size=9000; data block size=2500; index block size (user-key? 1)=50";
        let shape = CfShape::parse(text, 0).unwrap();
        assert_eq!(shape.raw_per_stored_byte, 4.0);
        assert_eq!(shape.raw_bytes_per_entry, 100.0);
        // Values kept in blob files count as the tables' own.
        let with_blobs = CfShape::parse(text, 10_000).unwrap();
        assert_eq!(with_blobs.raw_per_stored_byte, 8.0);
        assert_eq!(with_blobs.raw_bytes_per_entry, 200.0);
        assert_eq!(CfShape::parse("# entries=0; raw key size=0", 0), None);
        assert_eq!(CfShape::parse("garbage", 5), None);
    }

    #[test]
    fn midpoint_lies_strictly_between() {
        for (lo, hi) in [
            (&b"a"[..], &b"c"[..]),
            (b"abc", b"abd"),
            (b"z", b"{"),
            (b"zk\x00", b"zk\x00\x01"),
            (b"", b"\x01"),
        ] {
            let m = midpoint(lo, hi).unwrap();
            assert!(
                lo < m.as_slice() && m.as_slice() < hi,
                "{lo:?} {m:?} {hi:?}"
            );
        }
        assert_eq!(midpoint(b"a", b"a\x00"), None);
    }

    #[test]
    fn bisect_finds_the_first_key_reaching_a_threshold() {
        let found = bisect(b"a", b"z", |k| k >= b"m".as_slice()).unwrap();
        assert!(found.as_slice() >= b"m".as_slice());
        assert!(found.as_slice() < b"m\x00\x00\x01".as_slice());
    }

    fn key(i: u32) -> Vec<u8> {
        format!("zuser{i:08}").into_bytes()
    }

    /// Writes keys `[from, to)` with 200-byte values of varied content into CF default.
    fn fill(kv: &crate::KvEngine, from: u32, to: u32) {
        let mut wb = crate::KvWriteBatch::new();
        for i in from..to {
            let value: Vec<u8> = (0..200u32)
                .map(|j| ((i * 31 + j * 7) % 251) as u8)
                .collect();
            wb.put_cf(crate::CF_DEFAULT, &key(i), &value).unwrap();
        }
        kv.write(&wb, false).unwrap();
    }

    const ENTRY: u64 = 13 + 200;

    fn within(estimate: u64, truth: u64, factor: f64) -> bool {
        let (e, t) = (estimate as f64, truth as f64);
        e >= t / factor && e <= t * factor
    }

    /// Half the data in table files, half in the memtable: the estimate covers both and
    /// scales with the range asked for.
    #[test]
    fn estimates_cover_table_files_and_memtable() {
        let dir = tempfile::tempdir().unwrap();
        estimates_cover(&crate::KvEngine::open(dir.path()).unwrap());
    }

    /// The same with the values in blob files, whose table files hold only references:
    /// the blob files' bytes count (a region would never reach its split size otherwise).
    #[test]
    fn estimates_cover_values_kept_in_blob_files() {
        let dir = tempfile::tempdir().unwrap();
        let kv = blob_engine(dir.path());
        estimates_cover(&kv);
        let blobs = kv
            .db()
            .property_int_value_cf(kv.cf(crate::CF_DEFAULT).unwrap(), "rocksdb.num-blob-files")
            .unwrap();
        assert_eq!(blobs, Some(1), "the flushed values went to a blob file");
    }

    /// Values that compress well still count at their own size: blob files are written
    /// uncompressed, or the estimate would shrink with the compression ratio and regions of
    /// such values would grow far past their split size.
    #[test]
    fn compressible_values_in_blob_files_count_at_their_size() {
        let dir = tempfile::tempdir().unwrap();
        let kv = blob_engine(dir.path());
        let mut wb = crate::KvWriteBatch::new();
        for i in 0..5_000u32 {
            wb.put_cf(crate::CF_DEFAULT, &key(i), &[7u8; 1024]).unwrap();
        }
        kv.write(&wb, false).unwrap();
        kv.flush().unwrap();
        let all = kv
            .approximate_stats(&[(crate::CF_DEFAULT, true)], b"z", b"")
            .unwrap();
        assert!(within(all.bytes, 5_000 * (13 + 1024), 1.5), "{all:?}");
    }

    /// An engine keeping values of 100 bytes and more in blob files.
    fn blob_engine(path: &std::path::Path) -> crate::KvEngine {
        let options = crate::KvEngineOptions {
            min_blob_size: 100,
            block_cache_size: 16 * 1024 * 1024,
            ..Default::default()
        };
        crate::KvEngine::open_with(path, &options).unwrap()
    }

    fn estimates_cover(kv: &crate::KvEngine) {
        fill(kv, 0, 20_000);
        kv.flush().unwrap();
        fill(kv, 20_000, 40_000);
        let cfs = [(crate::CF_DEFAULT, true)];
        let all = kv.approximate_stats(&cfs, b"z", b"").unwrap();
        assert!(within(all.bytes, 40_000 * ENTRY, 1.5), "{all:?}");
        assert!(within(all.keys, 40_000, 1.5), "{all:?}");
        let flushed = kv.approximate_stats(&cfs, &key(0), &key(10_000)).unwrap();
        assert!(within(flushed.bytes, 10_000 * ENTRY, 1.5), "{flushed:?}");
        let in_memory = kv
            .approximate_stats(&cfs, &key(30_000), &key(40_000))
            .unwrap();
        assert_eq!(
            in_memory.keys, 10_000,
            "memtable entries are counted exactly"
        );
        let nothing = kv.approximate_stats(&cfs, b"zz", b"").unwrap();
        assert_eq!(nothing.keys, 0);
    }

    /// A range between two neighbouring keys holds nothing, whichever data blocks its ends
    /// fall in: the index's block granularity must not make a key-less range (an empty
    /// pre-split region) look like one block of data.
    #[test]
    fn ranges_without_keys_are_empty_at_every_block_boundary() {
        let dir = tempfile::tempdir().unwrap();
        let kv = crate::KvEngine::open(dir.path()).unwrap();
        fill(&kv, 0, 2_000);
        kv.flush().unwrap();
        let cfs = [(crate::CF_DEFAULT, true)];
        for i in 0..1_999 {
            let mut after = key(i);
            after.push(0);
            let gap = kv.approximate_stats(&cfs, &after, &key(i + 1)).unwrap();
            assert_eq!(gap, RangeStats::default(), "between keys {i} and {}", i + 1);
        }
        // Ranges with keys keep their estimate.
        let hundred = kv.approximate_stats(&cfs, &key(100), &key(200)).unwrap();
        assert!(within(hundred.bytes, 100 * ENTRY, 1.5), "{hundred:?}");
    }

    /// Cuts fall near every `piece` bytes, at existing keys, across table files and memtable.
    #[test]
    fn split_keys_cut_even_pieces_at_existing_keys() {
        let dir = tempfile::tempdir().unwrap();
        split_keys_cut_even_pieces(&crate::KvEngine::open(dir.path()).unwrap());
    }

    /// The same with the values in blob files.
    #[test]
    fn split_keys_cut_even_pieces_of_values_in_blob_files() {
        let dir = tempfile::tempdir().unwrap();
        split_keys_cut_even_pieces(&blob_engine(dir.path()));
    }

    fn split_keys_cut_even_pieces(kv: &crate::KvEngine) {
        fill(kv, 0, 30_000);
        kv.flush().unwrap();
        fill(kv, 30_000, 40_000);
        let piece = 10_000 * ENTRY;
        let pieces = |size: u64, min_last: u64, limit: usize| SplitPieces {
            size,
            min_last,
            limit,
        };
        let cuts = kv
            .approximate_split_keys(&[crate::CF_DEFAULT], b"z", b"{", pieces(piece, piece, 10))
            .unwrap();
        assert!((2..=4).contains(&cuts.len()), "{} cuts", cuts.len());
        let index = |k: &[u8]| -> u32 { std::str::from_utf8(&k[5..]).unwrap().parse().unwrap() };
        let mut prev = 0;
        for c in &cuts {
            let i = index(c);
            assert_eq!(c, &key(i), "a cut is an existing key");
            assert!(within((i - prev) as u64, 10_000, 1.5), "piece {prev}..{i}");
            prev = i;
        }
        let few = kv
            .approximate_split_keys(&[crate::CF_DEFAULT], b"z", b"{", pieces(piece, piece, 1))
            .unwrap();
        assert_eq!(few.len(), 1, "the limit holds");
        let whole = 40_000 * ENTRY;
        let small = kv
            .approximate_split_keys(&[crate::CF_DEFAULT], b"z", b"{", pieces(whole, whole, 10))
            .unwrap();
        assert!(small.is_empty(), "a range under two pieces is not cut");
        // 40,000 entries in pieces of 30,000 with a last piece of at least 5,000: one cut
        // near 30,000, though the range holds less than two pieces.
        let (big, min_last) = (30_000 * ENTRY, 5_000 * ENTRY);
        let one = kv
            .approximate_split_keys(&[crate::CF_DEFAULT], b"z", b"{", pieces(big, min_last, 10))
            .unwrap();
        assert_eq!(one.len(), 1, "{one:?}");
        assert!(within(u64::from(index(&one[0])), 30_000, 1.5), "{one:?}");
        let too_short = kv
            .approximate_split_keys(&[crate::CF_DEFAULT], b"z", b"{", pieces(big, whole, 10))
            .unwrap();
        assert!(
            too_short.is_empty(),
            "a last piece under min_last is kept: {too_short:?}"
        );
    }
}
