//! The bank workload: `accounts` accounts, each loaded with the same balance; every request is
//! one transaction moving a random amount between two distinct random accounts (when the
//! source holds that much). Transactions keep the total constant whatever the interleaving,
//! so one snapshot of all accounts at the end must add up to `accounts × initial balance`.

use std::time::{Duration, Instant};

use rand::Rng;

use super::backend::Backend;
pub use super::bank_ledger::{
    account_key, account_number, decode_balance, encode_balance, plan_transfer, TransferPlan,
};
use super::generator::KeyChooser;
use super::report::Summary;
use super::workload::Operation;

/// The bank's size and money (`--accounts`, `--initial-balance`, `--max-transfer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BankSpec {
    pub accounts: u64,
    pub initial_balance: u64,
    /// Each transfer moves a uniformly drawn amount in `1..=max_transfer`.
    pub max_transfer: u64,
}

impl BankSpec {
    /// What every snapshot of all accounts must add up to.
    pub fn expected_total(&self) -> Option<u64> {
        self.accounts.checked_mul(self.initial_balance)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.accounts < 2 {
            return Err("--accounts must be at least 2 (a transfer needs two accounts)".into());
        }
        if self.max_transfer == 0 {
            return Err("--max-transfer must be at least 1".into());
        }
        if self.expected_total().is_none() {
            return Err("--accounts × --initial-balance does not fit in 64 bits".into());
        }
        Ok(())
    }

    /// Draws the amount of the next transfer.
    pub fn amount<R: Rng>(&self, rng: &mut R) -> u64 {
        rng.gen_range(1..=self.max_transfer.max(1))
    }
}

/// Two distinct accounts below `accounts` (at least 2), source first, drawn by `chooser`.
pub fn pick_accounts<R: Rng>(chooser: &mut KeyChooser, rng: &mut R, accounts: u64) -> (u64, u64) {
    let from = chooser.next(rng, accounts);
    // A skewed chooser may draw the same hot account again: a few more tries, then a neighbour.
    for _ in 0..16 {
        let to = chooser.next(rng, accounts);
        if to != from {
            return (from, to);
        }
    }
    (from, (from + 1) % accounts)
}

/// The final check: one snapshot of every account against `accounts × initial balance`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BankCheck {
    pub accounts: u64,
    /// Accounts the snapshot held.
    pub found: u64,
    pub expected_total: u64,
    /// The sum of their balances (saturated at u64::MAX).
    pub total: u64,
    /// Snapshot reads it took (a read that meets locks still alive is tried again).
    pub reads: u32,
    /// Why no read succeeded, when none did.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub read_error: Option<String>,
    pub ok: bool,
}

impl BankCheck {
    /// Judges the balances one snapshot showed (`(account, balance)` pairs).
    pub fn judge(spec: &BankSpec, balances: &[(u64, u64)], reads: u32) -> BankCheck {
        let expected_total = spec.expected_total().unwrap_or(u64::MAX);
        let mut seen: Vec<u64> = balances.iter().map(|b| b.0).collect();
        seen.sort_unstable();
        seen.dedup();
        let distinct = seen.len() == balances.len();
        let in_range = seen.iter().all(|n| *n < spec.accounts);
        let total = balances
            .iter()
            .try_fold(0u64, |sum, (_, b)| sum.checked_add(*b));
        let found = balances.len() as u64;
        BankCheck {
            accounts: spec.accounts,
            found,
            expected_total,
            total: total.unwrap_or(u64::MAX),
            reads,
            read_error: None,
            ok: distinct && in_range && found == spec.accounts && total == spec.expected_total(),
        }
    }

    /// The check when no snapshot read got through.
    pub fn unreadable(spec: &BankSpec, reads: u32, error: String) -> BankCheck {
        BankCheck {
            accounts: spec.accounts,
            found: 0,
            expected_total: spec.expected_total().unwrap_or(u64::MAX),
            total: 0,
            reads,
            read_error: Some(error),
            ok: false,
        }
    }

    pub fn line(&self) -> String {
        if let Some(e) = &self.read_error {
            return format!(
                "bank check FAILED: no snapshot of the {} accounts could be read in {} tries: {e}",
                self.accounts, self.reads
            );
        }
        format!(
            "bank check {}: {} of {} accounts hold {} in one snapshot, expected {}",
            if self.ok { "ok" } else { "FAILED" },
            self.found,
            self.accounts,
            self.total,
            self.expected_total
        )
    }
}

/// Reads every account in one snapshot and checks the total. A read that fails (it met a lock
/// left by a transfer whose rollback failed, or an async-commit lock, which client 0.4's reads
/// do not resolve) is followed by a clean-up of the accounts' locks and tried again at a fresh
/// timestamp, until `patience` has passed.
pub async fn check(backend: &Backend, spec: &BankSpec, patience: Duration) -> BankCheck {
    let deadline = Instant::now() + patience;
    let mut reads = 0;
    loop {
        reads += 1;
        match backend.read_accounts(spec.accounts).await {
            Ok(balances) => return BankCheck::judge(spec, &balances, reads),
            Err(e) if Instant::now() >= deadline => {
                return BankCheck::unreadable(spec, reads, e.to_string())
            }
            Err(_) => {
                let _ = backend.clean_up_account_locks(spec.accounts).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// What a bank run measured, as `--json` reports it next to the phase's summary.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BankResult {
    #[serde(flatten)]
    pub spec: BankSpec,
    /// Transactions run in, e.g. `pessimistic`.
    pub txn_mode: String,
    /// Committed transfers that moved money.
    pub transfers: u64,
    pub transfers_per_sec: f64,
    /// Transfers that lost a conflict (not retried).
    pub aborts: u64,
    pub aborts_per_sec: f64,
    /// Transfers that found too little money and wrote nothing.
    pub declined: u64,
    /// Transfers that failed otherwise.
    pub errors: u64,
    /// Latency of a committed transfer, microseconds.
    pub p50_us: u64,
    pub p99_us: u64,
    /// Absent when the run phase did not run (`--phase load`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub check: Option<BankCheck>,
}

impl BankResult {
    /// The bank's figures from the run phase's summary.
    pub fn from_run(
        spec: BankSpec,
        txn_mode: &str,
        run: &Summary,
        check: Option<BankCheck>,
    ) -> BankResult {
        let secs = run.elapsed_secs.max(1e-9);
        let transfer = run.operations.get(Operation::Transfer.name());
        let declined = run
            .operations
            .get(Operation::TransferDeclined.name())
            .map_or(0, |s| s.count);
        let aborts = run.aborts;
        BankResult {
            spec,
            txn_mode: txn_mode.to_string(),
            transfers: transfer.map_or(0, |s| s.count),
            transfers_per_sec: transfer.map_or(0, |s| s.count) as f64 / secs,
            aborts,
            aborts_per_sec: aborts as f64 / secs,
            declined,
            errors: run.errors,
            p50_us: transfer.map_or(0, |s| s.p50_us),
            p99_us: transfer.map_or(0, |s| s.p99_us),
            check,
        }
    }

    pub fn line(&self) -> String {
        format!(
            "bank ({}): {} transfers ({:.0}/s), {} aborts ({:.0}/s), {} declined, {} errors; \
             transfer p50 {:.2} ms, p99 {:.2} ms",
            self.txn_mode,
            self.transfers,
            self.transfers_per_sec,
            self.aborts,
            self.aborts_per_sec,
            self.declined,
            self.errors,
            self.p50_us as f64 / 1000.0,
            self.p99_us as f64 / 1000.0
        )
    }
}

/// Bank runs as one markdown table, a row per run (typically one per transaction mode).
pub fn markdown_table(results: &[BankResult]) -> String {
    let mut out = String::from(
        "| txn mode | accounts | transfers/s | aborts/s | declined | errors | p50 ms | p99 ms | check |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for r in results {
        let check = match &r.check {
            Some(c) if c.ok => format!("ok ({})", c.total),
            Some(c) if c.read_error.is_some() => "unreadable".to_string(),
            Some(c) => format!("FAILED ({} of {})", c.total, c.expected_total),
            None => "-".to_string(),
        };
        out.push_str(&format!(
            "| {} | {} | {:.0} | {:.0} | {} | {} | {:.2} | {:.2} | {check} |\n",
            r.txn_mode,
            r.spec.accounts,
            r.transfers_per_sec,
            r.aborts_per_sec,
            r.declined,
            r.errors,
            r.p50_us as f64 / 1000.0,
            r.p99_us as f64 / 1000.0,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ycsb::generator::Distribution;
    use crate::ycsb::recorder::{Failure, Recorder, TaskStats};
    use crate::ycsb::report::RunParameters;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn spec() -> BankSpec {
        BankSpec {
            accounts: 4,
            initial_balance: 100,
            max_transfer: 10,
        }
    }

    #[test]
    fn spec_is_checked() {
        assert_eq!(spec().expected_total(), Some(400));
        assert!(spec().validate().is_ok());
        let bad = |f: fn(&mut BankSpec)| {
            let mut s = spec();
            f(&mut s);
            s.validate().unwrap_err()
        };
        assert!(bad(|s| s.accounts = 1).contains("--accounts"));
        assert!(bad(|s| s.max_transfer = 0).contains("--max-transfer"));
        assert!(bad(|s| s.initial_balance = u64::MAX).contains("64 bits"));
        let mut rng = StdRng::seed_from_u64(1);
        let amounts: Vec<u64> = (0..1000).map(|_| spec().amount(&mut rng)).collect();
        assert!(amounts.iter().all(|a| (1..=10).contains(a)));
        assert!(amounts.contains(&1) && amounts.contains(&10));
    }

    #[test]
    fn account_keys_sort_by_number_and_parse_back() {
        let keys: Vec<Vec<u8>> = [0, 9, 10, 999, 1_000_000].map(account_key).to_vec();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(keys[0], b"bank0000000000");
        for n in [0, 42, u32::MAX as u64] {
            assert_eq!(account_number(&account_key(n)), Ok(n));
        }
        assert!(account_number(b"user123").is_err());
        assert!(account_number(b"bankxyz").is_err());
        assert!(!account_key(1).starts_with(b"user"));
    }

    #[test]
    fn balances_round_trip() {
        for b in [0, 1, 1000, u64::MAX] {
            assert_eq!(decode_balance(&encode_balance(b)), Ok(b));
        }
        assert_eq!(encode_balance(250), b"250");
        assert!(decode_balance(b"-1").is_err());
        assert!(decode_balance(b"").is_err());
        assert!(decode_balance(&[0xff]).is_err());
    }

    #[test]
    fn picked_accounts_are_distinct_and_in_range() {
        let mut rng = StdRng::seed_from_u64(7);
        for distribution in [Distribution::Uniform, Distribution::Zipfian] {
            for accounts in [2, 3, 1000] {
                let mut chooser = KeyChooser::new(distribution, accounts);
                for _ in 0..2000 {
                    let (from, to) = pick_accounts(&mut chooser, &mut rng, accounts);
                    assert_ne!(from, to);
                    assert!(from < accounts && to < accounts);
                }
            }
        }
        // Both directions come up.
        let mut chooser = KeyChooser::new(Distribution::Uniform, 2);
        let pairs: std::collections::BTreeSet<_> = (0..100)
            .map(|_| pick_accounts(&mut chooser, &mut rng, 2))
            .collect();
        assert_eq!(pairs.len(), 2);
    }

    #[test]
    fn transfers_move_money_only_when_the_source_has_it() {
        assert_eq!(
            plan_transfer(100, 5, 30),
            TransferPlan::Move { from: 70, to: 35 }
        );
        assert_eq!(
            plan_transfer(30, 0, 30),
            TransferPlan::Move { from: 0, to: 30 }
        );
        assert_eq!(plan_transfer(29, 0, 30), TransferPlan::Declined);
        assert_eq!(plan_transfer(100, u64::MAX, 1), TransferPlan::Declined);
    }

    #[test]
    fn random_transfers_keep_the_total() {
        // The bookkeeping alone, applied one transfer at a time, as committed transactions do.
        let spec = BankSpec {
            accounts: 50,
            initial_balance: 20,
            max_transfer: 15,
        };
        let mut balances = vec![spec.initial_balance; spec.accounts as usize];
        let mut rng = StdRng::seed_from_u64(11);
        let mut chooser = KeyChooser::new(Distribution::Zipfian, spec.accounts);
        let (mut moved, mut declined) = (0, 0);
        for _ in 0..20_000 {
            let (from, to) = pick_accounts(&mut chooser, &mut rng, spec.accounts);
            let amount = spec.amount(&mut rng);
            match plan_transfer(balances[from as usize], balances[to as usize], amount) {
                TransferPlan::Move { from: f, to: t } => {
                    balances[from as usize] = f;
                    balances[to as usize] = t;
                    moved += 1;
                }
                TransferPlan::Declined => declined += 1,
            }
        }
        assert!(
            moved > 0 && declined > 0,
            "{moved} moved, {declined} declined"
        );
        let pairs: Vec<(u64, u64)> = balances
            .iter()
            .enumerate()
            .map(|(n, b)| (n as u64, *b))
            .collect();
        let check = BankCheck::judge(&spec, &pairs, 1);
        assert!(check.ok, "{check:?}");
        assert_eq!(check.total, 1000);
        assert!(check
            .line()
            .starts_with("bank check ok: 50 of 50 accounts hold 1000"));
    }

    #[test]
    fn the_check_catches_money_appearing_vanishing_or_accounts_missing() {
        let s = spec();
        let good = [(0, 100), (1, 50), (2, 150), (3, 100)];
        assert!(BankCheck::judge(&s, &good, 1).ok);
        let vanished = [(0, 100), (1, 50), (2, 149), (3, 100)];
        let check = BankCheck::judge(&s, &vanished, 2);
        assert!(!check.ok);
        assert_eq!(
            (check.total, check.expected_total, check.reads),
            (399, 400, 2)
        );
        assert!(check.line().starts_with("bank check FAILED"));
        // Four balances adding up, but one account missing and another read twice.
        assert!(!BankCheck::judge(&s, &[(0, 100), (1, 100), (1, 100), (3, 100)], 1).ok);
        assert!(!BankCheck::judge(&s, &[(0, 200), (1, 100), (2, 100)], 1).ok);
        assert!(!BankCheck::judge(&s, &[(0, 100), (1, 100), (2, 100), (7, 100)], 1).ok);
        let overflow = BankCheck::judge(&s, &[(0, u64::MAX), (1, 1), (2, 0), (3, 0)], 1);
        assert!(!overflow.ok);
        assert_eq!(overflow.total, u64::MAX);
        let unreadable = BankCheck::unreadable(&s, 9, "locked".into());
        assert!(!unreadable.ok);
        assert!(unreadable.line().contains("in 9 tries: locked"));
    }

    #[test]
    fn the_result_takes_rates_and_latencies_from_the_run() {
        let r = Recorder::new();
        let mut stats = TaskStats::default();
        for ms in 1..=100 {
            r.record(
                &mut stats,
                Operation::Transfer,
                Duration::from_millis(ms),
                Ok(()),
            );
        }
        for _ in 0..3 {
            r.record(
                &mut stats,
                Operation::TransferDeclined,
                Duration::from_millis(1),
                Ok(()),
            );
        }
        for _ in 0..20 {
            let abort = Err(Failure::Abort("write conflict".into()));
            r.record(&mut stats, Operation::Transfer, Duration::ZERO, abort);
        }
        r.record(
            &mut stats,
            Operation::Transfer,
            Duration::ZERO,
            Err("refused".into()),
        );
        let params = RunParameters {
            target: "shoal".into(),
            api: "txn".into(),
            txn_mode: Some("pessimistic".into()),
            workload: "bank".into(),
            phase: "run".into(),
            distribution: "uniform".into(),
            records: 4,
            concurrency: 2,
            value_size: 0,
            seed: 1,
        };
        let run = Summary::new(params, &stats, 4.0, Vec::new(), r.first_errors());
        let result = BankResult::from_run(spec(), "pessimistic", &run, None);
        assert_eq!(
            (
                result.transfers,
                result.aborts,
                result.declined,
                result.errors
            ),
            (100, 20, 3, 1)
        );
        assert_eq!(result.transfers_per_sec, 25.0);
        assert_eq!(result.aborts_per_sec, 5.0);
        assert!(
            (49_000..=51_000).contains(&result.p50_us),
            "{}",
            result.p50_us
        );
        assert!(
            (98_000..=100_000).contains(&result.p99_us),
            "{}",
            result.p99_us
        );
        let line = result.line();
        assert!(
            line.starts_with("bank (pessimistic): 100 transfers (25/s), 20 aborts (5/s)"),
            "{line}"
        );
        let json = serde_json::to_value(&result).unwrap();
        assert_eq!(json["accounts"], 4);
        assert_eq!(json["txn_mode"], "pessimistic");
        assert!(json.get("check").is_none());
        let back: BankResult = serde_json::from_value(json).unwrap();
        assert_eq!(back, result);

        let mut checked = result.clone();
        checked.check = Some(BankCheck::judge(
            &spec(),
            &[(0, 100), (1, 100), (2, 100), (3, 100)],
            1,
        ));
        let md = markdown_table(&[result, checked]);
        assert!(md.starts_with("| txn mode | accounts |"), "{md}");
        assert!(
            md.contains("| pessimistic | 4 | 25 | 5 | 3 | 1 | 50.") && md.contains("| - |"),
            "{md}"
        );
        assert!(md.contains("| ok (400) |"), "{md}");
    }
}
