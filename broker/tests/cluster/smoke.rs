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
                assert!(std::time::Instant::now() < deadline, "node {id} partition {p}: {got:?}");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
}
