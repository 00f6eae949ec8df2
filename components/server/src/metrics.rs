//! Metrics of the store-to-store transport and the GC worker (the client API keeps its own
//! in `kv`).

use std::sync::LazyLock;

use prometheus::{
    register_int_counter, register_int_counter_vec, register_int_gauge, IntCounter, IntCounterVec,
    IntGauge,
};

pub static RAFT_MESSAGES_SENT: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "shoal_server_raft_messages_sent_total",
        "Raft messages handed to another store's stream"
    )
    .expect("metric registers once")
});

pub static RAFT_MESSAGES_DROPPED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "shoal_server_raft_messages_dropped_total",
        "Raft messages dropped because their store could not be reached (raft resends)"
    )
    .expect("metric registers once")
});

pub static RAFT_MESSAGES_RECEIVED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "shoal_server_raft_messages_received_total",
        "Raft messages received from other stores"
    )
    .expect("metric registers once")
});

pub static RAFT_STREAM_CONNECTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "shoal_server_raft_stream_connects_total",
        "Attempts to open a raft stream to another store, by result (ok, failed)",
        &["result"]
    )
    .expect("metric registers once")
});

pub static SNAPSHOT_SENDS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "shoal_server_snapshot_sends_total",
        "Region snapshots streamed to other stores, by result (ok, failed)",
        &["result"]
    )
    .expect("metric registers once")
});

pub static SNAPSHOT_RECEIVES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "shoal_server_snapshot_receives_total",
        "Region snapshots received from other stores, by result (ok, failed)",
        &["result"]
    )
    .expect("metric registers once")
});

pub static SNAPSHOTS_SENDING: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "shoal_server_snapshots_sending",
        "Region snapshots being streamed to other stores right now"
    )
    .expect("metric registers once")
});

pub static SNAPSHOTS_RECEIVING: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "shoal_server_snapshots_receiving",
        "Region snapshots being received from other stores right now"
    )
    .expect("metric registers once")
});

/// Counts one unit in a gauge for as long as it lives.
pub struct GaugeGuard(&'static IntGauge);

impl GaugeGuard {
    pub fn new(gauge: &'static IntGauge) -> GaugeGuard {
        gauge.inc();
        GaugeGuard(gauge)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Label value of a result.
pub fn result_label<T, E>(r: &Result<T, E>) -> &'static str {
    if r.is_ok() {
        "ok"
    } else {
        "failed"
    }
}

pub static GC_SAFE_POINT: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "shoal_gc_safe_point",
        "The GC safe point (a TSO timestamp) this store last read from PD"
    )
    .expect("metric registers once")
});

pub static GC_KEYS_VISITED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "shoal_gc_keys_visited_total",
        "Transactional keys the GC worker examined"
    )
    .expect("metric registers once")
});

pub static GC_VERSIONS_DELETED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "shoal_gc_versions_deleted_total",
        "MVCC versions (write records) the GC worker removed below the safe point"
    )
    .expect("metric registers once")
});

/// Registers the series without labels now, so a fresh store exports them at 0 rather than
/// not at all until first used (labelled series appear with their first label values).
pub fn register_unlabelled() {
    LazyLock::force(&RAFT_MESSAGES_SENT);
    LazyLock::force(&RAFT_MESSAGES_DROPPED);
    LazyLock::force(&RAFT_MESSAGES_RECEIVED);
    LazyLock::force(&SNAPSHOTS_SENDING);
    LazyLock::force(&SNAPSHOTS_RECEIVING);
    LazyLock::force(&GC_SAFE_POINT);
    LazyLock::force(&GC_KEYS_VISITED);
    LazyLock::force(&GC_VERSIONS_DELETED);
}
