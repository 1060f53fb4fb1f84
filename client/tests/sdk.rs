//! The SDK against a real three-node cluster (`paxlog cluster up`): the producer batches
//! and delivers every record once at the offsets it reports, per-key order holds, a tiny
//! buffer only slows it down; the consumer reads back exactly that; and group members share
//! a topic so that no record is skipped, every partition has one owner per generation, and
//! a new owner starts exactly where the previous one committed.

mod common;

use common::{ClusterUp, DEADLINE, assert_broker_built, free_base_port, local_brokers};
use paxlog_client::{
    Client, Compression, ConsumedRecord, Consumer, ConsumerConfig, OffsetReset, Position,
    ProducerConfig, ProducerRecord,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Cluster {
    _dir: tempfile::TempDir,
    up: ClusterUp,
    seeds: Vec<String>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.up.signal_and_wait(rustix::process::Signal::TERM);
    }
}

fn start() -> Cluster {
    assert_broker_built();
    let dir = tempfile::tempdir().expect("tempdir");
    let base = free_base_port();
    let seeds = local_brokers(base);
    let mut up = ClusterUp::start(base, &dir.path().join("data"), dir.path().join("up.stderr"));
    up.wait_serving(&seeds.join(","));
    Cluster {
        _dir: dir,
        up,
        seeds,
    }
}

async fn create(client: &Client, name: &str, partitions: u32) {
    common::create_topic(client, name, partitions).await;
}

/// Polls `consumer` until `n` records came or the deadline passed.
async fn read_n(consumer: &mut Consumer, n: usize) -> Vec<ConsumedRecord> {
    common::read_n(consumer, n).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_delivers_each_record_once_in_key_order_and_the_consumer_reads_it_back() {
    let cluster = start();
    let client = Client::connect(cluster.seeds.clone())
        .await
        .expect("connect");
    create(&client, "orders", 3).await;

    const KEYS: usize = 20;
    const PER_KEY: usize = 100;
    let producer = client
        .producer(ProducerConfig::default())
        .expect("producer");
    let mut futures = Vec::new();
    for i in 0..PER_KEY {
        for k in 0..KEYS {
            let record = ProducerRecord::new("orders", format!("k{k}-{i:04}")).key(format!("k{k}"));
            futures.push(producer.send(record).await.expect("send"));
        }
    }
    let mut delivered: BTreeMap<(u32, u64), String> = BTreeMap::new();
    for (n, f) in futures.into_iter().enumerate() {
        let d = f.await.unwrap_or_else(|e| panic!("record {n}: {e}"));
        let offset = d.offset.expect("a fresh write has its offset");
        let (i, k) = (n / KEYS, n % KEYS);
        assert!(
            delivered
                .insert((d.partition, offset), format!("k{k}-{i:04}"))
                .is_none(),
            "two records at {}/{offset}",
            d.partition
        );
    }
    producer.flush().await;

    let mut consumer = client.consumer(ConsumerConfig::default());
    consumer.assign("orders", 0..3);
    let records = read_n(&mut consumer, KEYS * PER_KEY).await;
    let mut seen = BTreeMap::new();
    let mut last_of_key: BTreeMap<String, String> = BTreeMap::new();
    for r in &records {
        let value = String::from_utf8_lossy(&r.value).into_owned();
        assert_eq!(
            delivered.get(&(r.partition, r.offset)),
            Some(&value),
            "{}/{} holds what its delivery said",
            r.partition,
            r.offset
        );
        assert!(
            seen.insert(value.clone(), r.offset).is_none(),
            "{value} twice"
        );
        let key = String::from_utf8_lossy(&r.key).into_owned();
        if let Some(prev) = last_of_key.insert(key.clone(), value.clone()) {
            assert!(prev < value, "key {key}: {prev} read before {value}");
        }
    }
    assert_eq!(seen.len(), KEYS * PER_KEY);

    // Explicit partition, headers and timestamps round-trip; latest and offset seeks.
    let d = producer
        .send_and_wait(
            ProducerRecord::new("orders", "special")
                .partition(2)
                .header("trace", "abc")
                .header("trace", "def")
                .timestamp_ms(1_700_000_000_000),
        )
        .await
        .expect("explicit partition");
    assert_eq!(d.partition, 2);
    consumer
        .seek("orders", 2, Position::Offset(d.offset.expect("offset")))
        .await
        .expect("seek");
    consumer
        .seek("orders", 0, Position::Latest)
        .await
        .expect("seek latest");
    consumer
        .seek("orders", 1, Position::Latest)
        .await
        .expect("seek latest");
    let got = read_n(&mut consumer, 1).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(&got[0].value[..], b"special");
    assert_eq!(got[0].timestamp_ms, 1_700_000_000_000);
    assert_eq!(
        got[0].headers,
        vec![
            ("trace".to_owned(), "abc".into()),
            ("trace".to_owned(), "def".into())
        ]
    );
    consumer
        .seek("orders", 2, Position::Earliest)
        .await
        .expect("seek earliest");
    assert_eq!(consumer.position("orders", 2), Some(0));

    // A buffer of 4 KiB for 300 records of 100 bytes: send waits, nothing is lost.
    let small = client
        .producer(ProducerConfig {
            buffer_max_bytes: 4096,
            batch_max_bytes: 4096,
            ..ProducerConfig::default()
        })
        .expect("small producer");
    let mut futures = Vec::new();
    for i in 0..300 {
        let value = format!("{i:0100}");
        futures.push(
            small
                .send(ProducerRecord::new("orders", value).partition(1))
                .await
                .expect("send"),
        );
    }
    let mut offsets = Vec::new();
    for f in futures {
        offsets.push(f.await.expect("delivered").offset.expect("offset"));
    }
    assert!(
        offsets.windows(2).all(|w| w[1] == w[0] + 1),
        "one partition, in order"
    );
    small.close().await;

    // zstd on the wire both ways: what goes in comes out.
    let zstd = client
        .producer(ProducerConfig {
            compression: Compression::Zstd,
            ..ProducerConfig::default()
        })
        .expect("zstd producer");
    let text = "a compressible line of JSON: {\"k\": \"v\"} ".repeat(40);
    let mut first = None;
    for i in 0..50 {
        let d = zstd
            .send_and_wait(ProducerRecord::new("orders", format!("{i}:{text}")).partition(0))
            .await
            .expect("zstd delivery");
        first.get_or_insert(d.offset.expect("offset"));
    }
    let mut reader = client.consumer(ConsumerConfig {
        compression: Compression::Zstd,
        ..ConsumerConfig::default()
    });
    reader.assign("orders", [0]);
    let from = first.expect("first offset");
    reader
        .seek("orders", 0, Position::Offset(from))
        .await
        .expect("seek");
    let got = read_n(&mut reader, 50).await;
    for (i, r) in got.iter().take(50).enumerate() {
        assert_eq!(r.offset, from + i as u64);
        assert_eq!(String::from_utf8_lossy(&r.value), format!("{i}:{text}"));
    }
    zstd.close().await;

    // Seek by time: the first record at or after it (records stamped in 2100, later
    // than everything else in the partition); past the last one, the end.
    const T: i64 = 4_102_444_800_000;
    let mut stamped = Vec::new();
    for i in 1..=3 {
        let d = producer
            .send_and_wait(
                ProducerRecord::new("orders", format!("t{i}"))
                    .partition(2)
                    .timestamp_ms(T + i * 1_000),
            )
            .await
            .expect("stamped");
        stamped.push(d.offset.expect("offset"));
    }
    consumer
        .seek("orders", 2, Position::Timestamp(T + 1_500))
        .await
        .expect("seek time");
    assert_eq!(consumer.position("orders", 2), Some(stamped[1]));
    consumer
        .seek("orders", 2, Position::Timestamp(T + 9_000))
        .await
        .expect("seek time");
    assert_eq!(consumer.position("orders", 2), Some(stamped[2] + 1));

    // Unknown topics and out-of-range positions fail clearly.
    let err = producer
        .send_and_wait(ProducerRecord::new("nope", "x"))
        .await
        .expect_err("unknown topic");
    assert!(err.to_string().contains("unknown topic"), "{err}");
    let mut strict = client.consumer(ConsumerConfig {
        auto_offset_reset: OffsetReset::Error,
        ..ConsumerConfig::default()
    });
    strict.assign("orders", [0]);
    strict
        .seek("orders", 0, Position::Offset(1 << 40))
        .await
        .expect("seek");
    let err = strict
        .poll(Duration::from_millis(10))
        .await
        .expect_err("out of range");
    assert!(err.to_string().contains("out of range"), "{err}");
    producer.close().await;
}

/// What a group member did, in the order it happened across members.
#[derive(Clone, Debug)]
enum Event {
    /// `member` read `[first, last]` of `partition`.
    Read {
        member: String,
        partition: u32,
        first: u64,
        last: u64,
    },
    /// A member is about to commit `offset` (next to read) for `partition`.
    Committing { partition: u32, offset: u64 },
    /// The coordinator acknowledged that commit.
    Committed { partition: u32, offset: u64 },
    /// A poll failed (the member goes on polling).
    Failed(String),
    /// `member` owns these partitions in `generation` (after a poll).
    Owns {
        /// Which of the test's members (0, 1, 2, or 3 for the one that joins late).
        tag: usize,
        member: String,
        generation: u64,
        partitions: BTreeSet<u32>,
    },
}

fn failures(log: &Arc<Mutex<Vec<Event>>>) -> Vec<String> {
    log.lock()
        .expect("log")
        .iter()
        .filter_map(|e| match e {
            Event::Failed(why) => Some(why.clone()),
            _ => None,
        })
        .collect()
}

/// A member that polls, records, commits after each poll, until stopped.
fn spawn_member(
    client: &Client,
    log: Arc<Mutex<Vec<Event>>>,
    tag: usize,
) -> tokio::task::JoinHandle<Consumer> {
    let mut consumer = client.consumer(ConsumerConfig {
        group: Some("workers".into()),
        auto_commit: false,
        session_timeout: Duration::from_millis(2_000),
        ..ConsumerConfig::default()
    });
    tokio::spawn(async move {
        consumer.subscribe(&["jobs"]).await.expect("subscribe");
        loop {
            let records = match consumer.poll(Duration::from_millis(100)).await {
                Ok(records) => records,
                Err(e) => {
                    log.lock().expect("log").push(Event::Failed(e.to_string()));
                    continue;
                }
            };
            let (member, _) = consumer.member().expect("a member");
            let mut by_partition: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
            for r in &records {
                let e = by_partition
                    .entry(r.partition)
                    .or_insert((r.offset, r.offset));
                e.1 = r.offset;
            }
            {
                let mut log = log.lock().expect("log");
                for (partition, (first, last)) in by_partition {
                    log.push(Event::Read {
                        member: member.clone(),
                        partition,
                        first,
                        last,
                    });
                }
            }
            // Commit what was read: positions are the next offsets. A commit refused
            // because the group moved on is fine: the next poll rejoins.
            let positions: Vec<(u32, u64)> = consumer
                .assignment()
                .iter()
                .filter_map(|(_, p)| consumer.position("jobs", *p).map(|o| (*p, o)))
                .collect();
            {
                let mut log = log.lock().expect("log");
                for (partition, offset) in &positions {
                    let (partition, offset) = (*partition, *offset);
                    log.push(Event::Committing { partition, offset });
                }
            }
            if consumer.commit().await.is_ok() {
                let mut log = log.lock().expect("log");
                for (partition, offset) in positions {
                    log.push(Event::Committed { partition, offset });
                }
            }
            let (member, generation) = consumer.member().expect("a member");
            log.lock().expect("log").push(Event::Owns {
                tag,
                member,
                generation,
                partitions: consumer.assignment().into_iter().map(|(_, p)| p).collect(),
            });
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_members_share_partitions_and_new_owners_start_at_the_last_commit() {
    const PARTITIONS: u32 = 6;
    let cluster = start();
    let client = Client::connect(cluster.seeds.clone())
        .await
        .expect("connect");
    create(&client, "jobs", PARTITIONS).await;
    let producer = client
        .producer(ProducerConfig::default())
        .expect("producer");
    let produce = |from: usize, to: usize| {
        let producer = producer.clone();
        async move {
            let mut futures = Vec::new();
            for i in from..to {
                let record =
                    ProducerRecord::new("jobs", format!("{i:05}")).key(format!("k{}", i % 37));
                futures.push(producer.send(record).await.expect("send"));
            }
            for f in futures {
                f.await.expect("delivered");
            }
        }
    };
    produce(0, 600).await;

    let log = Arc::new(Mutex::new(Vec::new()));
    let read_count = |log: &Arc<Mutex<Vec<Event>>>| -> BTreeSet<(u32, u64)> {
        log.lock()
            .expect("log")
            .iter()
            .filter_map(|e| match e {
                Event::Read {
                    partition,
                    first,
                    last,
                    ..
                } => Some((*partition, *first, *last)),
                _ => None,
            })
            .flat_map(|(p, f, l)| (f..=l).map(move |o| (p, o)))
            .collect()
    };
    let wait_read = |n: usize, log: Arc<Mutex<Vec<Event>>>| async move {
        let deadline = Instant::now() + DEADLINE;
        while read_count(&log).len() < n {
            assert!(
                Instant::now() < deadline,
                "members read only {} of {n}",
                read_count(&log).len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let members: Vec<_> = (0..3)
        .map(|tag| spawn_member(&client, log.clone(), tag))
        .collect();
    wait_read(300, log.clone()).await;
    // Wait until the three members settled (each owns partitions in one generation), so
    // the member about to die holds partitions that must move.
    let settled = |log: &Arc<Mutex<Vec<Event>>>| {
        let mut latest: BTreeMap<usize, (u64, usize)> = BTreeMap::new();
        for e in log.lock().expect("log").iter() {
            if let Event::Owns {
                tag,
                generation,
                partitions,
                ..
            } = e
            {
                latest.insert(*tag, (*generation, partitions.len()));
            }
        }
        let generations: BTreeSet<u64> = latest.values().map(|(g, _)| *g).collect();
        latest.len() == 3 && generations.len() == 1 && latest.values().all(|(_, n)| *n == 2)
    };
    let deadline = Instant::now() + DEADLINE;
    while !settled(&log) {
        assert!(Instant::now() < deadline, "the three members never settled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // One member dies without leaving: its partitions move once its session expires, and
    // the records written to them meanwhile are read by the others.
    members[0].abort();
    produce(600, 1_200).await;
    // A new member joins and gets work back: four members have owned partitions, and
    // records written now are read too.
    let late = spawn_member(&client, log.clone(), 3);
    let late_owns = |log: &Arc<Mutex<Vec<Event>>>| {
        log.lock()
            .expect("log")
            .iter()
            .any(|e| matches!(e, Event::Owns { tag: 3, partitions, .. } if !partitions.is_empty()))
    };
    let deadline = Instant::now() + DEADLINE;
    while !late_owns(&log) {
        assert!(
            Instant::now() < deadline,
            "the late member never got partitions; failures: {:?}",
            failures(&log)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    produce(1_200, 1_500).await;
    wait_read(1_500, log.clone()).await;
    for m in members.into_iter().skip(1).chain([late]) {
        m.abort();
    }

    let events = log.lock().expect("log").clone();
    assert_eq!(failures(&log), Vec::<String>::new(), "polls failed");
    // Every record was read (none skipped): 1,500 distinct (partition, offset) pairs, and
    // offsets are dense per partition.
    let read = read_count(&log);
    assert_eq!(read.len(), 1_500);
    // One owner per partition per generation.
    let mut owners: BTreeMap<(u64, u32), String> = BTreeMap::new();
    for e in &events {
        if let Event::Owns {
            member,
            generation,
            partitions,
            ..
        } = e
        {
            for p in partitions {
                if let Some(other) = owners.insert((*generation, *p), member.clone()) {
                    assert_eq!(
                        &other, member,
                        "partition {p} owned by two members in generation {generation}"
                    );
                }
            }
        }
    }
    // A member's first read of a partition (a new owner, or a restart) starts at a
    // committed position (or 0), never below one acknowledged before: re-deliveries start
    // exactly at a commit and never skip.
    let mut attempted: BTreeMap<u32, BTreeSet<u64>> = BTreeMap::new();
    let mut acked: BTreeMap<u32, u64> = BTreeMap::new();
    let mut reading: BTreeMap<u32, (String, u64)> = BTreeMap::new();
    let mut handovers = 0;
    for e in &events {
        match e {
            Event::Committing { partition, offset } => {
                attempted.entry(*partition).or_default().insert(*offset);
            }
            Event::Committed { partition, offset } => {
                let c = acked.entry(*partition).or_default();
                *c = (*c).max(*offset);
            }
            Event::Read {
                member,
                partition,
                first,
                last,
            } => {
                match reading.get(partition) {
                    // Continuing its own reading.
                    Some((owner, next)) if owner == member && first == next => {}
                    previous => {
                        let floor = acked.get(partition).copied().unwrap_or(0);
                        let at_commit = *first == 0
                            || attempted.get(partition).is_some_and(|c| c.contains(first));
                        assert!(
                            at_commit && *first >= floor,
                            "{member} (re)started partition {partition} (after {previous:?}) at {first}: commits {:?}, last acknowledged {floor}",
                            attempted.get(partition)
                        );
                        if previous.is_some_and(|(owner, _)| owner != member) {
                            handovers += 1;
                        }
                    }
                }
                reading.insert(*partition, (member.clone(), last + 1));
            }
            Event::Owns { .. } | Event::Failed(_) => {}
        }
    }
    assert!(handovers > 0, "partitions changed owners at least once");
    producer.close().await;
}
