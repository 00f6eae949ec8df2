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
