//! The SDK's idempotent producer through leader kills (-9): every record delivered once,
//! in send order, at the offset its delivery reported, on every replica, although
//! batches in flight when a leader died were retried.

use super::client::wait_progress;
use super::harness::{Cluster, read_all, wait_replica_equals};
use paxlog_client::{Client, ProducerConfig, ProducerRecord};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_producer_survives_leader_kills_without_duplicates_or_gaps() {
    const TOPIC: &str = "sdk-kills";
    const RECORDS: usize = 3_000;
    let mut c = Cluster::start(3).await;
    c.create_topic(TOPIC, 1, 3).await;
    let seeds: Vec<String> = c.addrs().values().map(|a| a.to_string()).collect();
    let client = Client::connect(seeds).await.expect("connect");
    let producer = client
        .producer(ProducerConfig {
            batch_max_records: 20,
            linger: Duration::from_millis(1),
            ..ProducerConfig::default()
        })
        .expect("producer");
    let delivered = Arc::new(AtomicUsize::new(0));
    let progress = delivered.clone();
    let sender = tokio::spawn(async move {
        let mut futures = Vec::new();
        for i in 0..RECORDS {
            let record = ProducerRecord::new(TOPIC, format!("{i:05}")).key("k");
            futures.push(producer.send(record).await.expect("send"));
        }
        let mut offsets = Vec::new();
        for (i, f) in futures.into_iter().enumerate() {
            let d = f.await.unwrap_or_else(|e| panic!("record {i}: {e}"));
            offsets.push(d.offset.expect("an offset"));
            progress.fetch_add(1, Ordering::Relaxed);
        }
        producer.close().await;
        offsets
    });
    for k in 1..=3 {
        wait_progress(&delivered, RECORDS * k / 5, || c.logs()).await;
        let victim = c.leaders(TOPIC).await[0];
        c.kill(victim);
        c.leaders(TOPIC).await;
        c.restart(victim).await;
    }
    let offsets = sender.await.expect("sender");
    let leader = c.leaders(TOPIC).await[0];
    let log = read_all(&c, leader, TOPIC, 0).await;
    let want: Vec<(u64, String)> = offsets
        .iter()
        .enumerate()
        .map(|(i, o)| (*o, format!("{i:05}")))
        .collect();
    assert_eq!(log.len(), RECORDS, "every record exactly once");
    assert_eq!(log, want, "in send order, at the delivered offsets");
    for id in 1..=3 {
        wait_replica_equals(&c, id, TOPIC, 0, &log).await;
    }
}
