//! The node-wide budget of publish bytes awaiting consensus (`max_inflight_bytes`): past
//! it publishes are refused with THROTTLED at once, what was taken completes, and the
//! budget is whole again afterwards.

use super::client::wire_error;
use super::harness::{Cluster, DEADLINE, POLL, read_all};
use super::metrics::wait_metrics;
use paxlog_proto::v1 as pb;
use std::time::Instant;
use tonic::Code;

const RECORD: usize = 60_000;
const BUDGET: usize = 262_144;

fn publish(value_byte: u8, count: usize) -> pb::PublishRequest {
    publish_to("t", 0, value_byte, count)
}

fn publish_to(topic: &str, partition: u32, value_byte: u8, count: usize) -> pb::PublishRequest {
    pb::PublishRequest {
        topic: topic.into(),
        partition: Some(partition),
        records: (0..count)
            .map(|_| pb::Record {
                value: vec![value_byte; RECORD].into(),
                ..Default::default()
            })
            .collect(),
        timeout_ms: 60_000,
        ..Default::default()
    }
}

/// Waits until node `id`'s `paxlog_publish_inflight_bytes` satisfies `check`.
async fn wait_inflight(c: &Cluster, id: u64, what: &str, check: impl Fn(f64) -> bool) {
    wait_metrics(c, id, what, |s| {
        s.value("paxlog_publish_inflight_bytes", &[])
            .is_some_and(&check)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn publishes_past_the_inflight_budget_are_throttled_and_the_rest_complete() {
    let budget = BUDGET.to_string();
    let mut c = Cluster::start_with(
        3,
        &[
            ("PAXLOG_MAX_RECORD_BYTES", "65536"),
            ("PAXLOG_MAX_INFLIGHT_BYTES", &budget),
            // One partition may take the whole budget here: this test is about the node's.
            ("PAXLOG_MAX_INFLIGHT_BYTES_PER_PARTITION", &budget),
        ],
    )
    .await;
    c.create_topic("t", 1, 3).await;
    let leader = c.leaders("t").await[0];
    let mut producer = c.producer(leader).await;

    // More than the broker ever holds at once: refused as a request to change.
    let status = producer
        .publish(publish(1, 5))
        .await
        .expect_err("5 x 60 KB is past a 256 KiB budget");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("send smaller batches"),
        "{status:?}"
    );

    // With the followers stopped nothing is decided, so four publishes hold their bytes.
    let followers: Vec<u64> = c.running().into_iter().filter(|id| *id != leader).collect();
    for f in &followers {
        c.pause(*f, true);
    }
    let mut held = Vec::new();
    for i in 0..4u8 {
        let mut p = producer.clone();
        held.push(tokio::spawn(
            async move { p.publish(publish(10 + i, 1)).await },
        ));
    }
    wait_inflight(&c, leader, "four publishes held", |v| {
        v >= (4 * RECORD) as f64
    })
    .await;
    let status = producer
        .publish(publish(20, 1))
        .await
        .expect_err("the budget is used up");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(
        wire_error(&status).map(|e| e.code()),
        Some(pb::ErrorCode::Throttled),
        "{status:?}"
    );
    assert!(
        status.message().contains("max_inflight_bytes"),
        "{status:?}"
    );

    for f in &followers {
        c.pause(*f, false);
    }
    let mut acknowledged = Vec::new();
    for h in held {
        if let Ok(r) = h.await.expect("publish task") {
            acknowledged.push(r.into_inner().base_offset);
        }
    }
    wait_inflight(&c, leader, "the budget is whole again", |v| v == 0.0).await;
    let deadline = Instant::now() + DEADLINE;
    let last = loop {
        // A follower that timed out while stopped may have started an election: retry
        // until a leader answers.
        let leader = c.leaders("t").await[0];
        let mut p = c.producer(leader).await;
        match p.publish(publish(30, 1)).await {
            Ok(r) => break r.into_inner().base_offset,
            Err(s) if s.code() == Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(POLL).await;
            }
            Err(s) => panic!("publish after the flood: {s:?}"),
        }
    };
    let leader = c.leaders("t").await[0];
    let stored: Vec<u64> = read_all(&c, leader, "t", 0)
        .await
        .into_iter()
        .map(|(offset, _)| offset)
        .collect();
    for offset in acknowledged.iter().chain([&last]) {
        assert!(
            stored.contains(offset),
            "acknowledged offset {offset} lost: {stored:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_partition_cannot_take_the_budget_of_the_others() {
    // Three 60 KB publishes fit a partition's 192 KiB; the node holds 1 MiB.
    let mut c = Cluster::start_with(
        3,
        &[
            ("PAXLOG_MAX_RECORD_BYTES", "65536"),
            ("PAXLOG_MAX_INFLIGHT_BYTES", "1048576"),
            ("PAXLOG_MAX_INFLIGHT_BYTES_PER_PARTITION", "196608"),
        ],
    )
    .await;
    c.create_topic("pp", 2, 3).await;
    // Both partitions led by one node (leaders spread by default).
    let leader = c.leaders("pp").await[0];
    let elect = pb::ElectLeaderRequest {
        topic: "pp".into(),
        partition: 1,
        node_id: leader,
        timeout_ms: 10_000,
    };
    let current = c.leaders("pp").await[1];
    c.admin(current)
        .await
        .elect_leader(elect)
        .await
        .expect("elect");
    assert_eq!(c.leaders("pp").await, vec![leader, leader]);
    let producer = c.producer(leader).await;

    let followers: Vec<u64> = c.running().into_iter().filter(|id| *id != leader).collect();
    for f in &followers {
        c.pause(*f, true);
    }
    let mut held = Vec::new();
    for i in 0..3u8 {
        let mut p = producer.clone();
        held.push(tokio::spawn(async move {
            p.publish(publish_to("pp", 0, i, 1)).await
        }));
    }
    wait_inflight(&c, leader, "three publishes held", |v| {
        v >= (3 * RECORD) as f64
    })
    .await;
    let status = producer
        .clone()
        .publish(publish_to("pp", 0, 9, 1))
        .await
        .expect_err("partition 0's share is used up");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("this partition")
            && status
                .message()
                .contains("max_inflight_bytes_per_partition"),
        "{status:?}"
    );
    // Partition 1 still takes a publish.
    let mut p = producer.clone();
    held.push(tokio::spawn(async move {
        p.publish(publish_to("pp", 1, 7, 1)).await
    }));
    wait_inflight(&c, leader, "partition 1's publish held too", |v| {
        v >= (4 * RECORD) as f64
    })
    .await;

    for f in &followers {
        c.pause(*f, false);
    }
    for h in held {
        // Each was taken; its outcome may be unknown if leadership moved meanwhile.
        let _ = h.await.expect("publish task");
    }
    wait_inflight(&c, leader, "the budgets are whole again", |v| v == 0.0).await;
}
