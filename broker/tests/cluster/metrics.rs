//! `/metrics` of real brokers: the replica driver's and the services' series say what the
//! cluster did (who leads, how far each replica is, what was published and fsynced), and a
//! deleted topic's series go away.

use super::harness::{Cluster, DEADLINE, POLL, record};
use paxlog_proto::v1 as pb;
use std::net::SocketAddr;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The metrics text of the node at `addr`.
async fn scrape(addr: SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to /metrics");
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: paxlog\r\n\r\n")
        .await
        .expect("request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("response");
    assert!(response.starts_with("HTTP/1."), "{response}");
    response
}

/// The value of the sample `series` (name and labels exactly as exposed), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?;
        let value = rest.strip_prefix(' ')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_leaders_offsets_publishes_and_topic_deletion() {
    let c = Cluster::start(3).await;
    c.create_topic("m", 1, 3).await;
    let leader = c.leaders("m").await[0];
    let mut producer = c.producer(leader).await;
    for i in 0..4 {
        producer
            .publish(pb::PublishRequest {
                topic: "m".into(),
                partition: Some(0),
                records: (0..5).map(|j| record("k", &format!("{i}-{j}"))).collect(),
                ..Default::default()
            })
            .await
            .expect("publish");
    }
    let labels = "{node=\"ID\",topic=\"m\",partition=\"0\"}";
    let series = |name: &str, id: u64| format!("{name}{}", labels.replace("ID", &id.to_string()));
    let deadline = Instant::now() + DEADLINE;
    loop {
        let mut texts = Vec::new();
        for id in 1..=3 {
            texts.push((id, scrape(c.node(id).metrics).await));
        }
        let leading: Vec<u64> = texts
            .iter()
            .filter(|(id, t)| sample(t, &series("paxlog_partition_leader", *id)) == Some(1.0))
            .map(|(id, _)| *id)
            .collect();
        let all_caught_up = texts.iter().all(|(id, t)| {
            sample(t, &series("paxlog_partition_high_watermark", *id)) == Some(20.0)
        });
        if leading == [leader] && all_caught_up {
            let t = &texts[(leader - 1) as usize].1;
            let ok = format!("paxlog_publish_requests_total{{node=\"{leader}\",outcome=\"ok\"}}");
            assert_eq!(sample(t, &ok), Some(4.0), "{t}");
            let records = format!("paxlog_publish_records_total{{node=\"{leader}\"}}");
            assert_eq!(sample(t, &records), Some(20.0), "{t}");
            let fsyncs = format!("paxlog_commit_fsync_seconds_count{{node=\"{leader}\"}}");
            assert!(sample(t, &fsyncs).is_some_and(|n| n > 0.0), "{t}");
            let decided = sample(t, &series("paxlog_partition_decided_index", leader));
            assert!(decided.is_some_and(|d| d >= 4.0), "4 batches decided: {t}");
            let changes = sample(t, &series("paxlog_partition_leader_changes_total", leader));
            assert!(changes.is_some_and(|n| n >= 1.0), "{t}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "leaders {leading:?} (want [{leader}]), metrics:\n{}",
            texts[0].1
        );
        tokio::time::sleep(POLL).await;
    }

    // Deletion goes to the metadata group's leader: try each broker.
    let mut deleted = false;
    for id in 1..=3 {
        let request = pb::DeleteTopicRequest {
            name: "m".into(),
            timeout_ms: 10_000,
        };
        if c.admin(id).await.delete_topic(request).await.is_ok() {
            deleted = true;
            break;
        }
    }
    assert!(deleted, "no broker deleted the topic\n{}", c.logs());
    for id in 1..=3 {
        let deadline = Instant::now() + DEADLINE;
        while scrape(c.node(id).metrics).await.contains("topic=\"m\"") {
            assert!(
                Instant::now() < deadline,
                "node {id} still exposes the deleted topic"
            );
            tokio::time::sleep(POLL).await;
        }
    }
}
