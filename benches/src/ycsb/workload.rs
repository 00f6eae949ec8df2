//! The YCSB core workloads A-F and the bank: operation mixes, request distributions and key
//! names.

use rand::Rng;

use super::generator::{fnv_hash64, Distribution};

/// One request a client issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "SCREAMING-KEBAB-CASE")]
pub enum Operation {
    Insert,
    Read,
    Update,
    Scan,
    ReadModifyWrite,
    /// A bank transfer that moved money between two accounts and committed.
    Transfer,
    /// A bank transfer that found too little money in its source account and moved nothing.
    TransferDeclined,
}

impl Operation {
    pub const ALL: [Operation; 7] = [
        Operation::Insert,
        Operation::Read,
        Operation::Update,
        Operation::Scan,
        Operation::ReadModifyWrite,
        Operation::Transfer,
        Operation::TransferDeclined,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Operation::Insert => "INSERT",
            Operation::Read => "READ",
            Operation::Update => "UPDATE",
            Operation::Scan => "SCAN",
            Operation::ReadModifyWrite => "READ-MODIFY-WRITE",
            Operation::Transfer => "TRANSFER",
            Operation::TransferDeclined => "TRANSFER-DECLINED",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// A named operation mix with its request distribution.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    pub name: &'static str,
    pub description: &'static str,
    /// Proportions of read, update, insert, scan and read-modify-write; they sum to 1.
    pub read: f64,
    pub update: f64,
    pub insert: f64,
    pub scan: f64,
    pub read_modify_write: f64,
    /// Share of bank transfers (1 in the bank workload, 0 in the YCSB ones).
    pub transfer: f64,
    pub distribution: Distribution,
    /// Scans read a uniformly chosen number of records in `1..=max_scan_length`.
    pub max_scan_length: u32,
}

impl Workload {
    fn mix(
        name: &'static str,
        description: &'static str,
        [read, update, insert, scan, read_modify_write]: [f64; 5],
        distribution: Distribution,
    ) -> Self {
        Workload {
            name,
            description,
            read,
            update,
            insert,
            scan,
            read_modify_write,
            transfer: 0.0,
            distribution,
            max_scan_length: 100,
        }
    }

    /// The bank: every request is one transfer between two accounts (uniform by default).
    pub fn bank() -> Workload {
        Workload {
            transfer: 1.0,
            ..Self::mix(
                "bank",
                "bank: 100% transfers between two accounts",
                [0.0; 5],
                Distribution::Uniform,
            )
        }
    }

    /// A core workload by letter, or the bank (`bank`), case-insensitive.
    pub fn named(name: &str) -> Option<Workload> {
        if name.eq_ignore_ascii_case("bank") {
            Some(Self::bank())
        } else {
            Self::core(name)
        }
    }

    pub fn is_bank(&self) -> bool {
        self.transfer > 0.0
    }

    /// The YCSB core workload of that letter (case-insensitive).
    pub fn core(letter: &str) -> Option<Workload> {
        use Distribution::*;
        Some(match letter.to_ascii_uppercase().as_str() {
            "A" => Self::mix(
                "A",
                "update heavy: 50% read, 50% update",
                [0.5, 0.5, 0.0, 0.0, 0.0],
                Zipfian,
            ),
            "B" => Self::mix(
                "B",
                "read mostly: 95% read, 5% update",
                [0.95, 0.05, 0.0, 0.0, 0.0],
                Zipfian,
            ),
            "C" => Self::mix(
                "C",
                "read only: 100% read",
                [1.0, 0.0, 0.0, 0.0, 0.0],
                Zipfian,
            ),
            "D" => Self::mix(
                "D",
                "read latest: 95% read, 5% insert",
                [0.95, 0.0, 0.05, 0.0, 0.0],
                Latest,
            ),
            "E" => Self::mix(
                "E",
                "short ranges: 95% scan, 5% insert",
                [0.0, 0.0, 0.05, 0.95, 0.0],
                Zipfian,
            ),
            "F" => Self::mix(
                "F",
                "read-modify-write: 50% read, 50% read-modify-write",
                [0.5, 0.0, 0.0, 0.0, 0.5],
                Zipfian,
            ),
            _ => return None,
        })
    }

    /// Draws the next operation by the workload's proportions.
    pub fn choose<R: Rng>(&self, rng: &mut R) -> Operation {
        let mut u: f64 = rng.gen();
        for (op, share) in [
            (Operation::Read, self.read),
            (Operation::Update, self.update),
            (Operation::Insert, self.insert),
            (Operation::Scan, self.scan),
            (Operation::ReadModifyWrite, self.read_modify_write),
            (Operation::Transfer, self.transfer),
        ] {
            if u < share {
                return op;
            }
            u -= share;
        }
        // Rounding left a sliver past the last share: give it to the largest one.
        self.largest()
    }

    fn largest(&self) -> Operation {
        [
            (Operation::Read, self.read),
            (Operation::Update, self.update),
            (Operation::Insert, self.insert),
            (Operation::Scan, self.scan),
            (Operation::ReadModifyWrite, self.read_modify_write),
            (Operation::Transfer, self.transfer),
        ]
        .into_iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(op, _)| op)
        .unwrap_or(Operation::Read)
    }
}

/// The key of record number `n`: YCSB's `user` prefix and the hashed number, zero-padded so
/// every key has the same length and records spread over the whole key space.
pub fn record_key(n: u64) -> Vec<u8> {
    format!("user{:020}", fnv_hash64(n)).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn every_core_workload_sums_to_one() {
        for letter in ["a", "B", "c", "D", "e", "F"] {
            let w = Workload::core(letter).unwrap();
            let sum = w.read + w.update + w.insert + w.scan + w.read_modify_write + w.transfer;
            assert!((sum - 1.0).abs() < 1e-9, "{letter}: {sum}");
            assert!(!w.is_bank());
        }
        assert!(Workload::core("G").is_none());
        assert!(Workload::core("bank").is_none());
    }

    #[test]
    fn the_bank_is_named_and_only_transfers() {
        let bank = Workload::named("Bank").unwrap();
        assert!(bank.is_bank());
        assert_eq!(bank.name, "bank");
        assert_eq!(bank.distribution, Distribution::Uniform);
        let mut rng = StdRng::seed_from_u64(3);
        assert!((0..1000).all(|_| bank.choose(&mut rng) == Operation::Transfer));
        assert_eq!(Workload::named("a").unwrap().name, "A");
        assert!(Workload::named("G").is_none());
        assert_eq!(Operation::Transfer.name(), "TRANSFER");
        assert_eq!(
            serde_json::to_value(Operation::TransferDeclined).unwrap(),
            "TRANSFER-DECLINED"
        );
    }

    #[test]
    fn chosen_operations_follow_the_mix() {
        let w = Workload::core("B").unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        let n = 100_000;
        let updates = (0..n)
            .filter(|_| w.choose(&mut rng) == Operation::Update)
            .count();
        let share = updates as f64 / n as f64;
        assert!((share - 0.05).abs() < 0.005, "{share}");

        let e = Workload::core("E").unwrap();
        let ops: Vec<_> = (0..10_000).map(|_| e.choose(&mut rng)).collect();
        assert!(ops
            .iter()
            .all(|o| matches!(o, Operation::Scan | Operation::Insert)));
        assert!(ops.contains(&Operation::Insert));
    }

    #[test]
    fn workload_d_reads_the_latest_records() {
        assert_eq!(
            Workload::core("D").unwrap().distribution,
            Distribution::Latest
        );
    }

    #[test]
    fn record_keys_have_one_length_and_are_distinct() {
        let keys: std::collections::BTreeSet<_> = (0..10_000).map(record_key).collect();
        assert_eq!(keys.len(), 10_000);
        assert!(keys.iter().all(|k| k.len() == 24 && k.starts_with(b"user")));
        // Hashing scatters consecutive records.
        let in_order: Vec<_> = (0..100).map(record_key).collect();
        assert!(!in_order.windows(2).all(|w| w[0] < w[1]));
    }
}
