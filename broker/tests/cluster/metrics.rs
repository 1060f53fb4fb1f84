//! `/metrics` of real brokers: the replica driver's and the services' series say what the
//! cluster did (who leads, how far each replica is, what was published, fetched and
//! fsynced), and a deleted topic's series go away. The text is parsed (see [`text`]), not
//! matched line by line, so label order and formatting do not matter.

use super::client::{Producer, Sent, wire_error};
use super::harness::{Cluster, DEADLINE, POLL, record};
use paxlog_proto::v1 as pb;
use std::net::SocketAddr;
use std::time::Instant;
use text::Scrape;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The parsed metrics of the node at `addr`.
pub(super) async fn scrape(addr: SocketAddr) -> Scrape {
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
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP head and body");
    assert_eq!(head.split_whitespace().nth(1), Some("200"), "{head}");
    Scrape::parse(body)
}

/// Polls node `id`'s metrics until `check` holds for them (panics after [`DEADLINE`]).
pub(super) async fn wait_metrics(
    c: &Cluster,
    id: u64,
    what: &str,
    check: impl Fn(&Scrape) -> bool,
) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if check(&scrape(c.node(id).metrics).await) {
            return;
        }
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(POLL).await;
    }
}

async fn scrape_all(c: &Cluster) -> Vec<(u64, Scrape)> {
    let mut all = Vec::new();
    for id in 1..=3 {
        all.push((id, scrape(c.node(id).metrics).await));
    }
    all
}

const TOPIC: &str = "m";
const PARTITION: [(&str, &str); 2] = [("topic", TOPIC), ("partition", "0")];
const METADATA: [(&str, &str); 2] = [("topic", "__metadata"), ("partition", "0")];

/// Whether the nodes' gauges of partition `m`/0 have settled after `records` were
/// published: one leader, every replica at the high watermark `records` and the leader's
/// decided index, the leader's followers both reported caught up, nothing in flight, and
/// one metadata leader. Returns the leader.
fn settled(nodes: &[(u64, Scrape)], records: f64) -> Option<u64> {
    let leaders_of = |group: &[(&str, &str)]| -> Vec<u64> {
        let leading = nodes
            .iter()
            .filter(|(_, s)| s.value("paxlog_partition_leader", group) == Some(1.0));
        leading.map(|(id, _)| *id).collect()
    };
    let [leader] = leaders_of(&PARTITION)[..] else {
        return None;
    };
    let s = &nodes[(leader - 1) as usize].1;
    let decided = s.value("paxlog_partition_decided_index", &PARTITION)?;
    let replicas_caught_up = nodes.iter().all(|(_, s)| {
        s.value("paxlog_partition_high_watermark", &PARTITION) == Some(records)
            && s.value("paxlog_partition_decided_index", &PARTITION) == Some(decided)
    });
    let lags = s.all("paxlog_partition_follower_lag_slots", &PARTITION);
    let followers_caught_up = lags.len() == 2 && lags.iter().all(|l| l.value == 0.0);
    let idle = s.value("paxlog_partition_proposals_in_flight", &PARTITION) == Some(0.0);
    let one_metadata_leader = leaders_of(&METADATA).len() == 1;
    (replicas_caught_up && followers_caught_up && idle && one_metadata_leader).then_some(leader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_leaders_offsets_publishes_fetches_and_topic_deletion() {
    let c = Cluster::start(3).await;
    c.create_topic(TOPIC, 1, 3).await;
    let first = c.leaders(TOPIC).await[0];
    let mut producer = Producer::new(c.addrs(), TOPIC, 0, first);
    let (batches, per_batch) = (4, 5);
    let mut published_bytes = 0;
    for i in 0..batches {
        let records: Vec<_> = (0..per_batch)
            .map(|j| record("k", &format!("{i}-{j}")))
            .collect();
        published_bytes += records
            .iter()
            .map(|r| r.key.len() + r.value.len())
            .sum::<usize>();
        match producer.send(records).await {
            Sent::Acked(base) => assert_eq!(base, i * per_batch, "offsets are contiguous"),
            Sent::Unknown(why) => panic!("publish {i}: {why}\n{}", c.logs()),
        }
    }
    let records = (batches * per_batch) as f64;
    let r = producer.redirects;
    let publish_requests = batches + r.hinted + r.blind + r.busy;

    // Gauges follow the driver's rounds: wait until they have settled.
    let deadline = Instant::now() + DEADLINE;
    let (leader, nodes) = loop {
        let nodes = scrape_all(&c).await;
        if let Some(leader) = settled(&nodes, records) {
            break (leader, nodes);
        }
        assert!(
            Instant::now() < deadline,
            "partition gauges never settled at {records} records:\n{}",
            nodes[0].1.text
        );
        tokio::time::sleep(POLL).await;
    };
    let s = &nodes[(leader - 1) as usize].1;
    let followers: Vec<String> = (1..=3)
        .filter(|&id| id != leader)
        .map(|id| id.to_string())
        .collect();
    let mut lag_of: Vec<String> = s
        .all("paxlog_partition_follower_lag_slots", &PARTITION)
        .iter()
        .map(|l| l.label("follower").to_owned())
        .collect();
    lag_of.sort();
    assert_eq!(
        lag_of, followers,
        "the leader reports the lag of each follower"
    );
    assert!(
        s.value("paxlog_partition_leader_changes_total", &PARTITION) >= Some(1.0),
        "the leader saw itself become leader"
    );
    for (id, s) in &nodes {
        assert!(
            s.value("paxlog_commit_fsync_seconds_count", &[]) > Some(0.0),
            "node {id}"
        );
        assert!(
            s.value("paxlog_commit_groups_count", &[]) > Some(0.0),
            "node {id}"
        );
        assert!(s.value("paxlog_partition_ballot_round", &PARTITION) >= Some(1.0));
        if *id != leader {
            let lags = s.all("paxlog_partition_follower_lag_slots", &PARTITION);
            assert!(lags.is_empty(), "only the leader reports lags: node {id}");
        }
    }

    // A follower serves a fetch, refuses a fetch of an unknown topic and an empty publish.
    let follower = (1..=3).find(|&id| id != leader).expect("a follower");
    let mut consumer = c.consumer(follower).await;
    let fetch = |topic: &str| pb::FetchRequest {
        topic: topic.into(),
        partition: 0,
        offset: 0,
        ..Default::default()
    };
    let fetched = consumer.fetch(fetch(TOPIC)).await.expect("fetch");
    assert_eq!(fetched.into_inner().records.len() as f64, records);
    let unknown = consumer
        .fetch(fetch("nope"))
        .await
        .expect_err("unknown topic");
    let code = wire_error(&unknown).map(|e| e.code());
    assert_eq!(code, Some(pb::ErrorCode::UnknownTopic));
    let empty = pb::PublishRequest {
        topic: TOPIC.into(),
        partition: Some(0),
        ..Default::default()
    };
    let refused = c.producer(follower).await.publish(empty).await;
    let code = wire_error(&refused.expect_err("empty publish")).map(|e| e.code());
    assert_eq!(code, Some(pb::ErrorCode::InvalidRequest));

    // Counters are counted before the answer leaves: no waiting.
    let nodes = scrape_all(&c).await;
    let s = &nodes[(follower - 1) as usize].1;
    let outcome = |o: &'static str| [("outcome", o)];
    assert_eq!(
        s.value("paxlog_fetch_requests_total", &outcome("ok")),
        Some(1.0)
    );
    let unknown_topic = outcome("unknown_topic");
    assert_eq!(
        s.value("paxlog_fetch_requests_total", &unknown_topic),
        Some(1.0)
    );
    assert_eq!(s.value("paxlog_fetch_records_total", &[]), Some(records));
    assert!(s.value("paxlog_fetch_bytes_total", &[]) > Some(0.0));
    let invalid = outcome("invalid_request");
    assert_eq!(
        s.value("paxlog_publish_requests_total", &invalid),
        Some(1.0)
    );
    let total = |name: &str, labels: &[(&str, &str)]| -> f64 {
        let of_node = nodes.iter().map(|(_, s)| s.all(name, labels));
        of_node.flatten().map(|sample| sample.value).sum()
    };
    let ok = outcome("ok");
    assert_eq!(total("paxlog_publish_requests_total", &ok), batches as f64);
    assert_eq!(
        total("paxlog_publish_requests_total", &[]),
        (publish_requests + 1) as f64,
        "every publish request is counted once, by outcome (redirects: {r:?})"
    );
    assert_eq!(total("paxlog_publish_records_total", &[]), records);
    assert_eq!(
        total("paxlog_publish_bytes_total", &[]),
        published_bytes as f64
    );
    let latency_count = total("paxlog_publish_latency_seconds_count", &[]);
    assert_eq!(latency_count, batches as f64);

    // Deletion goes to the metadata group's leader: try each broker.
    let mut deleted = false;
    for id in 1..=3 {
        let request = pb::DeleteTopicRequest {
            name: TOPIC.into(),
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
        loop {
            let s = scrape(c.node(id).metrics).await;
            if s.samples
                .iter()
                .all(|x| x.labels.get("topic").map(String::as_str) != Some(TOPIC))
            {
                let metadata = s.value("paxlog_partition_decided_index", &METADATA);
                assert!(metadata > Some(0.0), "node {id} keeps the metadata series");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {id} still exposes the deleted topic"
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

/// A small parser of the Prometheus / OpenMetrics text format: enough for assertions on
/// samples by name and labels (no `prometheus-parse` dependency for ~60 lines).
pub(super) mod text {
    use std::collections::BTreeMap;

    /// One sample line.
    #[derive(Debug, PartialEq)]
    pub struct Sample {
        pub name: String,
        pub labels: BTreeMap<String, String>,
        pub value: f64,
    }

    impl Sample {
        /// The value of label `key` ("" when absent).
        pub fn label(&self, key: &str) -> &str {
            self.labels.get(key).map_or("", String::as_str)
        }

        fn has(&self, labels: &[(&str, &str)]) -> bool {
            labels.iter().all(|(k, v)| self.label(k) == *v)
        }
    }

    /// A scraped exposition.
    #[derive(Debug)]
    pub struct Scrape {
        pub text: String,
        pub samples: Vec<Sample>,
    }

    impl Scrape {
        /// Parses `text`; panics on a line that is not a comment, blank or a sample.
        pub fn parse(text: &str) -> Scrape {
            let samples = text
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
                .map(|l| sample(l).unwrap_or_else(|| panic!("not a sample: {l:?}")))
                .collect();
            Scrape {
                text: text.to_owned(),
                samples,
            }
        }

        /// Every sample named `name` that carries at least `labels`.
        pub fn all(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
            let matching = self
                .samples
                .iter()
                .filter(|s| s.name == name && s.has(labels));
            matching.collect()
        }

        /// The value of the one sample named `name` that carries `labels`; panics if
        /// several match (the caller named too few labels).
        pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
            match self.all(name, labels)[..] {
                [] => None,
                [one] => Some(one.value),
                ref many => panic!("{} samples match {name} {labels:?}: {many:?}", many.len()),
            }
        }
    }

    /// `name{k="v",...} value [timestamp]`, label values with `\\`, `\"` and `\n` escapes.
    fn sample(line: &str) -> Option<Sample> {
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        let (name, mut rest) = line.split_at(end);
        let mut labels = BTreeMap::new();
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices();
            loop {
                let (start, c) = chars.find(|(_, c)| !matches!(c, ',' | ' '))?;
                if c == '}' {
                    rest = &body[start + 1..];
                    break;
                }
                let eq = start + body[start..].find('=')?;
                let key = body[start..eq].to_owned();
                while chars.next()?.0 < eq {}
                if chars.next()?.1 != '"' {
                    return None;
                }
                let mut value = String::new();
                loop {
                    match chars.next()?.1 {
                        '"' => break,
                        '\\' => value.push(match chars.next()?.1 {
                            'n' => '\n',
                            other => other,
                        }),
                        other => value.push(other),
                    }
                }
                labels.insert(key, value);
            }
        }
        let value = rest.split_whitespace().next()?;
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().ok()?,
        };
        Some(Sample {
            name: name.to_owned(),
            labels,
            value,
        })
    }

    #[test]
    fn parses_samples_with_labels_escapes_and_histogram_buckets() {
        let text = "# HELP paxlog_up Up.\n# TYPE paxlog_up gauge\npaxlog_up{node=\"1\"} 1\n\
                    h_bucket{le=\"+Inf\",node=\"1\"} 3\nh_sum 0.25\n\
                    odd{a=\"x\\\"y\\\\z\\n\", b=\"}{=,\"} -2 1700000000\n# EOF\n";
        let s = Scrape::parse(text);
        let labels = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>()
        };
        assert_eq!(
            s.samples,
            vec![
                Sample {
                    name: "paxlog_up".into(),
                    labels: labels(&[("node", "1")]),
                    value: 1.0
                },
                Sample {
                    name: "h_bucket".into(),
                    labels: labels(&[("le", "+Inf"), ("node", "1")]),
                    value: 3.0
                },
                Sample {
                    name: "h_sum".into(),
                    labels: labels(&[]),
                    value: 0.25
                },
                Sample {
                    name: "odd".into(),
                    labels: labels(&[("a", "x\"y\\z\n"), ("b", "}{=,")]),
                    value: -2.0
                },
            ]
        );
        assert_eq!(s.value("paxlog_up", &[("node", "1")]), Some(1.0));
        assert_eq!(s.value("paxlog_up", &[("node", "2")]), None);
        assert!(sample("broken{a=\"1\" 2").is_none());
    }
}
