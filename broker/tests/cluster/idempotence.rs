//! Idempotent producers over real brokers: retries are answered with the first write's
//! offsets, gaps and stale epochs are refused, and a producer that retries every unknown
//! outcome through leader kills (-9) writes each record exactly once, in order.

use super::client::{Producer, wire_error};
use super::harness::{Cluster, DEADLINE, POLL, channel, read_all, record, wait_replica_equals};
use paxlog_proto::v1 as pb;
use pb::producer_client::ProducerClient;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// InitProducer on whichever broker leads the metadata group: `(id, epoch)`.
async fn init_producer(c: &Cluster, producer_id: u64) -> (u64, u32) {
    let deadline = Instant::now() + DEADLINE;
    let mut last = String::new();
    while Instant::now() < deadline {
        for id in c.running() {
            let Ok(ch) = channel(c.addr(id)).await else {
                continue;
            };
            match ProducerClient::new(ch)
                .init_producer(pb::InitProducerRequest { producer_id })
                .await
            {
                Ok(r) => {
                    let r = r.into_inner();
                    assert_ne!(r.producer_id, 0, "producer ids are never 0");
                    return (r.producer_id, r.producer_epoch);
                }
                Err(s) => last = format!("node {id}: {s:?}"),
            }
        }
        tokio::time::sleep(POLL).await;
    }
    panic!("InitProducer failed: {last}\n{}", c.logs());
}

/// One idempotent publish to `node`: `(base offset, last offset)` or the refusal.
async fn publish(
    c: &Cluster,
    node: u64,
    (producer_id, producer_epoch): (u64, u32),
    base_sequence: u64,
    values: &[&str],
) -> Result<(u64, u64), tonic::Status> {
    let ch = channel(c.addr(node)).await.expect("connect");
    let r = ProducerClient::new(ch)
        .publish(pb::PublishRequest {
            topic: "idem".into(),
            partition: Some(0),
            records: values.iter().map(|v| record("k", v)).collect(),
            producer_id,
            producer_epoch,
            base_sequence,
            timeout_ms: 10_000,
        })
        .await?
        .into_inner();
    Ok((r.base_offset, r.last_offset))
}

/// A publish's offsets, or its status as text (comparable).
fn ok(r: Result<(u64, u64), tonic::Status>) -> Result<(u64, u64), String> {
    r.map_err(|s| format!("{s:?}"))
}

fn code(status: &tonic::Status) -> Option<pb::ErrorCode> {
    wire_error(status).map(|e| e.code())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_get_the_first_offsets_and_bad_sequences_are_refused() {
    let c = Cluster::start(3).await;
    c.create_topic("idem", 1, 3).await;
    let leader = c.leaders("idem").await[0];
    let first = init_producer(&c, 0).await;
    let second = init_producer(&c, 0).await;
    assert_ne!(first.0, second.0, "each InitProducer(0) gets a new id");
    assert_eq!(first.1, 0);

    assert_eq!(
        ok(publish(&c, leader, first, 0, &["a", "b", "c"]).await),
        Ok((0, 2))
    );
    // The retry of a written batch writes nothing and gets the same offsets.
    assert_eq!(
        ok(publish(&c, leader, first, 0, &["a", "b", "c"]).await),
        Ok((0, 2))
    );
    // Another producer's sequences are its own.
    assert_eq!(ok(publish(&c, leader, second, 0, &["x"]).await), Ok((3, 3)));
    assert_eq!(
        ok(publish(&c, leader, first, 3, &["d", "e"]).await),
        Ok((4, 5))
    );
    assert_eq!(
        ok(publish(&c, leader, first, 0, &["a", "b", "c"]).await),
        Ok((0, 2))
    );

    // A gap: records 5..9 were never sent.
    let gap = publish(&c, leader, first, 10, &["z"])
        .await
        .expect_err("gap");
    assert_eq!(gap.code(), tonic::Code::FailedPrecondition, "{gap:?}");
    assert_eq!(code(&gap), Some(pb::ErrorCode::OutOfOrderSequence));
    assert!(gap.message().contains("expects 5"), "{}", gap.message());
    // A retry split differently from the original.
    let split = publish(&c, leader, first, 1, &["b", "c"])
        .await
        .expect_err("overlap");
    assert_eq!(code(&split), Some(pb::ErrorCode::OutOfOrderSequence));

    // A new epoch restarts sequences at 0 and, once it wrote, fences the old instance.
    let bumped = init_producer(&c, first.0).await;
    assert_eq!(bumped, (first.0, 1));
    assert_eq!(ok(publish(&c, leader, bumped, 0, &["g"]).await), Ok((6, 6)));
    let fenced = publish(&c, leader, first, 5, &["f"])
        .await
        .expect_err("fenced");
    assert_eq!(fenced.code(), tonic::Code::FailedPrecondition, "{fenced:?}");
    assert_eq!(code(&fenced), Some(pb::ErrorCode::ProducerFenced));

    // Ids the cluster never handed out, and idempotent publishes without a partition.
    let unknown = init_producer_refused(&c, 999_999).await;
    assert_eq!(code(&unknown), Some(pb::ErrorCode::UnknownProducer));
    let ch = channel(c.addr(leader)).await.expect("connect");
    let no_partition = ProducerClient::new(ch)
        .publish(pb::PublishRequest {
            topic: "idem".into(),
            partition: None,
            records: vec![record("k", "v")],
            producer_id: first.0,
            producer_epoch: 1,
            base_sequence: 0,
            timeout_ms: 0,
        })
        .await
        .expect_err("partition required");
    assert_eq!(code(&no_partition), Some(pb::ErrorCode::InvalidRequest));

    // Exactly the records written once each, on every replica.
    let log = read_all(&c, leader, "idem", 0).await;
    let values: Vec<&str> = log.iter().map(|(_, v)| v.as_str()).collect();
    assert_eq!(values, ["a", "b", "c", "x", "d", "e", "g"]);
    for id in 1..=3 {
        wait_replica_equals(&c, id, "idem", 0, &log).await;
    }
}

/// InitProducer with an id the cluster never handed out: the refusal.
async fn init_producer_refused(c: &Cluster, producer_id: u64) -> tonic::Status {
    let deadline = Instant::now() + DEADLINE;
    loop {
        for id in c.running() {
            let ch = channel(c.addr(id)).await.expect("connect");
            let status = ProducerClient::new(ch)
                .init_producer(pb::InitProducerRequest { producer_id })
                .await
                .expect_err("unknown producer id");
            if code(&status) != Some(pb::ErrorCode::NotLeader) {
                return status;
            }
        }
        assert!(Instant::now() < deadline, "no metadata leader");
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrying_producer_through_leader_kills_writes_each_record_once_in_order() {
    const TOPIC: &str = "idem-kills";
    const BATCHES: usize = 600;
    const PER_BATCH: usize = 2;
    let mut c = Cluster::start(3).await;
    c.create_topic(TOPIC, 1, 3).await;
    let leader = c.leaders(TOPIC).await[0];
    let identity = init_producer(&c, 0).await;
    let done = Arc::new(AtomicUsize::new(0));
    let mut producer =
        Producer::new(c.addrs(), TOPIC, 0, leader).with_identity(identity.0, identity.1);
    let progress = done.clone();
    let task = tokio::spawn(async move {
        let mut acked = Vec::new();
        let mut unknown = 0;
        for b in 0..BATCHES {
            let values: Vec<String> = (0..PER_BATCH).map(|i| format!("{b:04}-{i}")).collect();
            let records: Vec<_> = values.iter().map(|v| record("k", v)).collect();
            let seq = (b * PER_BATCH) as u64;
            let (offset, retries) = producer.send_idempotent(records.clone(), seq).await;
            unknown += retries;
            // A forced retry of every tenth batch after its acknowledgement: same offsets.
            if b % 10 == 0 {
                let (again, _) = producer.send_idempotent(records, seq).await;
                assert_eq!(again, offset, "batch {b}: a retry got other offsets");
            }
            acked.push((offset, values));
            progress.fetch_add(1, Ordering::Relaxed);
        }
        (acked, unknown)
    });

    // Kill -9 the partition's leader three times under the producer, a quarter apart.
    for k in 1..=3 {
        super::client::wait_progress(&done, BATCHES * k / 4, || c.logs()).await;
        let victim = c.leaders(TOPIC).await[0];
        c.kill(victim);
        c.leaders(TOPIC).await;
        c.restart(victim).await;
        c.leaders(TOPIC).await;
    }
    let (acked, unknown) = task.await.expect("producer task");

    let leader = c.leaders(TOPIC).await[0];
    let log = read_all(&c, leader, TOPIC, 0).await;
    let want: Vec<(u64, String)> = acked
        .iter()
        .flat_map(|(offset, values)| (*offset..).zip(values.iter().cloned()))
        .collect();
    assert_eq!(
        log.len(),
        BATCHES * PER_BATCH,
        "every record exactly once ({unknown} unknown outcomes were retried)"
    );
    assert_eq!(log, want, "in order, at the acknowledged offsets");
    for id in 1..=3 {
        wait_replica_equals(&c, id, TOPIC, 0, &log).await;
    }
    eprintln!(
        "{BATCHES} idempotent batches through 3 leader kills: {unknown} unknown outcomes retried, 0 duplicates, 0 gaps"
    );
}
