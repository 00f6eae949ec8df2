//! YCSB's key choosers: zipfian (Gray et al., "Quickly generating billion-record synthetic
//! databases"), scrambled zipfian, skewed-latest and uniform, with the same constants as YCSB so
//! results compare with published YCSB runs.

use rand::Rng;

/// YCSB's default skew.
pub const ZIPFIAN_CONSTANT: f64 = 0.99;

/// Item space of the scrambled zipfian before hashing, and its precomputed zeta (YCSB's values:
/// computing zeta over 10^10 items at startup would take minutes).
const SCRAMBLED_ITEMS: u64 = 10_000_000_000;
const SCRAMBLED_ZETAN: f64 = 26.469_028_201_783_02;

/// FNV-1a over the 8 little-endian bytes of `v`: YCSB's hash of key numbers (without its sign
/// fold, which only matters to Java's signed longs).
pub fn fnv_hash64(v: u64) -> u64 {
    const OFFSET: u64 = 0xCBF2_9CE4_8422_2325;
    const PRIME: u64 = 1_099_511_628_211;
    let mut hash = OFFSET;
    let mut v = v;
    for _ in 0..8 {
        let octet = v & 0xff;
        v >>= 8;
        hash ^= octet;
        hash = hash.wrapping_mul(PRIME);
    }
    hash
}

fn zeta(from: u64, to: u64, theta: f64, initial: f64) -> f64 {
    (from..to).fold(initial, |sum, i| sum + 1.0 / ((i + 1) as f64).powf(theta))
}

/// Zipfian over `[0, items)`: item 0 is the most popular. The item count may grow (inserts);
/// zeta is then extended incrementally.
#[derive(Clone, Debug)]
pub struct Zipfian {
    items: u64,
    theta: f64,
    alpha: f64,
    zeta2: f64,
    zetan: f64,
    eta: f64,
}

impl Zipfian {
    pub fn new(items: u64, theta: f64) -> Self {
        Self::with_zetan(items, theta, zeta(0, items, theta, 0.0))
    }

    fn with_zetan(items: u64, theta: f64, zetan: f64) -> Self {
        let items = items.max(1);
        let zeta2 = zeta(0, 2, theta, 0.0);
        let mut z = Zipfian {
            items,
            theta,
            alpha: 1.0 / (1.0 - theta),
            zeta2,
            zetan,
            eta: 0.0,
        };
        z.eta = z.eta_for(items);
        z
    }

    fn eta_for(&self, items: u64) -> f64 {
        (1.0 - (2.0 / items as f64).powf(1.0 - self.theta)) / (1.0 - self.zeta2 / self.zetan)
    }

    pub fn items(&self) -> u64 {
        self.items
    }

    /// Grows the item space to `items` (never shrinks it: YCSB does not either).
    fn grow_to(&mut self, items: u64) {
        if items > self.items {
            self.zetan = zeta(self.items, items, self.theta, self.zetan);
            self.items = items;
            self.eta = self.eta_for(items);
        }
    }

    pub fn next<R: Rng>(&mut self, rng: &mut R) -> u64 {
        let u: f64 = rng.gen();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1.min(self.items - 1);
        }
        let v = (self.items as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        v.min(self.items - 1)
    }

    /// A draw over the first `items` items, growing the space first if needed.
    pub fn next_within<R: Rng>(&mut self, rng: &mut R, items: u64) -> u64 {
        self.grow_to(items);
        self.next(rng).min(items.max(1) - 1)
    }
}

/// Zipfian popularity spread over the key space by hashing, so hot keys are not neighbours.
#[derive(Clone, Debug)]
pub struct ScrambledZipfian {
    items: u64,
    inner: Zipfian,
}

impl ScrambledZipfian {
    pub fn new(items: u64) -> Self {
        ScrambledZipfian {
            items: items.max(1),
            inner: Zipfian::with_zetan(SCRAMBLED_ITEMS, ZIPFIAN_CONSTANT, SCRAMBLED_ZETAN),
        }
    }

    pub fn next<R: Rng>(&mut self, rng: &mut R) -> u64 {
        fnv_hash64(self.inner.next(rng)) % self.items
    }
}

/// How a workload picks the record each request touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Distribution {
    Zipfian,
    Uniform,
    Latest,
}

impl std::str::FromStr for Distribution {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "zipfian" => Ok(Distribution::Zipfian),
            "uniform" => Ok(Distribution::Uniform),
            "latest" => Ok(Distribution::Latest),
            other => Err(format!(
                "unknown distribution {other:?} (zipfian, uniform, latest)"
            )),
        }
    }
}

/// Picks record numbers below the number of records that exist now (`existing`, which grows as
/// the workload inserts).
#[derive(Clone, Debug)]
pub enum KeyChooser {
    Uniform,
    Zipfian(ScrambledZipfian),
    /// Recent records are the most popular: `existing - 1 - zipfian(existing)`.
    Latest(Zipfian),
}

impl KeyChooser {
    pub fn new(distribution: Distribution, records: u64) -> Self {
        match distribution {
            Distribution::Uniform => KeyChooser::Uniform,
            Distribution::Zipfian => KeyChooser::Zipfian(ScrambledZipfian::new(records)),
            Distribution::Latest => KeyChooser::Latest(Zipfian::new(records, ZIPFIAN_CONSTANT)),
        }
    }

    pub fn next<R: Rng>(&mut self, rng: &mut R, existing: u64) -> u64 {
        let existing = existing.max(1);
        match self {
            KeyChooser::Uniform => rng.gen_range(0..existing),
            // Records inserted during the run are outside the hashed space, as in YCSB, which
            // draws zipfian keys until one below the inserted count comes up.
            KeyChooser::Zipfian(z) => z.next(rng) % existing,
            KeyChooser::Latest(z) => existing - 1 - z.next_within(rng, existing),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn counts(mut draw: impl FnMut() -> u64, n: usize, items: usize) -> Vec<u64> {
        let mut c = vec![0u64; items];
        for _ in 0..n {
            let v = draw() as usize;
            assert!(v < items, "draw {v} out of range {items}");
            c[v] += 1;
        }
        c
    }

    fn fnv1a(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xCBF2_9CE4_8422_2325u64, |h, b| {
            (h ^ *b as u64).wrapping_mul(1_099_511_628_211)
        })
    }

    #[test]
    fn fnv_is_fnv1a_over_the_little_endian_bytes() {
        // The published FNV-1a 64 test vector for "a".
        assert_eq!(fnv1a(b"a"), 0xAF63_DC4C_8601_EC8C);
        for v in [0u64, 1, 255, 256, 123_456_789, u64::MAX] {
            assert_eq!(fnv_hash64(v), fnv1a(&v.to_le_bytes()));
        }
    }

    #[test]
    fn zipfian_favours_item_zero_with_the_expected_share() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut z = Zipfian::new(1000, ZIPFIAN_CONSTANT);
        let n = 200_000;
        let c = counts(|| z.next(&mut rng), n, 1000);
        // P(0) = 1 / zeta(1000, 0.99) ~= 0.134.
        let p0 = c[0] as f64 / n as f64;
        let expected = 1.0 / zeta(0, 1000, ZIPFIAN_CONSTANT, 0.0);
        assert!((p0 - expected).abs() < 0.01, "p0 {p0} expected {expected}");
        assert!(c[0] > c[1] && c[1] > c[10] && c[10] > c[500]);
    }

    #[test]
    fn zipfian_grows_like_a_fresh_generator() {
        let mut grown = Zipfian::new(100, ZIPFIAN_CONSTANT);
        grown.grow_to(5000);
        let fresh = Zipfian::new(5000, ZIPFIAN_CONSTANT);
        assert!((grown.zetan - fresh.zetan).abs() < 1e-9);
        assert!((grown.eta - fresh.eta).abs() < 1e-9);
    }

    #[test]
    fn scrambled_zipfian_spreads_hot_keys() {
        let mut rng = StdRng::seed_from_u64(11);
        let mut z = ScrambledZipfian::new(10_000);
        let c = counts(|| z.next(&mut rng), 100_000, 10_000);
        let hottest = c
            .iter()
            .enumerate()
            .max_by_key(|(_, n)| **n)
            .map(|(i, _)| i);
        // Skewed: the hottest key gets far more than a uniform share (10 per key)...
        assert!(*c.iter().max().unwrap() > 1000);
        // ...but it is not key 0, since popularity is hashed over the space.
        assert_ne!(hottest, Some(0));
    }

    #[test]
    fn latest_prefers_the_newest_records() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut k = KeyChooser::new(Distribution::Latest, 1000);
        let c = counts(|| k.next(&mut rng, 1000), 50_000, 1000);
        assert!(c[999] > c[998] && c[998] > c[900] && c[900] > c[0]);
        // The window follows inserts.
        let v = k.next(&mut rng, 2000);
        assert!(v < 2000);
    }

    #[test]
    fn uniform_covers_the_space_evenly() {
        let mut rng = StdRng::seed_from_u64(5);
        let mut k = KeyChooser::new(Distribution::Uniform, 100);
        let c = counts(|| k.next(&mut rng, 100), 100_000, 100);
        assert!(c.iter().all(|n| (700..1300).contains(n)), "{c:?}");
    }

    #[test]
    fn distribution_names_parse() {
        assert_eq!("Zipfian".parse::<Distribution>(), Ok(Distribution::Zipfian));
        assert!("pareto".parse::<Distribution>().is_err());
    }
}
