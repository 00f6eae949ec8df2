//! Latency, error and abort accounting: each client task keeps its own histograms (no sharing
//! on the hot path but one short lock for the live interval), merged when the phase ends; a
//! sampler turns the live interval into a timeline of throughput and p99 once a second.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::Mutex;

use super::workload::Operation;

/// Latencies are kept in microseconds, from 1 µs to 10 minutes, at 3 significant digits.
const MAX_LATENCY_US: u64 = 600_000_000;
/// How many error messages are kept to show the user why requests failed.
const KEPT_ERRORS: usize = 8;
/// How many abort messages are kept to show what transactions lost to, and how much of each
/// (the client spells out the whole key error).
const KEPT_ABORTS: usize = 3;
const ABORT_MESSAGE_CHARS: usize = 160;

pub fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts; a failure would be a programming error.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(MAX_LATENCY_US as u128) as u64
}

/// Why a request did not succeed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The store failed the request, it timed out, or it read a missing record.
    Error(String),
    /// An optimistic transaction lost a write conflict: expected under contention, so counted
    /// apart from errors (and not retried).
    Abort(String),
}

impl From<&str> for Failure {
    fn from(message: &str) -> Self {
        Failure::Error(message.to_string())
    }
}

/// `message` cut to at most `chars` characters, marked with `...` when cut.
fn shorten(message: String, chars: usize) -> String {
    match message.char_indices().nth(chars) {
        Some((at, _)) => format!("{}...", &message[..at]),
        None => message,
    }
}

/// One task's results per operation type.
pub struct TaskStats {
    pub latencies: Vec<Histogram<u64>>,
    pub errors: Vec<u64>,
    /// Transactions aborted by write conflicts (always zero through the raw API).
    pub aborts: Vec<u64>,
    /// Successful requests the workload issued (the read and update inside a read-modify-write
    /// are timed on their own rows but not counted again here).
    pub succeeded: u64,
}

impl Default for TaskStats {
    fn default() -> Self {
        TaskStats {
            latencies: Operation::ALL.iter().map(|_| new_histogram()).collect(),
            errors: vec![0; Operation::ALL.len()],
            aborts: vec![0; Operation::ALL.len()],
            succeeded: 0,
        }
    }
}

impl TaskStats {
    pub fn merge(&mut self, other: &TaskStats) {
        for (mine, theirs) in self.latencies.iter_mut().zip(&other.latencies) {
            // Same bounds on both sides, so adding cannot fail.
            let _ = mine.add(theirs);
        }
        for (mine, theirs) in self.errors.iter_mut().zip(&other.errors) {
            *mine += theirs;
        }
        for (mine, theirs) in self.aborts.iter_mut().zip(&other.aborts) {
            *mine += theirs;
        }
        self.succeeded += other.succeeded;
    }

    /// Times a step inside a larger request (the read of a read-modify-write).
    pub fn record_step(&mut self, op: Operation, latency: Duration) {
        self.latencies[op.index()].saturating_record(micros(latency));
    }
}

/// One second of the run.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TimelinePoint {
    /// Seconds since the phase started, at the end of the interval.
    pub t: f64,
    /// Requests per second that succeeded in the interval (as `total_ops` counts them);
    /// failed and aborted ones are in `errors` and `aborts`.
    pub ops_per_sec: f64,
    pub p99_us: u64,
    pub errors: u64,
    /// Absent from runs saved before the transactional API.
    #[serde(default)]
    pub aborts: u64,
}

/// State shared by all tasks of a phase.
pub struct Recorder {
    started: Instant,
    completed: AtomicU64,
    errors: AtomicU64,
    aborts: AtomicU64,
    interval: Mutex<Histogram<u64>>,
    sampled: Mutex<Sampled>,
    first_errors: Mutex<Vec<String>>,
    first_aborts: Mutex<Vec<String>>,
}

struct Sampled {
    at: Instant,
    completed: u64,
    errors: u64,
    aborts: u64,
    timeline: Vec<TimelinePoint>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    pub fn new() -> Self {
        let now = Instant::now();
        Recorder {
            started: now,
            completed: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            aborts: AtomicU64::new(0),
            interval: Mutex::new(new_histogram()),
            sampled: Mutex::new(Sampled {
                at: now,
                completed: 0,
                errors: 0,
                aborts: 0,
                timeline: Vec::new(),
            }),
            first_errors: Mutex::new(Vec::new()),
            first_aborts: Mutex::new(Vec::new()),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    pub fn aborts(&self) -> u64 {
        self.aborts.load(Ordering::Relaxed)
    }

    /// Records a finished request into the task's stats and the live interval.
    pub fn record(
        &self,
        stats: &mut TaskStats,
        op: Operation,
        latency: Duration,
        outcome: Result<(), Failure>,
    ) {
        self.completed.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Ok(()) => {
                let us = micros(latency);
                stats.latencies[op.index()].saturating_record(us);
                stats.succeeded += 1;
                self.interval.lock().saturating_record(us);
            }
            Err(Failure::Abort(message)) => {
                // Kept apart from the error messages: a few show what transactions lost to.
                stats.aborts[op.index()] += 1;
                self.aborts.fetch_add(1, Ordering::Relaxed);
                let mut kept = self.first_aborts.lock();
                if kept.len() < KEPT_ABORTS {
                    kept.push(shorten(
                        format!("{}: {message}", op.name()),
                        ABORT_MESSAGE_CHARS,
                    ));
                }
            }
            Err(Failure::Error(message)) => {
                stats.errors[op.index()] += 1;
                self.errors.fetch_add(1, Ordering::Relaxed);
                let mut kept = self.first_errors.lock();
                if kept.len() < KEPT_ERRORS {
                    kept.push(format!("{}: {message}", op.name()));
                }
            }
        }
    }

    /// Closes the current interval and appends it to the timeline; returns the new point.
    pub fn sample(&self) -> TimelinePoint {
        let histogram = std::mem::replace(&mut *self.interval.lock(), new_histogram());
        let now = Instant::now();
        let completed = self.completed();
        let errors = self.errors();
        let aborts = self.aborts();
        let mut s = self.sampled.lock();
        let secs = now.duration_since(s.at).as_secs_f64().max(1e-9);
        let (new_errors, new_aborts) = (errors - s.errors, aborts - s.aborts);
        // Counted before each request's outcome is: a sample between the two can see a
        // failure without its completion, hence saturating.
        let succeeded = (completed - s.completed).saturating_sub(new_errors + new_aborts);
        let point = TimelinePoint {
            t: now.duration_since(self.started).as_secs_f64(),
            ops_per_sec: succeeded as f64 / secs,
            p99_us: histogram.value_at_quantile(0.99),
            errors: errors - s.errors,
            aborts: aborts - s.aborts,
        };
        s.at = now;
        s.completed = completed;
        s.errors = errors;
        s.aborts = aborts;
        s.timeline.push(point.clone());
        point
    }

    pub fn timeline(&self) -> Vec<TimelinePoint> {
        self.sampled.lock().timeline.clone()
    }

    pub fn first_errors(&self) -> Vec<String> {
        self.first_errors.lock().clone()
    }

    pub fn first_aborts(&self) -> Vec<String> {
        self.first_aborts.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_latencies_and_errors_per_operation() {
        let r = Recorder::new();
        let mut stats = TaskStats::default();
        for ms in 1..=100 {
            r.record(
                &mut stats,
                Operation::Read,
                Duration::from_millis(ms),
                Ok(()),
            );
        }
        r.record(
            &mut stats,
            Operation::Update,
            Duration::from_millis(1),
            Err("boom".into()),
        );
        let reads = &stats.latencies[Operation::Read.index()];
        assert_eq!(reads.len(), 100);
        let p50 = reads.value_at_quantile(0.5);
        assert!((49_000..=51_000).contains(&p50), "{p50}");
        assert_eq!(stats.errors[Operation::Update.index()], 1);
        assert_eq!(stats.latencies[Operation::Update.index()].len(), 0);
        assert_eq!(r.completed(), 101);
        assert_eq!(r.errors(), 1);
        assert_eq!(r.first_errors(), vec!["UPDATE: boom".to_string()]);
        assert_eq!(r.aborts(), 0);
    }

    #[test]
    fn aborts_are_counted_apart_from_errors() {
        let r = Recorder::new();
        let mut stats = TaskStats::default();
        let abort = || Err(Failure::Abort("write conflict".into()));
        r.record(
            &mut stats,
            Operation::Update,
            Duration::from_millis(1),
            abort(),
        );
        r.record(
            &mut stats,
            Operation::Update,
            Duration::from_millis(1),
            abort(),
        );
        r.record(
            &mut stats,
            Operation::Read,
            Duration::from_millis(1),
            Err("x".into()),
        );
        r.record(
            &mut stats,
            Operation::Update,
            Duration::from_millis(1),
            Ok(()),
        );
        assert_eq!(stats.aborts[Operation::Update.index()], 2);
        assert_eq!(stats.errors[Operation::Update.index()], 0);
        assert_eq!(stats.errors[Operation::Read.index()], 1);
        assert_eq!(stats.latencies[Operation::Update.index()].len(), 1);
        assert_eq!(stats.succeeded, 1);
        assert_eq!((r.completed(), r.errors(), r.aborts()), (4, 1, 2));
        assert_eq!(r.first_errors(), vec!["READ: x".to_string()]);
        assert_eq!(
            r.first_aborts(),
            vec!["UPDATE: write conflict".to_string(); 2]
        );
        let point = r.sample();
        assert_eq!((point.errors, point.aborts), (1, 2));

        let mut merged = TaskStats::default();
        merged.merge(&stats);
        merged.merge(&stats);
        assert_eq!(merged.aborts[Operation::Update.index()], 4);
    }

    #[test]
    fn long_abort_messages_are_shortened() {
        assert_eq!(shorten("abc".into(), 3), "abc");
        assert_eq!(shorten("abcd".into(), 3), "abc...");
        assert_eq!(shorten("ééé".into(), 2), "éé...");
        let r = Recorder::new();
        let mut stats = TaskStats::default();
        let long = Err(Failure::Abort("x".repeat(1000)));
        r.record(&mut stats, Operation::Transfer, Duration::ZERO, long);
        let kept = &r.first_aborts()[0];
        assert!(
            kept.starts_with("TRANSFER: xxx") && kept.ends_with("..."),
            "{kept}"
        );
        assert_eq!(kept.chars().count(), ABORT_MESSAGE_CHARS + 3);
    }

    #[test]
    fn samples_split_the_run_into_intervals() {
        let r = Recorder::new();
        let mut stats = TaskStats::default();
        r.record(
            &mut stats,
            Operation::Read,
            Duration::from_millis(5),
            Ok(()),
        );
        let first = r.sample();
        assert!(first.ops_per_sec > 0.0);
        assert!((4_990..=5_010).contains(&first.p99_us), "{}", first.p99_us);
        let second = r.sample();
        assert_eq!(second.ops_per_sec, 0.0);
        assert_eq!(second.p99_us, 0);
        // Failed and aborted requests are no throughput.
        r.record(&mut stats, Operation::Read, Duration::ZERO, Err("x".into()));
        let abort = Err(Failure::Abort("lost".into()));
        r.record(&mut stats, Operation::Update, Duration::ZERO, abort);
        let third = r.sample();
        assert_eq!(third.ops_per_sec, 0.0);
        assert_eq!((third.errors, third.aborts), (1, 1));
        assert_eq!(r.timeline().len(), 3);
    }

    #[test]
    fn merged_stats_add_up() {
        let r = Recorder::new();
        let (mut a, mut b) = (TaskStats::default(), TaskStats::default());
        r.record(&mut a, Operation::Scan, Duration::from_micros(10), Ok(()));
        r.record(&mut b, Operation::Scan, Duration::from_micros(20), Ok(()));
        r.record(&mut b, Operation::Scan, Duration::ZERO, Err("x".into()));
        a.merge(&b);
        assert_eq!(a.latencies[Operation::Scan.index()].len(), 2);
        assert_eq!(a.errors[Operation::Scan.index()], 1);
        assert_eq!(a.succeeded, 2);
        a.record_step(Operation::Read, Duration::from_micros(5));
        assert_eq!(a.latencies[Operation::Read.index()].len(), 1);
        assert_eq!(a.succeeded, 2);
    }
}
