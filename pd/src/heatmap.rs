//! The key-space heatmap's memory: how many bytes each region wrote and read per time bucket
//! (one minute by default), summed from the flow figures of region heartbeats, which each
//! carry the bytes since the leader's previous report.
//!
//! Bounded both ways: a bucket older than the window is dropped, and a bucket keeps at most
//! `max_ranges` regions (the flow of any further region that minute is only counted in the
//! bucket's `unplaced` total). Keys are cut to [`MAX_KEY_LEN`] bytes. With the defaults (360
//! buckets of one minute, 512 ranges each) the worst case is about 360 × 512 × 250 bytes ≈
//! 45 MiB; in practice only regions with flow in a minute take room in that minute's bucket.
//!
//! `FlowHistory::matrix` lays a window onto one key axis for drawing: rows are the key ranges
//! between every boundary any kept region had (so a region that split mid-window shows as one
//! row group before the split and as its pieces after it), columns are buckets.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Duration;

/// Default width of one time bucket: one minute.
pub const DEFAULT_BUCKET: Duration = Duration::from_secs(60);
/// Default number of buckets kept: six hours of one-minute buckets.
pub const DEFAULT_BUCKETS: usize = 360;
/// Default most regions one bucket keeps.
pub const DEFAULT_MAX_RANGES: usize = 512;
/// Longest key prefix kept per range boundary, in bytes. Longer boundaries are cut (the
/// range only widens), which merges rows that differ past this prefix.
pub const MAX_KEY_LEN: usize = 64;
/// Default most rows of a matrix; more boundaries are thinned to this many.
pub const DEFAULT_MAX_ROWS: usize = 256;

/// Which flow a matrix shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowKind {
    Write,
    Read,
}

impl FlowKind {
    /// `write` or `read`, the names the HTTP API takes.
    pub fn parse(text: &str) -> Option<FlowKind> {
        match text {
            "write" => Some(FlowKind::Write),
            "read" => Some(FlowKind::Read),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FlowKind::Write => "write",
            FlowKind::Read => "read",
        }
    }
}

/// One region's flow within one bucket, over the union of the ranges it reported then.
#[derive(Clone, Debug)]
struct Cell {
    start: Vec<u8>,
    /// Empty: to the end of the key space.
    end: Vec<u8>,
    written: u64,
    read: u64,
}

#[derive(Debug)]
struct Bucket {
    /// Unix milliseconds at which the bucket starts (a multiple of the bucket width).
    start_ms: u64,
    cells: HashMap<u64, Cell>,
    /// Bytes of regions beyond `max_ranges`, written and read.
    unplaced_written: u64,
    unplaced_read: u64,
}

impl Bucket {
    fn unplaced(&self, kind: FlowKind) -> u64 {
        match kind {
            FlowKind::Write => self.unplaced_written,
            FlowKind::Read => self.unplaced_read,
        }
    }
}

/// A window of a heatmap laid on one key axis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heatmap {
    /// Width of a column, in milliseconds.
    pub bucket_ms: u64,
    /// Unix milliseconds at which each column starts, oldest first; the last may be the
    /// current, still filling, bucket.
    pub times_ms: Vec<u64>,
    /// The start key of each row, in key order; row `r` ends where row `r + 1` starts, the
    /// last row at the end of the key space. Always at least one row (starting at `""`).
    pub keys: Vec<Vec<u8>>,
    /// Bytes per column and row: `values[column][row]`. A region's bytes are spread evenly
    /// over the rows its range covers, so every column sums to what the regions reported.
    pub values: Vec<Vec<u64>>,
    /// Bytes per column that could not be placed (regions beyond a bucket's range limit).
    pub unplaced: Vec<u64>,
}

impl Heatmap {
    /// How many cells hold any bytes.
    pub fn nonzero_cells(&self) -> usize {
        self.values.iter().flatten().filter(|v| **v > 0).count()
    }

    /// The largest cell, in bytes.
    pub fn max(&self) -> u64 {
        self.values.iter().flatten().copied().max().unwrap_or(0)
    }
}

/// Per-bucket flow of every region that had any, over a bounded window.
#[derive(Debug)]
pub struct FlowHistory {
    bucket_ms: u64,
    capacity: usize,
    max_ranges: usize,
    /// Oldest first; start times strictly increase (empty buckets are not stored).
    buckets: VecDeque<Bucket>,
}

impl Default for FlowHistory {
    fn default() -> Self {
        FlowHistory::new(DEFAULT_BUCKET, DEFAULT_BUCKETS, DEFAULT_MAX_RANGES)
    }
}

/// `key` cut to `MAX_KEY_LEN` bytes; a cut end key gets a 0xff byte so the range only widens
/// and still ends after its (cut) start.
fn cut(key: &[u8], is_end: bool) -> Vec<u8> {
    if key.len() <= MAX_KEY_LEN {
        return key.to_vec();
    }
    let mut out = key[..MAX_KEY_LEN].to_vec();
    if is_end {
        out.push(0xff);
    }
    out
}

/// The later of two end keys, where empty means the end of the key space.
fn later_end(a: &[u8], b: &[u8]) -> Vec<u8> {
    if a.is_empty() || b.is_empty() {
        Vec::new()
    } else {
        a.max(b).to_vec()
    }
}

impl FlowHistory {
    /// A history of `buckets` buckets of `bucket` each (at least 1 ms and 1 bucket), keeping
    /// at most `max_ranges` regions per bucket.
    pub fn new(bucket: Duration, buckets: usize, max_ranges: usize) -> FlowHistory {
        FlowHistory {
            bucket_ms: (bucket.as_millis() as u64).max(1),
            capacity: buckets.max(1),
            max_ranges: max_ranges.max(1),
            buckets: VecDeque::new(),
        }
    }

    /// Width of one bucket, in milliseconds.
    pub fn bucket_ms(&self) -> u64 {
        self.bucket_ms
    }

    /// How many buckets the window holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn bucket_start(&self, now_ms: u64) -> u64 {
        now_ms - now_ms % self.bucket_ms
    }

    /// The start of the oldest bucket still inside the window that ends with `now_ms`'s.
    fn window_start(&self, now_ms: u64) -> u64 {
        let span = self.bucket_ms.saturating_mul(self.capacity as u64 - 1);
        self.bucket_start(now_ms).saturating_sub(span)
    }

    fn evict(&mut self, now_ms: u64) {
        let oldest = self.window_start(now_ms);
        while self.buckets.front().is_some_and(|b| b.start_ms < oldest) {
            self.buckets.pop_front();
        }
    }

    /// Adds one region report received at `now_ms` (unix milliseconds): `written` and `read`
    /// bytes over `[start, end)` (an empty `end`: to the end of the key space). Reports
    /// without flow leave no trace. A clock that stepped back puts the report in the newest
    /// bucket rather than rewriting history.
    pub fn record(
        &mut self,
        now_ms: u64,
        region_id: u64,
        start: &[u8],
        end: &[u8],
        written: u64,
        read: u64,
    ) {
        if written == 0 && read == 0 {
            return;
        }
        self.evict(now_ms);
        let start_ms = self.bucket_start(now_ms);
        if self.buckets.back().is_none_or(|b| b.start_ms < start_ms) {
            self.buckets.push_back(Bucket {
                start_ms,
                cells: HashMap::new(),
                unplaced_written: 0,
                unplaced_read: 0,
            });
        }
        let max_ranges = self.max_ranges;
        let Some(bucket) = self.buckets.back_mut() else {
            return;
        };
        let (start, end) = (cut(start, false), cut(end, true));
        let full = bucket.cells.len() >= max_ranges;
        match bucket.cells.entry(region_id) {
            Entry::Occupied(mut slot) => {
                // A region that split or merged this bucket: its bytes so far were somewhere
                // in the union of the ranges it had.
                let cell = slot.get_mut();
                cell.start = cell.start.as_slice().min(start.as_slice()).to_vec();
                cell.end = later_end(&cell.end, &end);
                cell.written = cell.written.saturating_add(written);
                cell.read = cell.read.saturating_add(read);
            }
            Entry::Vacant(_) if full => {
                bucket.unplaced_written = bucket.unplaced_written.saturating_add(written);
                bucket.unplaced_read = bucket.unplaced_read.saturating_add(read);
            }
            Entry::Vacant(slot) => {
                slot.insert(Cell {
                    start,
                    end,
                    written,
                    read,
                });
            }
        }
    }

    /// The `kind` flow of the last `columns` buckets up to `now_ms`'s (unix milliseconds),
    /// on at most `max_rows` rows. Columns start at the oldest bucket with flow (nothing
    /// recorded: no columns) and run to the current bucket, empty minutes included.
    pub fn matrix(&self, now_ms: u64, kind: FlowKind, columns: usize, max_rows: usize) -> Heatmap {
        let current = self.bucket_start(now_ms);
        let span = self
            .bucket_ms
            .saturating_mul(columns.clamp(1, self.capacity) as u64 - 1);
        let oldest = self.window_start(now_ms).max(current.saturating_sub(span));
        let kept: Vec<&Bucket> = self
            .buckets
            .iter()
            .filter(|b| b.start_ms >= oldest && b.start_ms <= current)
            .collect();
        let keys = axis(&kept, max_rows.max(1));
        let Some(first) = kept.first().map(|b| b.start_ms) else {
            return Heatmap {
                bucket_ms: self.bucket_ms,
                times_ms: Vec::new(),
                keys,
                values: Vec::new(),
                unplaced: Vec::new(),
            };
        };
        let times_ms: Vec<u64> = (first..=current).step_by(self.bucket_ms as usize).collect();
        let mut values = vec![vec![0u64; keys.len()]; times_ms.len()];
        let mut unplaced = vec![0u64; times_ms.len()];
        for bucket in kept {
            let column = ((bucket.start_ms - first) / self.bucket_ms) as usize;
            unplaced[column] = bucket.unplaced(kind);
            for cell in bucket.cells.values() {
                let bytes = match kind {
                    FlowKind::Write => cell.written,
                    FlowKind::Read => cell.read,
                };
                spread(&mut values[column], &keys, cell, bytes);
            }
        }
        Heatmap {
            bucket_ms: self.bucket_ms,
            times_ms,
            keys,
            values,
            unplaced,
        }
    }
}

/// Row start keys: `""` and every boundary of every cell, thinned evenly to `max_rows`.
fn axis(buckets: &[&Bucket], max_rows: usize) -> Vec<Vec<u8>> {
    let mut bounds: BTreeSet<&[u8]> = BTreeSet::new();
    bounds.insert(&[]);
    for cell in buckets.iter().flat_map(|b| b.cells.values()) {
        bounds.insert(&cell.start);
        if !cell.end.is_empty() {
            bounds.insert(&cell.end);
        }
    }
    let all: Vec<&[u8]> = bounds.into_iter().collect();
    if all.len() <= max_rows {
        return all.into_iter().map(<[u8]>::to_vec).collect();
    }
    // Index 0 (the empty key) is always kept, so every key has a row.
    (0..max_rows)
        .map(|i| all[i * all.len() / max_rows].to_vec())
        .collect()
}

/// Adds `bytes` of `cell` to the rows of `column` its range overlaps, evenly (the remainder
/// to the first of them).
fn spread(column: &mut [u64], keys: &[Vec<u8>], cell: &Cell, bytes: u64) {
    if bytes == 0 {
        return;
    }
    // keys[0] is empty, so both searches find at least one row.
    let first = keys
        .partition_point(|k| k.as_slice() <= cell.start.as_slice())
        .saturating_sub(1);
    let last = if cell.end.is_empty() {
        keys.len() - 1
    } else {
        keys.partition_point(|k| k.as_slice() < cell.end.as_slice())
            .saturating_sub(1)
            .max(first)
    };
    let rows = (last - first + 1) as u64;
    for (i, slot) in column[first..=last].iter_mut().enumerate() {
        let share = bytes / rows + if i == 0 { bytes % rows } else { 0 };
        *slot = slot.saturating_add(share);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;
    /// Some minute boundary, as unix milliseconds.
    const T0: u64 = 1_700_000_040_000;

    fn history() -> FlowHistory {
        FlowHistory::new(Duration::from_millis(MIN), 5, 100)
    }

    fn column_sum(m: &Heatmap, column: usize) -> u64 {
        m.values[column].iter().sum()
    }

    #[test]
    fn reports_are_summed_per_region_and_minute() {
        let mut h = history();
        h.record(T0, 1, b"", b"m", 100, 7);
        h.record(T0 + 59_999, 1, b"", b"m", 50, 0);
        h.record(T0 + 10, 2, b"m", b"", 30, 0);
        h.record(T0 + MIN, 1, b"", b"m", 5, 0);
        let m = h.matrix(T0 + MIN + 1, FlowKind::Write, 100, 100);
        assert_eq!(m.times_ms, vec![T0, T0 + MIN]);
        assert_eq!(m.keys, vec![b"".to_vec(), b"m".to_vec()]);
        assert_eq!(m.values, vec![vec![150, 30], vec![5, 0]]);
        assert_eq!(m.nonzero_cells(), 3);
        assert_eq!(m.max(), 150);
        let r = h.matrix(T0 + MIN + 1, FlowKind::Read, 100, 100);
        assert_eq!(r.values, vec![vec![7, 0], vec![0, 0]]);
    }

    #[test]
    fn idle_reports_leave_nothing_and_quiet_minutes_are_empty_columns() {
        let mut h = history();
        h.record(T0, 1, b"", b"", 0, 0);
        assert!(h.matrix(T0, FlowKind::Write, 10, 10).times_ms.is_empty());
        h.record(T0, 1, b"", b"", 9, 0);
        // The current (partial) minute is a column even with nothing in it yet.
        let m = h.matrix(T0 + 2 * MIN + 5, FlowKind::Write, 10, 10);
        assert_eq!(m.times_ms, vec![T0, T0 + MIN, T0 + 2 * MIN]);
        assert_eq!(m.values, vec![vec![9], vec![0], vec![0]]);
    }

    #[test]
    fn buckets_older_than_the_window_are_evicted() {
        let mut h = history();
        h.record(T0, 1, b"", b"", 1, 0);
        h.record(T0 + MIN, 1, b"", b"", 2, 0);
        // Five buckets: at T0 + 5 min the window starts at T0 + 1 min.
        let m = h.matrix(T0 + 5 * MIN, FlowKind::Write, 10, 10);
        assert_eq!(m.times_ms.first(), Some(&(T0 + MIN)));
        assert_eq!(m.times_ms.len(), 5);
        assert_eq!(column_sum(&m, 0), 2);
        h.record(T0 + 6 * MIN, 1, b"", b"", 3, 0);
        assert_eq!(h.buckets.len(), 1);
        let m = h.matrix(T0 + 6 * MIN, FlowKind::Write, 10, 10);
        assert_eq!(m.times_ms, vec![T0 + 6 * MIN]);
        // Asking for fewer columns shows only the newest ones.
        h.record(T0 + 7 * MIN, 1, b"", b"", 4, 0);
        let m = h.matrix(T0 + 8 * MIN, FlowKind::Write, 2, 10);
        assert_eq!(m.times_ms, vec![T0 + 7 * MIN, T0 + 8 * MIN]);
        assert_eq!(m.values, vec![vec![4], vec![0]]);
    }

    #[test]
    fn a_region_that_splits_mid_window_keeps_its_old_range_in_old_columns() {
        let mut h = history();
        // Minute 0: region 1 covers [a, z).
        h.record(T0, 1, b"a", b"z", 100, 0);
        // Minute 1: it reports [a, z), splits at m, then reports [a, m); region 2 is [m, z).
        h.record(T0 + MIN, 1, b"a", b"z", 40, 0);
        h.record(T0 + MIN + 1, 1, b"a", b"m", 20, 0);
        h.record(T0 + MIN + 2, 2, b"m", b"z", 10, 0);
        // Minute 2: only the pieces.
        h.record(T0 + 2 * MIN, 1, b"a", b"m", 8, 0);
        h.record(T0 + 2 * MIN, 2, b"m", b"z", 6, 0);
        let m = h.matrix(T0 + 2 * MIN, FlowKind::Write, 10, 10);
        let rows: Vec<&[u8]> = m.keys.iter().map(Vec::as_slice).collect();
        assert_eq!(rows, vec![&b""[..], b"a", b"m", b"z"]);
        // Before the split region 1's bytes spread over both halves.
        assert_eq!(m.values[0], vec![0, 50, 50, 0]);
        // During it region 1's range is the union of what it reported.
        assert_eq!(m.values[1], vec![0, 30, 30 + 10, 0]);
        assert_eq!(m.values[2], vec![0, 8, 6, 0]);
        for (c, total) in [100, 70, 14].into_iter().enumerate() {
            assert_eq!(column_sum(&m, c), total, "column {c} keeps every byte");
        }
    }

    #[test]
    fn ranges_beyond_the_limit_are_counted_as_unplaced() {
        let mut h = FlowHistory::new(Duration::from_millis(MIN), 5, 2);
        h.record(T0, 1, b"a", b"b", 1, 0);
        h.record(T0, 2, b"b", b"c", 2, 0);
        h.record(T0, 3, b"c", b"d", 4, 0);
        h.record(T0, 1, b"a", b"b", 8, 0);
        let m = h.matrix(T0, FlowKind::Write, 10, 10);
        assert_eq!(column_sum(&m, 0), 11);
        assert_eq!(m.unplaced, vec![4]);
    }

    #[test]
    fn many_boundaries_are_thinned_to_the_row_limit_without_losing_bytes() {
        let mut h = history();
        for i in 0..50u8 {
            h.record(T0, u64::from(i) + 1, &[i], &[i + 1], 10, 0);
        }
        let m = h.matrix(T0, FlowKind::Write, 10, 8);
        assert_eq!(m.keys.len(), 8);
        assert!(m.keys[0].is_empty());
        assert!(m.keys.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(column_sum(&m, 0), 500);
    }

    #[test]
    fn long_keys_are_cut_and_ranges_stay_ordered() {
        let start = vec![7u8; 100];
        let mut end = start.clone();
        end.push(1);
        let (s, e) = (cut(&start, false), cut(&end, true));
        assert_eq!(s.len(), MAX_KEY_LEN);
        assert!(s < e);
        let mut h = history();
        h.record(T0, 1, &start, &end, 5, 0);
        let m = h.matrix(T0, FlowKind::Write, 10, 10);
        assert_eq!(m.keys.len(), 3);
        assert_eq!(m.values[0], vec![0, 5, 0]);
    }

    #[test]
    fn a_clock_stepping_back_adds_to_the_newest_bucket() {
        let mut h = history();
        h.record(T0 + MIN, 1, b"", b"", 1, 0);
        h.record(T0, 1, b"", b"", 2, 0);
        let m = h.matrix(T0 + MIN, FlowKind::Write, 10, 10);
        assert_eq!(m.times_ms, vec![T0 + MIN]);
        assert_eq!(m.values, vec![vec![3]]);
    }

    #[test]
    fn flow_kinds_parse_their_names_only() {
        assert_eq!(FlowKind::parse("write"), Some(FlowKind::Write));
        assert_eq!(FlowKind::parse("read").map(FlowKind::name), Some("read"));
        assert_eq!(FlowKind::parse("Write"), None);
        assert_eq!(FlowKind::parse(""), None);
    }
}
