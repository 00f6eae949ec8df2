//! Background writers for tests that change the cluster under load.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::Mutex;

use crate::cluster::{Cluster, DEFAULT_TIMEOUT};
use crate::wait::wait_until;

/// Threads that put `key(writer, i)` = key until stopped, recording acknowledged keys.
pub struct Writers {
    acked: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<()>>,
}

impl Writers {
    pub fn start(
        cluster: Arc<Cluster>,
        writers: usize,
        max_per_writer: u32,
        key: impl Fn(usize, u32) -> Vec<u8> + Send + Sync + 'static,
    ) -> Writers {
        let acked: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let key = Arc::new(key);
        let handles = (0..writers)
            .map(|w| {
                let (cluster, acked, stop, key) =
                    (cluster.clone(), acked.clone(), stop.clone(), key.clone());
                std::thread::spawn(move || {
                    for i in 0..max_per_writer {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let k = key(w, i);
                        if cluster.put(&k, &k).is_ok() {
                            acked.lock().push(k);
                        }
                    }
                })
            })
            .collect();
        Writers {
            acked,
            stop,
            handles,
        }
    }

    /// Waits until more than `n` writes were acknowledged.
    pub fn wait_acked(&self, n: usize) -> bool {
        wait_until(DEFAULT_TIMEOUT, || self.acked.lock().len() > n)
    }

    /// How many writes were acknowledged so far.
    pub fn acked_count(&self) -> usize {
        self.acked.lock().len()
    }

    /// Stops the writers and returns every acknowledged key.
    pub fn finish(self) -> Vec<Vec<u8>> {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.handles {
            h.join().expect("writer thread");
        }
        let acked = self.acked.lock().clone();
        acked
    }
}
