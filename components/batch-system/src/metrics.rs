//! Batch-system metrics, updated once per round.

use lazy_static::lazy_static;
use prometheus::{
    exponential_buckets, register_histogram, register_int_counter, Histogram, IntCounter,
};

lazy_static! {
    pub static ref POLL_ROUNDS: IntCounter =
        register_int_counter!("shoal_batch_system_poll_rounds_total", "Poller rounds")
            .expect("metric registers once");
    pub static ref FSMS_HANDLED: IntCounter = register_int_counter!(
        "shoal_batch_system_fsms_handled_total",
        "FSM handlings across all rounds"
    )
    .expect("metric registers once");
    pub static ref BATCH_SIZE: Histogram = register_histogram!(
        "shoal_batch_system_batch_size",
        "FSMs handled in one poller round",
        exponential_buckets(1.0, 2.0, 12).expect("valid buckets")
    )
    .expect("metric registers once");
}
