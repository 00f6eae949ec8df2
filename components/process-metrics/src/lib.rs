//! The `process_*` metrics every Prometheus client exports (CPU seconds, resident and virtual
//! memory, open files, threads, start time), with CPU time to the clock tick.
//!
//! The prometheus crate's own process collector keeps `process_cpu_seconds_total` as an
//! integer counter of whole seconds, so a process that used 0.9 s of CPU shows 0 and
//! `rate(process_cpu_seconds_total[1m])` moves in steps of 1/60 of a core. [`ProcessMetrics`]
//! wraps that collector and reports the counter from `/proc/self/stat` in fractional seconds.

use prometheus::core::{Collector, Desc};
use prometheus::process_collector::ProcessCollector;
use prometheus::proto::MetricFamily;

/// The metric whose value is replaced.
const CPU_SECONDS: &str = "process_cpu_seconds_total";

/// A collector of this process's `process_*` metrics; register it once per registry.
pub struct ProcessMetrics {
    inner: ProcessCollector,
}

impl ProcessMetrics {
    /// The metrics of the calling process.
    pub fn for_self() -> ProcessMetrics {
        ProcessMetrics {
            inner: ProcessCollector::for_self(),
        }
    }
}

impl Collector for ProcessMetrics {
    fn desc(&self) -> Vec<&Desc> {
        self.inner.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut families = self.inner.collect();
        if let Some(seconds) = cpu_seconds() {
            for family in families.iter_mut().filter(|f| f.get_name() == CPU_SECONDS) {
                for metric in family.mut_metric().iter_mut() {
                    metric.mut_counter().set_value(seconds);
                }
            }
        }
        families
    }
}

/// User plus system CPU time of this process so far, in seconds (resolution: one clock tick,
/// usually 10 ms); None where `/proc/self/stat` cannot be read.
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let ticks = cpu_ticks(&stat)?;
    // SAFETY: sysconf only reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (per_second > 0).then(|| ticks as f64 / per_second as f64)
}

/// utime + stime (fields 14 and 15 of `/proc/<pid>/stat`, in clock ticks). The fields are
/// counted after the command name, which is in parentheses and may hold spaces or `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_read_past_a_name_with_spaces_and_parentheses() {
        let stat = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 37 0 0 20 0 9 0 \
                    1000 2000000 500 18446744073709551615";
        assert_eq!(cpu_ticks(stat), Some(287));
        assert_eq!(cpu_ticks("4242 (x) S 1"), None);
        assert_eq!(cpu_ticks("no name"), None);
    }

    #[test]
    fn cpu_time_is_reported_below_a_second() {
        // Burn a little CPU: far less than a second, which the integer counter showed as 0.
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_millis(50) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let registry = prometheus::Registry::new();
        registry
            .register(Box::new(ProcessMetrics::for_self()))
            .unwrap();
        let families = registry.gather();
        let cpu = families
            .iter()
            .find(|f| f.get_name() == CPU_SECONDS)
            .unwrap();
        let value = cpu.get_metric()[0].get_counter().get_value();
        assert!(value > 0.0, "{value}");
        assert!(families
            .iter()
            .any(|f| f.get_name() == "process_resident_memory_bytes"));
    }
}
