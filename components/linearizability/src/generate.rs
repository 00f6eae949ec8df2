//! Generated histories of a correct register, for tests and benchmarks of the checker (and of
//! anything that consumes its reports).
//!
//! Each client runs operations one after another; each operation gets a random latency and a
//! random instant inside it where it takes effect on a real sequential register, so every
//! generated history is linearizable by construction. Written values are unique (1, 2, 3, ...),
//! which makes targeted corruptions provably illegal.

use crate::history::{Command, Operation, Outcome, Response, Time};
use crate::rng::SplitMix64;

/// Shape of a generated history.
#[derive(Clone, Debug, PartialEq)]
pub struct GenConfig {
    /// Number of operations.
    pub ops: usize,
    /// Number of concurrent clients (at least 1).
    pub clients: usize,
    /// Seed; the same configuration always gives the same history.
    pub seed: u64,
    /// Relative weight of reads.
    pub read_weight: u32,
    /// Relative weight of writes.
    pub write_weight: u32,
    /// Relative weight of compare-and-swaps.
    pub cas_weight: u32,
    /// Relative weight of deletes.
    pub delete_weight: u32,
    /// Probability that an operation ends `Info` (half of those take effect, possibly after
    /// the client gave up; the client then continues under a new process id).
    pub info_rate: f64,
    /// Probability that an operation ends `Fail` (and does not take effect).
    pub fail_rate: f64,
    /// Latency of an operation: uniform in `1..=max_latency` ns.
    pub max_latency: Time,
    /// Pause between two operations of a client: uniform in `0..=max_think` ns.
    pub max_think: Time,
}

impl Default for GenConfig {
    /// 1,000 operations, 5 clients, 45% reads, 30% writes, 20% CAS, 5% deletes, no `Info` or
    /// `Fail`, latency up to 1 ms, pauses up to 0.1 ms.
    fn default() -> Self {
        GenConfig {
            ops: 1_000,
            clients: 5,
            seed: 0,
            read_weight: 45,
            write_weight: 30,
            cas_weight: 20,
            delete_weight: 5,
            info_rate: 0.0,
            fail_rate: 0.0,
            max_latency: 1_000_000,
            max_think: 100_000,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    Ok,
    InfoApplied,
    InfoLost,
    Fail,
}

struct Slot {
    process: u64,
    invoke: Time,
    complete: Time,
    effect_at: Time,
    fate: Fate,
}

/// Generates a linearizable single-key history, sorted by invoke time.
pub fn register_history(cfg: &GenConfig) -> Vec<Operation<u64>> {
    let mut rng = SplitMix64::new(cfg.seed);
    let clients = cfg.clients.max(1);
    let max_latency = cfg.max_latency.max(1);
    let mut clock: Vec<Time> = (0..clients).map(|_| rng.below(cfg.max_think + 1)).collect();
    let mut incarnation = vec![0u64; clients];
    let mut slots = Vec::with_capacity(cfg.ops);
    for k in 0..cfg.ops {
        let c = k % clients;
        let invoke = clock[c];
        let latency = 1 + rng.below(max_latency);
        let complete = invoke + latency;
        let fate = if rng.chance(cfg.info_rate) {
            if rng.chance(0.5) {
                Fate::InfoApplied
            } else {
                Fate::InfoLost
            }
        } else if rng.chance(cfg.fail_rate) {
            Fate::Fail
        } else {
            Fate::Ok
        };
        let effect_at = match fate {
            Fate::Ok => invoke + rng.below(latency + 1),
            // A timed-out request may still land well after the client gave up.
            Fate::InfoApplied => invoke + rng.below(3 * latency + 1),
            Fate::InfoLost | Fate::Fail => invoke,
        };
        slots.push(Slot {
            process: (c as u64) + clients as u64 * incarnation[c],
            invoke,
            complete,
            effect_at,
            fate,
        });
        if matches!(fate, Fate::InfoApplied | Fate::InfoLost) {
            incarnation[c] += 1;
        }
        clock[c] = complete + rng.below(cfg.max_think + 1);
    }

    let mut by_effect: Vec<usize> = (0..slots.len()).collect();
    by_effect.sort_by_key(|&i| (slots[i].effect_at, i));
    let weights = [
        cfg.read_weight,
        cfg.write_weight,
        cfg.cas_weight,
        cfg.delete_weight,
    ];
    let total: u64 = weights.iter().map(|&w| u64::from(w)).sum::<u64>().max(1);
    let mut current: Option<u64> = None;
    let mut recent: Vec<u64> = Vec::new();
    let mut next_value = 1u64;
    let mut out: Vec<Option<Operation<u64>>> = (0..slots.len()).map(|_| None).collect();
    for i in by_effect {
        let slot = &slots[i];
        let applied = matches!(slot.fate, Fate::Ok | Fate::InfoApplied);
        let mut pick = rng.below(total);
        let mut kind = 0;
        while kind < 3 && pick >= u64::from(weights[kind]) {
            pick -= u64::from(weights[kind]);
            kind += 1;
        }
        let (command, response) = match kind {
            0 => (Command::Read, Response::Read(current)),
            1 => {
                let v = next_value;
                next_value += 1;
                if applied {
                    current = Some(v);
                    recent.push(v);
                }
                (Command::Write(v), Response::Write)
            }
            2 => {
                let expected = match rng.below(4) {
                    0 | 1 => current,
                    2 => None,
                    _ if recent.is_empty() => None,
                    _ => {
                        let back = rng.below(recent.len().min(4) as u64) as usize;
                        Some(recent[recent.len() - 1 - back])
                    }
                };
                let new = next_value;
                next_value += 1;
                let succeeded = current == expected;
                let previous = current;
                if applied && succeeded {
                    current = Some(new);
                    recent.push(new);
                }
                (
                    Command::Cas { expected, new },
                    Response::Cas {
                        previous,
                        succeeded,
                    },
                )
            }
            _ => {
                if applied {
                    current = None;
                }
                (Command::Delete, Response::Delete)
            }
        };
        let outcome = match slot.fate {
            Fate::Ok => Outcome::Ok(response),
            Fate::InfoApplied | Fate::InfoLost => Outcome::Info,
            Fate::Fail => Outcome::Fail,
        };
        out[i] = Some(Operation {
            process: slot.process,
            invoke: slot.invoke,
            complete: slot.complete,
            command,
            outcome,
        });
    }
    let mut ops: Vec<Operation<u64>> = out.into_iter().flatten().collect();
    ops.sort_by_key(|o| (o.invoke, o.process));
    ops
}

/// Completed reads, nearest the middle of the history first.
fn reads_from_middle(history: &[Operation<u64>]) -> Vec<usize> {
    let mid = history.len() / 2;
    let mut reads: Vec<usize> = (0..history.len())
        .filter(|&i| matches!(history[i].outcome, Outcome::Ok(Response::Read(_))))
        .collect();
    reads.sort_by_key(|&i| i.abs_diff(mid));
    reads
}

/// Makes the completed read nearest the middle observe `u64::MAX`, a value never written.
/// Returns its index, or `None` if there is no completed read.
pub fn corrupt_read_unwritten(history: &mut [Operation<u64>]) -> Option<usize> {
    let i = *reads_from_middle(history).first()?;
    history[i].outcome = Outcome::Ok(Response::Read(Some(u64::MAX)));
    Some(i)
}

/// Makes a completed read (the one nearest the middle that allows it) observe a stale value:
/// the value of a completed write W1 that precedes another completed write W2 in real time,
/// where W2 completes before the read is invoked. With unique written values (as generated
/// here) no order can explain it. Returns the read's index, or `None` if no read qualifies.
pub fn corrupt_read_stale(history: &mut [Operation<u64>]) -> Option<usize> {
    // Completed writes as (complete, invoke, value), by completion time.
    let mut writes: Vec<(Time, Time, u64)> = history
        .iter()
        .filter_map(|o| match (&o.command, &o.outcome) {
            (Command::Write(v), Outcome::Ok(_)) => Some((o.complete, o.invoke, *v)),
            _ => None,
        })
        .collect();
    writes.sort_unstable();
    let last_before = |t: Time| {
        let n = writes.partition_point(|w| w.0 < t);
        n.checked_sub(1).map(|k| writes[k])
    };
    for i in reads_from_middle(history) {
        let Some(w2) = last_before(history[i].invoke) else {
            continue;
        };
        let Some(w1) = last_before(w2.1) else {
            continue;
        };
        history[i].outcome = Outcome::Ok(Response::Read(Some(w1.2)));
        return Some(i);
    }
    None
}
