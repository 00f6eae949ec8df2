//! Client load for failpoint tests: writers that keep going while a store crashes and
//! restarts, and the check that everything acknowledged survived.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use test_cluster::*;

/// Hot keys every writer also overwrites, with a counter that only grows per writer.
const HOT_KEYS: usize = 4;

fn hot_key(w: usize) -> Vec<u8> {
    format!("hot{}", w % HOT_KEYS).into_bytes()
}

/// What the writers saw acknowledged.
#[derive(Default)]
struct Acked {
    unique: Vec<Vec<u8>>,
    /// Per hot key, the highest (writer, counter) value acknowledged, encoded as written.
    hot: HashMap<Vec<u8>, Vec<Vec<u8>>>,
}

/// Writers putting unique keys `w<w>-<i>` and overwriting a few hot keys, through whatever
/// store leads, with short timeouts so a crash only costs them retries.
pub struct Load {
    pub cluster: Arc<RwLock<Cluster>>,
    acked: Arc<Mutex<Acked>>,
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<()>>,
}

impl Load {
    pub fn start(cluster: Arc<RwLock<Cluster>>, writers: usize) -> Load {
        let acked: Arc<Mutex<Acked>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let handles = (0..writers)
            .map(|w| {
                let (cluster, acked, stop) = (cluster.clone(), acked.clone(), stop.clone());
                std::thread::spawn(move || write_loop(w, &cluster, &acked, &stop))
            })
            .collect();
        Load {
            cluster,
            acked,
            stop,
            handles,
        }
    }

    pub fn acked(&self) -> usize {
        self.acked.lock().unique.len()
    }

    /// Waits until `more` further writes were acknowledged.
    pub fn wait_progress(&self, more: usize) -> bool {
        let before = self.acked();
        wait_until(DEFAULT_TIMEOUT, || self.acked() >= before + more)
    }

    /// Stops the writers, then checks every acknowledged write is readable (hot keys hold a
    /// value at least as new as the newest acknowledged one of some writer) and every replica
    /// of every region holds the same data. Returns (writes acknowledged, report).
    pub fn finish_and_check(self) -> (usize, ConsistencyReport) {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.handles {
            h.join().expect("writer thread");
        }
        let acked = std::mem::take(&mut *self.acked.lock());
        let c = self.cluster.read();
        for key in &acked.unique {
            assert_eq!(
                c.must_get(key).as_deref(),
                Some(key.as_slice()),
                "acknowledged write of {:?} lost",
                String::from_utf8_lossy(key)
            );
        }
        for (key, values) in &acked.hot {
            let now = c.must_get(key).expect("hot key written");
            let (writer, counter) = decode_hot(&now);
            let newest_acked = values
                .iter()
                .map(|v| decode_hot(v))
                .filter(|(w, _)| *w == writer)
                .map(|(_, n)| n)
                .max()
                .unwrap_or(0);
            assert!(
                counter >= newest_acked,
                "{:?} went back: holds writer {writer}'s #{counter}, but #{newest_acked} was acknowledged",
                String::from_utf8_lossy(key)
            );
        }
        (acked.unique.len(), c.must_replicas_consistent())
    }
}

fn encode_hot(w: usize, i: u32) -> Vec<u8> {
    format!("{w}:{i:08}").into_bytes()
}

fn decode_hot(v: &[u8]) -> (usize, u32) {
    let s = String::from_utf8_lossy(v);
    let (w, i) = s.split_once(':').expect("hot value");
    (w.parse().expect("writer"), i.parse().expect("counter"))
}

fn write_loop(w: usize, cluster: &RwLock<Cluster>, acked: &Mutex<Acked>, stop: &AtomicBool) {
    let timeout = Duration::from_millis(500);
    let mut i = 0u32;
    while !stop.load(Ordering::Relaxed) && i < 20_000 {
        let key = format!("w{w}-{i:05}").into_bytes();
        let hot = hot_key(w);
        let hot_value = encode_hot(w, i);
        let (unique_ok, hot_ok) = {
            let c = cluster.read();
            let unique = c.request_once(&key, vec![put_request(&key, &key)], false, timeout);
            let hot_put = c.request_once(&hot, vec![put_request(&hot, &hot_value)], false, timeout);
            (unique.is_ok(), hot_put.is_ok())
        };
        let mut a = acked.lock();
        if hot_ok {
            a.hot.entry(hot).or_default().push(hot_value);
        }
        if unique_ok {
            a.unique.push(key);
            i += 1;
        } else {
            drop(a);
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
