//! Messages per second through one poller with 1, 100 and 10,000 FSMs.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Msg, TestSystem};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const MESSAGES: u64 = 100_000;

fn bench_one_poller(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch_system_one_poller");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(MESSAGES));
    for fsms in [1u64, 100, 10_000] {
        let s = TestSystem::new(1, usize::MAX);
        for id in 0..fsms {
            s.add_fsm(id, false);
        }
        group.bench_with_input(BenchmarkId::from_parameter(fsms), &fsms, |b, &fsms| {
            b.iter(|| {
                let start = s.handled.load(Ordering::Relaxed) as u64;
                for i in 0..MESSAGES {
                    s.router.force_send(i % fsms, Msg::Value(i)).unwrap();
                }
                while (s.handled.load(Ordering::Relaxed) as u64) < start + MESSAGES {
                    std::thread::yield_now();
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_one_poller);
criterion_main!(benches);
