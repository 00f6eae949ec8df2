//! Multi-key histories. Linearizability is local (Herlihy & Wing 1990: a history is
//! linearizable if and only if its restriction to each object is), so a history over many keys
//! is checked one key at a time, and keys can be checked in parallel.

use std::collections::BTreeMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use crate::checker::check;
use crate::history::{HistoryError, KeyedOperation, Operation};
use crate::report::{CheckOptions, Report};

/// The operations of one key, cut out of a multi-key history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyHistory<K, V = Vec<u8>> {
    /// The key.
    pub key: K,
    /// Its operations, in the order they came.
    pub ops: Vec<Operation<V>>,
    /// `indices[i]` is the position of `ops[i]` in the multi-key history.
    pub indices: Vec<usize>,
}

/// The result for one key. Indices in it refer to the multi-key history that was split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyReport<K, V = Vec<u8>> {
    /// The key.
    pub key: K,
    /// Its report, or why its history could not be checked.
    pub result: Result<Report<V>, HistoryError>,
}

/// Splits a multi-key history into one history per key, in key order.
pub fn split_by_key<K: Ord, V>(
    ops: impl IntoIterator<Item = KeyedOperation<K, V>>,
) -> Vec<KeyHistory<K, V>> {
    let mut by_key: BTreeMap<K, (Vec<Operation<V>>, Vec<usize>)> = BTreeMap::new();
    for (index, KeyedOperation { key, op }) in ops.into_iter().enumerate() {
        let slot = by_key.entry(key).or_default();
        slot.0.push(op);
        slot.1.push(index);
    }
    by_key
        .into_iter()
        .map(|(key, (ops, indices))| KeyHistory { key, ops, indices })
        .collect()
}

/// Checks every key of a multi-key history, in parallel on [`CheckOptions::threads`] threads
/// (each key gets the full step and time budget). Reports come in key order; their indices
/// refer to `ops`.
pub fn check_by_key<K, V>(ops: &[KeyedOperation<K, V>], opts: &CheckOptions) -> Vec<KeyReport<K, V>>
where
    K: Ord + Clone + Send + Sync,
    V: Clone + Eq + Hash + Send + Sync,
{
    check_histories(&split_by_key(ops.iter().cloned()), opts)
}

/// Checks already split histories, in parallel on [`CheckOptions::threads`] threads. Reports
/// come in the order of `histories`; their indices are mapped through each
/// [`KeyHistory::indices`].
pub fn check_histories<K, V>(
    histories: &[KeyHistory<K, V>],
    opts: &CheckOptions,
) -> Vec<KeyReport<K, V>>
where
    K: Clone + Send + Sync,
    V: Clone + Eq + Hash + Send + Sync,
{
    let threads = match opts.threads {
        0 => thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .clamp(1, histories.len().max(1));
    // Largest histories first, so one long key does not start last.
    let mut order: Vec<usize> = (0..histories.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(histories[i].ops.len()));
    let next = AtomicUsize::new(0);
    let worker = || {
        let mut done = Vec::new();
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            let Some(&i) = order.get(k) else { break };
            done.push((i, check_one(&histories[i], opts)));
        }
        done
    };
    let mut results: Vec<Option<Result<Report<V>, HistoryError>>> =
        (0..histories.len()).map(|_| None).collect();
    let finished: Vec<Vec<_>> = if threads == 1 {
        vec![worker()]
    } else {
        thread::scope(|s| {
            let handles: Vec<_> = (0..threads).map(|_| s.spawn(worker)).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        })
    };
    for (i, r) in finished.into_iter().flatten() {
        results[i] = Some(r);
    }
    histories
        .iter()
        .zip(results)
        .map(|(h, r)| KeyReport {
            key: h.key.clone(),
            result: r.expect("every key is checked once"),
        })
        .collect()
}

fn check_one<K, V: Clone + Eq + Hash>(
    h: &KeyHistory<K, V>,
    opts: &CheckOptions,
) -> Result<Report<V>, HistoryError> {
    let map = |i: usize| h.indices.get(i).copied().unwrap_or(i);
    match check(&h.ops, opts) {
        Ok(mut report) => {
            report.verdict.map_indices(&map);
            Ok(report)
        }
        Err(e) => Err(e.map_index(map)),
    }
}
