//! How the bank workload keeps its books: account keys, balances as stored, and what a
//! transfer writes. Pure functions, shared by the workload and the backends that run it.

pub const ACCOUNT_PREFIX: &str = "bank";

/// The key of account `n`: zero-padded, so key order is account order and the accounts sit
/// together, apart from YCSB's `user` records.
pub fn account_key(n: u64) -> Vec<u8> {
    format!("{ACCOUNT_PREFIX}{n:010}").into_bytes()
}

/// The account number of an account key.
pub fn account_number(key: &[u8]) -> Result<u64, String> {
    std::str::from_utf8(key)
        .ok()
        .and_then(|k| k.strip_prefix(ACCOUNT_PREFIX))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("{:?} is not an account key", String::from_utf8_lossy(key)))
}

/// Balances are stored as decimal text, so `shoal-ctl txn get bank0000000042` shows them.
pub fn encode_balance(balance: u64) -> Vec<u8> {
    balance.to_string().into_bytes()
}

pub fn decode_balance(value: &[u8]) -> Result<u64, String> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            format!(
                "an account holds {:?}, not a balance",
                String::from_utf8_lossy(value)
            )
        })
}

/// What a transfer writes, given the balances it read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferPlan {
    /// The new balances of the source and the destination.
    Move { from: u64, to: u64 },
    /// The source holds less than the amount (or the destination would overflow): no write.
    Declined,
}

pub fn plan_transfer(from_balance: u64, to_balance: u64, amount: u64) -> TransferPlan {
    match (
        from_balance.checked_sub(amount),
        to_balance.checked_add(amount),
    ) {
        (Some(from), Some(to)) => TransferPlan::Move { from, to },
        _ => TransferPlan::Declined,
    }
}
