//! Leader kills under load: acknowledged records survive every failover, exactly once, at
//! the offsets they were acknowledged with; writes of unknown outcome appear at most once.

use super::client::{Producer, Tally, check, produce_sequence, wait_progress};
use super::harness::{Cluster, read_all, wait_replica_equals};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Instant;

const TOPIC: &str = "failover";
const PARTITIONS: u32 = 3;
const RECORDS: usize = 10_000;
/// Producers per partition, each one publish at a time: a partition leader has up to this
/// many writes in flight, and each producer's own order stays checkable.
const LANES: usize = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kills_under_load_lose_and_duplicate_nothing() {
    let started = Instant::now();
    let mut c = Cluster::start(3).await;
    c.create_topic(TOPIC, PARTITIONS, 3).await;
    let leaders = c.leaders(TOPIC).await;

    let done = Arc::new(AtomicUsize::new(0));
    let producers = PARTITIONS as usize * LANES;
    let mut tasks = Vec::new();
    for k in 0..producers {
        let (p, lane) = ((k % PARTITIONS as usize) as u32, k / PARTITIONS as usize);
        let count = RECORDS / producers + usize::from(k < RECORDS % producers);
        let producer = Producer::new(c.addrs(), TOPIC, p, leaders[p as usize]);
        tasks.push((
            p,
            tokio::spawn(produce_sequence(
                producer,
                format!("p{p}-{lane}"),
                count,
                done.clone(),
            )),
        ));
    }

    // Kill the leader of each partition in turn, a quarter of the way apart.
    let mut kills = Vec::new();
    for p in 0..PARTITIONS {
        let due = RECORDS * (p as usize + 1) / (PARTITIONS as usize + 1);
        wait_progress(&done, due, || c.logs()).await;
        let victim = c.leaders(TOPIC).await[p as usize];
        c.kill(victim);
        let after = c.leaders(TOPIC).await;
        assert_ne!(
            after[p as usize], victim,
            "partition {p} still led by the killed node {victim}"
        );
        kills.push(format!(
            "p{p}: node {victim} -> node {} at {due} records",
            after[p as usize]
        ));
        c.restart(victim).await;
        // Every node, the restarted one included, agrees on the leaders before the next kill.
        c.leaders(TOPIC).await;
    }

    let mut histories = vec![Vec::new(); PARTITIONS as usize];
    let mut redirects = vec![Vec::new(); PARTITIONS as usize];
    for (p, task) in tasks {
        let (history, r) = task.await.expect("producer task");
        histories[p as usize].push(history);
        redirects[p as usize].push(r);
    }
    let produced = started.elapsed();

    let leaders = c.leaders(TOPIC).await;
    let mut total = Tally::default();
    for p in 0..PARTITIONS as usize {
        let log = read_all(&c, leaders[p], TOPIC, p as u32).await;
        let tally = check(p as u32, &histories[p], &log);
        eprintln!("partition {p}: {tally:?}, {:?}", redirects[p]);
        for id in c.running() {
            wait_replica_equals(&c, id, TOPIC, p as u32, &log).await;
        }
        total.stored += tally.stored;
        total.acked += tally.acked;
        total.unknown += tally.unknown;
        total.unknown_stored += tally.unknown_stored;
    }
    assert_eq!(total.acked + total.unknown, RECORDS);
    assert!(
        total.acked > RECORDS / 2,
        "too few acknowledged to mean anything: {total:?}"
    );
    eprintln!(
        "{RECORDS} records, {} leader kills ({}), {} acked, {} unknown ({} of them stored), 0 lost, 0 duplicated; \
         produced in {produced:?}, checked on every replica in {:?}",
        kills.len(),
        kills.join("; "),
        total.acked,
        total.unknown,
        total.unknown_stored,
        started.elapsed()
    );
}
