//! Consensus hot path: proposals decided per second by a 3-replica in-memory cluster, for
//! batches of 1 and 64 proposals per round (1 KiB values).
//!
//! `cargo bench -p paxlog-benches --bench consensus`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use paxlog_benches::memcluster::MemCluster;
use std::hint::black_box;

fn decided_per_second(c: &mut Criterion) {
    let mut group = c.benchmark_group("consensus/3-replicas");
    for batch in [1usize, 64] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(
            BenchmarkId::new("propose-decide", batch),
            &batch,
            |b, &batch| {
                let mut cluster = MemCluster::new(3);
                let mut rounds = 0u64;
                b.iter(|| {
                    rounds += 1;
                    if rounds.is_multiple_of(1024) {
                        cluster.compact();
                    }
                    black_box(cluster.propose_and_decide(batch, 1024))
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, decided_per_second);
criterion_main!(benches);
