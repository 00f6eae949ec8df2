//! Regions a newer report replaced while part of their old range is not covered by any region
//! PD knows yet.
//!
//! A split reaches PD as several reports that race: the parent's heartbeat with its shrunk
//! range, the split report, and the new regions' own heartbeats once they elect leaders. Between
//! the first and the last, the region tree would have a hole: a key the parent used to cover
//! that no region now contains. The official client treats PD's "no region for this key" as a
//! failed request, so a hole of a few milliseconds becomes an error the user sees. PD instead
//! answers such a key with the superseded region. Its epoch is old, so the store the client
//! then asks answers `EpochNotMatch`, which the client handles by asking PD again; by then the
//! hole is usually filled. A stale answer costs a retry; a missing answer fails the request.

use super::region_tree::RegionTree;
use crate::cluster::RegionInfo;

/// How long (ms) a superseded region answers for its uncovered keys at most: long enough for
/// the reports of a split to arrive, short enough that nothing older is handed out.
pub const SUPERSEDED_MEMORY_MS: u64 = 5 * 60 * 1000;

/// Superseded regions, oldest first, each with the unix ms it was superseded at.
#[derive(Default, Debug)]
pub struct SupersededRegions {
    entries: Vec<(u64, RegionInfo)>,
}

impl SupersededRegions {
    /// Remembers `old`, replaced at `now` (unix ms), if the tree leaves part of its range
    /// uncovered; forgets entries that expired or whose range the tree now covers.
    pub fn remember(&mut self, old: RegionInfo, tree: &RegionTree, now: u64) {
        self.entries.retain(|(at, info)| {
            now.saturating_sub(*at) < SUPERSEDED_MEMORY_MS
                && !covers(tree, info.start_key(), info.end_key())
        });
        if !covers(tree, old.start_key(), old.end_key()) {
            self.entries.push((now, old));
        }
    }

    /// The most recently superseded region whose old range holds `key`, if it is younger than
    /// [`SUPERSEDED_MEMORY_MS`] at `now`.
    pub fn find(&self, key: &[u8], now: u64) -> Option<&RegionInfo> {
        self.entries
            .iter()
            .rev()
            .filter(|(at, _)| now.saturating_sub(*at) < SUPERSEDED_MEMORY_MS)
            .map(|(_, info)| info)
            .find(|info| contains(info, key))
    }

    /// How many are remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn contains(info: &RegionInfo, key: &[u8]) -> bool {
    key >= info.start_key() && (info.end_key().is_empty() || key < info.end_key())
}

/// Whether the tree's regions cover `[start, end)` without a hole (an empty `end` is the end
/// of the key space).
fn covers(tree: &RegionTree, start: &[u8], end: &[u8]) -> bool {
    let mut covered_to = start.to_vec();
    for region in tree.scan(start, end, 0) {
        if region.start_key() > covered_to.as_slice() {
            return false;
        }
        if region.end_key().is_empty() {
            return true;
        }
        if region.end_key() > covered_to.as_slice() {
            covered_to = region.end_key().to_vec();
        }
        if !end.is_empty() && covered_to.as_slice() >= end {
            return true;
        }
    }
    false
}
