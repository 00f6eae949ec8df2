//! A peer's view of its raft log and state for raft-rs: durable entries live in the raft log
//! engine, entries not yet persisted (and recent ones) in an in-memory cache.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use engine::KvRead;
use engine::{KvEngine, RaftLogEngine, CF_RAFT};
use proto::eraftpb::{Entry, HardState, Snapshot};
use proto::metapb::{Region, RegionEpoch};
use proto::raft_serverpb::{RaftApplyState, RaftLocalState, RaftTruncatedState};
use raft::{GetEntriesContext, RaftState, StorageError};

use crate::errors::{Error, Result};
use crate::operation::command::conf_change::conf_state_from_region;
use crate::worker::region::{GenSlot, SnapshotGenerator};

/// Index and term that every bootstrapped region's log starts from, so a peer created later
/// (empty log) can never be mistaken for an up-to-date one.
pub const RAFT_INIT_LOG_INDEX: u64 = 5;
pub const RAFT_INIT_LOG_TERM: u64 = 5;

/// Raft state of a freshly bootstrapped region.
pub fn initial_raft_state() -> RaftLocalState {
    RaftLocalState {
        term: RAFT_INIT_LOG_TERM,
        vote: 0,
        commit: RAFT_INIT_LOG_INDEX,
        last_index: RAFT_INIT_LOG_INDEX,
        led_term: 0,
    }
}

/// Apply state of a freshly bootstrapped region.
pub fn initial_apply_state() -> RaftApplyState {
    RaftApplyState {
        applied_index: RAFT_INIT_LOG_INDEX,
        truncated_state: Some(RaftTruncatedState {
            index: RAFT_INIT_LOG_INDEX,
            term: RAFT_INIT_LOG_TERM,
        }),
        commit_index: RAFT_INIT_LOG_INDEX,
        commit_term: RAFT_INIT_LOG_TERM,
        applied_term: RAFT_INIT_LOG_TERM,
    }
}

/// Entries in `[first, last]` kept in memory: all unpersisted ones plus some recent ones.
#[derive(Default)]
struct EntryCache {
    entries: VecDeque<Entry>,
}

impl EntryCache {
    fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|e| e.index)
    }

    fn get(&self, idx: u64) -> Option<&Entry> {
        let first = self.first_index()?;
        if idx < first {
            return None;
        }
        self.entries.get((idx - first) as usize)
    }

    /// Appends, replacing a conflicting suffix.
    fn append(&mut self, entries: &[Entry]) {
        let Some(new_first) = entries.first().map(|e| e.index) else {
            return;
        };
        if let Some(first) = self.first_index() {
            if new_first < first {
                self.entries.clear();
            } else {
                let keep = (new_first - first) as usize;
                if keep > self.entries.len() {
                    // A gap: older entries cannot be contiguous with the new ones.
                    self.entries.clear();
                } else {
                    self.entries.truncate(keep);
                }
            }
        }
        self.entries.extend(entries.iter().cloned());
    }

    /// Drops entries with index < `idx`.
    fn compact_to(&mut self, idx: u64) {
        while let Some(e) = self.entries.front() {
            if e.index >= idx {
                break;
            }
            self.entries.pop_front();
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    /// Drops the entries with index < `idx` and gives the ring buffer's spare room back (all
    /// of it when nothing is left), so an idle peer's cache holds no memory.
    fn release_below(&mut self, idx: u64) {
        self.compact_to(idx);
        self.entries.shrink_to_fit();
    }
}

/// Storage of one peer, read by raft-rs and updated by the ready and apply handlers.
pub struct PeerStorage {
    /// The region as this peer last applied it (bootstrap, split, membership change or
    /// snapshot); empty peers until the peer is initialized.
    region: Region,
    raft_engine: RaftLogEngine,
    /// Hard state and last index as raft-rs sees them, ahead of the disk: `last_index` counts
    /// entries appended to the cache but not yet durable.
    ///
    /// Invariants: `truncated index <= applied index <= commit <= last_index` (the commit may
    /// be raised to the applied index on load, since anything applied was committed); `term`
    /// and `vote` only change through `set_hard_state`, from a ready; `led_term` through
    /// `set_led_term`, from the ready in which this peer became leader.
    raft_state: RaftLocalState,
    /// The apply pool's progress, as its last result reported it (the same record the apply
    /// pool wrote to CF raft in that round's batch).
    ///
    /// Invariants: `applied_index` never goes back (the peer enforces it on every apply
    /// result); `truncated_state.index <= applied_index`: a compaction is applied before it is
    /// acted on.
    apply_state: RaftApplyState,
    /// Term of the entry at `raft_state.last_index` (the truncated term when the log is empty),
    /// so raft-rs's `term(last_index)` needs neither the cache nor the disk.
    last_term: u64,
    /// Highest index the log writer has made durable.
    ///
    /// Invariants: `persisted_index <= raft_state.last_index`; it drops to just below a
    /// conflicting suffix when raft-rs replaces entries (`append`), and a snapshot resets it to
    /// the snapshot's index.
    persisted_index: u64,
    /// Approximate bytes of log since the last compaction; drives size-based log GC, scaled
    /// down by the share of the log each compaction removes. Not exact, never persisted.
    log_size_hint: u64,
    /// Recent entries, so raft-rs and the apply path rarely read raft-engine.
    ///
    /// Invariants: contiguous indexes, ending at `raft_state.last_index` when not empty; every
    /// entry above `min(persisted_index, applied index)` is kept (only the cache holds entries
    /// that are not durable yet); beyond that at most `raft_entry_cache_limit` entries.
    cache: EntryCache,
    /// Builds this region's snapshots on the region worker.
    snap_generator: SnapshotGenerator,
    /// The snapshot being built or last built for followers (raft-rs asks through `&self`).
    snap_gen: RefCell<SnapshotGen>,
}

/// Where a snapshot this peer asked the region worker for stands.
enum SnapshotGen {
    Idle,
    Generating(Arc<GenSlot>),
    /// The last snapshot built and the region epoch it was built at; handed to raft-rs for
    /// every follower that needs one while it is still valid: at or past the requested
    /// index and the log's truncated index, and of the current epoch (a snapshot from before
    /// a membership change would not list a peer added since, as in TiKV's stale-snapshot
    /// check), and until the instant the region worker set (its files are removed once
    /// `snap-gc-timeout` old, see `worker::snap_gc`).
    /// Boxed: every peer holds a `SnapshotGen`, few hold a snapshot.
    Ready(Box<(Snapshot, RegionEpoch, Instant)>),
}

impl PeerStorage {
    /// Loads a peer's state after bootstrap or restart.
    pub fn load(
        kv: &KvEngine,
        raft_engine: RaftLogEngine,
        region: Region,
        snap_generator: SnapshotGenerator,
    ) -> Result<PeerStorage> {
        let region_id = region.id;
        let apply_state: RaftApplyState = kv
            .get_msg_cf(CF_RAFT, &keys::apply_state_key(region_id))?
            .ok_or_else(|| {
                Error::Codec(format!(
                    "region {region_id} has no apply state in {:?}",
                    kv.path()
                ))
            })?;
        let mut raft_state = match raft_engine.raft_state(region_id)? {
            Some(s) => s,
            // A region born from a split starts from the initial state; its raft state is
            // written with its first ready.
            None if apply_state == initial_apply_state() => initial_raft_state(),
            None => {
                return Err(Error::Codec(format!(
                    "region {region_id} has no raft state"
                )));
            }
        };
        // Committed entries are applied before their commit index is necessarily persisted;
        // anything applied was committed, so the commit index can safely catch up.
        if raft_state.commit < apply_state.applied_index {
            raft_state.commit = apply_state.applied_index;
        }
        let truncated = apply_state.truncated_state.unwrap_or_default();
        // A snapshot's raft state may not have reached the log before a crash; the snapshot
        // itself (applied, truncated at its index) says where the log restarts.
        if raft_state.last_index < truncated.index {
            raft_state.last_index = truncated.index;
            raft_state.term = raft_state.term.max(truncated.term);
            raft_state.commit = raft_state.commit.max(truncated.index);
        }
        if raft_state.last_index < apply_state.applied_index {
            // Entries this store applied were durable in its log; they are gone.
            let blame = raft_engine
                .repaired_tail()
                .map(|f| format!(" (the damaged file is {})", f.display()))
                .unwrap_or_default();
            return Err(Error::Codec(format!(
                "region {region_id}: raft log ends at {} before applied index {}{blame}",
                raft_state.last_index, apply_state.applied_index
            )));
        }
        let mut storage = PeerStorage {
            region,
            raft_engine,
            persisted_index: raft_state.last_index,
            raft_state,
            apply_state,
            last_term: 0,
            log_size_hint: 0,
            cache: EntryCache::default(),
            snap_generator,
            snap_gen: RefCell::new(SnapshotGen::Idle),
        };
        storage.last_term = if storage.raft_state.last_index == truncated.index {
            truncated.term
        } else {
            storage
                .raft_engine
                .entry(region_id, storage.raft_state.last_index)?
                .map(|e| e.term)
                .ok_or_else(|| {
                    Error::Codec(format!(
                        "region {region_id}: last log entry {} missing",
                        storage.raft_state.last_index
                    ))
                })?
        };
        Ok(storage)
    }

    /// Storage of a peer created for a region this store does not know yet: empty log, no
    /// data, no range. It becomes initialized by a snapshot.
    pub fn uninitialized(
        raft_engine: RaftLogEngine,
        region_id: u64,
        snap_generator: SnapshotGenerator,
    ) -> PeerStorage {
        PeerStorage {
            region: Region {
                id: region_id,
                ..Default::default()
            },
            raft_engine,
            raft_state: RaftLocalState::default(),
            apply_state: RaftApplyState {
                truncated_state: Some(RaftTruncatedState::default()),
                ..Default::default()
            },
            last_term: 0,
            persisted_index: 0,
            log_size_hint: 0,
            cache: EntryCache::default(),
            snap_generator,
            snap_gen: RefCell::new(SnapshotGen::Idle),
        }
    }

    /// Whether the peer has a region range (from bootstrap, a split or a snapshot).
    pub fn is_initialized(&self) -> bool {
        !self.region.peers.is_empty()
    }

    /// Takes over a snapshot's state: the log restarts after its index.
    pub fn apply_snapshot(&mut self, region: Region, apply_state: RaftApplyState) {
        let (index, term) = apply_state
            .truncated_state
            .map_or((0, 0), |t| (t.index, t.term));
        self.region = region;
        self.apply_state = apply_state;
        self.raft_state.last_index = index;
        self.raft_state.commit = self.raft_state.commit.max(index);
        self.last_term = term;
        self.persisted_index = index;
        self.log_size_hint = 0;
        self.cache = EntryCache::default();
    }

    pub fn region(&self) -> &Region {
        &self.region
    }

    pub fn set_region(&mut self, region: Region) {
        self.region = region;
    }

    pub fn region_id(&self) -> u64 {
        self.region.id
    }

    pub fn raft_state(&self) -> &RaftLocalState {
        &self.raft_state
    }

    pub fn apply_state(&self) -> &RaftApplyState {
        &self.apply_state
    }

    pub fn applied_index(&self) -> u64 {
        self.apply_state.applied_index
    }

    pub fn applied_term(&self) -> u64 {
        self.apply_state.applied_term
    }

    pub fn truncated_index(&self) -> u64 {
        self.apply_state
            .truncated_state
            .as_ref()
            .map_or(0, |t| t.index)
    }

    pub fn truncated_term(&self) -> u64 {
        self.apply_state
            .truncated_state
            .as_ref()
            .map_or(0, |t| t.term)
    }

    pub fn last_index(&self) -> u64 {
        self.raft_state.last_index
    }

    pub fn persisted_index(&self) -> u64 {
        self.persisted_index
    }

    pub fn raft_engine(&self) -> &RaftLogEngine {
        &self.raft_engine
    }

    /// Takes new entries from a ready into the cache so raft can read them before they are
    /// durable; returns them for the log writer.
    pub fn append(&mut self, entries: &[Entry]) {
        if let Some(last) = entries.last() {
            self.cache.append(entries);
            self.raft_state.last_index = last.index;
            self.last_term = last.term;
            // A conflicting suffix replaced entries the writer may already have persisted.
            self.persisted_index = self.persisted_index.min(entries[0].index - 1);
            self.log_size_hint += entries.iter().map(entry_size).sum::<u64>();
        }
    }

    /// Approximate bytes of log kept since the last compaction (drives size-based GC).
    pub fn log_size_hint(&self) -> u64 {
        self.log_size_hint
    }

    /// This peer became leader in `term`; written with the ready that carries the new
    /// leader's first entry.
    pub fn set_led_term(&mut self, term: u64) {
        self.raft_state.led_term = term;
    }

    pub fn set_hard_state(&mut self, hs: &HardState) {
        self.raft_state.term = hs.term;
        self.raft_state.vote = hs.vote;
        self.raft_state.commit = hs.commit;
    }

    /// The log writer made everything up to `index` durable.
    pub fn on_persisted(&mut self, index: u64) {
        self.persisted_index = self.persisted_index.max(index.min(self.last_index()));
        self.trim_cache(usize::MAX);
    }

    pub fn on_applied(&mut self, apply_state: RaftApplyState, cache_limit: usize) {
        let old_first = self.truncated_index() + 1;
        let new_truncated = apply_state.truncated_state.map_or(0, |t| t.index);
        if new_truncated >= old_first {
            // Scale the size estimate by the share of the log that remains.
            let last = self.last_index();
            let total = last.saturating_sub(old_first) + 1;
            let kept = last.saturating_sub(new_truncated);
            self.log_size_hint = self.log_size_hint * kept / total.max(1);
        }
        self.apply_state = apply_state;
        self.trim_cache(cache_limit);
    }

    /// Keeps unpersisted and unapplied entries, and otherwise at most `limit` entries.
    fn trim_cache(&mut self, limit: usize) {
        let safe = self.persisted_index.min(self.apply_state.applied_index) + 1;
        let Some(first) = self.cache.first_index() else {
            return;
        };
        let over = self.cache.len().saturating_sub(limit) as u64;
        let target = (first + over).min(safe);
        self.cache.compact_to(target);
    }

    /// For a hibernating peer: drops every cached entry that is both durable and applied,
    /// with the cache's buffer. Entries that are not durable yet stay (only the cache holds
    /// them); the others are read from raft-engine if they are ever needed again (a
    /// follower that fell behind).
    pub fn release_idle_cache(&mut self) {
        let safe = self.persisted_index.min(self.apply_state.applied_index) + 1;
        self.cache.release_below(safe);
    }

    /// After log compaction: entries below `idx` are gone from raft's view.
    pub fn compact_cache_to(&mut self, idx: u64) {
        self.cache.compact_to(idx.min(self.persisted_index + 1));
    }

    fn check_range(&self, low: u64, high: u64) -> raft::Result<()> {
        if low > high {
            return Err(raft::Error::Store(StorageError::Other(
                format!("invalid range {low} > {high}").into(),
            )));
        }
        if low <= self.truncated_index() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last_index() + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(())
    }
}

fn storage_err(e: impl std::fmt::Display) -> raft::Error {
    raft::Error::Store(StorageError::Other(e.to_string().into()))
}

impl raft::Storage for PeerStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let hs = HardState {
            term: self.raft_state.term,
            vote: self.raft_state.vote,
            commit: self.raft_state.commit,
            ..Default::default()
        };
        Ok(RaftState {
            hard_state: hs,
            conf_state: conf_state_from_region(&self.region),
        })
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.check_range(low, high)?;
        let max_size = max_size.into().unwrap_or(u64::MAX);
        let mut out = Vec::with_capacity((high - low) as usize);
        if low == high {
            return Ok(out);
        }
        let cache_first = self.cache.first_index().unwrap_or(high);
        let mut size = 0u64;
        let mut next = low;
        if low < cache_first {
            let engine_high = high.min(cache_first);
            self.raft_engine
                .fetch_entries(
                    self.region.id,
                    low,
                    engine_high,
                    Some(max_size as usize),
                    &mut out,
                )
                .map_err(storage_err)?;
            size = out.iter().map(entry_size).sum();
            next = low + out.len() as u64;
            if next < engine_high || size >= max_size {
                // Hit the size limit inside the engine part (it always returns >= 1 entry).
                return Ok(out);
            }
        }
        while next < high {
            let Some(e) = self.cache.get(next) else {
                return Err(raft::Error::Store(StorageError::Unavailable));
            };
            size += entry_size(e);
            if !out.is_empty() && size > max_size {
                break;
            }
            out.push(e.clone());
            next += 1;
        }
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.truncated_index() {
            return Ok(self.truncated_term());
        }
        if idx < self.truncated_index() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last_index() {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        if idx == self.last_index() {
            return Ok(self.last_term);
        }
        if let Some(e) = self.cache.get(idx) {
            return Ok(e.term);
        }
        match self.raft_engine.entry(self.region.id, idx) {
            Ok(Some(e)) => Ok(e.term),
            Ok(None) => Err(raft::Error::Store(StorageError::Unavailable)),
            Err(e) => Err(storage_err(e)),
        }
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.truncated_index() + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last_index())
    }

    /// Never builds a snapshot here (this runs on a raft poller): the region worker does,
    /// and until it is done raft-rs hears `SnapshotTemporarilyUnavailable` and asks again on
    /// a later append.
    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let unavailable = || raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable);
        let mut gen = self.snap_gen.borrow_mut();
        if let SnapshotGen::Generating(slot) = &*gen {
            match slot.take() {
                None => return Err(unavailable()),
                Some(Ok(built)) => {
                    let epoch = crate::region_snapshot::decode(&built.snapshot)
                        .ok()
                        .and_then(|d| d.region)
                        .and_then(|r| r.region_epoch)
                        .unwrap_or_default();
                    *gen = SnapshotGen::Ready(Box::new((built.snapshot, epoch, built.reuse_until)));
                }
                // The worker logged why; a new one is asked for below.
                Some(Err(_)) => *gen = SnapshotGen::Idle,
            }
        }
        if let SnapshotGen::Ready(ready) = &*gen {
            let (s, epoch, reuse_until) = &**ready;
            let index = s.get_metadata().index;
            let current = self.region.region_epoch.unwrap_or_default();
            if index >= request_index
                && index >= self.truncated_index()
                && *epoch == current
                && Instant::now() < *reuse_until
            {
                return Ok(s.clone());
            }
        }
        tracing::debug!(
            region_id = self.region.id,
            request_index,
            to,
            "asking the region worker for a snapshot"
        );
        *gen = match self.snap_generator.request(self.region.id) {
            Some(slot) => SnapshotGen::Generating(slot),
            None => SnapshotGen::Idle,
        };
        Err(unavailable())
    }
}

fn entry_size(e: &Entry) -> u64 {
    (e.data.len() + e.context.len() + 16) as u64
}

/// Reads a region's local state record (its peer state, region and any merge state).
pub fn load_region_state(
    kv: &KvEngine,
    region_id: u64,
) -> Result<Option<proto::raft_serverpb::RegionLocalState>> {
    Ok(kv.get_msg_cf(CF_RAFT, &keys::region_state_key(region_id))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::metapb::PeerRole;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Default::default()
        }
    }

    #[test]
    fn cache_append_replaces_conflicting_suffix() {
        let mut c = EntryCache::default();
        c.append(&[entry(6, 5), entry(7, 5), entry(8, 5)]);
        c.append(&[entry(7, 6)]);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(7).unwrap().term, 6);
        assert!(c.get(8).is_none());
        c.compact_to(7);
        assert_eq!(c.first_index(), Some(7));
    }

    #[test]
    fn released_cache_keeps_only_entries_at_or_above_the_bound_and_frees_its_buffer() {
        let mut c = EntryCache::default();
        c.append(&[entry(6, 5), entry(7, 5), entry(8, 5)]);
        c.release_below(8);
        assert_eq!(c.first_index(), Some(8));
        assert_eq!(c.len(), 1);
        assert!(c.get(7).is_none() && c.get(8).is_some());
        c.release_below(9);
        assert_eq!(c.len(), 0);
        assert_eq!(c.entries.capacity(), 0, "an empty cache keeps no buffer");
        // It fills again as before.
        c.append(&[entry(9, 5)]);
        assert_eq!(c.first_index(), Some(9));
    }

    #[test]
    fn conf_state_from_roles() {
        use proto::metapb::Peer;
        let mut region = Region::default();
        for (id, role) in [
            (1, PeerRole::Voter),
            (2, PeerRole::Voter),
            (3, PeerRole::Learner),
        ] {
            region.peers.push(Peer {
                id,
                store_id: id,
                role: role as i32,
                ..Default::default()
            });
        }
        let cs = conf_state_from_region(&region);
        assert_eq!(cs.get_voters(), &[1, 2]);
        assert_eq!(cs.get_learners(), &[3]);
        assert!(cs.get_voters_outgoing().is_empty());
    }
}
