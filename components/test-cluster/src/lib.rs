//! An in-process multi-store cluster for tests: real engines in temporary directories, the
//! real raftstore, and an in-memory transport with failure-injecting filters.

pub mod cluster;
pub mod consistency;
pub mod failpoint;
pub mod load;
pub mod pd;
pub mod transport;
pub mod wait;

pub use cluster::*;
pub use consistency::ConsistencyReport;
pub use load::Writers;
pub use pd::LocalPd;
pub use transport::*;
pub use wait::{wait_for, wait_until};

/// `len` bytes that no compressor shrinks (xorshift64 output), as YCSB's random values are:
/// RocksDB and raft-engine then store as many bytes as a test writes.
pub fn incompressible(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Test timings with the local fleet's threads: each raft poller writes its own round's raft
/// log (`store-io-pool-size = 0`) and applies what its peers commit (`apply-pool-size = 0`).
pub fn pollers_write_and_apply() -> raftstore::Config {
    raftstore::Config {
        store_io_pool_size: 0,
        apply_pool_size: 0,
        ..raftstore::Config::for_tests()
    }
}

/// Logs to the test output when `RUST_LOG` asks for it.
pub fn init_logging() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    });
}
