//! Where a publish without a partition goes: keyed records to the partition of their key's
//! hash, keyless ones to a partition the receiving broker leads (so they are not bounced).

use super::harness::{Cluster, record};
use paxlog_proto::v1 as pb;

fn unrouted(records: Vec<pb::Record>) -> pb::PublishRequest {
    pb::PublishRequest {
        topic: "routes".into(),
        partition: None,
        records,
        ..Default::default()
    }
}

#[tokio::test]
async fn publishes_without_a_partition_are_routed_by_key_or_to_a_led_partition() {
    let c = Cluster::start(3).await;
    c.create_topic("routes", 3, 3).await;

    // Keyless: each broker that leads a partition takes the write itself. Retried when
    // leadership moved during the attempt (then the answer proves nothing).
    for attempt in 0.. {
        assert!(attempt < 10, "the leadership of topic routes kept moving");
        let leaders = c.leaders("routes").await;
        let mut answers = Vec::new();
        for &id in &leaders {
            for i in 0..3 {
                let r = c
                    .producer(id)
                    .await
                    .publish(unrouted(vec![record("", &format!("n{id}-{i}"))]))
                    .await;
                answers.push((id, r));
            }
        }
        if c.leaders("routes").await != leaders {
            continue;
        }
        for (id, r) in answers {
            let r = r
                .unwrap_or_else(|s| panic!("keyless publish to node {id}: {s:?}"))
                .into_inner();
            assert_eq!(
                leaders[r.partition as usize], id,
                "node {id} put a keyless record in a partition it does not lead"
            );
        }
        break;
    }

    // Keyed: one key, one partition, whichever broker its leader is.
    for key in ["alice", "bob", "carol", "dave"] {
        let partition = crc32fast::hash(key.as_bytes()) % 3;
        for attempt in 0.. {
            assert!(attempt < 10, "the leadership of topic routes kept moving");
            let leader = c.leaders("routes").await[partition as usize];
            let r = c
                .producer(leader)
                .await
                .publish(unrouted(vec![record(key, "v")]))
                .await;
            if c.leaders("routes").await[partition as usize] != leader {
                continue;
            }
            let r = r
                .unwrap_or_else(|s| panic!("keyed publish of {key}: {s:?}"))
                .into_inner();
            assert_eq!(r.partition, partition, "key {key}");
            break;
        }
    }
}
