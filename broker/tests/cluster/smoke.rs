//! The basic path: create a topic, publish, fetch from every replica.

use super::harness::{Cluster, read_all, record};
use paxlog_proto::v1 as pb;

#[tokio::test]
async fn publish_then_fetch_from_every_replica() {
    let c = Cluster::start(3).await;
    let topic = c.create_topic("orders", 3, 3).await;
    assert_eq!(topic.partitions.len(), 3);
    let leaders = c.leaders("orders").await;
    for (p, leader) in leaders.iter().enumerate() {
        let mut producer = c.producer(*leader).await;
        for i in 0..10 {
            let r = producer
                .publish(pb::PublishRequest {
                    topic: "orders".into(),
                    partition: Some(p as u32),
                    records: vec![record("k", &format!("p{p}-{i}"))],
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|s| panic!("publish: {s:?}\n{}", c.logs()))
                .into_inner();
            assert_eq!(r.base_offset, i as u64, "offsets are dense from 0");
        }
    }
    for p in 0..3u32 {
        let want: Vec<(u64, String)> = (0..10).map(|i| (i as u64, format!("p{p}-{i}"))).collect();
        for id in 1..=3 {
            // Followers learn the decided index with the next message from the leader.
            let deadline = std::time::Instant::now() + super::harness::DEADLINE;
            loop {
                let got = read_all(&c, id, "orders", p).await;
                if got == want {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "node {id} partition {p}: {got:?}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
}

/// Subscribe streams what is decided, in order, from the requested offset on, including
/// records published after the stream opened; a follower streams too; an offset past
/// the end ends the stream with OFFSET_OUT_OF_RANGE.
#[tokio::test]
async fn subscribe_streams_records_as_they_are_decided() {
    use tokio_stream::StreamExt as _;
    let c = Cluster::start(3).await;
    c.create_topic("stream", 1, 3).await;
    let leader = c.leaders("stream").await[0];
    let follower = (1..=3).find(|&id| id != leader).expect("a follower");
    let mut producer = c.producer(leader).await;
    let publish = |values: Vec<String>| pb::PublishRequest {
        topic: "stream".into(),
        partition: Some(0),
        records: values.iter().map(|v| record("k", v)).collect(),
        ..Default::default()
    };
    let first: Vec<String> = (0..5).map(|i| format!("v{i}")).collect();
    producer.publish(publish(first)).await.expect("publish");

    let mut streams = Vec::new();
    for id in [leader, follower] {
        let stream = c
            .consumer(id)
            .await
            .subscribe(pb::SubscribeRequest {
                topic: "stream".into(),
                partition: 0,
                offset: 2,
                max_bytes: 0,
            })
            .await
            .unwrap_or_else(|s| panic!("subscribe on node {id}: {s:?}"))
            .into_inner();
        streams.push((id, stream));
    }
    // Published after the streams opened: they must arrive without a new request.
    let second: Vec<String> = (5..12).map(|i| format!("v{i}")).collect();
    producer.publish(publish(second)).await.expect("publish");

    let want: Vec<(u64, String)> = (2..12).map(|i| (i, format!("v{i}"))).collect();
    for (id, mut stream) in streams {
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + super::harness::DEADLINE;
        while got.len() < want.len() {
            let batch = tokio::time::timeout_at(deadline, stream.next())
                .await
                .unwrap_or_else(|_| panic!("node {id} streamed only {got:?}"))
                .expect("stream open")
                .unwrap_or_else(|s| panic!("node {id}: {s:?}"));
            assert!(batch.error.is_none());
            for r in batch.records {
                let value = r.record.expect("record").value;
                got.push((r.offset, String::from_utf8_lossy(&value).into_owned()));
            }
        }
        assert_eq!(got, want, "node {id}");
    }

    let past_end = c
        .consumer(leader)
        .await
        .subscribe(pb::SubscribeRequest {
            topic: "stream".into(),
            partition: 0,
            offset: 1_000,
            max_bytes: 0,
        })
        .await;
    let status = match past_end {
        Err(status) => status,
        Ok(response) => response
            .into_inner()
            .next()
            .await
            .expect("one message")
            .expect_err("an offset past the end is refused"),
    };
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
}
