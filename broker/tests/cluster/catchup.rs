//! Restart catch-up: a node that was down while the others kept writing learns everything
//! it missed, and its log ends up equal to theirs, record for record.

use super::client::{History, Producer, check};
use super::harness::{Cluster, read_all, record, wait_replica_equals};

const TOPIC: &str = "catchup";
const PARTITIONS: u32 = 2;
/// Records per publish: multi-record batches, so offsets and slots differ.
const BATCH: usize = 3;

/// Publishes `batches` batches of `BATCH` records to every partition of `topic` (one
/// history per partition), one partition per task.
async fn produce(c: &Cluster, topic: &str, phase: &str, batches: usize, histories: &mut [History]) {
    let leaders = c.leaders(topic).await;
    let mut tasks = Vec::new();
    for p in 0..histories.len() as u32 {
        let mut producer = Producer::new(c.addrs(), topic, p, leaders[p as usize]);
        let phase = phase.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut history = History::default();
            for b in 0..batches {
                let values: Vec<String> = (0..BATCH)
                    .map(|i| format!("{phase}-p{p}-{b:04}-{i}"))
                    .collect();
                let sent = producer
                    .send(values.iter().map(|v| record("k", v)).collect())
                    .await;
                // Unknown only if leadership moves on its own (a stalled fsync, a
                // starved process): recorded, and checked like any other outcome.
                history.record(&values, &sent);
            }
            history
        }));
    }
    for (p, task) in tasks.into_iter().enumerate() {
        let h = task.await.expect("producer task");
        histories[p].acked.extend(h.acked);
        histories[p].unknown.extend(h.unknown);
    }
}

/// An order-sensitive checksum of a partition's records, to print.
fn checksum(log: &[(u64, String)]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    for (offset, value) in log {
        hasher.update(&offset.to_be_bytes());
        hasher.update(value.as_bytes());
    }
    hasher.finalize()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_node_catches_up_and_its_log_equals_the_others() {
    let mut c = Cluster::start(3).await;
    c.create_topic(TOPIC, PARTITIONS, 3).await;
    let mut histories = vec![History::default(); PARTITIONS as usize];
    produce(&c, TOPIC, "before", 100, &mut histories).await;

    // The leader of partition 0 goes down: the others elect a new one and keep writing,
    // far more than one catch-up message carries (256 slots).
    let victim = c.leaders(TOPIC).await[0];
    c.kill(victim);
    produce(&c, TOPIC, "while-down", 700, &mut histories).await;
    // A topic created meanwhile: the node learns it from the metadata log, opens its
    // replica and fills it.
    c.create_topic("late", 1, 3).await;
    let mut late = vec![History::default()];
    produce(&c, "late", "while-down", 50, &mut late).await;
    c.restart(victim).await;

    for p in 0..PARTITIONS {
        let leader = c.leaders(TOPIC).await[p as usize];
        let log = read_all(&c, leader, TOPIC, p).await;
        let tally = check(p, std::slice::from_ref(&histories[p as usize]), &log);
        assert_eq!(tally.acked + tally.unknown, 800 * BATCH, "{tally:?}");
        for id in 1..=3 {
            wait_replica_equals(&c, id, TOPIC, p, &log).await;
        }
        eprintln!(
            "partition {p}: node {victim} caught up with {} records ({} written while it was down), crc32 {:#010x} on all 3 nodes",
            log.len(),
            700 * BATCH,
            checksum(&log)
        );
    }
    let leader = c.leaders("late").await[0];
    let log = read_all(&c, leader, "late", 0).await;
    assert!(check(0, &late, &log).stored > 0);
    wait_replica_equals(&c, victim, "late", 0, &log).await;
}
