//! The memcomparable bytes codec on typical 16-64 byte keys, next to copying the same bytes
//! into a fresh `Vec` (what any allocating encoder pays at least).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use keys::{decode_bytes, encode_bytes};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const LENGTHS: [usize; 4] = [16, 24, 40, 64];

fn key(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 37 + 11) as u8).collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(1))
        .warm_up_time(Duration::from_millis(300));
    for len in LENGTHS {
        // Bytes of the raw key in every case, so the three rates compare directly.
        group.throughput(Throughput::Bytes(len as u64));
        let k = key(len);
        let encoded = encode_bytes(&k);
        group.bench_with_input(BenchmarkId::new("encode", len), &k, |b, k| {
            b.iter(|| encode_bytes(black_box(k)))
        });
        group.bench_with_input(BenchmarkId::new("decode", len), &encoded, |b, e| {
            b.iter(|| decode_bytes(black_box(e)).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("copy", len), &k, |b, k| {
            b.iter(|| black_box(k).to_vec())
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
