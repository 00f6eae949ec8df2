//! Removes snapshot files nothing will read again, so the snapshot directory does not keep
//! one region-sized copy per region that ever sent or received a snapshot.
//!
//! The region worker runs [`collect_garbage`] every `snap-gc-interval`. A file's fate follows
//! from its name (`gen_`/`rev_<region>_<term>_<index>_<cf>.sst`, or a receive's `tmp_<pid>_...`)
//! and the region's persisted state, after TiKV's `gc_snapshot`:
//! - **built here** (`gen_`): kept while the region's peer may still hand it out: removed when
//!   the store holds no live peer of the region, when the region's log was compacted past the
//!   snapshot (the peer only reuses a snapshot at or above its truncated index), or when it is
//!   older than `snap-gc-timeout` (the peer reuses one for at most half of that, so a send that
//!   started from it has the other half to finish);
//! - **received** (`rev_`): an applied snapshot's files are removed as the apply finishes
//!   (`region_snapshot::finish_apply`); here the ones left behind: those the region already
//!   applied (a crash between marking it Normal and removing them) or a newer snapshot
//!   replaced, and those never applied, once older than the timeout. The files of a snapshot
//!   the region is applying stay whatever their age: a restart needs them;
//! - **half-received** (`tmp_`): left by another process (a receive cut off by a crash), or
//!   older than the timeout.

use std::path::Path;
use std::time::{Duration, SystemTime};

use engine::{KvEngine, KvRead, CF_RAFT};
use proto::raft_serverpb::{PeerState, RaftApplyState, RegionLocalState};
use tracing::{info, warn};

use crate::errors::Result;

/// What a snapshot file's name says about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapFile {
    /// Built by this store's region worker (`gen_<region>_<term>_<index>_<cf>.sst`).
    Generated { region_id: u64, index: u64 },
    /// Received from a leader, complete and renamed (`rev_<region>_<term>_<index>_<cf>.sst`).
    Received { region_id: u64, index: u64 },
    /// A file of a receive in progress or cut off (`tmp_<pid>_<n>_<final name>`), written by
    /// process `pid`.
    Partial { pid: u32 },
}

impl SnapFile {
    /// Reads a file name of the snapshot directory; `None` for a name no snapshot uses (such a
    /// file is left alone).
    pub fn parse(name: &str) -> Option<SnapFile> {
        if let Some(rest) = name.strip_prefix("tmp_") {
            let pid = rest.split('_').next()?.parse().ok()?;
            return Some(SnapFile::Partial { pid });
        }
        let (kind, rest) = name.split_once('_')?;
        let rest = rest.strip_suffix(".sst")?;
        let mut fields = rest.splitn(4, '_');
        let region_id = fields.next()?.parse().ok()?;
        let _term: u64 = fields.next()?.parse().ok()?;
        let index = fields.next()?.parse().ok()?;
        fields.next()?;
        match kind {
            "gen" => Some(SnapFile::Generated { region_id, index }),
            "rev" => Some(SnapFile::Received { region_id, index }),
            _ => None,
        }
    }
}

/// What the store's persisted state says of a region, as far as its snapshot files go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionView {
    /// No peer of the region here: never created, or destroyed (removed, merged away).
    Gone,
    /// A live peer (Normal or Merging) with its applied and truncated indexes.
    Live {
        applied_index: u64,
        truncated_index: u64,
    },
    /// A peer part way through applying the snapshot at `index`.
    Applying { index: u64 },
}

impl RegionView {
    /// Reads region `region_id`'s local and apply states from the KV engine.
    pub fn load(kv: &KvEngine, region_id: u64) -> Result<RegionView> {
        let state: Option<RegionLocalState> =
            kv.get_msg_cf(CF_RAFT, &keys::region_state_key(region_id))?;
        let Some(state) = state else {
            return Ok(RegionView::Gone);
        };
        let apply: RaftApplyState = kv
            .get_msg_cf(CF_RAFT, &keys::apply_state_key(region_id))?
            .unwrap_or_default();
        let truncated_index = apply.truncated_state.map_or(0, |t| t.index);
        Ok(match state.state() {
            PeerState::Tombstone => RegionView::Gone,
            PeerState::Applying => RegionView::Applying {
                index: truncated_index,
            },
            PeerState::Normal | PeerState::Merging => RegionView::Live {
                applied_index: apply.applied_index,
                truncated_index,
            },
        })
    }
}

/// Why a file is removed, for the log.
pub type Reason = &'static str;

/// Whether `file`, `age` old, of a region in state `region` (the region its name gives; any
/// for a partial file), goes: `Some(why)` to remove it. `this_pid` is the running process.
pub fn verdict(
    file: SnapFile,
    region: RegionView,
    age: Duration,
    timeout: Duration,
    this_pid: u32,
) -> Option<Reason> {
    let expired = age > timeout;
    match file {
        SnapFile::Partial { pid } if pid != this_pid => Some("left by an earlier process"),
        SnapFile::Partial { .. } => expired.then_some("a receive that never finished"),
        SnapFile::Generated { index, .. } => match region {
            RegionView::Gone => Some("no peer of its region is left here"),
            RegionView::Live {
                truncated_index, ..
            } if index < truncated_index => Some("its region's log was compacted past it"),
            _ => expired.then_some("older than snap-gc-timeout"),
        },
        SnapFile::Received { index, .. } => match region {
            RegionView::Applying { index: applying } if applying == index => None,
            RegionView::Applying { .. } => Some("its region applies another snapshot"),
            RegionView::Live { applied_index, .. } if index <= applied_index => {
                Some("its region has applied it or a newer state")
            }
            _ => expired.then_some("never applied, older than snap-gc-timeout"),
        },
    }
}

/// What one collection did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcOutcome {
    /// Files removed.
    pub removed_files: u64,
    /// Bytes those files held.
    pub removed_bytes: u64,
    /// Bytes of the snapshot files that remain.
    pub kept_bytes: u64,
}

/// Removes the files of `dir` (the store's snapshot directory) that [`verdict`] condemns.
/// A file that cannot be read or removed is skipped and logged; a missing directory is an
/// empty one. Errors: reading a region's state from the KV engine.
pub fn collect_garbage(kv: &KvEngine, dir: &Path, timeout: Duration) -> Result<GcOutcome> {
    let mut outcome = GcOutcome::default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(outcome);
    };
    let now = SystemTime::now();
    let pid = std::process::id();
    // A region's state is read once however many files it has.
    let mut views: Vec<(u64, RegionView)> = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(file) = SnapFile::parse(&name) else {
            continue;
        };
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        let age = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .unwrap_or_default();
        let region = match file {
            SnapFile::Generated { region_id, .. } | SnapFile::Received { region_id, .. } => {
                match views.iter().find(|(id, _)| *id == region_id) {
                    Some((_, v)) => *v,
                    None => {
                        let v = RegionView::load(kv, region_id)?;
                        views.push((region_id, v));
                        v
                    }
                }
            }
            SnapFile::Partial { .. } => RegionView::Gone,
        };
        let Some(why) = verdict(file, region, age, timeout, pid) else {
            outcome.kept_bytes += meta.len();
            continue;
        };
        match std::fs::remove_file(entry.path()) {
            Ok(()) => {
                info!(file = %name, bytes = meta.len(), why, "snapshot file removed");
                outcome.removed_files += 1;
                outcome.removed_bytes += meta.len();
            }
            Err(e) => {
                warn!(file = %name, "removing a snapshot file failed: {e}");
                outcome.kept_bytes += meta.len();
            }
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);
    const TIMEOUT: Duration = Duration::from_secs(4 * 3600);
    const PID: u32 = 77;

    fn live(applied_index: u64, truncated_index: u64) -> RegionView {
        RegionView::Live {
            applied_index,
            truncated_index,
        }
    }

    #[test]
    fn names_of_the_three_kinds_parse_and_others_do_not() {
        assert_eq!(
            SnapFile::parse("gen_12_6_340_default.sst"),
            Some(SnapFile::Generated {
                region_id: 12,
                index: 340
            })
        );
        assert_eq!(
            SnapFile::parse("rev_3_2_17_write.sst"),
            Some(SnapFile::Received {
                region_id: 3,
                index: 17
            })
        );
        assert_eq!(
            SnapFile::parse("tmp_4411_9_rev_3_2_17_lock.sst"),
            Some(SnapFile::Partial { pid: 4411 })
        );
        for other in [
            "gen_12_6_340.sst",
            "gen_x_6_340_default.sst",
            "rev_3_2_17_write.tmp",
            "old_3_2_17_write.sst",
            "tmp_pid_1_rev_3_2_17_lock.sst",
            "README",
        ] {
            assert_eq!(SnapFile::parse(other), None, "{other}");
        }
    }

    #[test]
    fn a_built_snapshot_stays_while_its_peer_may_send_it() {
        let gen = SnapFile::Generated {
            region_id: 1,
            index: 100,
        };
        assert_eq!(verdict(gen, live(150, 100), HOUR, TIMEOUT, PID), None);
        assert_eq!(verdict(gen, live(150, 90), HOUR, TIMEOUT, PID), None);
        assert!(verdict(gen, live(150, 101), HOUR, TIMEOUT, PID).is_some());
        assert!(verdict(gen, RegionView::Gone, Duration::ZERO, TIMEOUT, PID).is_some());
        assert!(verdict(gen, live(150, 90), TIMEOUT + HOUR, TIMEOUT, PID).is_some());
    }

    #[test]
    fn a_received_snapshot_stays_until_applied_or_expired_but_never_while_applying() {
        let rev = SnapFile::Received {
            region_id: 1,
            index: 100,
        };
        // Waiting to be stepped into raft and applied.
        assert_eq!(verdict(rev, live(80, 70), HOUR, TIMEOUT, PID), None);
        assert_eq!(verdict(rev, RegionView::Gone, HOUR, TIMEOUT, PID), None);
        // Applied (or a newer state reached the region another way).
        assert!(verdict(rev, live(100, 100), HOUR, TIMEOUT, PID).is_some());
        // Never applied, and old.
        assert!(verdict(rev, live(80, 70), TIMEOUT + HOUR, TIMEOUT, PID).is_some());
        assert!(verdict(rev, RegionView::Gone, TIMEOUT + HOUR, TIMEOUT, PID).is_some());
        // A restart finishes an interrupted apply from these files, however old.
        let applying = RegionView::Applying { index: 100 };
        assert_eq!(verdict(rev, applying, TIMEOUT * 10, TIMEOUT, PID), None);
        let other = RegionView::Applying { index: 120 };
        assert!(verdict(rev, other, HOUR, TIMEOUT, PID).is_some());
    }

    #[test]
    fn a_half_received_file_goes_when_its_writer_is_gone_or_it_is_old() {
        let ours = SnapFile::Partial { pid: PID };
        let earlier = SnapFile::Partial { pid: PID + 1 };
        assert_eq!(verdict(ours, RegionView::Gone, HOUR, TIMEOUT, PID), None);
        assert!(verdict(ours, RegionView::Gone, TIMEOUT + HOUR, TIMEOUT, PID).is_some());
        assert!(verdict(earlier, RegionView::Gone, Duration::ZERO, TIMEOUT, PID).is_some());
    }
}
