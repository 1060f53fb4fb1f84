//! Leader kills under load: acknowledged records survive every failover, exactly once, at
//! the offsets they were acknowledged with; writes of unknown outcome appear at most once.

use super::client::{History, Producer, Redirects, Tally, check, produce_sequence, wait_progress};
use super::harness::{Cluster, read_all, wait_replica_equals};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Instant;
use tokio::task::JoinHandle;

pub(super) const TOPIC: &str = "failover";
const PARTITIONS: u32 = 3;
/// Producers per partition, each one publish at a time: a partition leader has up to this
/// many writes in flight, and each producer's own order stays checkable.
const LANES: usize = 2;

/// Producers writing `records` in total to every partition of [`TOPIC`].
pub(super) struct Workload {
    records: usize,
    done: Arc<AtomicUsize>,
    tasks: Vec<(u32, JoinHandle<(History, Redirects)>)>,
}

impl Workload {
    pub(super) async fn start(c: &Cluster, records: usize) -> Workload {
        c.create_topic(TOPIC, PARTITIONS, 3).await;
        let leaders = c.leaders(TOPIC).await;
        let done = Arc::new(AtomicUsize::new(0));
        let producers = PARTITIONS as usize * LANES;
        let mut tasks = Vec::new();
        for k in 0..producers {
            let (p, lane) = ((k % PARTITIONS as usize) as u32, k / PARTITIONS as usize);
            let count = records / producers + usize::from(k < records % producers);
            let producer = Producer::new(c.addrs(), TOPIC, p, leaders[p as usize]);
            let task = produce_sequence(producer, format!("p{p}-{lane}"), count, done.clone());
            tasks.push((p, tokio::spawn(task)));
        }
        Workload {
            records,
            done,
            tasks,
        }
    }

    /// How many writes have finished so far (acknowledged or of unknown outcome).
    pub(super) fn done(&self) -> Arc<AtomicUsize> {
        self.done.clone()
    }

    /// Waits until `records` writes have finished.
    pub(super) async fn reach(&self, c: &Cluster, records: usize) {
        wait_progress(&self.done, records, || c.logs()).await;
    }

    /// Waits for the producers, then checks every partition on its leader and on every
    /// replica; returns the totals.
    pub(super) async fn finish(self, c: &Cluster) -> Tally {
        let mut histories = vec![Vec::new(); PARTITIONS as usize];
        let mut redirects = vec![Vec::new(); PARTITIONS as usize];
        for (p, task) in self.tasks {
            let (history, r) = task.await.expect("producer task");
            histories[p as usize].push(history);
            redirects[p as usize].push(r);
        }
        let leaders = c.leaders(TOPIC).await;
        let mut total = Tally::default();
        for p in 0..PARTITIONS as usize {
            let log = read_all(c, leaders[p], TOPIC, p as u32).await;
            let tally = check(p as u32, &histories[p], &log);
            eprintln!("partition {p}: {tally:?}, {:?}", redirects[p]);
            for id in c.running() {
                wait_replica_equals(c, id, TOPIC, p as u32, &log).await;
            }
            total.stored += tally.stored;
            total.acked += tally.acked;
            total.unknown += tally.unknown;
            total.unknown_stored += tally.unknown_stored;
        }
        assert_eq!(total.acked + total.unknown, self.records);
        assert!(
            total.acked > self.records / 2,
            "too few acknowledged to mean anything: {total:?}"
        );
        total
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kills_under_load_lose_and_duplicate_nothing() {
    const RECORDS: usize = 10_000;
    let started = Instant::now();
    let mut c = Cluster::start(3).await;
    let load = Workload::start(&c, RECORDS).await;

    // Kill the leader of each partition in turn, a quarter of the way apart.
    let mut kills = Vec::new();
    for p in 0..PARTITIONS {
        let due = RECORDS * (p as usize + 1) / (PARTITIONS as usize + 1);
        load.reach(&c, due).await;
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
    let total = load.finish(&c).await;
    eprintln!(
        "{RECORDS} records, {} leader kills ({}), {} acked, {} unknown ({} of them stored), 0 lost, 0 duplicated, \
         checked on every replica; {:?}",
        kills.len(),
        kills.join("; "),
        total.acked,
        total.unknown,
        total.unknown_stored,
        started.elapsed()
    );
}

/// How a round of [`kills_and_bounces_under_load_lose_and_duplicate_nothing`] hurts.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// kill -9 and restart at once, before the others elect anyone.
    Bounce,
    /// kill -9, wait until the others agree on leaders, restart.
    KillWaitRestart,
    /// Bounce one node, then its neighbour as soon as the first serves again (before it
    /// caught up).
    BackToBack,
    /// Two nodes down at once: no majority until they are back.
    MajorityLoss,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_and_bounces_under_load_lose_and_duplicate_nothing() {
    const RECORDS: usize = 6_000;
    const ROUNDS: usize = 12;
    let seed: u64 = std::env::var("PAXLOG_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    eprintln!("seed {seed} (rerun with PAXLOG_TEST_SEED={seed})");
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let started = Instant::now();
    let mut c = Cluster::start(3).await;
    let load = Workload::start(&c, RECORDS).await;
    let mut rounds = Vec::new();
    for round in 1..=ROUNDS {
        load.reach(&c, RECORDS * round / (ROUNDS + 2)).await;
        let victim = 1 + next() % 3;
        let neighbour = 1 + victim % 3;
        let fault = [
            Fault::Bounce,
            Fault::KillWaitRestart,
            Fault::BackToBack,
            Fault::MajorityLoss,
        ][(next() % 4) as usize];
        rounds.push(format!("{fault:?}({victim})"));
        c.kill(victim);
        match fault {
            Fault::Bounce => c.restart(victim).await,
            Fault::KillWaitRestart => {
                c.leaders(TOPIC).await;
                c.restart(victim).await;
            }
            Fault::BackToBack => {
                c.restart(victim).await;
                c.kill(neighbour);
                c.restart(neighbour).await;
            }
            Fault::MajorityLoss => {
                c.kill(neighbour);
                c.spawn(victim);
                c.spawn(neighbour);
                c.wait_serving(victim).await;
                c.wait_serving(neighbour).await;
            }
        }
    }
    let total = load.finish(&c).await;
    eprintln!(
        "seed {seed}: {RECORDS} records, {ROUNDS} rounds ({}), {} acked, {} unknown ({} of them stored), 0 lost, \
         0 duplicated, checked on every replica; {:?}",
        rounds.join(", "),
        total.acked,
        total.unknown,
        total.unknown_stored,
        started.elapsed()
    );
}
