//! Shared machinery of the `fuzz_decode` property tests (included by each crate's
//! `tests/fuzz_decode.rs` with `#[path]`).
//!
//! - [`config`]: the proptest configuration, whose case count `PROPTEST_CASES` overrides.
//! - [`random_bytes`] and [`mutated`]: inputs that are pure noise, or valid encodings with bits
//!   flipped, bytes set, inserted, deleted or duplicated, the tail cut off, and hostile varints
//!   (huge length prefixes) spliced in.
//! - [`guarded`]: runs one decode under an allocation tracker (the largest single allocation
//!   the decoding thread asked for) and a watchdog that aborts the process, naming the input,
//!   when one case runs longer than [`CASE_DEADLINE`].
//! - [`check_alloc`]: the allocation bound: linear in the input, never sized by a length
//!   prefix.

#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::{Mutex, Once};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};

/// The allocator of every fuzz test binary: the system allocator, plus the largest single
/// request of the current thread while [`guarded`] tracks it. Requests above
/// [`HARD_ALLOC_CAP`] are refused outright (the process then aborts naming the size) so a
/// decoder that trusts a length prefix cannot take the machine's memory.
pub struct TrackingAlloc;

/// No decode of a fuzz input may ask for this much in one allocation.
pub const HARD_ALLOC_CAP: usize = 1 << 30;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = TRACKING.try_with(|t| {
        if t.get() {
            let _ = PEAK.try_with(|p| p.set(p.get().max(size)));
        }
    });
}

unsafe impl GlobalAlloc for TrackingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > HARD_ALLOC_CAP {
            return std::ptr::null_mut();
        }
        note(layout.size());
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > HARD_ALLOC_CAP {
            return std::ptr::null_mut();
        }
        note(layout.size());
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > HARD_ALLOC_CAP {
            return std::ptr::null_mut();
        }
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: TrackingAlloc = TrackingAlloc;

/// Cases per property when `PROPTEST_CASES` is not set.
pub const DEFAULT_CASES: u32 = 2000;

/// `PROPTEST_CASES`, when set to a number.
pub fn env_cases() -> Option<u32> {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
}

/// The configuration of every property: `PROPTEST_CASES` when set, else `default_cases`;
/// failures are reported with their shrunk input rather than persisted to files.
pub fn config(default_cases: u32) -> ProptestConfig {
    config_with_cases(env_cases().unwrap_or(default_cases))
}

/// Like [`config`] for a property whose every case reopens a database and so stands for
/// `inputs_per_case` ordinary cases (it checks that many stored values, or costs as much):
/// it runs `PROPTEST_CASES / inputs_per_case` cases (at least one).
pub fn config_batched(default_cases: u32, inputs_per_case: u32) -> ProptestConfig {
    config_with_cases(
        env_cases()
            .map(|n| (n / inputs_per_case.max(1)).max(1))
            .unwrap_or(default_cases),
    )
}

fn config_with_cases(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        // Shrinking a failure is bounded so a failing run still ends.
        max_shrink_time: 120_000,
        ..ProptestConfig::default()
    }
}

/// Runs one property over `strategy` with [`config`]`(default_cases)`, panicking with the
/// minimal failing input if it fails.
pub fn run<S: Strategy>(
    name: &str,
    default_cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    run_with(name, config(default_cases), strategy, test)
}

/// Runs one property with an explicit configuration (see [`config_batched`]).
pub fn run_with<S: Strategy>(
    name: &str,
    config: ProptestConfig,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    let mut runner = TestRunner::new(config);
    if let Err(e) = runner.run(&strategy, test) {
        panic!("property {name} failed: {e}");
    }
}

/// One case may run this long before the watchdog aborts the process.
pub const CASE_DEADLINE: Duration = Duration::from_secs(20);

/// The cases now running: thread, start, input.
static RUNNING: Mutex<Vec<(ThreadId, Instant, Vec<u8>)>> = Mutex::new(Vec::new());
static WATCHDOG: Once = Once::new();

fn running() -> std::sync::MutexGuard<'static, Vec<(ThreadId, Instant, Vec<u8>)>> {
    RUNNING.lock().unwrap_or_else(|e| e.into_inner())
}

fn watchdog() {
    loop {
        std::thread::sleep(Duration::from_millis(200));
        for (thread, started, input) in running().iter() {
            if started.elapsed() > CASE_DEADLINE {
                eprintln!(
                    "fuzz case on {thread:?} still running after {CASE_DEADLINE:?}: the \
                     decoder hangs on input ({} bytes) {input:02x?}",
                    input.len()
                );
                std::process::abort();
            }
        }
    }
}

/// Runs `decode` on `input` under the watchdog and the allocation tracker; returns its result
/// and the largest single allocation it made on this thread.
pub fn guarded<R>(input: &[u8], decode: impl FnOnce() -> R) -> (R, usize) {
    WATCHDOG.call_once(|| {
        std::thread::Builder::new()
            .name("fuzz-watchdog".into())
            .spawn(watchdog)
            .expect("start the fuzz watchdog");
    });
    let me = std::thread::current().id();
    running().push((me, Instant::now(), input.to_vec()));
    // Stops tracking and leaves the watchdog's list even when `decode` panics.
    struct Done(ThreadId);
    impl Drop for Done {
        fn drop(&mut self) {
            TRACKING.with(|t| t.set(false));
            running().retain(|(t, _, _)| *t != self.0);
        }
    }
    let done = Done(me);
    PEAK.with(|p| p.set(0));
    TRACKING.with(|t| t.set(true));
    let out = decode();
    TRACKING.with(|t| t.set(false));
    let peak = PEAK.with(|p| p.get());
    drop(done);
    (out, peak)
}

/// Allocations any decode may make regardless of its input.
pub const ALLOC_SLACK: usize = 64 * 1024;
/// Bytes a decode may allocate (in one allocation) per input byte: decoded structures are
/// larger than their encoding (an empty nested message is 2 bytes on the wire and a few
/// hundred in memory), but only by a constant factor.
pub const ALLOC_PER_INPUT_BYTE: usize = 1024;

/// Fails the case when the largest allocation of a decode of `input_len` bytes was not
/// bounded by the input's length (as when a length prefix is trusted for a capacity).
pub fn check_alloc(what: &str, input_len: usize, peak: usize) -> Result<(), TestCaseError> {
    let bound = ALLOC_SLACK + ALLOC_PER_INPUT_BYTE * input_len;
    if peak > bound {
        return Err(TestCaseError::fail(format!(
            "{what}: one allocation of {peak} bytes for {input_len} input bytes (bound {bound})"
        )));
    }
    Ok(())
}

/// Arbitrary bytes, mostly short, sometimes up to `max_len`.
pub fn random_bytes(max_len: usize) -> impl Strategy<Value = Vec<u8>> + Clone {
    prop_oneof![
        3 => prop::collection::vec(any::<u8>(), 0..=32.min(max_len)),
        1 => prop::collection::vec(any::<u8>(), 0..=max_len),
    ]
}

/// Values that make decoders misbehave: zero, boundaries of 7, 8, 31, 32 and 63 bits, huge.
pub fn interesting_u64() -> impl Strategy<Value = u64> + Clone {
    prop_oneof![
        Just(0u64),
        Just(1u64),
        Just(0x7fu64),
        Just(0x80u64),
        Just(0xffu64),
        Just(i32::MAX as u64),
        Just(1u64 << 31),
        Just(u32::MAX as u64),
        Just(1u64 << 32),
        Just(1u64 << 40),
        Just(1u64 << 60),
        Just(i64::MAX as u64),
        Just(1u64 << 63),
        Just(u64::MAX),
        any::<u64>(),
    ]
}

/// Protobuf varint encoding of `v`.
pub fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(10);
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

/// One edit of a byte string.
#[derive(Clone, Debug)]
pub enum Mutation {
    /// Flips bit `.1` of the byte at `.0`.
    FlipBit(Index, u8),
    /// Sets the byte at `.0` to `.1`.
    SetByte(Index, u8),
    /// Inserts bytes at `.0`.
    Insert(Index, Vec<u8>),
    /// Deletes up to `.1` bytes from `.0`.
    Delete(Index, usize),
    /// Cuts everything from `.0` on.
    Truncate(Index),
    /// Repeats the `.1` bytes starting at `.0` right after them.
    Duplicate(Index, usize),
    /// Inserts a varint `.1` at `.0` (a length prefix, field value or tag).
    Varint(Index, u64),
    /// Inserts a length-delimited field header claiming `.2` bytes: tag of field `.1`
    /// (wire type 2) followed by the varint length.
    LengthBomb(Index, u32, u64),
    /// Overwrites 4 bytes at `.0` with a big-endian `.1` (frame lengths, fixed fields).
    SetU32(Index, u32),
}

/// Strategy for one [`Mutation`].
pub fn mutation() -> impl Strategy<Value = Mutation> + Clone {
    prop_oneof![
        3 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        3 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::SetByte(i, b)),
        2 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        2 => (any::<Index>(), 1usize..16).prop_map(|(i, n)| Mutation::Delete(i, n)),
        2 => any::<Index>().prop_map(Mutation::Truncate),
        1 => (any::<Index>(), 1usize..32).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
        2 => (any::<Index>(), interesting_u64()).prop_map(|(i, v)| Mutation::Varint(i, v)),
        2 => (any::<Index>(), 1u32..40, interesting_u64())
            .prop_map(|(i, f, n)| Mutation::LengthBomb(i, f, n)),
        1 => (any::<Index>(), prop_oneof![
            Just(u32::MAX),
            Just(1u32 << 31),
            Just(1u32 << 24),
            any::<u32>()
        ])
            .prop_map(|(i, v)| Mutation::SetU32(i, v)),
    ]
}

fn at(i: &Index, len: usize) -> usize {
    // A position in 0..=len (insertions may go at the end).
    i.index(len + 1)
}

/// Applies `m` to `bytes`.
pub fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    match m {
        Mutation::FlipBit(i, bit) => {
            if !bytes.is_empty() {
                let p = i.index(bytes.len());
                bytes[p] ^= 1 << bit;
            }
        }
        Mutation::SetByte(i, b) => {
            if !bytes.is_empty() {
                let p = i.index(bytes.len());
                bytes[p] = *b;
            }
        }
        Mutation::Insert(i, v) => {
            let p = at(i, bytes.len());
            bytes.splice(p..p, v.iter().copied());
        }
        Mutation::Delete(i, n) => {
            if !bytes.is_empty() {
                let p = i.index(bytes.len());
                let end = (p + n).min(bytes.len());
                bytes.drain(p..end);
            }
        }
        Mutation::Truncate(i) => {
            let p = at(i, bytes.len());
            bytes.truncate(p);
        }
        Mutation::Duplicate(i, n) => {
            if !bytes.is_empty() {
                let p = i.index(bytes.len());
                let end = (p + n).min(bytes.len());
                let copy: Vec<u8> = bytes[p..end].to_vec();
                bytes.splice(end..end, copy);
            }
        }
        Mutation::Varint(i, v) => {
            let p = at(i, bytes.len());
            bytes.splice(p..p, varint(*v));
        }
        Mutation::LengthBomb(i, field, len) => {
            let p = at(i, bytes.len());
            let mut header = varint((u64::from(*field) << 3) | 2);
            header.extend(varint(*len));
            bytes.splice(p..p, header);
        }
        Mutation::SetU32(i, v) => {
            if bytes.len() >= 4 {
                let p = i.index(bytes.len() - 3);
                bytes[p..p + 4].copy_from_slice(&v.to_be_bytes());
            }
        }
    }
}

/// A valid encoding from `valid`, then one to four [`Mutation`]s applied in turn.
pub fn mutated(valid: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    (valid, prop::collection::vec(mutation(), 1..=4)).prop_map(|(mut bytes, ms)| {
        for m in &ms {
            apply(&mut bytes, m);
        }
        bytes
    })
}

/// Bytes from `valid`, or the same bytes mutated, or noise: what the `fuzz_*_any` properties
/// feed to a decoder.
pub fn valid_mutated_or_random(
    valid: impl Strategy<Value = Vec<u8>> + Clone,
    max_random: usize,
) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => valid.clone(),
        6 => mutated(valid),
        3 => random_bytes(max_random),
    ]
}
