//! Retention over real brokers: the leader trims by size and by age, every replica cuts at
//! the same batch, offsets keep counting, and a replica that was down while the slots it
//! needed were deleted receives a snapshot and ends up equal to the others.

use super::client::{Producer, wire_error};
use super::harness::{Cluster, DEADLINE, POLL, channel, record};
use paxlog_proto::v1 as pb;
use pb::admin_client::AdminClient;
use pb::consumer_client::ConsumerClient;
use std::time::Instant;

/// `(log start, high watermark)` of `topic`/0 as node `id`'s replica sees it.
async fn bounds(c: &Cluster, id: u64, topic: &str) -> Option<(u64, u64)> {
    let ch = channel(c.addr(id)).await.ok()?;
    let t = AdminClient::new(ch)
        .describe_topic(pb::DescribeTopicRequest { name: topic.into() })
        .await
        .ok()?
        .into_inner()
        .topic?;
    let p = t.partitions.first()?;
    Some((p.log_start_offset, p.log_end_offset))
}

/// Every record node `id` serves in `[from, end)`, as `(offset, value)`.
async fn read_range(c: &Cluster, id: u64, topic: &str, from: u64, end: u64) -> Vec<(u64, String)> {
    try_read_range(c, id, topic, from, end)
        .await
        .unwrap_or_else(|s| panic!("fetch from node {id}: {s:?}"))
}

/// [`read_range`], returning a fetch's error.
async fn try_read_range(
    c: &Cluster,
    id: u64,
    topic: &str,
    from: u64,
    end: u64,
) -> Result<Vec<(u64, String)>, tonic::Status> {
    let ch = channel(c.addr(id)).await.expect("connect");
    let mut consumer = ConsumerClient::new(ch);
    let mut out = Vec::new();
    let mut offset = from;
    while offset < end {
        let r = consumer
            .fetch(pb::FetchRequest {
                topic: topic.into(),
                partition: 0,
                offset,
                max_wait_ms: 0,
                min_bytes: 0,
                max_bytes: 1 << 20,
            })
            .await?
            .into_inner();
        assert!(
            !r.records.is_empty(),
            "node {id} returned nothing at {offset}"
        );
        for rec in r.records {
            assert_eq!(rec.offset, offset, "offsets have no gaps");
            offset += 1;
            let value = rec.record.expect("record").value;
            out.push((rec.offset, String::from_utf8_lossy(&value).into_owned()));
        }
    }
    Ok(out)
}

/// Waits until `ids` agree on trimmed bounds (see [`wait_trimmed_alike`]) and each serves
/// the same records over them; a trim that lands meanwhile just means waiting again.
async fn read_agreed(
    c: &Cluster,
    ids: &[u64],
    topic: &str,
    end: u64,
    keep: u64,
) -> (u64, Vec<(u64, String)>) {
    let deadline = Instant::now() + DEADLINE;
    'again: loop {
        assert!(Instant::now() < deadline, "replicas never served alike");
        let (start, end) = wait_trimmed_alike(c, ids, topic, end, keep).await;
        let mut first: Option<Vec<(u64, String)>> = None;
        for &id in ids {
            match try_read_range(c, id, topic, start, end).await {
                Ok(records) => match &first {
                    Some(f) => assert_eq!(&records, f, "node {id} serves other records"),
                    None => first = Some(records),
                },
                Err(s) if s.code() == tonic::Code::OutOfRange => continue 'again,
                Err(s) => panic!("fetch from node {id}: {s:?}"),
            }
        }
        return (start, first.unwrap_or_default());
    }
}

/// Waits until every node in `ids` reports the same bounds with the log start past 0,
/// the end at `end`, and at most `keep` records left; returns them.
async fn wait_trimmed_alike(
    c: &Cluster,
    ids: &[u64],
    topic: &str,
    end: u64,
    keep: u64,
) -> (u64, u64) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let mut seen = Vec::new();
        for &id in ids {
            seen.push(bounds(c, id, topic).await);
        }
        let first = seen[0];
        if let Some((start, hwm)) = first
            && start > 0
            && hwm == end
            && hwm - start <= keep
            && seen.iter().all(|b| *b == first)
        {
            return (start, hwm);
        }
        assert!(
            Instant::now() < deadline,
            "replicas did not trim alike: {seen:?}\n{}",
            c.logs()
        );
        tokio::time::sleep(POLL * 4).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_retention_trims_alike_and_a_lagging_replica_gets_a_snapshot() {
    const TOPIC: &str = "by-size";
    const LIMIT: u64 = 16 * 1024;
    const RECORDS: u64 = 300;
    let mut c = Cluster::start(3).await;
    c.create_topic_with(TOPIC, 1, 3, &[("retention.bytes", &LIMIT.to_string())])
        .await;
    let leader = c.leaders(TOPIC).await[0];
    let lagging = (1..=3).find(|&id| id != leader).expect("a follower");
    c.kill(lagging);

    let payload = "x".repeat(500);
    let mut producer = Producer::new(c.addrs(), TOPIC, 0, leader);
    for i in 0..RECORDS {
        let value = format!("{i:05}-{payload}");
        let offset = match producer.send(vec![record("k", &value)]).await {
            super::client::Sent::Acked(offset) => offset,
            super::client::Sent::Unknown(why) => panic!("record {i}: {why}\n{}", c.logs()),
        };
        assert_eq!(offset, i, "offsets count on through trims");
    }
    let live: Vec<u64> = c.running();
    // Trims run about once a second, so writes faster than that are trimmed in steps:
    // wait until about LIMIT bytes of ~520-byte stored records are left (the limit plus
    // one batch at most).
    let most = (LIMIT + 1024) / 500;
    let (start, served) = read_agreed(&c, &live, TOPIC, RECORDS, most).await;
    let kept = RECORDS - start;
    // Retention never empties a partition below its limit.
    assert!(kept * 600 >= LIMIT / 2, "kept {kept} records of {RECORDS}");
    let want: Vec<(u64, String)> = (start..RECORDS)
        .map(|i| (i, format!("{i:05}-{payload}")))
        .collect();
    assert_eq!(served, want, "the newest records, at their offsets");
    // Offsets below the log start are gone, with the precise code and the bounds.
    let ch = channel(c.addr(leader)).await.expect("connect");
    let status = ConsumerClient::new(ch)
        .fetch(pb::FetchRequest {
            topic: TOPIC.into(),
            partition: 0,
            offset: 0,
            ..Default::default()
        })
        .await
        .expect_err("offset 0 was trimmed");
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
    assert_eq!(
        wire_error(&status).map(|e| e.code()),
        Some(pb::ErrorCode::OffsetOutOfRange)
    );

    // Restarting the trimmed replicas: they start from their trim markers, and the
    // messages their peer queues held for the lagging node are gone with them.
    for id in live.iter().copied() {
        c.kill(id);
        c.restart(id).await;
        c.leaders(TOPIC).await;
    }
    // (A last trim step may still run: the bounds must agree, not stay put.)
    let (start, served) = read_agreed(&c, &live, TOPIC, RECORDS, most).await;
    assert_eq!(
        served,
        want[(start - want[0].0) as usize..],
        "after the restarts"
    );

    // The lagging replica missed slots that are deleted everywhere: it gets a snapshot,
    // then the rest of the log, and serves exactly what the others serve.
    c.restart(lagging).await;
    c.wait_log(lagging, "snapshot installed from the leader")
        .await;
    let all: Vec<u64> = (1..=3).collect();
    let (start2, served) = read_agreed(&c, &all, TOPIC, RECORDS, most).await;
    assert!(start2 >= start, "{start2} after {start}");
    assert_eq!(
        served,
        want[(start2 - want[0].0) as usize..],
        "node {lagging} after its snapshot serves what the others serve"
    );

    // Writes go on after the snapshot, on every replica.
    let value = format!("{RECORDS:05}-after");
    match producer.send(vec![record("k", &value)]).await {
        super::client::Sent::Acked(offset) => assert_eq!(offset, RECORDS),
        super::client::Sent::Unknown(why) => panic!("{why}"),
    }
    for id in all {
        let deadline = Instant::now() + DEADLINE;
        while bounds(&c, id, TOPIC).await.map(|b| b.1) != Some(RECORDS + 1) {
            assert!(
                Instant::now() < deadline,
                "node {id} did not apply the last record"
            );
            tokio::time::sleep(POLL).await;
        }
        let got = read_range(&c, id, TOPIC, RECORDS, RECORDS + 1).await;
        assert_eq!(got, vec![(RECORDS, value.clone())], "node {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn age_retention_trims_records_older_than_retention_ms() {
    const TOPIC: &str = "by-age";
    let c = Cluster::start(3).await;
    // Ten minutes: the old records below are an hour old, the new ones are stamped now.
    c.create_topic_with(TOPIC, 1, 3, &[("retention.ms", "600000")])
        .await;
    let leader = c.leaders(TOPIC).await[0];
    let hour_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
        - 3_600_000;
    let mut producer = Producer::new(c.addrs(), TOPIC, 0, leader);
    for i in 0..20u64 {
        let mut rec = record("k", &format!("v{i}"));
        if i < 10 {
            rec.timestamp_ms = hour_ago;
        }
        assert!(matches!(
            producer.send(vec![rec]).await,
            super::client::Sent::Acked(o) if o == i
        ));
    }
    let (start, end) = wait_trimmed_alike(&c, &[1, 2, 3], TOPIC, 20, 10).await;
    assert_eq!((start, end), (10, 20), "exactly the old records went");
    let want: Vec<(u64, String)> = (10..20).map(|i| (i, format!("v{i}"))).collect();
    for id in 1..=3 {
        assert_eq!(read_range(&c, id, TOPIC, 10, 20).await, want, "node {id}");
    }
    // A bad setting is refused with INVALID_CONFIG before anything is created.
    let ch = channel(c.addr(leader)).await.expect("connect");
    let status = AdminClient::new(ch)
        .create_topic(pb::CreateTopicRequest {
            name: "bad-config".into(),
            partitions: 1,
            replication_factor: 3,
            config: [("retention.days".to_owned(), "3".to_owned())].into(),
            timeout_ms: 5_000,
        })
        .await
        .expect_err("unknown setting");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert_eq!(
        wire_error(&status).map(|e| e.code()),
        Some(pb::ErrorCode::InvalidConfig)
    );
    assert!(
        status.message().contains("retention.ms"),
        "{}",
        status.message()
    );
}
