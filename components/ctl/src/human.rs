//! Human-readable sizes and ages.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::model::Quantity;

/// `1536` -> `1.5 KiB`; sizes under 1 KiB print in bytes.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A byte quantity from PD: numbers are formatted, text is shown as sent.
pub fn quantity_bytes(q: &Quantity) -> String {
    match q {
        Quantity::Number(n) => bytes(*n),
        Quantity::Text(t) => t.clone(),
    }
}

/// Like [`quantity_bytes`], with `-` for a quantity PD does not know.
pub fn optional_bytes(q: Option<&Quantity>) -> String {
    q.map_or_else(|| "-".to_string(), quantity_bytes)
}

/// Seconds as a short age: `42s`, `3m05s`, `2h03m`, `4d02h`.
pub fn age(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..=86_399 => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d{:02}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

/// Seconds since the Unix epoch, now.
pub fn now_unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// How long ago a heartbeat given in Unix seconds (PD's `last_heartbeat_ts`) was, as of
/// `now_secs`. `0` means the store never sent one.
pub fn heartbeat_age(ts: &Quantity, now_secs: u64) -> String {
    match ts {
        Quantity::Number(0) => "never".to_string(),
        Quantity::Number(secs) => format!("{} ago", age(now_secs.saturating_sub(*secs))),
        Quantity::Text(t) => t.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_use_binary_units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(256 * 1024 * 1024), "256.0 MiB");
        assert_eq!(bytes(3 * 1024 * 1024 * 1024 * 1024), "3.0 TiB");
    }

    #[test]
    fn ages_pick_two_units() {
        assert_eq!(age(42), "42s");
        assert_eq!(age(185), "3m05s");
        assert_eq!(age(7380), "2h03m");
        assert_eq!(age(4 * 86_400 + 7200), "4d02h");
    }

    #[test]
    fn heartbeat_age_is_relative_to_now() {
        assert_eq!(heartbeat_age(&Quantity::Number(10_000), 10_005), "5s ago");
        assert_eq!(heartbeat_age(&Quantity::Number(0), 10_005), "never");
        // A clock a little ahead of ours shows as just now, not as an error.
        assert_eq!(heartbeat_age(&Quantity::Number(10_009), 10_005), "0s ago");
        assert_eq!(heartbeat_age(&Quantity::Text("x".into()), 1), "x");
    }
}
