//! PD's Prometheus metrics, in a registry per PD instance (so several can live in one process).

use prometheus::{
    Encoder, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    /// gRPC calls by method.
    pub grpc_requests: IntCounterVec,
    /// gRPC calls answered with an error, by method and error type.
    pub grpc_errors: IntCounterVec,
    /// Region heartbeats by outcome (accepted, stale, invalid).
    pub region_heartbeats: IntCounterVec,
    pub store_heartbeats: IntCounter,
    /// Timestamps handed out.
    pub tso_timestamps: IntCounter,
    pub ids_allocated: IntCounter,
    pub operators_created: IntCounterVec,
    pub operators_finished: IntCounterVec,
    /// Operator steps sent to leaders.
    pub operator_steps_sent: IntCounter,
    pub regions: IntGauge,
    /// Stores by state name.
    pub stores: IntGaugeVec,
    pub running_operators: IntGauge,
    /// Lock waits refused by the deadlock detector because they would close a cycle.
    pub deadlocks: IntCounter,
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    registry
        .register(Box::new(c.clone()))
        .expect("metric names are unique");
    c
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric definition");
    registry
        .register(Box::new(c.clone()))
        .expect("metric names are unique");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric definition");
    registry
        .register(Box::new(g.clone()))
        .expect("metric names are unique");
    g
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        // CPU seconds, resident and virtual memory, open files and threads of this process
        // (`process_*`, as every Prometheus client exports them).
        r.register(Box::new(process_metrics::ProcessMetrics::for_self()))
            .expect("metric names are unique");
        let stores = IntGaugeVec::new(Opts::new("shoal_pd_stores", "Stores by state"), &["state"])
            .expect("valid metric definition");
        r.register(Box::new(stores.clone()))
            .expect("metric names are unique");
        Metrics {
            grpc_requests: counter_vec(
                &r,
                "shoal_pd_grpc_requests_total",
                "gRPC requests by method",
                &["method"],
            ),
            grpc_errors: counter_vec(
                &r,
                "shoal_pd_grpc_errors_total",
                "gRPC requests answered with an error",
                &["method", "type"],
            ),
            region_heartbeats: counter_vec(
                &r,
                "shoal_pd_region_heartbeats_total",
                "Region heartbeats by outcome",
                &["result"],
            ),
            store_heartbeats: counter(
                &r,
                "shoal_pd_store_heartbeats_total",
                "Store heartbeats received",
            ),
            tso_timestamps: counter(&r, "shoal_pd_tso_timestamps_total", "Timestamps handed out"),
            ids_allocated: counter(&r, "shoal_pd_ids_allocated_total", "Ids handed out"),
            operators_created: counter_vec(
                &r,
                "shoal_pd_operators_created_total",
                "Operators created by kind",
                &["kind"],
            ),
            operators_finished: counter_vec(
                &r,
                "shoal_pd_operators_ended_total",
                "Operators ended by kind and status",
                &["kind", "status"],
            ),
            operator_steps_sent: counter(
                &r,
                "shoal_pd_operator_steps_sent_total",
                "Operator steps sent to region leaders",
            ),
            regions: gauge(&r, "shoal_pd_regions", "Regions in the region tree"),
            stores,
            running_operators: gauge(&r, "shoal_pd_running_operators", "Operators running"),
            deadlocks: counter(
                &r,
                "shoal_pd_deadlocks_total",
                "Lock waits the deadlock detector found to close a cycle",
            ),
            registry: r,
        }
    }

    /// The Prometheus text form of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buf) {
            return format!("# metrics encoding failed: {e}\n");
        }
        String::from_utf8_lossy(&buf).into_owned()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_instances_coexist_and_render() {
        let a = Metrics::new();
        let b = Metrics::new();
        a.grpc_requests.with_label_values(&["GetMembers"]).inc();
        b.regions.set(3);
        assert!(a
            .render()
            .contains("shoal_pd_grpc_requests_total{method=\"GetMembers\"} 1"));
        assert!(b.render().contains("shoal_pd_regions 3"));
    }
}
