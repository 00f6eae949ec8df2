//! Exponential backoff with jitter between reconnect attempts.

use std::time::Duration;

use rand::Rng;

pub struct Backoff {
    base: Duration,
    cap: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap,
            next: base,
        }
    }

    /// The next wait: the current step plus up to half of it at random, so many clients
    /// of a restarted PD do not all come back in the same instant.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.next;
        self.next = (self.next * 2).min(self.cap);
        let jitter_ms = rand::thread_rng().gen_range(0..=step.as_millis() as u64 / 2);
        step + Duration::from_millis(jitter_ms)
    }

    pub fn reset(&mut self) {
        self.next = self.base;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_reset() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(400));
        let d: Vec<_> = (0..5).map(|_| b.next_delay()).collect();
        let bounds = [(100, 150), (200, 300), (400, 600), (400, 600), (400, 600)];
        for (got, (lo, hi)) in d.iter().zip(bounds) {
            assert!(got.as_millis() >= lo && got.as_millis() <= hi, "{got:?}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(150));
    }
}
