//! Runs a phase: `concurrency` async clients issue requests until the phase's work is done,
//! while a sampler records the timeline and shows live progress.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::backend::{Api, Backend, BackendError, RmwSteps, TransferOutcome, TxnMode};
use super::bank::{self, BankSpec};
use super::generator::{Distribution, KeyChooser};
use super::guard::guarded;
use super::recorder::{Failure, Recorder, TaskStats};
use super::renew::Renewable;
use super::report::{RunParameters, Summary};
use super::workload::{record_key, Operation, Workload};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Inserts records `0..records`.
    Load,
    /// Issues the workload's mix against the loaded records.
    Run,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Load => "load",
            Phase::Run => "run",
        }
    }
}

#[derive(Clone, Debug)]
pub struct PhaseSpec {
    pub target: String,
    /// The client API the backend was connected with, for the report.
    pub api: Api,
    pub workload: Workload,
    /// How transactions run (`None` through the raw API and etcd).
    pub txn_mode: Option<TxnMode>,
    /// The bank's parameters, when the workload is the bank; its load phase writes the
    /// accounts (`records` of them) and its run phase transfers.
    pub bank: Option<BankSpec>,
    pub phase: Phase,
    pub records: u64,
    /// Stop after this many requests (the run phase; the load phase inserts `records`).
    pub operations: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    pub concurrency: usize,
    pub value_size: usize,
    pub seed: u64,
    /// How long one request may take in all (retries and backoffs inside the client included)
    /// before it is given up as an error, so a stuck request cannot hold a client forever.
    pub request_limit: Duration,
}

/// Records inserted so far: a record is readable once every record below it is acknowledged,
/// so reads of "the latest" never ask for a record whose insert is still in flight.
struct InsertedRecords {
    next: AtomicU64,
    readable: AtomicU64,
    acked_above: Mutex<BTreeSet<u64>>,
}

impl InsertedRecords {
    fn new(existing: u64) -> Self {
        InsertedRecords {
            next: AtomicU64::new(existing),
            readable: AtomicU64::new(existing),
            acked_above: Mutex::new(BTreeSet::new()),
        }
    }

    fn claim(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    fn acknowledge(&self, n: u64) {
        let mut above = self.acked_above.lock();
        above.insert(n);
        let mut readable = self.readable.load(Ordering::Acquire);
        while above.remove(&readable) {
            readable += 1;
        }
        self.readable.store(readable, Ordering::Release);
    }

    fn readable(&self) -> u64 {
        self.readable.load(Ordering::Acquire)
    }
}

/// Decides when a phase's clients stop.
struct Budget {
    issued: AtomicU64,
    limit: Option<u64>,
    deadline: Option<Instant>,
    stopped: AtomicBool,
}

impl Budget {
    /// The requests a phase may issue, starting at `now`: the load inserts every one of
    /// `records` however long that takes (as YCSB's load does; `duration` bounds only the
    /// run, or the run phase's reads would miss records never loaded); the run stops at
    /// `operations` or after `duration`, whichever comes first.
    fn for_phase(
        phase: Phase,
        records: u64,
        operations: Option<u64>,
        duration: Option<Duration>,
        now: Instant,
    ) -> Budget {
        let (limit, deadline) = match phase {
            Phase::Load => (Some(records), None),
            Phase::Run => (operations, duration.map(|d| now + d)),
        };
        Budget {
            issued: AtomicU64::new(0),
            limit,
            deadline,
            stopped: AtomicBool::new(false),
        }
    }

    fn take(&self) -> bool {
        if self.stopped.load(Ordering::Relaxed) {
            return false;
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            self.stopped.store(true, Ordering::Relaxed);
            return false;
        }
        match self.limit {
            Some(limit) => self.issued.fetch_add(1, Ordering::Relaxed) < limit,
            None => true,
        }
    }
}

struct Shared {
    spec: PhaseSpec,
    recorder: Recorder,
    inserted: InsertedRecords,
    budget: Budget,
}

/// Runs one phase to completion and summarises it. Every client task sends through
/// `backend`'s current client and has it replaced when a request cannot reach a store.
pub async fn run_phase(backend: &Arc<Renewable<Backend>>, spec: PhaseSpec) -> Summary {
    let existing = match spec.phase {
        Phase::Load => 0,
        Phase::Run => spec.records,
    };
    let shared = Arc::new(Shared {
        recorder: Recorder::new(),
        inserted: InsertedRecords::new(existing),
        budget: Budget::for_phase(
            spec.phase,
            spec.records,
            spec.operations,
            spec.duration,
            Instant::now(),
        ),
        spec,
    });
    let progress = Progress::start(shared.clone());
    let tasks: Vec<_> = (0..shared.spec.concurrency)
        .map(|task| {
            let shared = shared.clone();
            let backend = backend.clone();
            tokio::spawn(client_task(shared, backend, task as u64))
        })
        .collect();
    let mut stats = TaskStats::default();
    for t in tasks {
        match t.await {
            Ok(s) => stats.merge(&s),
            Err(e) => eprintln!("a client task failed: {e}"),
        }
    }
    let elapsed = shared.recorder.elapsed().as_secs_f64();
    progress.finish().await;
    let spec = &shared.spec;
    Summary::new(
        RunParameters {
            target: spec.target.clone(),
            api: spec.api.name().to_string(),
            txn_mode: spec.txn_mode.map(|m| m.name().to_string()),
            workload: spec.workload.name.to_string(),
            phase: spec.phase.name().to_string(),
            distribution: serde_json::to_value(spec.workload.distribution)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            records: spec.records,
            concurrency: spec.concurrency,
            value_size: spec.value_size,
            seed: spec.seed,
        },
        &stats,
        elapsed,
        shared.recorder.timeline(),
        shared.recorder.first_errors(),
    )
    .with_first_aborts(shared.recorder.first_aborts())
}

/// `client` in the phase's transaction mode, if it has one.
fn in_mode(spec: &PhaseSpec, client: Backend) -> Backend {
    match spec.txn_mode {
        Some(mode) => client.with_txn_mode(mode),
        None => client,
    }
}

async fn client_task(
    shared: Arc<Shared>,
    clients: Arc<Renewable<Backend>>,
    task: u64,
) -> TaskStats {
    let spec = &shared.spec;
    let (mut generation, client) = clients.current();
    let mut backend = in_mode(spec, client);
    // Distinct, reproducible streams per client.
    let mut rng = StdRng::seed_from_u64(spec.seed ^ task.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut chooser = KeyChooser::new(spec.workload.distribution, spec.records);
    let mut stats = TaskStats::default();
    while shared.budget.take() {
        let op = match spec.phase {
            Phase::Load => Operation::Insert,
            Phase::Run => spec.workload.choose(&mut rng),
        };
        let started = Instant::now();
        let outcome = guarded(
            spec.request_limit,
            execute(
                &shared,
                &mut backend,
                &mut chooser,
                &mut rng,
                &mut stats,
                op,
            ),
        )
        .await;
        // A request is counted under what it turned out to be (a declined transfer apart).
        if let Err(BackendError::StoreUnreachable(_)) = &outcome {
            let (renewed, client) = clients.renew(generation).await;
            if renewed != generation {
                generation = renewed;
                backend = in_mode(spec, client);
            }
        }
        let (op, outcome) = match outcome {
            Ok(done) => (done, Ok(())),
            Err(e) => (op, Err(failure(e))),
        };
        shared
            .recorder
            .record(&mut stats, op, started.elapsed(), outcome);
    }
    stats
}

/// How a failed request is counted: a lost write conflict is an abort, anything else an error.
fn failure(e: BackendError) -> Failure {
    match e {
        BackendError::Conflict(_) => Failure::Abort(e.to_string()),
        e => Failure::Error(e.to_string()),
    }
}

fn value<R: Rng>(rng: &mut R, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}

/// Issues one request of type `op`; on success, answers the type it is counted under.
async fn execute(
    shared: &Shared,
    backend: &mut Backend,
    chooser: &mut KeyChooser,
    rng: &mut StdRng,
    stats: &mut TaskStats,
    op: Operation,
) -> Result<Operation, BackendError> {
    let spec = &shared.spec;
    // The bank's, the scan's and read-modify-write's futures are boxed: held inline they
    // would set the size of every request's future, which is moved several times on its way
    // to being polled (see `Backend::write`).
    if let Some(bank) = &spec.bank {
        return Box::pin(execute_bank(bank, shared, backend, chooser, rng, op)).await;
    }
    let mut existing_key =
        |rng: &mut StdRng| record_key(chooser.next(rng, shared.inserted.readable()));
    match op {
        Operation::Read => backend.read(existing_key(rng)).await.map(|_| op),
        Operation::Update => {
            let key = existing_key(rng);
            backend.write(key, value(rng, spec.value_size)).await?;
            Ok(op)
        }
        Operation::Insert => {
            let n = shared.inserted.claim();
            backend
                .write(record_key(n), value(rng, spec.value_size))
                .await?;
            shared.inserted.acknowledge(n);
            Ok(op)
        }
        Operation::Scan => {
            let start = existing_key(rng);
            let len = rng.gen_range(1..=spec.workload.max_scan_length);
            Box::pin(backend.scan(start, len)).await.map(|_| op)
        }
        Operation::ReadModifyWrite => {
            let key = existing_key(rng);
            let mut steps = RmwSteps::default();
            let outcome =
                Box::pin(backend.read_modify_write(key, value(rng, spec.value_size), &mut steps))
                    .await;
            // A read that finished is timed even when the write after it failed.
            if let Some(read) = steps.read {
                stats.record_step(Operation::Read, read);
            }
            if let Some(write) = steps.write {
                stats.record_step(Operation::Update, write);
            }
            outcome.map(|()| op)
        }
        Operation::Transfer | Operation::TransferDeclined => Err(BackendError::Request(
            "transfers need the bank workload".into(),
        )),
    }
}

/// How long the bank's load keeps writing an account that conflicts: the locks of an earlier
/// run that was killed mid-transfer live for their TTL (20 s at most for the client's
/// pessimistic locks) before a reader may roll them back, and an account the load skips
/// would leave the final check comparing against money that was never there.
const BANK_LOAD_LOCK_PATIENCE: Duration = Duration::from_secs(45);
/// The pause between two such writes.
const BANK_LOAD_RETRY_PAUSE: Duration = Duration::from_millis(250);

/// Writes one account of the bank's load, again after each conflict until
/// [`BANK_LOAD_LOCK_PATIENCE`] has passed; any other failure, or a conflict after that, is
/// the write's error.
async fn write_waiting_out_locks(
    backend: &mut Backend,
    key: Vec<u8>,
    value: Vec<u8>,
) -> Result<(), BackendError> {
    let started = Instant::now();
    loop {
        match backend.write(key.clone(), value.clone()).await {
            Err(BackendError::Conflict(_)) if started.elapsed() < BANK_LOAD_LOCK_PATIENCE => {
                tokio::time::sleep(BANK_LOAD_RETRY_PAUSE).await;
            }
            done => return done,
        }
    }
}

/// The bank's requests: the load writes account `n` with the initial balance, the run moves
/// money between two accounts drawn by `chooser`.
async fn execute_bank(
    bank: &BankSpec,
    shared: &Shared,
    backend: &mut Backend,
    chooser: &mut KeyChooser,
    rng: &mut StdRng,
    op: Operation,
) -> Result<Operation, BackendError> {
    match op {
        Operation::Insert => {
            let n = shared.inserted.claim();
            let balance = bank::encode_balance(bank.initial_balance);
            write_waiting_out_locks(backend, bank::account_key(n), balance).await?;
            shared.inserted.acknowledge(n);
            Ok(op)
        }
        Operation::Transfer => {
            let (from, to) = bank::pick_accounts(chooser, rng, bank.accounts);
            let amount = bank.amount(rng);
            let outcome = backend
                .transfer(bank::account_key(from), bank::account_key(to), amount)
                .await?;
            Ok(match outcome {
                TransferOutcome::Moved => Operation::Transfer,
                TransferOutcome::Declined => Operation::TransferDeclined,
            })
        }
        other => Err(BackendError::Request(format!(
            "the bank issues no {} requests",
            other.name()
        ))),
    }
}

/// Samples the timeline once a second and shows it: a progress bar on a terminal, a line every
/// five seconds otherwise (logs of `make bench`).
struct Progress {
    done: Arc<tokio::sync::Notify>,
    sampler: tokio::task::JoinHandle<()>,
}

impl Progress {
    fn start(shared: Arc<Shared>) -> Progress {
        let done = Arc::new(tokio::sync::Notify::new());
        let bar = std::io::stderr().is_terminal().then(|| {
            let len = progress_length(&shared.spec);
            let bar = ProgressBar::new(len);
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_prefix(format!(
                "{} {}",
                shared.spec.workload.name,
                shared.spec.phase.name()
            ));
            bar
        });
        let sampler = tokio::spawn({
            let done = done.clone();
            async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                tick.tick().await;
                let mut seconds = 0u64;
                loop {
                    // The partial second after the last request is left out of the timeline.
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = done.notified() => break,
                    }
                    seconds += 1;
                    let point = shared.recorder.sample();
                    let mut line = format!(
                        "{:.0} ops/s, p99 {:.2} ms, errors {}",
                        point.ops_per_sec,
                        point.p99_us as f64 / 1000.0,
                        shared.recorder.errors()
                    );
                    if shared.spec.api == Api::Txn {
                        line.push_str(&format!(", aborts {}", shared.recorder.aborts()));
                    }
                    match &bar {
                        Some(bar) => {
                            bar.set_position(progress_position(&shared, seconds));
                            bar.set_message(line);
                        }
                        None if seconds.is_multiple_of(5) => eprintln!(
                            "  {} {} {:>4} s: {line}",
                            shared.spec.workload.name,
                            shared.spec.phase.name(),
                            seconds
                        ),
                        None => {}
                    }
                }
                if let Some(bar) = bar {
                    bar.finish_and_clear();
                }
            }
        });
        Progress { done, sampler }
    }

    async fn finish(self) {
        // notify_one stores a permit, so the sampler stops even if it is not waiting yet.
        self.done.notify_one();
        let _ = self.sampler.await;
    }
}

/// The bar counts requests when the phase is bounded by a count, seconds otherwise.
fn progress_length(spec: &PhaseSpec) -> u64 {
    match (spec.phase, spec.operations, spec.duration) {
        (Phase::Load, _, _) => spec.records,
        (Phase::Run, Some(ops), _) => ops,
        (Phase::Run, None, Some(d)) => d.as_secs().max(1),
        (Phase::Run, None, None) => 0,
    }
}

fn progress_position(shared: &Shared, seconds: u64) -> u64 {
    match (shared.spec.phase, shared.spec.operations) {
        (Phase::Load, _) | (Phase::Run, Some(_)) => shared.recorder.completed(),
        (Phase::Run, None) => seconds,
    }
}

/// The distribution a run uses: the workload's own unless the user chose another.
pub fn with_distribution(mut workload: Workload, distribution: Option<Distribution>) -> Workload {
    if let Some(d) = distribution {
        workload.distribution = d;
    }
    workload
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_readable_record_waits_for_inserts_in_flight() {
        let r = InsertedRecords::new(10);
        let (a, b, c) = (r.claim(), r.claim(), r.claim());
        assert_eq!((a, b, c), (10, 11, 12));
        r.acknowledge(11);
        assert_eq!(r.readable(), 10, "record 10 is still in flight");
        r.acknowledge(10);
        assert_eq!(r.readable(), 12);
        r.acknowledge(12);
        assert_eq!(r.readable(), 13);
    }

    #[test]
    fn budget_stops_at_the_operation_count() {
        let b = Budget {
            issued: AtomicU64::new(0),
            limit: Some(3),
            deadline: None,
            stopped: AtomicBool::new(false),
        };
        assert_eq!((0..5).filter(|_| b.take()).count(), 3);
    }

    #[test]
    fn write_conflicts_count_as_aborts_and_the_rest_as_errors() {
        let conflict = BackendError::Conflict("key user1".into());
        assert_eq!(
            failure(conflict),
            Failure::Abort("write conflict: key user1".into())
        );
        assert_eq!(
            failure(BackendError::NotFound),
            Failure::Error("record not found".into())
        );
        assert!(matches!(
            failure(BackendError::Request("timeout".into())),
            Failure::Error(_)
        ));
    }

    #[test]
    fn the_load_inserts_every_record_whatever_the_duration() {
        let long_ago = Instant::now() - Duration::from_secs(3600);
        let load = Budget::for_phase(Phase::Load, 5, None, Some(Duration::ZERO), long_ago);
        assert_eq!((0..10).filter(|_| load.take()).count(), 5);
        let run = Budget::for_phase(Phase::Run, 5, None, Some(Duration::ZERO), long_ago);
        assert!(!run.take(), "the run phase stops at its deadline");
        let run = Budget::for_phase(Phase::Run, 5, Some(3), None, long_ago);
        assert_eq!((0..10).filter(|_| run.take()).count(), 3);
    }

    #[test]
    fn budget_stops_at_the_deadline() {
        let b = Budget {
            issued: AtomicU64::new(0),
            limit: None,
            deadline: Some(Instant::now()),
            stopped: AtomicBool::new(false),
        };
        assert!(!b.take());
    }
}
