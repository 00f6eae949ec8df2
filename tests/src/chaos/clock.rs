//! Clock skew without touching the machine's clock: a process started with libfaketime
//! preloaded sees its wall clock shifted by an offset, and every clock it reads (the monotonic
//! one too) and every sleep it takes running at a different rate.
//!
//! A store's leader lease is counted on its own monotonic clock, so a store whose clock runs
//! slow holds a lease longer in real time. Shoal, like TiKV and etcd, assumes bounded drift:
//! the harness's lease (800 ms) is 80 % of the election timeout (1 s), so clocks running within
//! 10 % of each other keep leases safe, and that is the range skews are drawn from here.

use std::fmt;
use std::path::Path;

use rand::Rng;

/// Where distributions install the multi-threaded libfaketime (Debian's `faketime` package).
const LIBFAKETIME_PATHS: [&str; 3] = [
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/faketime/libfaketimeMT.so.1",
];

/// The installed libfaketime, if any.
pub fn libfaketime() -> Option<&'static str> {
    LIBFAKETIME_PATHS
        .into_iter()
        .find(|p| Path::new(p).exists())
}

/// A skewed clock: wall time shifted by `offset_secs`, all time running at `rate`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClockSkew {
    pub offset_secs: i64,
    pub rate: f64,
}

impl ClockSkew {
    /// A random skew: an offset of 1 to 60 minutes either way, a rate within 10 % of real.
    pub fn random(rng: &mut impl Rng) -> ClockSkew {
        let minutes = rng.gen_range(1..=60i64);
        let sign = if rng.gen_bool(0.5) { 1 } else { -1 };
        ClockSkew {
            offset_secs: sign * minutes * 60,
            rate: rng.gen_range(0.90..=1.10),
        }
    }

    /// `FAKETIME`'s spec for this skew (`+600 x0.95`).
    pub fn spec(&self) -> String {
        format!("{:+} x{:.3}", self.offset_secs, self.rate)
    }

    /// Environment that starts a process on this clock, or `None` without libfaketime.
    pub fn env(&self) -> Option<Vec<(String, String)>> {
        let lib = libfaketime()?;
        Some(vec![
            ("LD_PRELOAD".into(), lib.into()),
            ("FAKETIME".into(), self.spec()),
        ])
    }
}

impl fmt::Display for ClockSkew {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "clock {:+} s, running at x{:.3}",
            self.offset_secs, self.rate
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn random_skews_stay_in_bounds_and_spell_faketime_specs() {
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..1000 {
            let s = ClockSkew::random(&mut rng);
            assert!((60..=3600).contains(&s.offset_secs.abs()), "{s:?}");
            assert!((0.9..=1.1).contains(&s.rate), "{s:?}");
        }
        let s = ClockSkew {
            offset_secs: -600,
            rate: 0.95,
        };
        assert_eq!(s.spec(), "-600 x0.950");
        assert_eq!(
            ClockSkew {
                offset_secs: 60,
                rate: 1.0
            }
            .spec(),
            "+60 x1.000"
        );
    }

    #[test]
    fn a_skewed_process_sees_the_offset() {
        let Some(env) = (ClockSkew {
            offset_secs: 7200,
            rate: 1.0,
        })
        .env() else {
            eprintln!("skipped: libfaketime is not installed");
            return;
        };
        let out = std::process::Command::new("date")
            .arg("+%s")
            .envs(env)
            .output()
            .unwrap();
        let faked: i64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        let real = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!(
            (faked - real - 7200).abs() < 60,
            "faked {faked}, real {real}"
        );
    }
}
