//! The broker's write path below consensus, one piece at a time:
//! - `codec/encode` and `codec/decode`: a batch of 1 KiB records as a partition command;
//! - `crc32`: the checksum every stored value carries, over 1 KiB and 64 KiB;
//! - `storage/commit`: one synced RocksDB group commit of N accepted entries of one batch
//!   each (1 KiB records), as the replica driver writes them once per round; the throughput
//!   is entries per second, so the curve over N is what group commit buys.
//!
//! `cargo bench -p paxlog-benches --bench storage` (the commit benchmark fsyncs: run it on
//! the disk you want to measure, `TMPDIR=/path`).

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use paxlog_broker::partition::{AppendBatch, PartitionCommand, Record};
use paxlog_broker::storage::{Db, GroupCommit};
use paxlog_consensus::{Ballot, Entry, Persist, Value};
use std::hint::black_box;
use std::sync::Arc;

fn batch(records: usize, size: usize) -> PartitionCommand {
    PartitionCommand::Append(AppendBatch {
        producer: None,
        records: (0..records)
            .map(|i| Record {
                key: Bytes::from(format!("key-{i}")),
                value: Bytes::from(vec![b'x'; size]),
                headers: vec![("h".to_owned(), Bytes::from_static(b"v"))],
                timestamp_ms: 1_700_000_000_000 + i as i64,
            })
            .collect(),
    })
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    for records in [1usize, 64] {
        let command = batch(records, 1024);
        let encoded = command.encode();
        group.throughput(Throughput::Bytes(encoded.len() as u64));
        group.bench_with_input(BenchmarkId::new("encode", records), &command, |b, cmd| {
            b.iter(|| black_box(cmd.encode()))
        });
        group.bench_with_input(BenchmarkId::new("decode", records), &encoded, |b, buf| {
            b.iter(|| black_box(PartitionCommand::decode_bytes(buf.clone()).expect("decodes")))
        });
    }
    group.finish();
}

fn crc(c: &mut Criterion) {
    let mut group = c.benchmark_group("crc32");
    for size in [1024usize, 64 * 1024] {
        let data = vec![0xa5u8; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &data, |b, data| {
            b.iter(|| black_box(crc32fast::hash(data)))
        });
    }
    group.finish();
}

fn commit(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Arc::new(Db::open(dir.path(), 1).expect("open db"));
    let payload = batch(1, 1024).encode();
    let mut group = c.benchmark_group("storage/commit");
    group.sample_size(20);
    for entries in [1u64, 8, 64] {
        group.throughput(Throughput::Elements(entries));
        let mut slot = 0u64;
        group.bench_with_input(
            BenchmarkId::new("synced-entries", entries),
            &entries,
            |b, &entries| {
                b.iter(|| {
                    let mut commit = GroupCommit::new();
                    let persist = Persist {
                        entries: (0..entries)
                            .map(|_| {
                                slot += 1;
                                let entry = Entry {
                                    ballot: Ballot::new(1, 1),
                                    value: Value::Data(payload.clone()),
                                };
                                (slot, entry)
                            })
                            .collect(),
                        ..Persist::default()
                    };
                    commit.persist(2, persist);
                    black_box(db.commit(commit, true).expect("commit"))
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, codec, crc, commit);
criterion_main!(benches);
