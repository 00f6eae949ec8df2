//! Region heartbeats: a leader reports its region to PD on a slow tick, and at once when
//! leadership, ranges or membership change. A tick whose report would repeat the last one (no
//! flow, nothing else new) sends nothing, up to `pd-heartbeat-max-quiet-interval`. While the
//! region hibernates, once a tick had nothing new to send, the tick runs (without waking it)
//! only once per `pd-heartbeat-max-quiet-interval`: nothing it would report changes while
//! every peer sleeps (a new size estimate is sent at once), and 100,000 sleeping leaders would
//! otherwise cost the store a poller wake-up every few milliseconds. The exception is a peer
//! on a store declared unreachable: the leader sleeps on if it keeps a quorum, but ticks at
//! the usual interval so PD hears of the peer as down once `max-peer-down-duration` passed
//! (PD replaces down peers). A leader that steps down
//! reports the flow it served since its last report, which no later leader would count.

use std::time::{Duration, Instant};

use proto::metapb::{Region, RegionEpoch};
use proto::pdpb::{RegionHeartbeatRequest, TimeInterval};
use raft::ProgressState;
use tracing::debug;

use crate::context::PollContext;
use crate::metrics::{REGION_HEARTBEATS, REGION_HEARTBEATS_SKIPPED};
use crate::msg::PeerTick;
use crate::peer::pd_stats::{
    down_peers, may_skip_report, pending_peers, report_digest, PeerProgress, SentReport,
};
use crate::peer::Peer;
use crate::stats::{unix_secs, Flow};

/// When a sleeping leader's next PD heartbeat tick comes: `max_quiet` plus up to half of it
/// again, by `unit` (uniform in [0, 1)). Regions that wake together (a leader rebalancing, a
/// store restart) would otherwise send their quiet-interval reports together, every
/// `max_quiet`, in one wave of region heartbeats.
fn quiet_tick_interval(max_quiet: Duration, unit: f64) -> Duration {
    max_quiet + max_quiet.mul_f64(unit.clamp(0.0, 1.0) / 2.0)
}

impl Peer {
    pub fn on_pd_heartbeat_tick(&mut self, ctx: &mut PollContext) {
        if !self.pd_stats.tick_fired(Instant::now()) {
            // Replaced by a sooner tick, which is still registered.
            return;
        }
        if self.stopped || !self.is_leader() {
            // The tick stops with leadership and is registered again by the next win.
            return;
        }
        let sent = self.send_region_report(ctx, true);
        // A sleeping region whose report had nothing new for PD has nothing new until it
        // wakes (which registers a tick at the usual interval again).
        let interval = if !sent && self.is_hibernating() && !self.has_unreachable_peer(ctx) {
            quiet_tick_interval(ctx.cfg.pd_heartbeat_max_quiet_interval, rand::random())
        } else {
            ctx.cfg.pd_heartbeat_tick_interval
        };
        self.schedule_pd_heartbeat_tick_after(ctx, interval);
    }

    /// Whether a peer of the region lives on a store the store heartbeat declared
    /// unreachable.
    pub(crate) fn has_unreachable_peer(&self, ctx: &PollContext) -> bool {
        self.region()
            .peers
            .iter()
            .any(|p| ctx.store_liveness.is_unreachable(p.store_id))
    }

    /// Registers the next PD heartbeat tick at `pd-heartbeat-tick-interval` from now, unless
    /// one is due by then; a later one (registered while asleep) is replaced.
    pub(crate) fn schedule_pd_heartbeat_tick(&mut self, ctx: &mut PollContext) {
        let interval = ctx.cfg.pd_heartbeat_tick_interval;
        self.schedule_pd_heartbeat_tick_after(ctx, interval);
    }

    fn schedule_pd_heartbeat_tick_after(&mut self, ctx: &mut PollContext, interval: Duration) {
        if self.stopped {
            return;
        }
        if !self.pd_stats.tick_needed(Instant::now(), interval) {
            return;
        }
        let due = ctx.schedule_tick_after(self.region_id(), PeerTick::PdHeartbeat, interval);
        self.pd_stats.tick_registered(due);
    }

    /// The region heartbeat stream to PD was opened again. PD ties a stream to a store only
    /// when a region report arrives on it, and until then cannot send the store operator
    /// steps; a leader asleep with nothing new would stay silent for up to
    /// `pd-heartbeat-max-quiet-interval`. So the leader forgets what it last told PD and
    /// reports at a random point within one `pd-heartbeat-tick-interval`, which spreads the
    /// reports of a store's many leaders over that interval.
    pub fn on_pd_reconnected(&mut self, ctx: &mut PollContext) {
        if self.stopped || !self.is_leader() {
            return;
        }
        self.pd_stats.last_sent = None;
        let interval = ctx
            .cfg
            .pd_heartbeat_tick_interval
            .mul_f64(rand::random::<f64>());
        self.schedule_pd_heartbeat_tick_after(ctx, interval);
    }

    /// This peer just became leader: it reports at once and from then on every tick.
    pub fn on_became_leader_for_pd(&mut self, ctx: &mut PollContext) {
        let peers = self.region().peers.clone();
        self.pd_stats.on_became_leader(&peers, Instant::now());
        // The previous leader's interval is not ours to report.
        self.pd_stats.last_report = unix_secs();
        self.read_delegate.take_read_flow();
        self.heartbeat_pd(ctx);
        self.schedule_pd_heartbeat_tick(ctx);
        if self.pd_stats.approximate_size.is_none() {
            // A region this peer never measured (new from a split, or after a restart).
            self.schedule_split_check(ctx);
        }
    }

    /// Notes that a raft message arrived from `peer_id` (the leader tracks who is silent).
    pub fn note_heard_from(&mut self, peer_id: u64) {
        if self.is_leader() {
            self.pd_stats.heard_from(peer_id, Instant::now());
        }
    }

    /// The region is going back to work after hibernating: until now every peer agreed to
    /// sleep, so whoever's store kept pinging was alive all along.
    pub fn refresh_liveness_after_sleep(&mut self, ctx: &PollContext) {
        if self.is_leader() {
            let peers = self.region().peers.clone();
            let me = self.peer_id();
            self.pd_stats
                .refresh_from_stores(&peers, me, &ctx.store_liveness);
        }
    }

    /// The split checker measured the region. Stale measurements (the range changed since)
    /// are dropped.
    pub fn on_region_size(
        &mut self,
        ctx: &mut PollContext,
        epoch: RegionEpoch,
        size: u64,
        keys: u64,
    ) {
        let current = self.region().region_epoch.unwrap_or_default();
        if epoch.version != current.version {
            return;
        }
        let first = self.pd_stats.approximate_size.is_none();
        let changed = self.pd_stats.approximate_size != Some(size)
            || self.pd_stats.approximate_keys != Some(keys);
        self.pd_stats.approximate_size = Some(size);
        self.pd_stats.approximate_keys = Some(keys);
        // PD learns the size of a new region without waiting a whole tick, and a sleeping
        // region's new estimate without waiting for its far-off tick.
        if self.is_leader() && (first || (changed && self.is_hibernating())) {
            self.heartbeat_pd(ctx);
        }
    }

    /// A peer added to the region has caught up: PD waits for exactly that to take the next
    /// step of a membership change, so it hears at once rather than at the next slow tick.
    pub fn report_caught_up_peers(&mut self, ctx: &mut PollContext) {
        if !self.is_leader() || self.pd_stats.catching_up.is_empty() {
            return;
        }
        let prs = self.raft_group.raft.prs();
        let caught_up = self.pd_stats.catching_up.iter().any(|(id, target)| {
            prs.get(*id)
                .is_some_and(|p| p.matched >= *target && p.state != ProgressState::Snapshot)
        });
        if caught_up {
            // The report drops caught-up peers from `catching_up`.
            self.heartbeat_pd(ctx);
        }
    }

    /// Sends PD the region's current report (leaders only).
    pub fn heartbeat_pd(&mut self, ctx: &mut PollContext) {
        self.send_region_report(ctx, false);
    }

    /// Reports the region to PD. On the slow tick (`on_tick`) a report that would repeat the
    /// last one without any flow is skipped until `pd-heartbeat-max-quiet-interval` has passed
    /// since it, so a store of idle regions sends PD almost nothing; every change is still
    /// reported at the next tick or at once. True if a report was sent.
    fn send_region_report(&mut self, ctx: &mut PollContext, on_tick: bool) -> bool {
        if !self.is_leader() || self.stopped {
            return false;
        }
        let now = Instant::now();
        let me = self.peer_id();
        let region: Region = self.region().clone();
        if self.is_hibernating() {
            self.pd_stats
                .refresh_from_stores(&region.peers, me, &ctx.store_liveness);
        }
        self.pd_stats
            .peer_heard
            .retain(|id, _| region.peers.iter().any(|p| p.id == *id));
        let down = down_peers(
            &region.peers,
            me,
            &mut self.pd_stats.peer_heard,
            now,
            ctx.cfg.max_peer_down_duration,
        );
        let raft = &self.raft_group.raft;
        let progress = |id: u64| {
            raft.prs().get(id).map(|p| PeerProgress {
                matched: p.matched,
                needs_snapshot: p.state == ProgressState::Snapshot,
                probing: p.state == ProgressState::Probe,
            })
        };
        self.pd_stats
            .catching_up
            .retain(|id, target| progress(*id).is_some_and(|p| p.matched < *target));
        let first_index = self.storage().truncated_index() + 1;
        let pending = pending_peers(
            &region.peers,
            me,
            first_index,
            &self.pd_stats.catching_up,
            progress,
        );
        self.pd_stats.reported_down = down;
        self.pd_stats.reported_pending = pending;
        let read = self.read_delegate.take_read_flow();
        let term = self.term();
        let digest = report_digest(
            &region,
            &self.meta,
            term,
            &self.pd_stats.reported_down,
            &self.pd_stats.reported_pending,
            self.pd_stats.approximate_size.unwrap_or(0),
            self.pd_stats.approximate_keys.unwrap_or(0),
        );
        let has_flow = read != Flow::default() || self.pd_stats.written != Flow::default();
        if on_tick
            && may_skip_report(
                self.pd_stats.last_sent.as_ref(),
                digest,
                has_flow,
                now,
                ctx.cfg.pd_heartbeat_max_quiet_interval,
            )
        {
            REGION_HEARTBEATS_SKIPPED.inc();
            return false;
        }
        let repeated = self
            .pd_stats
            .last_sent
            .is_some_and(|last| last.digest == digest && !last.had_flow && !has_flow);
        self.pd_stats.last_sent = Some(SentReport {
            digest,
            had_flow: has_flow,
            repeated,
            at: now,
        });
        let req = self.region_report(region, read, term);
        debug!(
            region_id = self.region_id(),
            down = req.down_peers.len(),
            pending = req.pending_peers.len(),
            "region heartbeat"
        );
        REGION_HEARTBEATS.inc();
        ctx.pd.region_heartbeat(req);
        true
    }

    /// This peer stopped leading in `led_term`. What it served since its last report is
    /// reported now: the next leader counts only what it serves itself, so the flow would
    /// otherwise be lost. Leaders often move right after a split (PD balances the new regions'
    /// leaders away from the store that led the parent), within a region's first report
    /// interval.
    pub fn report_flow_on_step_down(&mut self, ctx: &mut PollContext, led_term: u64) {
        if self.stopped {
            return;
        }
        let read = self.read_delegate.take_read_flow();
        if read == Flow::default() && self.pd_stats.written == Flow::default() {
            return;
        }
        let region = self.region().clone();
        // Sent with the term it led in: PD takes the flow even when the next leader reported
        // first, and never takes this peer for the leader of a later term.
        let req = self.region_report(region, read, led_term);
        debug!(
            region_id = self.region_id(),
            led_term,
            bytes_written = req.bytes_written,
            bytes_read = req.bytes_read,
            "final region heartbeat of a former leader"
        );
        REGION_HEARTBEATS.inc();
        ctx.pd.region_heartbeat(req);
    }

    /// A report of `region` as led by this peer in `term`, with the flow since the last
    /// report (which this starts a new interval after).
    fn region_report(&mut self, region: Region, read: Flow, term: u64) -> RegionHeartbeatRequest {
        let written = std::mem::take(&mut self.pd_stats.written);
        let end = unix_secs();
        let start = std::mem::replace(&mut self.pd_stats.last_report, end);
        RegionHeartbeatRequest {
            header: None,
            region: Some(region),
            leader: Some(self.meta),
            down_peers: self.pd_stats.reported_down.clone(),
            pending_peers: self.pd_stats.reported_pending.clone(),
            bytes_written: written.bytes,
            keys_written: written.keys,
            bytes_read: read.bytes,
            keys_read: read.keys,
            approximate_size: self.pd_stats.approximate_size.unwrap_or(0),
            approximate_keys: self.pd_stats.approximate_keys.unwrap_or(0),
            interval: Some(TimeInterval {
                start_timestamp: start.min(end),
                end_timestamp: end,
            }),
            term,
        }
    }

    /// Counts a read this peer served itself (lease or ReadIndex).
    pub fn record_read(&self, ctx: &PollContext, flow: Flow) {
        self.read_delegate.record_read(flow);
        ctx.flow.read.add(flow.bytes, flow.keys);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_ticks_come_after_the_quiet_interval_spread_over_half_of_it_again() {
        let quiet = Duration::from_secs(600);
        assert_eq!(quiet_tick_interval(quiet, 0.0), quiet);
        assert_eq!(quiet_tick_interval(quiet, 0.5), Duration::from_secs(750));
        assert!(quiet_tick_interval(quiet, 0.999_999) < Duration::from_secs(900));
        // Never before the interval: a tick that came early would find the report still
        // skippable and wait a whole interval more.
        assert_eq!(quiet_tick_interval(quiet, -1.0), quiet);
        assert_eq!(quiet_tick_interval(quiet, 7.0), Duration::from_secs(900));
    }
}
