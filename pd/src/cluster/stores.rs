//! What PD knows about one store: its registration, its latest statistics, and how healthy it
//! looks from how recently it reported.

use proto::metapb::{self, StoreState};
use proto::pdpb::StoreStats;

use crate::config::ScheduleConfig;

/// A store's health as the schedulers see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreStatus {
    /// Serving and reporting.
    Up,
    /// Registered Up but silent for a while: it gets no new peers or leaders.
    Disconnected,
    /// Silent for longer than `max-store-down-time`: its peers are replaced elsewhere.
    Down,
    /// Being decommissioned: its peers move away, then it becomes Tombstone.
    Offline,
    /// Gone for good.
    Tombstone,
}

impl StoreStatus {
    /// The state name the HTTP API shows (PD's `state_name`): a silent store shows as
    /// Disconnected, though its recorded state is still Up.
    pub fn name(self) -> &'static str {
        match self {
            StoreStatus::Up => "Up",
            StoreStatus::Disconnected => "Disconnected",
            StoreStatus::Down => "Down",
            StoreStatus::Offline => "Offline",
            StoreStatus::Tombstone => "Tombstone",
        }
    }

    /// Whether peers on this store should be moved elsewhere.
    pub fn needs_replacement(self) -> bool {
        matches!(
            self,
            StoreStatus::Down | StoreStatus::Offline | StoreStatus::Tombstone
        )
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct StoreInfo {
    pub meta: metapb::Store,
    pub stats: Option<StoreStats>,
    /// Unix ms of the last heartbeat (or of registration / PD start, before the first one).
    pub last_heartbeat_ms: u64,
}

impl StoreInfo {
    pub fn new(meta: metapb::Store, now_ms: u64) -> StoreInfo {
        StoreInfo {
            meta,
            stats: None,
            last_heartbeat_ms: now_ms,
        }
    }

    pub fn id(&self) -> u64 {
        self.meta.id
    }

    pub fn state(&self) -> StoreState {
        StoreState::try_from(self.meta.state).unwrap_or(StoreState::Up)
    }

    pub fn is_tombstone(&self) -> bool {
        self.state() == StoreState::Tombstone
    }

    pub fn status(&self, now_ms: u64, cfg: &ScheduleConfig) -> StoreStatus {
        match self.state() {
            StoreState::Tombstone => return StoreStatus::Tombstone,
            StoreState::Offline => return StoreStatus::Offline,
            StoreState::Up => {}
        }
        let silent_ms = now_ms.saturating_sub(self.last_heartbeat_ms);
        if silent_ms > cfg.max_store_down_time.as_millis() as u64 {
            StoreStatus::Down
        } else if silent_ms > cfg.store_disconnect_time.as_millis() as u64 {
            StoreStatus::Disconnected
        } else {
            StoreStatus::Up
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn status_follows_state_and_silence() {
        let cfg = ScheduleConfig {
            max_store_down_time: Duration::from_secs(10),
            store_disconnect_time: Duration::from_secs(2),
            ..Default::default()
        };
        let mut s = StoreInfo::new(
            metapb::Store {
                id: 1,
                ..Default::default()
            },
            1_000_000,
        );
        assert_eq!(s.status(1_001_000, &cfg), StoreStatus::Up);
        assert_eq!(s.status(1_001_000, &cfg).name(), "Up");
        assert_eq!(s.status(1_003_000, &cfg), StoreStatus::Disconnected);
        // A store silent past store-disconnect-time is not shown as Up.
        assert_eq!(s.status(1_003_000, &cfg).name(), "Disconnected");
        assert_eq!(s.status(1_011_000, &cfg), StoreStatus::Down);
        assert_eq!(s.status(1_011_000, &cfg).name(), "Down");
        s.meta.state = StoreState::Offline as i32;
        assert_eq!(s.status(1_011_000, &cfg), StoreStatus::Offline);
        s.meta.state = StoreState::Tombstone as i32;
        assert!(s.status(0, &cfg).needs_replacement());
    }
}
