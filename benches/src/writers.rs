//! Writers that load an in-process cluster as a client would: each caches every region's
//! leader, refreshes it after an error, and puts fresh 1 KiB values round-robin over its
//! regions. Every acknowledged write's latency is kept with the moment it was acknowledged,
//! so a run can be cut into phases afterwards.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use proto::metapb::{Peer, Region};
use proto::raft_cmdpb::RaftCmdRequest;
use raftstore::{Callback, CmdResponse};
use test_cluster::{put_request, Cluster};

/// How long a writer waits for one answer before it counts the write as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One acknowledged write: when its answer came and how long it took.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub acked_at: Instant,
    pub latency: Duration,
}

/// One writer's state.
pub struct Writer {
    id: usize,
    cluster: Arc<Cluster>,
    regions: Vec<Region>,
    leaders: Vec<Option<Peer>>,
    value: Vec<u8>,
    written: u64,
    samples: Vec<Sample>,
}

impl Writer {
    /// Writer `id` over `regions`; its keys are each region's start key followed by
    /// `-<id>-<n>`, so they fall inside that region.
    pub fn new(id: usize, cluster: Arc<Cluster>, regions: Vec<Region>) -> Writer {
        Writer {
            id,
            leaders: vec![None; regions.len()],
            regions,
            cluster,
            value: vec![b'v'; 1024],
            written: 0,
            samples: Vec::new(),
        }
    }

    /// The next put and the store of the leader it goes to; `None` while the region has none.
    pub fn next_request(&mut self) -> Option<(usize, u64, RaftCmdRequest)> {
        let r = (self.id + self.written as usize) % self.regions.len();
        let region = &self.regions[r];
        let mut key = region.start_key.clone();
        key.extend_from_slice(format!("-{}-{}", self.id, self.written).as_bytes());
        let leader = self.leaders[r].or_else(|| self.cluster.leader_of(region.id))?;
        self.leaders[r] = Some(leader);
        let req = Cluster::new_request(region, leader, vec![put_request(&key, &self.value)]);
        Some((r, leader.store_id, req))
    }

    /// Counts an acknowledged write, or forgets the leader after a failed one.
    pub fn finish(&mut self, region: usize, started: Instant, answer: Option<CmdResponse>) {
        let ok = answer.is_some_and(|resp| resp.response.header.is_none_or(|h| h.error.is_none()));
        if ok {
            let acked_at = Instant::now();
            self.samples.push(Sample {
                acked_at,
                latency: acked_at - started,
            });
            self.written += 1;
        } else {
            self.leaders[region] = None;
        }
    }

    /// Every acknowledged write so far.
    pub fn into_samples(self) -> Vec<Sample> {
        self.samples
    }
}

/// Writers running as async tasks on their own 2-thread runtime, as in a client process (64
/// waiting requests cost no OS threads), until [`AsyncWriters::stop`].
pub struct AsyncWriters {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    driver: std::thread::JoinHandle<()>,
}

impl AsyncWriters {
    /// Starts `writers` writers, each over all of `regions`.
    pub fn start(cluster: &Arc<Cluster>, regions: &[Region], writers: usize) -> AsyncWriters {
        let stop = Arc::new(AtomicBool::new(false));
        let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
        let (cluster, regions) = (cluster.clone(), regions.to_vec());
        let (stop2, samples2) = (stop.clone(), samples.clone());
        let driver = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("tokio runtime");
            runtime.block_on(async move {
                let tasks: Vec<_> = (0..writers)
                    .map(|w| {
                        let writer = Writer::new(w, cluster.clone(), regions.clone());
                        tokio::spawn(write_until(writer, cluster.clone(), stop2.clone()))
                    })
                    .collect();
                for t in tasks {
                    if let Ok(writer) = t.await {
                        samples2.lock().extend(writer.into_samples());
                    }
                }
            });
        });
        AsyncWriters {
            stop,
            samples,
            driver,
        }
    }

    /// Stops every writer, waits for its last answer, and returns all acknowledged writes.
    pub fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.driver.join();
        std::mem::take(&mut *self.samples.lock())
    }
}

async fn write_until(mut writer: Writer, cluster: Arc<Cluster>, stop: Arc<AtomicBool>) -> Writer {
    while !stop.load(Ordering::Relaxed) {
        let Some((r, store, req)) = writer.next_request() else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let t = Instant::now();
        let callback = Callback::new(move |resp| {
            let _ = tx.send(resp);
        });
        cluster.store(store).propose(req, callback);
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, rx).await;
        writer.finish(r, t, answer.ok().and_then(Result::ok));
    }
    writer
}

/// Each writer an OS thread blocking on its answer, for `secs` seconds; returns every
/// acknowledged write.
pub fn thread_writers(
    cluster: &Arc<Cluster>,
    regions: &[Region],
    writers: usize,
    secs: u64,
) -> Vec<Sample> {
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let (cluster, stop) = (cluster.clone(), stop.clone());
            let mut writer = Writer::new(w, cluster.clone(), regions.to_vec());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Some((r, store, req)) = writer.next_request() else {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    let t = Instant::now();
                    let answer = cluster.call_on_store(store, req, REQUEST_TIMEOUT).ok();
                    writer.finish(r, t, answer);
                }
                writer.into_samples()
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    handles
        .into_iter()
        .filter_map(|h| h.join().ok())
        .flatten()
        .collect()
}
