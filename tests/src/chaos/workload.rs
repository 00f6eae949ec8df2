//! The history recorder: concurrent clients doing reads, writes and compare-and-swaps on a few
//! hot keys through the official client, each operation recorded with its invoke and
//! completion time on one monotonic clock.
//!
//! Every written value is unique (`p<process>-<seq>`). A client whose operation ended
//! indeterminate continues under a new process id, as the checker expects. Without retries
//! the client does not refresh its region cache after a region error, so after one the
//! recorder reads the key through a retrying handle on the same client (a read changes
//! nothing, so retrying it is harmless); that read is not recorded.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use linearizability::{Command, KeyedOperation, Operation, Outcome, Response};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tikv_client::{Backoff, Config, RawClient};
use tokio::task::JoinHandle;

use super::classify::{classify, error_kind, needs_cache_refresh, ErrorClass};
use super::keys::HotKeys;

/// How long a client waits after an error before its next operation.
pub const ERROR_PAUSE: Duration = Duration::from_millis(20);

/// One recorded operation: the key (as text) and the operation on byte-string values, the
/// format `linearizability`'s regression histories use.
pub type Op = KeyedOperation<String, Vec<u8>>;

/// Nanoseconds since one origin, shared by every client and the nemesis.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: Instant,
}

impl Clock {
    /// A clock starting now.
    pub fn start() -> Clock {
        Clock {
            origin: Instant::now(),
        }
    }

    /// Nanoseconds since the origin.
    pub fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// What the clients do.
#[derive(Clone, Debug)]
pub struct WorkloadOptions {
    /// Concurrent clients (async tasks).
    pub clients: usize,
    /// The keys they use.
    pub keys: HotKeys,
    /// Whether the client retries (its default backoff) or sends every request once.
    pub retries: bool,
    /// Timeout of one gRPC call inside the client.
    pub rpc_timeout: Duration,
    /// Timeout of one whole operation (including any retries); past it the operation is
    /// indeterminate.
    pub op_timeout: Duration,
    /// Share of reads (the rest is split between writes and compare-and-swaps).
    pub read_ratio: f64,
    /// Share of blind writes.
    pub write_ratio: f64,
    /// Pause between two operations of one client.
    pub think: Duration,
    /// Seed of the clients' random choices.
    pub seed: u64,
}

impl Default for WorkloadOptions {
    fn default() -> Self {
        WorkloadOptions {
            clients: 12,
            keys: HotKeys::new("chaos", 6),
            retries: false,
            rpc_timeout: Duration::from_secs(2),
            op_timeout: Duration::from_secs(3),
            read_ratio: 0.4,
            write_ratio: 0.25,
            think: Duration::ZERO,
            seed: 1,
        }
    }
}

/// Counters the clients update while they run.
#[derive(Default, Debug)]
pub struct Progress {
    ok_writes: AtomicU64,
    ops: AtomicU64,
}

impl Progress {
    /// Acknowledged writes so far (puts and compare-and-swaps that swapped).
    pub fn ok_writes(&self) -> u64 {
        self.ok_writes.load(Ordering::Acquire)
    }

    /// Operations recorded so far.
    pub fn ops(&self) -> u64 {
        self.ops.load(Ordering::Acquire)
    }
}

/// The recorded history and error counts of a finished workload.
#[derive(Debug, Default)]
pub struct Recorded {
    /// Every operation, in invoke order.
    pub ops: Vec<Op>,
    /// Client errors by kind (see [`error_kind`]), plus `timeout`.
    pub errors: BTreeMap<String, u64>,
    /// The first message of each error kind.
    pub error_examples: BTreeMap<String, String>,
}

/// Running clients.
pub struct Workload {
    stop: Arc<AtomicBool>,
    progress: Arc<Progress>,
    tasks: Vec<JoinHandle<Recorded>>,
}

/// The two handles every client task uses, over one shared region cache.
#[derive(Clone)]
struct Handles {
    /// Atomic mode (needed for compare-and-swap), retries as configured.
    ops: RawClient,
    /// Atomic mode with the default backoff, for cache-refreshing reads.
    refresh: RawClient,
}

impl Workload {
    /// Connects to PD at `pd` and starts the clients.
    pub async fn start(pd: &str, opts: WorkloadOptions, clock: Clock) -> Result<Workload> {
        if opts.clients == 0 {
            bail!("a workload needs at least one client");
        }
        let config = Config::default()
            .with_default_keyspace()
            .with_timeout(opts.rpc_timeout);
        let base = RawClient::new_with_config(vec![pd.to_string()], config)
            .await
            .with_context(|| format!("raw client to PD {pd}"))?
            .with_atomic_for_cas();
        let handles = Handles {
            ops: if opts.retries {
                base.clone()
            } else {
                base.with_backoff(Backoff::no_backoff())
            },
            refresh: base,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(Progress::default());
        let opts = Arc::new(opts);
        let tasks = (0..opts.clients)
            .map(|id| {
                let client = ClientTask {
                    id,
                    handles: handles.clone(),
                    opts: Arc::clone(&opts),
                    clock,
                    stop: Arc::clone(&stop),
                    progress: Arc::clone(&progress),
                };
                tokio::spawn(client.run())
            })
            .collect();
        Ok(Workload {
            stop,
            progress,
            tasks,
        })
    }

    /// The live counters.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Waits until `more` writes beyond the current count are acknowledged; false if
    /// `timeout` passes first.
    pub async fn wait_for_writes(&self, more: u64, timeout: Duration) -> bool {
        let target = self.progress.ok_writes() + more;
        let deadline = Instant::now() + timeout;
        while self.progress.ok_writes() < target {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }

    /// Stops the clients (each finishes its current operation, bounded by the operation
    /// timeout) and returns the history in invoke order.
    pub async fn stop(mut self) -> Result<Recorded> {
        self.stop.store(true, Ordering::Release);
        let mut all = Recorded::default();
        for task in std::mem::take(&mut self.tasks) {
            let part = task.await.context("a client task panicked")?;
            all.ops.extend(part.ops);
            for (kind, n) in part.errors {
                *all.errors.entry(kind).or_default() += n;
            }
            for (kind, example) in part.error_examples {
                all.error_examples.entry(kind).or_insert(example);
            }
        }
        all.ops.sort_by_key(|o| (o.op.invoke, o.op.process));
        Ok(all)
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

struct ClientTask {
    id: usize,
    handles: Handles,
    opts: Arc<WorkloadOptions>,
    clock: Clock,
    stop: Arc<AtomicBool>,
    progress: Arc<Progress>,
}

impl ClientTask {
    async fn run(self) -> Recorded {
        let opts = &self.opts;
        let mut rng = StdRng::seed_from_u64(opts.seed.wrapping_mul(1_000_003) ^ self.id as u64);
        let mut process = self.id as u64;
        let mut seq = 0u64;
        // The last value this client saw per key: what its compare-and-swaps expect.
        let mut last_seen: HashMap<String, Option<Vec<u8>>> = HashMap::new();
        let mut out = Recorded::default();
        while !self.stop.load(Ordering::Acquire) {
            let invoke = self.clock.now();
            let key = opts.keys.key(rng.gen_range(0..opts.keys.slots), invoke);
            let roll: f64 = rng.gen();
            seq += 1;
            let value = format!("p{process}-{seq}").into_bytes();
            let command = if roll < opts.read_ratio {
                Command::Read
            } else if roll < opts.read_ratio + opts.write_ratio {
                Command::Write(value)
            } else {
                Command::Cas {
                    expected: last_seen.get(&key).cloned().flatten(),
                    new: value,
                }
            };
            let result =
                tokio::time::timeout(opts.op_timeout, execute(&self.handles.ops, &key, &command))
                    .await;
            let complete = self.clock.now();
            let mut refresh = false;
            let mut errored = false;
            let outcome = match result {
                Ok(Ok(response)) => {
                    remember(&mut last_seen, &key, &command, &response);
                    if matches!(
                        response,
                        Response::Write
                            | Response::Cas {
                                succeeded: true,
                                ..
                            }
                    ) {
                        self.progress.ok_writes.fetch_add(1, Ordering::AcqRel);
                    }
                    Outcome::Ok(response)
                }
                Ok(Err(e)) => {
                    let kind = error_kind(&e).to_string();
                    out.error_examples
                        .entry(kind.clone())
                        .or_insert_with(|| e.to_string().chars().take(300).collect());
                    *out.errors.entry(kind).or_default() += 1;
                    errored = true;
                    refresh = needs_cache_refresh(&e);
                    match classify(&e, opts.retries) {
                        ErrorClass::NotApplied => Outcome::Fail,
                        ErrorClass::Indeterminate => Outcome::Info,
                    }
                }
                Err(_elapsed) => {
                    *out.errors.entry("timeout".to_string()).or_default() += 1;
                    errored = true;
                    refresh = true;
                    Outcome::Info
                }
            };
            let indeterminate = matches!(outcome, Outcome::Info);
            out.ops.push(KeyedOperation {
                key: key.clone(),
                op: Operation {
                    process,
                    invoke,
                    complete,
                    command,
                    outcome,
                },
            });
            self.progress.ops.fetch_add(1, Ordering::AcqRel);
            if indeterminate {
                // The operation may still be in flight: continue as a new process.
                process += opts.clients as u64;
                last_seen.remove(&key);
            }
            if refresh && !opts.retries {
                let read = self.handles.refresh.get(key.into_bytes());
                let _ = tokio::time::timeout(opts.op_timeout, read).await;
            }
            if errored {
                // Without retries a client would spin on a dead store until PD learns the
                // new leader; a short pause keeps the history (and the CPU) sane.
                tokio::time::sleep(ERROR_PAUSE).await;
            } else if !opts.think.is_zero() {
                tokio::time::sleep(opts.think).await;
            }
        }
        out
    }
}

/// Sends one command.
async fn execute(
    client: &RawClient,
    key: &str,
    command: &Command<Vec<u8>>,
) -> tikv_client::Result<Response<Vec<u8>>> {
    let key = key.as_bytes().to_vec();
    match command {
        Command::Read => client.get(key).await.map(Response::Read),
        Command::Write(v) => client.put(key, v.clone()).await.map(|()| Response::Write),
        Command::Cas { expected, new } => client
            .compare_and_swap(key, expected.clone(), new.clone())
            .await
            .map(|(previous, succeeded)| Response::Cas {
                previous,
                succeeded,
            }),
        Command::Delete => client.delete(key).await.map(|()| Response::Delete),
    }
}

/// Updates what the client believes a key holds after an answered command.
fn remember(
    last_seen: &mut HashMap<String, Option<Vec<u8>>>,
    key: &str,
    command: &Command<Vec<u8>>,
    response: &Response<Vec<u8>>,
) {
    let now = match (command, response) {
        (_, Response::Read(v)) => v.clone(),
        (Command::Write(v), Response::Write) => Some(v.clone()),
        (
            Command::Cas { new, .. },
            Response::Cas {
                succeeded: true, ..
            },
        ) => Some(new.clone()),
        (_, Response::Cas { previous, .. }) => previous.clone(),
        (_, Response::Delete) => None,
        _ => return,
    };
    last_seen.insert(key.to_string(), now);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_expect_what_they_last_saw() {
        let mut seen = HashMap::new();
        let cas = Command::Cas {
            expected: None,
            new: b"b".to_vec(),
        };
        remember(
            &mut seen,
            "k",
            &Command::Read,
            &Response::Read(Some(b"a".to_vec())),
        );
        assert_eq!(seen["k"], Some(b"a".to_vec()));
        remember(
            &mut seen,
            "k",
            &cas,
            &Response::Cas {
                previous: Some(b"c".to_vec()),
                succeeded: false,
            },
        );
        assert_eq!(seen["k"], Some(b"c".to_vec()));
        remember(
            &mut seen,
            "k",
            &cas,
            &Response::Cas {
                previous: None,
                succeeded: true,
            },
        );
        assert_eq!(seen["k"], Some(b"b".to_vec()));
    }

    #[test]
    fn the_clock_only_moves_forward() {
        let clock = Clock::start();
        let a = clock.now();
        assert!(clock.now() >= a);
    }
}
