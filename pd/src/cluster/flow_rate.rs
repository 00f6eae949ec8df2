//! A region's read and write flow per second, measured from its leader's reports.
//!
//! Each region heartbeat carries the bytes and keys the leader served since its previous
//! report and that interval in whole unix seconds (kvproto's `TimeInterval`). One report is a
//! poor measure on its own: a leader's first report covers zero seconds, and with a
//! sub-second heartbeat interval the whole-second bounds round most intervals to zero or one.
//! So reports are summed into a window until it spans [`RATE_WINDOW_SECS`], and the window's
//! totals over its span become the region's rate. A window's ends are the first report's
//! start and the last report's end, so the rounding of the bounds in between cancels out.

use proto::pdpb::RegionHeartbeatRequest;

/// The shortest span (seconds) a rate is measured over. Fleet leaders report every 60 s, so
/// each report there completes a window; faster heartbeats fill one over several reports.
pub const RATE_WINDOW_SECS: u64 = 5;

/// Bytes and keys written and read, as totals or per second.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowTotals {
    pub written_bytes: u64,
    pub written_keys: u64,
    pub read_bytes: u64,
    pub read_keys: u64,
}

impl FlowTotals {
    fn add(&mut self, other: &FlowTotals) {
        self.written_bytes = self.written_bytes.saturating_add(other.written_bytes);
        self.written_keys = self.written_keys.saturating_add(other.written_keys);
        self.read_bytes = self.read_bytes.saturating_add(other.read_bytes);
        self.read_keys = self.read_keys.saturating_add(other.read_keys);
    }

    fn per_second(&self, secs: u64) -> FlowTotals {
        let secs = secs.max(1);
        FlowTotals {
            written_bytes: self.written_bytes / secs,
            written_keys: self.written_keys / secs,
            read_bytes: self.read_bytes / secs,
            read_keys: self.read_keys / secs,
        }
    }

    /// Keys the region's leader handles: every key read (it serves the reads) and every key
    /// written (it proposes the writes). The hot-region scheduler balances this per second.
    pub fn leader_keys(&self) -> u64 {
        self.read_keys.saturating_add(self.written_keys)
    }
}

/// Reports summed since the last rate was taken: `[start_secs, end_secs]` in unix seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct FlowWindow {
    start_secs: u64,
    end_secs: u64,
    totals: FlowTotals,
}

/// What PD knows of a region's flow: the last measured rate, and the reports since.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegionFlow {
    /// Per second over the last full window; `None` until one filled (a new region, or one
    /// whose range changed, which makes the old rate meaningless).
    pub rate: Option<FlowTotals>,
    window: Option<FlowWindow>,
}

impl RegionFlow {
    /// The flow of one heartbeat, not yet measured: a window of its interval, or nothing if
    /// it carries no interval.
    pub fn reported(req: &RegionHeartbeatRequest) -> RegionFlow {
        let window = req.interval.map(|i| FlowWindow {
            start_secs: i.start_timestamp.min(i.end_timestamp),
            end_secs: i.end_timestamp,
            totals: FlowTotals {
                written_bytes: req.bytes_written,
                written_keys: req.keys_written,
                read_bytes: req.bytes_read,
                read_keys: req.keys_read,
            },
        });
        RegionFlow { rate: None, window }
    }

    /// This region's flow once `next` (a later report of the same range) is added: the
    /// window grows by it, and a window spanning [`RATE_WINDOW_SECS`] becomes the new rate
    /// and starts over where it ended. A report without an interval changes nothing.
    pub fn followed_by(&self, next: &RegionFlow) -> RegionFlow {
        let Some(reported) = next.window else {
            return *self;
        };
        let mut window = match self.window {
            Some(mut w) => {
                w.totals.add(&reported.totals);
                w.end_secs = w.end_secs.max(reported.end_secs);
                w
            }
            None => reported,
        };
        let span = window.end_secs.saturating_sub(window.start_secs);
        let mut rate = self.rate;
        if span >= RATE_WINDOW_SECS {
            rate = Some(window.totals.per_second(span));
            window = FlowWindow {
                start_secs: window.end_secs,
                end_secs: window.end_secs,
                totals: FlowTotals::default(),
            };
        }
        RegionFlow {
            rate,
            window: Some(window),
        }
    }

    /// Keys per second the region's leader handles (see [`FlowTotals::leader_keys`]); 0
    /// until measured.
    pub fn leader_key_rate(&self) -> u64 {
        self.rate.map_or(0, |r| r.leader_keys())
    }
}

#[cfg(test)]
mod tests {
    use proto::pdpb::TimeInterval;

    use super::*;

    fn report(start: u64, end: u64, written_keys: u64, read_keys: u64) -> RegionFlow {
        RegionFlow::reported(&RegionHeartbeatRequest {
            keys_written: written_keys,
            bytes_written: written_keys * 100,
            keys_read: read_keys,
            bytes_read: read_keys * 10,
            interval: Some(TimeInterval {
                start_timestamp: start,
                end_timestamp: end,
            }),
            ..Default::default()
        })
    }

    #[test]
    fn one_long_report_is_a_rate_at_once() {
        let flow = RegionFlow::default().followed_by(&report(1000, 1060, 600, 6000));
        let rate = flow.rate.unwrap();
        assert_eq!((rate.written_keys, rate.read_keys), (10, 100));
        assert_eq!((rate.written_bytes, rate.read_bytes), (1000, 1000));
        assert_eq!(flow.leader_key_rate(), 110);
    }

    #[test]
    fn short_reports_add_up_to_a_window_whose_rounding_cancels_out() {
        // 300 ms heartbeats: whole-second bounds make most intervals 0 s long, some 1 s.
        let mut flow = RegionFlow::default();
        let mut at_ms = 1_000_700u64;
        for _ in 0..16 {
            let next = at_ms + 300;
            flow = flow.followed_by(&report(at_ms / 1000, next / 1000, 0, 300));
            at_ms = next;
        }
        // The 15th report ends at 1005.2 s: 4,500 keys over the window 1000..1005 (the
        // true rate is 1,000 keys/s; the bounds' rounding costs at most a second).
        let rate = flow.rate.expect("a full window was measured");
        assert!((800..=1000).contains(&rate.read_keys), "{rate:?}");
    }

    #[test]
    fn no_rate_until_a_window_fills_and_reports_without_an_interval_change_nothing() {
        let flow = RegionFlow::default().followed_by(&report(1000, 1002, 10, 10));
        assert_eq!(flow.rate, None);
        assert_eq!(flow.leader_key_rate(), 0);
        let no_interval = RegionFlow::reported(&RegionHeartbeatRequest::default());
        assert_eq!(flow.followed_by(&no_interval), flow);
    }

    #[test]
    fn a_quiet_window_brings_the_rate_down_to_zero() {
        let hot = RegionFlow::default().followed_by(&report(1000, 1060, 6000, 0));
        assert_eq!(hot.leader_key_rate(), 100);
        // A new leader's first report covers no time: the rate stands.
        let after_transfer = hot.followed_by(&report(1061, 1061, 0, 0));
        assert_eq!(after_transfer.leader_key_rate(), 100);
        let cold = after_transfer.followed_by(&report(1061, 1121, 0, 0));
        assert_eq!(cold.leader_key_rate(), 0);
        assert!(cold.rate.is_some());
    }
}
