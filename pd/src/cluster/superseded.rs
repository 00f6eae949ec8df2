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

use super::region_tree::{Coverage, RegionTree};
use crate::cluster::RegionInfo;

/// How long (ms) a superseded region answers for its uncovered keys at most: long enough for
/// the reports of a split to arrive, short enough that nothing older is handed out.
pub const SUPERSEDED_MEMORY_MS: u64 = 5 * 60 * 1000;

/// Superseded regions, oldest first.
///
/// Cost: each entry keeps how far from its old start the tree already covers its range, and
/// only walks on from there, stopping at the first hole. A region in an entry's range is thus
/// stepped over once in the entry's life, so a bulk split of a range holding 100,000 regions
/// does not rescan them on every report.
#[derive(Default, Debug)]
pub struct SupersededRegions {
    entries: Vec<Superseded>,
}

#[derive(Debug)]
struct Superseded {
    /// Unix ms it was superseded at.
    at: u64,
    region: RegionInfo,
    /// The tree covers `[region.start_key, covered_to)` without a hole.
    covered_to: Vec<u8>,
}

impl SupersededRegions {
    /// Remembers `old`, replaced at `now` (unix ms), if the tree leaves part of its range
    /// uncovered; forgets entries that expired or whose range the tree now covers.
    pub fn remember(&mut self, old: RegionInfo, tree: &RegionTree, now: u64) {
        self.entries.retain_mut(|entry| {
            now.saturating_sub(entry.at) < SUPERSEDED_MEMORY_MS && !entry.advance(tree)
        });
        let mut entry = Superseded {
            at: now,
            covered_to: old.start_key().to_vec(),
            region: old,
        };
        if !entry.advance(tree) {
            self.entries.push(entry);
        }
    }

    /// The most recently superseded region whose old range holds `key`, if it is younger than
    /// [`SUPERSEDED_MEMORY_MS`] at `now`.
    pub fn find(&self, key: &[u8], now: u64) -> Option<&RegionInfo> {
        self.entries
            .iter()
            .rev()
            .filter(|entry| now.saturating_sub(entry.at) < SUPERSEDED_MEMORY_MS)
            .map(|entry| &entry.region)
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

impl Superseded {
    /// Moves `covered_to` past the regions the tree now holds from there on; true once the
    /// whole old range is covered.
    fn advance(&mut self, tree: &RegionTree) -> bool {
        let end = self.region.end_key();
        match tree.covered_from(&self.covered_to, end) {
            Coverage::Whole => true,
            Coverage::Until(to) => {
                self.covered_to = to;
                false
            }
        }
    }
}

fn contains(info: &RegionInfo, key: &[u8]) -> bool {
    key >= info.start_key() && (info.end_key().is_empty() || key < info.end_key())
}
