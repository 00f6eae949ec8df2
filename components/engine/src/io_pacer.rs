//! Paces bulk file I/O (snapshot files) to a byte rate, so a large region's snapshot does not
//! take the whole disk from the write path's fsyncs (TiKV bounds the same work with
//! `snap-io-max-bytes-per-sec`).

use std::time::{Duration, Instant};

/// Sleeps are taken in steps of at least this much I/O, so pacing costs few syscalls.
const STEP_BYTES: u64 = 1024 * 1024;

/// Keeps a stream of I/O at or below `bytes_per_sec` on average since it began.
#[derive(Debug)]
pub struct IoPacer {
    /// 0: unlimited.
    bytes_per_sec: u64,
    started: Instant,
    done: u64,
    unslept: u64,
}

impl IoPacer {
    /// A pacer for `bytes_per_sec` (0: no limit), starting now.
    pub fn new(bytes_per_sec: u64) -> IoPacer {
        IoPacer {
            bytes_per_sec,
            started: Instant::now(),
            done: 0,
            unslept: 0,
        }
    }

    /// A pacer that never waits.
    pub fn unlimited() -> IoPacer {
        IoPacer::new(0)
    }

    /// Counts `bytes` of I/O and, once a step's worth has gathered, sleeps for as long as the
    /// stream is ahead of its rate.
    pub fn consume(&mut self, bytes: u64) {
        if self.bytes_per_sec == 0 {
            return;
        }
        self.done += bytes;
        self.unslept += bytes;
        if self.unslept < STEP_BYTES {
            return;
        }
        self.unslept = 0;
        if let Some(wait) = self.ahead_by(self.started.elapsed()) {
            std::thread::sleep(wait);
        }
    }

    /// How far ahead of its rate the stream is after `elapsed`, if it is.
    fn ahead_by(&self, elapsed: Duration) -> Option<Duration> {
        let due = Duration::from_secs_f64(self.done as f64 / self.bytes_per_sec as f64);
        due.checked_sub(elapsed).filter(|d| !d.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_ahead_of_its_rate_waits_the_difference() {
        let mut p = IoPacer::new(10 * 1024 * 1024);
        p.done = 20 * 1024 * 1024;
        assert_eq!(
            p.ahead_by(Duration::from_millis(500)),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(p.ahead_by(Duration::from_secs(2)), None);
        assert_eq!(p.ahead_by(Duration::from_secs(3)), None);
    }

    #[test]
    fn an_unlimited_pacer_counts_nothing() {
        let mut p = IoPacer::unlimited();
        p.consume(u64::MAX / 2);
        assert_eq!(p.done, 0);
    }
}
