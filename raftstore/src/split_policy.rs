//! Where to split a region. The split-check worker asks a `SplitPolicy`; built-in policies
//! split by approximate size, key count, load, or at fixed boundaries, and users plug in their
//! own by implementing the trait.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::KvRead;
use engine::{KvSnapshot, SplitPieces, DATA_CFS};
use proto::metapb::Region;

use crate::config::{Config, SplitPolicyConfig};
use crate::errors::Result;

/// Recent accesses of one region, kept for load-based splitting: every request is counted
/// (per-second buckets over the window) and a bounded sample of their keys is kept, taking
/// every n-th request as the rate grows so the sample spans the window.
#[derive(Debug)]
pub struct LoadStats {
    window: Duration,
    /// (bucket start, requests) for the last `window`, one bucket per second.
    counts: VecDeque<(Instant, u64)>,
    /// (time, user key) of sampled requests within the window.
    samples: VecDeque<(Instant, Vec<u8>)>,
    max_samples: usize,
    /// Requests since the last one sampled.
    since_sample: u64,
}

impl LoadStats {
    pub fn new(window: Duration, max_samples: usize) -> LoadStats {
        LoadStats {
            window,
            counts: VecDeque::new(),
            samples: VecDeque::new(),
            max_samples: max_samples.max(1),
            since_sample: 0,
        }
    }

    /// Records one request touching `key`.
    pub fn record(&mut self, key: &[u8], now: Instant) {
        self.expire(now);
        match self.counts.back_mut() {
            Some((start, n)) if now.saturating_duration_since(*start) < Duration::from_secs(1) => {
                *n += 1
            }
            _ => self.counts.push_back((now, 1)),
        }
        // Sample about `max_samples` requests per window at the current rate.
        let in_window: u64 = self.counts.iter().map(|(_, n)| n).sum();
        let stride = (in_window / self.max_samples as u64).max(1);
        self.since_sample += 1;
        if self.since_sample < stride {
            return;
        }
        self.since_sample = 0;
        if self.samples.len() >= self.max_samples {
            self.samples.pop_front();
        }
        self.samples.push_back((now, key.to_vec()));
    }

    fn expire(&mut self, now: Instant) {
        while let Some((t, _)) = self.samples.front() {
            if now.saturating_duration_since(*t) <= self.window {
                break;
            }
            self.samples.pop_front();
        }
        while let Some((t, _)) = self.counts.front() {
            if now.saturating_duration_since(*t) <= self.window {
                break;
            }
            self.counts.pop_front();
        }
    }

    /// Requests per second over the window.
    pub fn qps(&mut self, now: Instant) -> f64 {
        self.expire(now);
        let total: u64 = self.counts.iter().map(|(_, n)| n).sum();
        total as f64 / self.window.as_secs_f64().max(0.001)
    }

    /// The sampled keys, sorted.
    pub fn sorted_keys(&self) -> Vec<Vec<u8>> {
        let mut keys: Vec<Vec<u8>> = self.samples.iter().map(|(_, k)| k.clone()).collect();
        keys.sort();
        keys
    }
}

/// What a policy sees of a region when deciding.
pub struct SplitCheckInput<'a> {
    pub region: &'a Region,
    pub snapshot: &'a KvSnapshot,
    /// Requests per second recently seen by the region.
    pub qps: f64,
    /// Sorted sample of recently accessed user keys.
    pub load_keys: &'a [Vec<u8>],
    /// Key + value bytes of the region over all data column families, measured just before.
    pub region_size: u64,
    /// Keys of the region in the default and write column families, measured just before.
    pub region_keys: u64,
}

impl SplitCheckInput<'_> {
    /// Keys cutting the region into pieces of about `pieces.size` bytes (key + value over
    /// the CFs holding values), at most `pieces.limit`, the rest after the last cut at least
    /// `pieces.min_last` bytes, found from the engine's size estimates without reading the
    /// region's data (see `engine::range_stats`). Keys are whole user keys (a version's
    /// timestamp dropped), sorted, unique and strictly inside the region; empty if the
    /// estimates place no cut.
    pub fn approximate_split_keys(&self, pieces: SplitPieces) -> Result<Vec<Vec<u8>>> {
        let start = keys::enc_start_key(&self.region.start_key);
        let end = keys::enc_end_key(&self.region.end_key);
        let cuts = self.snapshot.approximate_split_keys(
            &[engine::CF_DEFAULT, engine::CF_WRITE],
            &start,
            &end,
            pieces,
        )?;
        Ok(user_keys_inside(self.region, cuts, pieces.limit))
    }

    /// Visits the region's data (user keys, with the size of key + value) in key order
    /// within each data column family, until `f` returns false. A key that carries an MVCC
    /// timestamp after its encoded user key (transactional data in CFs write and default) is
    /// given without it, so a split key taken from it never falls between two versions of
    /// one key.
    pub fn for_each_key(&self, mut f: impl FnMut(&[u8], u64) -> bool) -> Result<()> {
        let start = keys::enc_start_key(&self.region.start_key);
        let end = keys::enc_end_key(&self.region.end_key);
        // Walk CF default, which holds the bulk of the data; lock and write are counted too.
        for cf in DATA_CFS {
            let mut go_on = true;
            self.snapshot.scan_cf(cf, &start, &end, |k, v| {
                let user_key = keys::encoded_key_prefix(keys::origin_key(k));
                go_on = f(user_key, (k.len() + v.len()) as u64);
                Ok(go_on)
            })?;
            if !go_on {
                break;
            }
        }
        Ok(())
    }
}

/// How much must be written to a region since its last split check before the next one runs
/// (either limit suffices): a region that takes no writes is not checked again, and a busy
/// one about once per `bytes` written (TiKV's `region-split-check-diff`). A region is also
/// checked after it is created or split, when PD asks, and while it serves load.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SplitCheckTrigger {
    /// Key + value bytes written.
    pub bytes: u64,
    /// Keys written.
    pub keys: u64,
    /// Requests per second (sampled for load-based splitting) at which a region is checked
    /// on every tick whatever was written.
    pub qps: f64,
}

impl SplitCheckTrigger {
    /// Check after any write, and on every tick while the region serves any load.
    pub const ANY_WRITE: SplitCheckTrigger = SplitCheckTrigger {
        bytes: 1,
        keys: 1,
        qps: f64::MIN_POSITIVE,
    };

    /// Whether a region serving `qps` requests per second is due for a check.
    pub fn is_due_for_load(&self, qps: f64) -> bool {
        qps > 0.0 && qps >= self.qps
    }

    /// Whether `written_bytes` and `written_keys` since the last check reach the trigger.
    pub fn is_due(&self, written_bytes: u64, written_keys: u64) -> bool {
        (written_bytes > 0 || written_keys > 0)
            && (written_bytes >= self.bytes || written_keys >= self.keys)
    }
}

/// Decides split keys for a region. Returned keys must be inside the region, sorted and
/// unique; the store validates them again before proposing.
pub trait SplitPolicy: Send + Sync {
    fn name(&self) -> &str;
    fn split_keys(&self, input: &SplitCheckInput<'_>) -> Result<Vec<Vec<u8>>>;
    /// When a region is due for its next check; by default after any write.
    fn check_trigger(&self) -> SplitCheckTrigger {
        SplitCheckTrigger::ANY_WRITE
    }
}

/// Splits a region larger than `max_size` into pieces of about `split_size` bytes.
pub struct SizePolicy {
    pub max_size: u64,
    pub split_size: u64,
    /// Bytes written between checks (`raftstore.region-split-check-diff`, by default 1/16 of
    /// `split_size`, as in TiKV).
    pub check_diff: u64,
    /// At most this many keys per check.
    pub batch_limit: usize,
}

impl SizePolicy {
    /// Pieces of `split_size`; a last piece under `max_size - split_size` stays with the one
    /// before it (TiKV's size checker), so a region just over `max_size` is cut in two.
    fn pieces(&self) -> SplitPieces {
        SplitPieces {
            size: self.split_size,
            min_last: self.max_size.saturating_sub(self.split_size),
            limit: self.batch_limit,
        }
    }
}

impl SplitPolicy for SizePolicy {
    fn name(&self) -> &str {
        "size"
    }

    fn check_trigger(&self) -> SplitCheckTrigger {
        SplitCheckTrigger {
            bytes: self.check_diff.max(1),
            keys: u64::MAX,
            qps: f64::INFINITY,
        }
    }

    fn split_keys(&self, input: &SplitCheckInput<'_>) -> Result<Vec<Vec<u8>>> {
        if input.region_size <= self.max_size {
            return Ok(Vec::new());
        }
        estimated_or_scanned(input, self.pieces(), || {
            every_nth(
                input,
                self.max_size,
                self.split_size,
                self.batch_limit,
                |size| size,
            )
        })
    }
}

/// Splits a region with more than `max_keys` keys into pieces of `split_keys` keys.
pub struct KeysPolicy {
    pub max_keys: u64,
    pub split_keys: u64,
    pub batch_limit: usize,
}

impl KeysPolicy {
    /// Pieces of `split_keys` keys and a last piece of at least `max_keys - split_keys`, as
    /// [`SizePolicy::pieces`], in bytes at the region's average entry size.
    fn pieces(&self, input: &SplitCheckInput<'_>) -> SplitPieces {
        let bytes_per_key = input.region_size as f64 / input.region_keys.max(1) as f64;
        let bytes = |keys: u64| (keys as f64 * bytes_per_key) as u64;
        SplitPieces {
            size: bytes(self.split_keys).max(1),
            min_last: bytes(self.max_keys.saturating_sub(self.split_keys)),
            limit: self.batch_limit,
        }
    }
}

impl SplitPolicy for KeysPolicy {
    fn name(&self) -> &str {
        "keys"
    }

    fn check_trigger(&self) -> SplitCheckTrigger {
        SplitCheckTrigger {
            bytes: u64::MAX,
            keys: (self.split_keys / 16).max(1),
            qps: f64::INFINITY,
        }
    }

    fn split_keys(&self, input: &SplitCheckInput<'_>) -> Result<Vec<Vec<u8>>> {
        if input.region_keys <= self.max_keys {
            return Ok(Vec::new());
        }
        estimated_or_scanned(input, self.pieces(input), || {
            every_nth(
                input,
                self.max_keys,
                self.split_keys,
                self.batch_limit,
                |_| 1,
            )
        })
    }
}

/// Turns data keys into whole user keys strictly inside `region`, sorted and unique.
fn user_keys_inside(region: &Region, data_keys: Vec<Vec<u8>>, limit: usize) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = data_keys
        .iter()
        .map(|k| keys::encoded_key_prefix(keys::origin_key(k)).to_vec())
        .filter(|k| {
            k.as_slice() > region.start_key.as_slice()
                && (region.end_key.is_empty() || k.as_slice() < region.end_key.as_slice())
        })
        .collect();
    out.sort();
    out.dedup();
    out.truncate(limit);
    out
}

/// Cuts from the size estimates, or, when they place none (all of a large region's data
/// under one key prefix the estimates cannot resolve), from a scan of the region. Runs on
/// the split-check worker, never on a raft thread.
fn estimated_or_scanned(
    input: &SplitCheckInput<'_>,
    pieces: SplitPieces,
    scan: impl FnOnce() -> Result<Vec<Vec<u8>>>,
) -> Result<Vec<Vec<u8>>> {
    let keys = input.approximate_split_keys(pieces)?;
    if !keys.is_empty() {
        return Ok(keys);
    }
    crate::metrics::SPLIT_CHECK_SCANS.inc();
    scan()
}

/// Accumulates `weight` over the region's keys; when the total passes `max`, cuts every
/// `piece`. The CFs holding values are walked one after the other (CF default: raw values and
/// long transactional values; CF write: transactional commit records with short values), each
/// giving candidates at its own pace; candidates are whole encoded user keys (a version's
/// timestamp dropped), then sorted and deduplicated.
fn every_nth(
    input: &SplitCheckInput<'_>,
    max: u64,
    piece: u64,
    batch_limit: usize,
    weight: impl Fn(u64) -> u64,
) -> Result<Vec<Vec<u8>>> {
    let mut total = 0u64;
    let mut candidates = Vec::new();
    let start = keys::enc_start_key(&input.region.start_key);
    let end = keys::enc_end_key(&input.region.end_key);
    for cf in [engine::CF_DEFAULT, engine::CF_WRITE] {
        let mut acc = 0u64;
        let mut from_cf = Vec::new();
        input.snapshot.scan_cf(cf, &start, &end, |k, v| {
            let w = weight((k.len() + v.len()) as u64);
            total += w;
            acc += w;
            if acc >= piece {
                from_cf.push(keys::encoded_key_prefix(keys::origin_key(k)).to_vec());
                acc = 0;
            }
            Ok(true)
        })?;
        // A cut right at the CF's last key would leave its right part empty.
        if acc == 0 {
            from_cf.pop();
        }
        candidates.append(&mut from_cf);
    }
    if total <= max {
        return Ok(Vec::new());
    }
    candidates.sort();
    candidates.dedup();
    candidates.retain(|k| k.as_slice() > input.region.start_key.as_slice());
    candidates.truncate(batch_limit);
    Ok(candidates)
}

/// Splits a region whose request rate exceeds `qps_threshold` at the key that halves the
/// sampled load.
pub struct LoadPolicy {
    pub qps_threshold: f64,
}

impl SplitPolicy for LoadPolicy {
    fn name(&self) -> &str {
        "load"
    }

    fn check_trigger(&self) -> SplitCheckTrigger {
        SplitCheckTrigger {
            qps: self.qps_threshold,
            ..SplitCheckTrigger::ANY_WRITE
        }
    }

    fn split_keys(&self, input: &SplitCheckInput<'_>) -> Result<Vec<Vec<u8>>> {
        if input.qps < self.qps_threshold || input.load_keys.len() < 2 {
            return Ok(Vec::new());
        }
        let middle = &input.load_keys[input.load_keys.len() / 2];
        if middle.as_slice() <= input.region.start_key.as_slice() {
            return Ok(Vec::new());
        }
        Ok(vec![middle.clone()])
    }
}

/// A size or keys policy with load-based splitting beside it (TiKV's load-base-split, on by
/// default): a region is cut where its data says, and, when the data says nothing, a region
/// serving more than the load threshold is cut where its sampled load halves (a hot range
/// such as YCSB's zipfian head spreads over several regions and stores).
pub struct WithLoadSplit {
    pub primary: Arc<dyn SplitPolicy>,
    pub load: LoadPolicy,
}

impl SplitPolicy for WithLoadSplit {
    fn name(&self) -> &str {
        self.primary.name()
    }

    fn split_keys(&self, input: &SplitCheckInput<'_>) -> Result<Vec<Vec<u8>>> {
        let keys = self.primary.split_keys(input)?;
        if !keys.is_empty() {
            return Ok(keys);
        }
        self.load.split_keys(input)
    }

    fn check_trigger(&self) -> SplitCheckTrigger {
        SplitCheckTrigger {
            qps: self.load.qps_threshold,
            ..self.primary.check_trigger()
        }
    }
}

/// Splits at configured boundaries (for example keyspace prefixes) that fall inside a region.
pub struct FixedKeysPolicy {
    pub boundaries: Vec<Vec<u8>>,
}

impl SplitPolicy for FixedKeysPolicy {
    fn name(&self) -> &str {
        "fixed-keys"
    }

    fn split_keys(&self, input: &SplitCheckInput<'_>) -> Result<Vec<Vec<u8>>> {
        let region = input.region;
        let mut keys: Vec<Vec<u8>> = self
            .boundaries
            .iter()
            .filter(|k| {
                k.as_slice() > region.start_key.as_slice()
                    && (region.end_key.is_empty() || k.as_slice() < region.end_key.as_slice())
            })
            .cloned()
            .collect();
        keys.sort();
        keys.dedup();
        Ok(keys)
    }
}

/// Checks that split keys are sorted, unique and strictly inside the region.
pub fn validate_split_keys(
    region: &Region,
    split_keys: &[Vec<u8>],
) -> std::result::Result<(), String> {
    if split_keys.is_empty() {
        return Err("no split keys".into());
    }
    let mut prev: &[u8] = &region.start_key;
    for k in split_keys {
        if k.is_empty() {
            return Err("empty split key".into());
        }
        if k.as_slice() <= prev {
            return Err(format!(
                "split key {k:?} is not after {prev:?} (keys must be sorted, unique and after the region start)"
            ));
        }
        if !region.end_key.is_empty() && k.as_slice() >= region.end_key.as_slice() {
            return Err(format!(
                "split key {k:?} is not before the region end {:?}",
                region.end_key
            ));
        }
        prev = k;
    }
    Ok(())
}

/// The built-in split policy the config names.
pub(crate) fn builtin_policy(cfg: &Config) -> Arc<dyn SplitPolicy> {
    const BATCH_SPLIT_LIMIT: usize = 10;
    let primary: Arc<dyn SplitPolicy> = match &cfg.split_policy {
        SplitPolicyConfig::Size {
            max_size,
            split_size,
        } => Arc::new(SizePolicy {
            max_size: *max_size,
            split_size: *split_size,
            check_diff: cfg.region_split_check_diff.unwrap_or(*split_size / 16),
            batch_limit: BATCH_SPLIT_LIMIT,
        }),
        SplitPolicyConfig::Keys {
            max_keys,
            split_keys,
        } => Arc::new(KeysPolicy {
            max_keys: *max_keys,
            split_keys: *split_keys,
            batch_limit: BATCH_SPLIT_LIMIT,
        }),
        SplitPolicyConfig::Load { qps_threshold, .. } => {
            return Arc::new(LoadPolicy {
                qps_threshold: *qps_threshold,
            })
        }
        SplitPolicyConfig::FixedKeys { boundaries } => {
            return Arc::new(FixedKeysPolicy {
                boundaries: boundaries.clone(),
            })
        }
    };
    if !cfg.load_split.enabled {
        return primary;
    }
    Arc::new(WithLoadSplit {
        primary,
        load: LoadPolicy {
            qps_threshold: cfg.load_split.qps_threshold,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(start: &[u8], end: &[u8]) -> Region {
        Region {
            id: 1,
            start_key: start.to_vec(),
            end_key: end.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn split_keys_must_be_inside_sorted_and_unique() {
        let r = region(b"b", b"m");
        assert!(validate_split_keys(&r, &[b"c".to_vec(), b"d".to_vec()]).is_ok());
        assert!(
            validate_split_keys(&r, &[b"b".to_vec()]).is_err(),
            "equal to start"
        );
        assert!(
            validate_split_keys(&r, &[b"m".to_vec()]).is_err(),
            "equal to end"
        );
        assert!(
            validate_split_keys(&r, &[b"z".to_vec()]).is_err(),
            "outside"
        );
        assert!(validate_split_keys(&r, &[b"d".to_vec(), b"c".to_vec()]).is_err());
        assert!(validate_split_keys(&r, &[b"c".to_vec(), b"c".to_vec()]).is_err());
        assert!(validate_split_keys(&r, &[]).is_err());
        assert!(validate_split_keys(&region(b"", b""), &[b"x".to_vec()]).is_ok());
    }

    /// The rate counts every request, not only the sampled ones, and the sample stays
    /// bounded and spread over the keys.
    #[test]
    fn load_stats_count_every_request_at_high_rates() {
        let mut s = LoadStats::new(Duration::from_secs(10), 100);
        let t = Instant::now();
        for i in 0..50_000u32 {
            let at = t + Duration::from_micros(u64::from(i) * 100);
            s.record(format!("k{:05}", i % 1000).as_bytes(), at);
        }
        let now = t + Duration::from_secs(5);
        let qps = s.qps(now);
        assert!((4_900.0..=5_100.0).contains(&qps), "qps {qps}");
        let keys = s.sorted_keys();
        assert!(
            keys.len() <= 100 && keys.len() >= 50,
            "{} samples",
            keys.len()
        );
        assert!(keys.first() < keys.last());
    }

    #[test]
    fn load_stats_window_and_median() {
        let mut s = LoadStats::new(Duration::from_secs(10), 100);
        let t = Instant::now();
        for k in [b"c", b"a", b"b"] {
            s.record(k, t);
        }
        assert_eq!(s.sorted_keys()[1], b"b".to_vec());
        assert!(s.qps(t) > 0.0);
        assert_eq!(s.qps(t + Duration::from_secs(11)), 0.0);
    }

    /// The split check's input for region `r`, measured as the worker measures it.
    fn measured_input<'a>(r: &'a Region, snapshot: &'a KvSnapshot) -> SplitCheckInput<'a> {
        let measured = crate::worker::split_check::measure_region(snapshot, r).unwrap();
        SplitCheckInput {
            region: r,
            snapshot,
            qps: 0.0,
            load_keys: &[],
            region_size: measured.size,
            region_keys: measured.keys,
        }
    }

    /// Transactional data lives in CF write as versions (encoded user key + 8-byte
    /// timestamp): the size policy cuts only at whole user keys, so every version of a key
    /// stays on one side, whether the data sits in the memtable or in table files.
    #[test]
    fn size_splits_of_versioned_keys_fall_between_user_keys() {
        for flushed in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let kv = engine::KvEngine::open(dir.path()).unwrap();
            let mut wb = kv.write_batch();
            for i in 0..200u32 {
                let user_key = keys::encode_bytes(format!("x\0\0\0key{i:04}").as_bytes());
                for ts in [5u64, 9, 12] {
                    let mut versioned = user_key.clone();
                    versioned.extend_from_slice(&(u64::MAX - ts).to_be_bytes());
                    wb.put_cf(engine::CF_WRITE, &keys::data_key(&versioned), &[7; 100])
                        .unwrap();
                }
            }
            kv.write(&wb, false).unwrap();
            if flushed {
                kv.flush().unwrap();
            }
            let snapshot = kv.snapshot();
            let r = region(b"", b"");
            let input = measured_input(&r, &snapshot);
            let measured = (input.region_size, input.region_keys);
            let policy = SizePolicy {
                max_size: 10_000,
                split_size: 5_000,
                check_diff: 1,
                batch_limit: 100,
            };
            let split_keys = policy.split_keys(&input).unwrap();
            assert!(
                split_keys.len() > 5,
                "{} split keys (flushed: {flushed}, measured {measured:?})",
                split_keys.len()
            );
            for key in &split_keys {
                let (user_key, used) = keys::decode_bytes(key).unwrap();
                assert_eq!(used, key.len(), "a split key carries a timestamp: {key:?}");
                assert!(user_key.starts_with(b"x\0\0\0key"));
            }
            validate_split_keys(&r, &split_keys).unwrap();
        }
    }

    /// A region just over `max_size` (under two `split_size` pieces) is cut from the size
    /// estimates; reading the whole region is only the fallback when they place no cut.
    #[test]
    fn a_region_just_over_its_max_size_is_cut_without_a_scan() {
        let dir = tempfile::tempdir().unwrap();
        let kv = engine::KvEngine::open(dir.path()).unwrap();
        let mut wb = kv.write_batch();
        for i in 0..1_600u32 {
            let key = keys::data_key(format!("r\0\0\0key{i:05}").as_bytes());
            wb.put_cf(engine::CF_DEFAULT, &key, &[7; 1000]).unwrap();
        }
        kv.write(&wb, false).unwrap();
        kv.flush().unwrap();
        let snapshot = kv.snapshot();
        let r = region(b"", b"");
        let input = measured_input(&r, &snapshot);
        // About 1.6 MB: over the 1.44 MB maximum, under two 0.96 MB pieces.
        let policy = SizePolicy {
            max_size: 1_440_000,
            split_size: 960_000,
            check_diff: 1,
            batch_limit: 10,
        };
        assert!(
            (policy.max_size..2 * policy.split_size).contains(&input.region_size),
            "{} bytes",
            input.region_size
        );
        let keys =
            estimated_or_scanned(&input, policy.pieces(), || panic!("the region was scanned"))
                .unwrap();
        let cut_at = |keys: &[Vec<u8>]| -> u32 {
            assert_eq!(keys.len(), 1, "{keys:?}");
            std::str::from_utf8(&keys[0][7..]).unwrap().parse().unwrap()
        };
        assert!((700..=1_200).contains(&cut_at(&keys)), "{keys:?}");
        assert_eq!(policy.split_keys(&input).unwrap(), keys);

        // The same by key count: 1,600 keys, over 1,440, under two pieces of 960.
        let by_keys = KeysPolicy {
            max_keys: 1_440,
            split_keys: 960,
            batch_limit: 10,
        };
        assert!(
            (1_440..1_920).contains(&input.region_keys),
            "{}",
            input.region_keys
        );
        let keys = estimated_or_scanned(&input, by_keys.pieces(&input), || {
            panic!("the region was scanned")
        })
        .unwrap();
        assert!((700..=1_200).contains(&cut_at(&keys)), "{keys:?}");
    }

    #[test]
    fn split_check_trigger_needs_enough_writes() {
        let t = SplitCheckTrigger {
            bytes: 100,
            keys: u64::MAX,
            qps: 50.0,
        };
        assert!(!t.is_due_for_load(0.0));
        assert!(!t.is_due_for_load(49.0));
        assert!(t.is_due_for_load(50.0));
        assert!(!t.is_due(0, 0));
        assert!(!t.is_due(99, 50));
        assert!(t.is_due(100, 1));
        assert!(SplitCheckTrigger::ANY_WRITE.is_due(1, 0));
        assert!(!SplitCheckTrigger::ANY_WRITE.is_due(0, 0));
    }
}
