//! Shared helpers of Shoal's benchmark programs.

use std::time::Duration;

pub mod writers;
pub mod ycsb;

/// Raftstore settings for in-process benchmark clusters: production-like clocks (a 900 ms lease,
/// 100 ms ticks) so elections, heartbeats and background ticks do not dominate what is measured.
pub fn bench_raft_config() -> raftstore::Config {
    raftstore::Config {
        raft_base_tick_interval: Duration::from_millis(100),
        raft_store_max_leader_lease: Duration::from_millis(900),
        store_heartbeat_interval: Duration::from_millis(200),
        store_unreachable_timeout: Duration::from_secs(2),
        split_check_tick_interval: Duration::from_secs(10),
        raft_log_gc_tick_interval: Duration::from_secs(3),
        ..raftstore::Config::for_tests()
    }
}

/// Latency percentiles of a sample, in microseconds.
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

pub fn percentiles(samples: &mut [Duration]) -> Percentiles {
    samples.sort_unstable();
    let at = |q: f64| {
        if samples.is_empty() {
            return 0.0;
        }
        let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i].as_secs_f64() * 1e6
    };
    Percentiles {
        p50: at(0.50),
        p99: at(0.99),
        max: at(1.0),
    }
}

/// Reads a counter from the default prometheus registry.
pub fn counter(name: &str) -> f64 {
    prometheus::gather()
        .iter()
        .filter(|f| f.get_name() == name)
        .flat_map(|f| f.get_metric().iter().map(|m| m.get_counter().get_value()))
        .sum()
}

/// Resident set size of this process in bytes (Linux).
pub fn rss_bytes() -> u64 {
    let Ok(s) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// CPU time (user + system) this process has used so far.
pub fn cpu_time() -> Duration {
    let Ok(s) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // Fields after the command name (which may contain spaces) start after ')'.
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the stat line (12 and 13 after the name).
    let total = ticks(11) + ticks(12);
    Duration::from_secs_f64(total as f64 / 100.0)
}
