//! Prometheus metrics of the client-facing gRPC API, labelled by method.

use std::sync::LazyLock;
use std::time::Instant;

use prometheus::{
    exponential_buckets, register_histogram_vec, register_int_counter, register_int_counter_vec,
    register_int_gauge, HistogramVec, IntCounter, IntCounterVec, IntGauge,
};

pub static GRPC_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "shoal_grpc_requests_total",
        "gRPC requests received, by method",
        &["method"]
    )
    .expect("metric registers once")
});

pub static GRPC_REQUEST_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "shoal_grpc_request_duration_seconds",
        "Time to answer a gRPC request, by method",
        &["method"],
        exponential_buckets(0.0001, 2.0, 20).expect("valid buckets")
    )
    .expect("metric registers once")
});

pub static GRPC_REQUEST_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "shoal_grpc_request_errors_total",
        "gRPC requests answered with an error, by method and kind (region, key, \
         invalid_argument, corrupt, internal, unimplemented, stream)",
        &["method", "kind"]
    )
    .expect("metric registers once")
});

pub static LOCK_WAITERS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "shoal_lock_waiters",
        "Pessimistic lock requests waiting for another transaction's lock to be released"
    )
    .expect("metric registers once")
});

pub static DEADLOCKS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "shoal_deadlocks_total",
        "Pessimistic lock requests answered with a deadlock: their wait would have closed a \
         cycle of waiting transactions"
    )
    .expect("metric registers once")
});

pub static DEADLOCK_DETECTOR_CONNECTED: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "shoal_deadlock_detector_connected",
        "1 while the store's detect stream to the deadlock detector on PD is open, else 0"
    )
    .expect("metric registers once")
});

pub static DEADLOCK_REQUESTS_DROPPED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "shoal_deadlock_requests_dropped_total",
        "Detect and clean-up requests not sent because the detector was unreachable or behind"
    )
    .expect("metric registers once")
});

/// Measures one request from its arrival.
pub struct RequestTimer {
    method: &'static str,
    start: Instant,
}

impl RequestTimer {
    pub fn start(method: &'static str) -> RequestTimer {
        GRPC_REQUESTS.with_label_values(&[method]).inc();
        RequestTimer {
            method,
            start: Instant::now(),
        }
    }

    /// Records the request's duration and, if it failed, the kind of failure.
    pub fn finish(self, error_kind: Option<&str>) {
        GRPC_REQUEST_DURATION
            .with_label_values(&[self.method])
            .observe(self.start.elapsed().as_secs_f64());
        if let Some(kind) = error_kind {
            GRPC_REQUEST_ERRORS
                .with_label_values(&[self.method, kind])
                .inc();
        }
    }
}

/// Registers the series without labels now, so a fresh store exports them at 0 (a dashboard
/// or alert sees `shoal_deadlocks_total 0`, not a missing series, until the first deadlock).
/// Labelled series appear with their first label values, as usual in Prometheus.
pub fn register_unlabelled() {
    LazyLock::force(&LOCK_WAITERS);
    LazyLock::force(&DEADLOCKS);
    LazyLock::force(&DEADLOCK_DETECTOR_CONNECTED);
    LazyLock::force(&DEADLOCK_REQUESTS_DROPPED);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_request_is_counted_by_kind() {
        let before = GRPC_REQUEST_ERRORS
            .with_label_values(&["metrics_test", "key"])
            .get();
        let requests = GRPC_REQUESTS.with_label_values(&["metrics_test"]).get();
        RequestTimer::start("metrics_test").finish(Some("key"));
        RequestTimer::start("metrics_test").finish(None);
        assert_eq!(
            GRPC_REQUEST_ERRORS
                .with_label_values(&["metrics_test", "key"])
                .get(),
            before + 1
        );
        assert_eq!(
            GRPC_REQUESTS.with_label_values(&["metrics_test"]).get(),
            requests + 2
        );
    }
}
