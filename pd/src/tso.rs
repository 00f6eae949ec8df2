//! The timestamp oracle: strictly increasing hybrid timestamps `physical ms << 18 | logical`.
//! Before handing out a timestamp with physical time `p`, PD has persisted a window end above
//! `p`; a restart starts above the persisted window, so timestamps never go back even when
//! the clock does.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::storage::Storage;

/// Bits of the logical part.
pub const LOGICAL_BITS: u32 = 18;
/// Logical values stay below this.
pub const MAX_LOGICAL: u64 = 1 << LOGICAL_BITS;
/// Physical times (ms) stay below this: above it `version()` would lose the high bits.
pub const MAX_PHYSICAL: u64 = 1 << (u64::BITS - LOGICAL_BITS);

/// One hybrid timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp {
    pub physical: u64,
    pub logical: u64,
}

impl Timestamp {
    /// The single-number form clients compare.
    pub fn version(&self) -> u64 {
        (self.physical << LOGICAL_BITS) | self.logical
    }
}

/// Milliseconds since the unix epoch.
pub fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

type Clock = Box<dyn Fn() -> u64 + Send + Sync>;

struct State {
    physical: u64,
    logical: u64,
    /// Every timestamp handed out has `physical < window`, and `window` is on disk.
    window: u64,
}

pub struct Tso {
    storage: Arc<Storage>,
    save_interval_ms: u64,
    clock: Clock,
    state: Mutex<State>,
}

impl Tso {
    pub fn open(storage: Arc<Storage>, save_interval: Duration) -> Result<Tso> {
        Tso::open_with_clock(storage, save_interval, Box::new(unix_millis))
    }

    /// Like `open`, reading the time from `clock` (ms since the epoch).
    pub fn open_with_clock(
        storage: Arc<Storage>,
        save_interval: Duration,
        clock: Clock,
    ) -> Result<Tso> {
        let save_interval_ms = (save_interval.as_millis() as u64).max(1);
        let saved = storage.tso_window()?.unwrap_or(0);
        // Timestamps resume above the saved window; one that leaves no physical time a
        // timestamp can carry is damage, not a time (it would make versions wrap around).
        if saved >= MAX_PHYSICAL - 1 {
            return Err(Error::Corrupt {
                what: "timestamp window".into(),
                detail: format!(
                    "{saved} ms leaves no physical time below {MAX_PHYSICAL} for timestamps"
                ),
            });
        }
        let physical = clock().max(saved + 1);
        let window = physical.saturating_add(save_interval_ms);
        storage.save_tso_window(window)?;
        Ok(Tso {
            storage,
            save_interval_ms,
            clock,
            state: Mutex::new(State {
                physical,
                logical: 0,
                window,
            }),
        })
    }

    /// Reserves `count` consecutive timestamps and returns the last of them; the batch is
    /// `logical - count + 1 ..= logical` at the returned physical time.
    pub fn next(&self, count: u32) -> Result<Timestamp> {
        let count = u64::from(count);
        if count == 0 || count >= MAX_LOGICAL {
            return Err(Error::InvalidArgument(format!(
                "timestamp count must be between 1 and {}, got {count}",
                MAX_LOGICAL - 1
            )));
        }
        let mut s = self.state.lock();
        let now = (self.clock)();
        if now > s.physical {
            s.physical = now;
            s.logical = 0;
        }
        if s.logical + count >= MAX_LOGICAL {
            // The logical space of this millisecond is used up: borrow the next one.
            s.physical += 1;
            s.logical = 0;
        }
        if s.physical >= s.window {
            let window = s.physical.saturating_add(self.save_interval_ms);
            self.storage.save_tso_window(window)?;
            s.window = window;
        }
        s.logical += count;
        Ok(Timestamp {
            physical: s.physical,
            logical: s.logical,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    fn fixed_clock(t: Arc<AtomicU64>) -> Clock {
        Box::new(move || t.load(Ordering::SeqCst))
    }

    #[test]
    fn batches_return_their_last_timestamp_and_stay_increasing() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Arc::new(Storage::open(dir.path()).unwrap());
        let now = Arc::new(AtomicU64::new(1_000_000));
        let tso = Tso::open_with_clock(storage, Duration::from_secs(3), fixed_clock(now.clone()))
            .unwrap();
        let a = tso.next(10).unwrap();
        assert_eq!(a.logical, 10, "the first batch is 1..=10");
        let b = tso.next(1).unwrap();
        assert_eq!(b, Timestamp { logical: 11, ..a });
        // The clock goes back: timestamps keep increasing.
        now.store(5, Ordering::SeqCst);
        let c = tso.next(3).unwrap();
        assert!(c.version() - 2 > b.version());
        // Logical overflow moves to the next millisecond.
        let mut last = c;
        for _ in 0..5 {
            let t = tso.next((MAX_LOGICAL / 2) as u32).unwrap();
            assert!(t.logical < MAX_LOGICAL);
            assert!(t.version() - (MAX_LOGICAL / 2) + 1 > last.version());
            last = t;
        }
        assert!(last.physical > c.physical);
        assert!(tso.next(0).is_err());
        assert!(tso.next(MAX_LOGICAL as u32).is_err());
    }

    /// Found by `fuzz_pd_restart_on_damaged_metadata`: a saved window near `u64::MAX`
    /// overflowed (a panic at restart) and one above 46 bits gave wrapped versions.
    #[test]
    fn a_saved_window_no_timestamp_can_follow_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Arc::new(Storage::open(dir.path()).unwrap());
        let clock = || fixed_clock(Arc::new(AtomicU64::new(1_000_000)));
        for window in [
            u64::MAX,
            0xffff_ffff_0000_0000,
            MAX_PHYSICAL,
            MAX_PHYSICAL - 1,
        ] {
            storage.save_tso_window(window).unwrap();
            let opened = Tso::open_with_clock(storage.clone(), Duration::from_secs(3), clock());
            assert!(
                matches!(opened, Err(Error::Corrupt { .. })),
                "window {window} was accepted"
            );
        }
        storage.save_tso_window(MAX_PHYSICAL - 2).unwrap();
        let tso = Tso::open_with_clock(storage, Duration::from_secs(3), clock()).unwrap();
        let t = tso.next(1).unwrap();
        assert_eq!(t.physical, MAX_PHYSICAL - 1);
        assert_eq!(t.version() >> LOGICAL_BITS, MAX_PHYSICAL - 1);
    }

    #[test]
    fn timestamps_never_go_back_across_reopen_even_if_the_clock_does() {
        let dir = tempfile::tempdir().unwrap();
        let now = Arc::new(AtomicU64::new(10_000_000));
        let mut last = 0;
        for round in 0..3 {
            let storage = Arc::new(Storage::open(dir.path()).unwrap());
            let tso = Tso::open_with_clock(
                storage.clone(),
                Duration::from_millis(500),
                fixed_clock(now.clone()),
            )
            .unwrap();
            for i in 0..2000 {
                if i % 100 == 0 {
                    now.fetch_add(7, Ordering::SeqCst);
                }
                let t = tso.next(1 + (i % 5)).unwrap();
                assert!(t.version() > last, "round {round}");
                last = t.version();
            }
            drop(tso);
            storage.close().unwrap();
            // A restarted machine whose clock is behind.
            now.fetch_sub(100_000, Ordering::SeqCst);
        }
    }
}
