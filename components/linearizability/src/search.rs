//! The search: Wing & Gong's backtracking over the operations that could take effect next, with
//! Lowe's memoization of visited configurations.
//!
//! The history is a doubly linked list of call and return entries in time order (a call and a
//! return at the same instant count as concurrent: the call comes first). Scanning from the
//! head, every call before the first return (the *window*) belongs to an operation that may
//! take effect now. Linearizing one lifts its call and return out of the list and starts a new
//! scan; reaching a return means that operation had to take effect already, so the search
//! backtracks and tries the next candidate. Indeterminate operations have no return entry: they
//! never force a backtrack and need not be linearized at all (the search succeeds once every
//! completed operation is placed, since an indeterminate one can always take effect last).
//!
//! A configuration is (set of linearized operations, register state). Each one reached is
//! remembered; reaching it again (by another order) is skipped, as in Lowe's "Testing for
//! linearizability" (2017). The set is kept as a 128-bit Zobrist fingerprint (XOR of one random
//! 128-bit word per operation, plus one per register state), updated in O(1) per step, so a
//! memo entry is 16 bytes whatever the history size. Two distinct configurations share a
//! fingerprint with probability 2^-128 per pair (the fingerprint-set approach of explicit-state
//! model checkers); such a collision could only make the search skip a branch.
//!
//! Reductions that keep the search small, each preserving the verdict (each is the claim that
//! if any linearization exists, one exists that the reduced search still explores):
//! - *read-only first*: a completed read-only operation (a read, or a CAS that failed) legal in
//!   the current state is placed at once and no alternative is tried in its place: any
//!   linearization from here can be reordered to start with it, since it does not change the
//!   state and every operation that must precede it is already placed;
//! - *starvation*: if an unplaced completed operation requires a state (a read of `v`, a CAS
//!   expecting `v`) that is not the current one and no unplaced operation can produce it, the
//!   configuration is dead at once, instead of when that operation's completion is reached;
//! - *dead states*: once no unplaced completed operation requires a value and no unplaced
//!   indeterminate CAS expects it, the value behaves like every other unobservable one, so the
//!   state is replaced by one shared "dead" state and configurations that differ only there
//!   meet in the memo;
//! - *interchangeable writes*: completed writes in the window whose effects are equal (same
//!   value, or both dead) are placed in order of completion time: in any linearization the one
//!   completing first can take the other's place; indeterminate operations with the same
//!   effect are placed in invoke order;
//! - *useful indeterminate operations only*: an indeterminate operation is placed only if that
//!   changes the state to a live value that some operation in the window requires. Otherwise
//!   it can move later: in any linearization, moving an indeterminate operation forward to just
//!   before the next operation that observes its value (or to the end, if its value is
//!   overwritten unobserved) keeps every operation legal, and such an operation is in the
//!   window when the indeterminate one is placed.
//!
//! Preparation (see `prepare`) also drops indeterminate operations nobody could observe and
//! merges values nobody observes into the dead state from the start.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

use crate::prepare::{Prepared, SearchOp, StateId, Transition, ABSENT};
use crate::report::Exhausted;
use crate::rng::SplitMix64;

const NIL: u32 = u32::MAX;
const HEAD: u32 = 0;
/// How many steps pass between two looks at the clock.
const CLOCK_EVERY: u64 = 1024;

/// Why the deepest dead end was dead.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Cause {
    /// The scan reached the completion of this unplaced operation.
    Completion(u32),
    /// Some unplaced completed operation requires a state that is not the current one and that
    /// no unplaced operation can produce any more.
    Starved,
}

/// The deepest dead end found: `prefix` was placed (a legal order) and then `cause`.
#[derive(Clone, Debug)]
pub(crate) struct Deepest {
    pub prefix: Vec<u32>,
    pub cause: Cause,
}

/// How a search ended.
pub(crate) enum End {
    /// Every completed operation is placed, in this order (search op indices).
    Linearizable(Vec<u32>),
    /// No order exists; the deepest dead end explains it.
    Violation(Deepest),
    /// The budget ran out; the length of the longest prefix placed.
    Exhausted(Exhausted, usize),
}

/// A call or return in the time-ordered list.
#[derive(Clone, Copy, Debug)]
struct Entry {
    op: u32,
    is_return: bool,
    prev: u32,
    next: u32,
}

/// An operation placed by the search, with what is needed to take it back.
#[derive(Clone, Copy, Debug)]
struct Frame {
    op: u32,
    prev_state: StateId,
    /// Placed as a read-only operation: no alternative is tried in its place.
    forced: bool,
}

/// Memo keys are already uniformly random: hash them by folding.
#[derive(Default)]
struct FoldHasher(u64);

impl Hasher for FoldHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_u128(&mut self, x: u128) {
        self.0 ^= (x as u64) ^ ((x >> 64) as u64);
    }
}

type Memo = HashSet<u128, BuildHasherDefault<FoldHasher>>;

/// Budget of one search.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Budget {
    pub max_steps: Option<u64>,
    /// Start of the check and the time allowed.
    pub deadline: Option<(Instant, Duration)>,
}

/// Search state over one prepared history.
pub(crate) struct Search<'p> {
    ops: &'p [SearchOp],
    entries: Vec<Entry>,
    call: Vec<u32>,
    ret: Vec<u32>,
    /// For an indeterminate operation: the previous indeterminate one with the same effect.
    prev_same: Vec<u32>,
    /// For a completed write: the state it writes (its class of interchangeable writes).
    write_class: Vec<u32>,
    /// Per state: (window epoch, best op) - the unplaced completed write of that state in the
    /// current window with the earliest completion.
    class_best: Vec<(u32, u32)>,
    /// Per state: the window epoch in which some window operation was seen to require it.
    wanted: Vec<u32>,
    epoch: u32,
    zobrist: Vec<u128>,
    state_mix: Vec<u128>,
    linearized: Vec<bool>,
    /// Per state: unplaced completed operations that require it.
    need: Vec<u32>,
    /// Per state: unplaced operations that can produce it.
    producers: Vec<u32>,
    /// Per state: unplaced indeterminate CASes that expect it.
    watch: Vec<u32>,
    /// Fingerprint of the placed set (see the module docs).
    fingerprint: u128,
    /// The state that stands for every value nothing can observe any more.
    dead: StateId,
    /// Number of states with `need > 0 && producers == 0`, and the sum of their ids.
    starved_count: u32,
    starved_sum: u64,
    /// Steps taken: attempts to place an operation.
    pub steps: u64,
    /// Configurations remembered when the search ended.
    pub memo_entries: usize,
}

impl<'p> Search<'p> {
    pub(crate) fn new(prepared: &'p Prepared) -> Self {
        let ops = &prepared.ops[..];
        let n = ops.len();
        let n_states = prepared.n_states;
        // (time, is_return, op): calls sort before returns at the same instant.
        let mut events: Vec<(u64, bool, u32)> = Vec::with_capacity(2 * n);
        for (i, op) in ops.iter().enumerate() {
            events.push((op.invoke, false, i as u32));
            if !op.info {
                events.push((op.complete, true, i as u32));
            }
        }
        events.sort_unstable();
        let mut entries = Vec::with_capacity(events.len() + 1);
        entries.push(Entry {
            op: NIL,
            is_return: false,
            prev: NIL,
            next: if events.is_empty() { NIL } else { 1 },
        });
        let mut call = vec![NIL; n];
        let mut ret = vec![NIL; n];
        for (k, &(_, is_return, op)) in events.iter().enumerate() {
            let at = k as u32 + 1;
            if is_return {
                ret[op as usize] = at;
            } else {
                call[op as usize] = at;
            }
            entries.push(Entry {
                op,
                is_return,
                prev: at - 1,
                next: if k + 1 < events.len() { at + 1 } else { NIL },
            });
        }

        let mut prev_same = vec![NIL; n];
        let mut last_same: HashMap<Transition, u32> = HashMap::new();
        for (i, op) in ops.iter().enumerate().filter(|(_, o)| o.info) {
            if let Some(p) = last_same.insert(op.transition, i as u32) {
                prev_same[i] = p;
            }
        }
        let write_class = ops
            .iter()
            .map(|o| match o.transition {
                Transition::Write(v) if !o.info => v,
                _ => NIL,
            })
            .collect();

        let mut need = vec![0u32; n_states];
        let mut producers = vec![0u32; n_states];
        let mut watch = vec![0u32; n_states];
        for op in ops {
            if let Transition::CasInfo { expected, .. } = op.transition {
                watch[expected as usize] += 1;
            }
            if let (false, Some(v)) = (op.info, op.transition.demands()) {
                need[v as usize] += 1;
            }
            if let Some(v) = op.transition.produces() {
                producers[v as usize] += 1;
            }
        }
        let (mut starved_count, mut starved_sum) = (0, 0);
        for v in 0..n_states {
            if need[v] > 0 && producers[v] == 0 {
                starved_count += 1;
                starved_sum += v as u64;
            }
        }

        let mut rng = SplitMix64::new(0x6c69_6e65_6172_697a);
        let mut word = || (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
        let zobrist: Vec<u128> = (0..n).map(|_| word()).collect();
        let state_mix = (0..n_states).map(|_| word()).collect();
        Search {
            ops,
            entries,
            call,
            ret,
            prev_same,
            write_class,
            class_best: vec![(0, NIL); n_states],
            wanted: vec![0; n_states],
            epoch: 0,
            zobrist,
            state_mix,
            linearized: vec![false; n],
            need,
            producers,
            watch,
            fingerprint: 0,
            dead: (n_states - 1) as StateId,
            starved_count,
            starved_sum,
            steps: 0,
            memo_entries: 0,
        }
    }

    fn unlink(&mut self, e: u32) {
        let Entry { prev, next, .. } = self.entries[e as usize];
        self.entries[prev as usize].next = next;
        if next != NIL {
            self.entries[next as usize].prev = prev;
        }
    }

    fn relink(&mut self, e: u32) {
        let Entry { prev, next, .. } = self.entries[e as usize];
        self.entries[prev as usize].next = e;
        if next != NIL {
            self.entries[next as usize].prev = e;
        }
    }

    /// Adds to the need, producer and watch counts of state `v`, keeping the starved tally.
    #[inline]
    fn adjust(&mut self, v: StateId, need: i32, produce: i32, watch: i32) {
        let v = v as usize;
        let starved_before = self.need[v] > 0 && self.producers[v] == 0;
        self.need[v] = self.need[v].wrapping_add_signed(need);
        self.producers[v] = self.producers[v].wrapping_add_signed(produce);
        self.watch[v] = self.watch[v].wrapping_add_signed(watch);
        let starved_after = self.need[v] > 0 && self.producers[v] == 0;
        if starved_before != starved_after {
            if starved_after {
                self.starved_count += 1;
                self.starved_sum += v as u64;
            } else {
                self.starved_count -= 1;
                self.starved_sum -= v as u64;
            }
        }
    }

    /// Updates the counts for operation `i` being placed (`sign = -1`) or unplaced (`1`).
    fn count(&mut self, i: usize, sign: i32) {
        let op = self.ops[i];
        if let Transition::CasInfo { expected, .. } = op.transition {
            self.adjust(expected, 0, 0, sign);
        }
        if let (false, Some(v)) = (op.info, op.transition.demands()) {
            self.adjust(v, sign, 0, 0);
        }
        if let Some(v) = op.transition.produces() {
            self.adjust(v, 0, sign, 0);
        }
    }

    fn place(&mut self, i: usize) {
        self.unlink(self.call[i]);
        if self.ret[i] != NIL {
            self.unlink(self.ret[i]);
        }
        self.linearized[i] = true;
        self.fingerprint ^= self.zobrist[i];
        self.count(i, -1);
    }

    /// Undoes [`Self::place`] (relinking in reverse order, so the links come back exactly).
    fn unplace(&mut self, i: usize) {
        if self.ret[i] != NIL {
            self.relink(self.ret[i]);
        }
        self.relink(self.call[i]);
        self.linearized[i] = false;
        self.count(i, 1);
        self.fingerprint ^= self.zobrist[i];
    }

    /// State `v` as the future sees it: once no unplaced completed operation requires `v` and
    /// no unplaced indeterminate CAS expects it, `v` behaves exactly like every other value
    /// nothing observes, so it becomes the shared dead state (and configurations meet in the
    /// memo).
    #[inline]
    fn canon(&self, v: StateId) -> StateId {
        if self.need[v as usize] == 0 && self.watch[v as usize] == 0 {
            self.dead
        } else {
            v
        }
    }

    /// [`Self::canon`] of `v` as it will be once operation `i` is placed.
    #[inline]
    fn canon_after(&self, i: usize, v: StateId) -> StateId {
        let op = self.ops[i];
        let mut need = self.need[v as usize];
        if !op.info && op.transition.demands() == Some(v) {
            need -= 1;
        }
        let mut watch = self.watch[v as usize];
        if matches!(op.transition, Transition::CasInfo { expected, .. } if expected == v) {
            watch -= 1;
        }
        if need == 0 && watch == 0 {
            self.dead
        } else {
            v
        }
    }

    /// Whether the configuration in state `s` is starved: some state other than `s` is required
    /// by an unplaced completed operation and can no longer be produced.
    #[inline]
    fn starved(&self, s: StateId) -> bool {
        self.starved_count > 1 || (self.starved_count == 1 && self.starved_sum != u64::from(s))
    }

    /// Walks the window in state `s`: records the best write of each class and returns a legal
    /// read-only operation (if any), the first other call (or NIL) and the window's end.
    fn survey(&mut self, s: StateId) -> (Option<usize>, u32, u32) {
        self.epoch = self.epoch.wrapping_add(1);
        let mut first_other = NIL;
        let mut e = self.entries[HEAD as usize].next;
        loop {
            let entry = self.entries[e as usize];
            if entry.is_return {
                return (None, first_other, e);
            }
            let i = entry.op as usize;
            let op = self.ops[i];
            match op.transition {
                Transition::CasInfo { expected: v, .. } => self.wanted[v as usize] = self.epoch,
                t => {
                    if let (false, Some(v)) = (op.info, t.demands()) {
                        self.wanted[v as usize] = self.epoch;
                    }
                }
            }
            if op.transition.is_read_only() && !op.info {
                if op.transition.apply(s).is_some() {
                    return (Some(i), first_other, e);
                }
            } else {
                if first_other == NIL {
                    first_other = e;
                }
                let class = self.write_class[i];
                if class != NIL {
                    let class = self.canon(class);
                    let best = &mut self.class_best[class as usize];
                    if best.0 != self.epoch
                        || (op.complete, i) < (self.ops[best.1 as usize].complete, best.1 as usize)
                    {
                        *best = (self.epoch, i as u32);
                    }
                }
            }
            e = entry.next;
        }
    }

    /// Whether unplaced operation `i` may be placed next in state `s` (after [`Self::survey`]
    /// of the current window): the state after it and whether it is read-only.
    #[inline]
    fn candidate(&self, i: usize, s: StateId) -> Option<(StateId, bool)> {
        let op = self.ops[i];
        let p = self.prev_same[i];
        if p != NIL && !self.linearized[p as usize] {
            return None;
        }
        let class = self.write_class[i];
        if class != NIL && self.class_best[self.canon(class) as usize].1 != i as u32 {
            return None;
        }
        let next = self.canon_after(i, op.transition.apply(s)?);
        if op.info && (next == s || next == self.dead || self.wanted[next as usize] != self.epoch) {
            return None;
        }
        Some((next, op.transition.is_read_only()))
    }

    /// Runs the search.
    pub(crate) fn run(&mut self, budget: Budget) -> End {
        let mut remaining = self.ops.iter().filter(|o| !o.info).count();
        if remaining == 0 {
            return End::Linearizable(Vec::new());
        }
        let max_steps = budget.max_steps.unwrap_or(u64::MAX);
        let mut memo = Memo::with_capacity_and_hasher(2 * self.ops.len(), Default::default());
        let mut stack: Vec<Frame> = Vec::new();
        let mut state = self.canon(ABSENT);
        memo.insert(self.fingerprint ^ self.state_mix[state as usize]);

        let mut deepest: Option<Deepest> = None;
        // `deepest.prefix[..same_len]` equals the ops of `stack[..same_len]`.
        let mut same_len = 0usize;
        // Where the scan for the next candidate resumes; NIL right after placing an operation.
        let mut cur = NIL;
        let mut surveyed = false;
        loop {
            // 1. Pick the next operation to place, or find that this configuration is stuck.
            let mut pick: Option<(usize, StateId, bool)> = None;
            if !surveyed {
                surveyed = true;
                let (read, first_other, end) = self.survey(state);
                if cur == NIL {
                    match read {
                        Some(j) => pick = Some((j, self.canon_after(j, state), true)),
                        None => cur = if first_other != NIL { first_other } else { end },
                    }
                }
            }
            while pick.is_none() {
                let entry = self.entries[cur as usize];
                if entry.is_return {
                    break;
                }
                cur = entry.next;
                let i = entry.op as usize;
                if let Some((next_state, forced)) = self.candidate(i, state) {
                    pick = Some((i, next_state, forced));
                }
            }

            // 2. Place it, unless this configuration was reached before or is starved.
            let mut dead_end = true;
            if let Some((i, next_state, forced)) = pick {
                self.steps += 1;
                if self.steps > max_steps {
                    self.memo_entries = memo.len();
                    let longest = longest(&deepest, &stack);
                    return End::Exhausted(Exhausted::Steps(max_steps), longest);
                }
                if self.steps.is_multiple_of(CLOCK_EVERY) {
                    if let Some((start, limit)) = budget.deadline {
                        if start.elapsed() >= limit {
                            self.memo_entries = memo.len();
                            let longest = longest(&deepest, &stack);
                            return End::Exhausted(Exhausted::Time(limit), longest);
                        }
                    }
                }
                self.place(i);
                debug_assert_eq!(next_state, self.canon(next_state));
                if memo.insert(self.fingerprint ^ self.state_mix[next_state as usize]) {
                    stack.push(Frame {
                        op: i as u32,
                        prev_state: state,
                        forced,
                    });
                    state = next_state;
                    if !self.ops[i].info {
                        remaining -= 1;
                        if remaining == 0 {
                            self.memo_entries = memo.len();
                            return End::Linearizable(stack.iter().map(|f| f.op).collect());
                        }
                    }
                    cur = NIL;
                    surveyed = false;
                    if !self.starved(state) {
                        continue;
                    }
                    record(&mut deepest, &stack, &mut same_len, Cause::Starved);
                } else {
                    self.unplace(i);
                    // Placing a legal read-only operation now is as good as any alternative,
                    // and that configuration is already known to fail.
                    dead_end = forced;
                }
            } else {
                let stuck_at = self.entries[cur as usize].op;
                record(
                    &mut deepest,
                    &stack,
                    &mut same_len,
                    Cause::Completion(stuck_at),
                );
            }
            if !dead_end {
                continue;
            }

            // 3. Backtrack: take back placed operations until one leaves alternatives to try.
            loop {
                let Some(frame) = stack.pop() else {
                    self.memo_entries = memo.len();
                    return End::Violation(deepest.unwrap_or(Deepest {
                        prefix: Vec::new(),
                        cause: Cause::Completion(
                            self.ops.iter().position(|o| !o.info).unwrap_or(0) as u32,
                        ),
                    }));
                };
                same_len = same_len.min(stack.len());
                let i = frame.op as usize;
                self.unplace(i);
                state = frame.prev_state;
                if !self.ops[i].info {
                    remaining += 1;
                }
                if !frame.forced {
                    cur = self.entries[self.call[i] as usize].next;
                    surveyed = false;
                    break;
                }
            }
        }
    }
}

/// Keeps the dead end at `stack` if it is deeper than the one kept. Only the part of the prefix
/// that changed since the last time (from `same_len` on) is copied.
fn record(deepest: &mut Option<Deepest>, stack: &[Frame], same_len: &mut usize, cause: Cause) {
    if deepest
        .as_ref()
        .is_some_and(|d| d.prefix.len() >= stack.len())
    {
        return;
    }
    let d = deepest.get_or_insert(Deepest {
        prefix: Vec::new(),
        cause,
    });
    d.prefix.truncate(*same_len);
    d.prefix.extend(stack[*same_len..].iter().map(|f| f.op));
    *same_len = stack.len();
    d.cause = cause;
}

fn longest(deepest: &Option<Deepest>, stack: &[Frame]) -> usize {
    deepest
        .as_ref()
        .map_or(0, |d| d.prefix.len())
        .max(stack.len())
}
