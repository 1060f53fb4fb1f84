//! Bad requests: each gets its precise gRPC status code, the stable `ErrorCode` in the
//! status details (with the same message), and a message that says what to do.

use super::client::{Producer, Sent, wire_error};
use super::harness::{Cluster, record};
use paxlog_proto::v1 as pb;
use pb::ErrorCode as E;
use tonic::{Code, Response, Status};

/// The limit the brokers of these tests start with.
const MAX_RECORD: usize = 1024;

/// Asserts that `result` failed with `code` and `wire`, and that the message mentions
/// every one of `mentions`; returns the decoded details.
fn expect_error<T: std::fmt::Debug>(
    what: &str,
    result: Result<Response<T>, Status>,
    code: Code,
    wire: E,
    mentions: &[&str],
) -> pb::Error {
    let status = match result {
        Ok(r) => panic!(
            "{what}: expected {code:?}/{wire:?}, got success: {:?}",
            r.into_inner()
        ),
        Err(status) => status,
    };
    assert_eq!(status.code(), code, "{what}: {status:?}");
    let details = wire_error(&status)
        .unwrap_or_else(|| panic!("{what}: no paxlog.v1.Error in the details: {status:?}"));
    assert_eq!(details.code(), wire, "{what}: {details:?}");
    assert_eq!(
        details.message,
        status.message(),
        "{what}: details and status say the same"
    );
    for m in mentions {
        assert!(
            status.message().contains(m),
            "{what}: message {:?} does not mention {m:?}",
            status.message()
        );
    }
    details
}

fn create(name: &str, partitions: u32, replication: u32) -> pb::CreateTopicRequest {
    pb::CreateTopicRequest {
        name: name.into(),
        partitions,
        replication_factor: replication,
        ..Default::default()
    }
}

fn publish(topic: &str, partition: u32, records: Vec<pb::Record>) -> pb::PublishRequest {
    pb::PublishRequest {
        topic: topic.into(),
        partition: Some(partition),
        records,
        ..Default::default()
    }
}

fn fetch(topic: &str, partition: u32, offset: u64) -> pb::FetchRequest {
    pb::FetchRequest {
        topic: topic.into(),
        partition,
        offset,
        ..Default::default()
    }
}

#[tokio::test]
async fn bad_topic_requests_are_refused_with_precise_codes() {
    let c = Cluster::start(3).await;
    c.create_topic("orders", 2, 3).await;
    // Refusals are checked against the metadata before anything is proposed, so every
    // broker answers them, leader of the metadata group or not.
    for id in 1..=3 {
        let mut admin = c.admin(id).await;
        let r = admin
            .describe_topic(pb::DescribeTopicRequest {
                name: "nope".into(),
            })
            .await;
        expect_error(
            "describe unknown",
            r,
            Code::NotFound,
            E::UnknownTopic,
            &["\"nope\"", "create it first"],
        );
        let r = admin
            .delete_topic(pb::DeleteTopicRequest {
                name: "nope".into(),
                timeout_ms: 0,
            })
            .await;
        expect_error(
            "delete unknown",
            r,
            Code::NotFound,
            E::UnknownTopic,
            &["\"nope\""],
        );
        let long = "x".repeat(250);
        for name in ["", "a/b", long.as_str(), ".."] {
            let r = admin.create_topic(create(name, 1, 3)).await;
            expect_error(
                &format!("create {name:?}"),
                r,
                Code::InvalidArgument,
                E::InvalidName,
                &["invalid topic name", "1 to 249 characters"],
            );
        }
        let r = admin.create_topic(create("zero", 0, 3)).await;
        expect_error(
            "zero partitions",
            r,
            Code::InvalidArgument,
            E::InvalidConfig,
            &["1 to 4096 partitions", "got 0"],
        );
        let r = admin.create_topic(create("wide", 1, 4)).await;
        expect_error(
            "replication 4 on 3",
            r,
            Code::InvalidArgument,
            E::InvalidConfig,
            &["replication factor 4", "3 brokers", "use 1 to 3"],
        );
        let r = admin.create_topic(create("orders", 1, 3)).await;
        expect_error(
            "exists",
            r,
            Code::AlreadyExists,
            E::TopicExists,
            &["\"orders\" already exists"],
        );
    }
    // None of them created anything.
    let topics = c
        .admin(1)
        .await
        .list_topics(pb::ListTopicsRequest {})
        .await
        .expect("list")
        .into_inner()
        .topics;
    let names: Vec<&str> = topics.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["orders"]);
}

#[tokio::test]
async fn bad_publishes_and_fetches_are_refused_with_precise_codes() {
    let max = MAX_RECORD.to_string();
    let c = Cluster::start_with(3, &[("PAXLOG_MAX_RECORD_BYTES", &max)]).await;
    c.create_topic("orders", 2, 3).await;
    let leader = c.leaders("orders").await[0];
    let follower = (1..=3).find(|&id| id != leader).expect("a follower");
    // Malformed requests are refused by whichever broker gets them, leader or not.
    let mut producer = c.producer(follower).await;
    let mut consumer = c.consumer(follower).await;

    let r = producer
        .publish(publish("nope", 0, vec![record("k", "v")]))
        .await;
    expect_error(
        "publish unknown topic",
        r,
        Code::NotFound,
        E::UnknownTopic,
        &["\"nope\"", "create it first"],
    );
    let r = consumer.fetch(fetch("nope", 0, 0)).await;
    expect_error(
        "fetch unknown topic",
        r,
        Code::NotFound,
        E::UnknownTopic,
        &["\"nope\""],
    );

    let r = producer.publish(publish("orders", 0, vec![])).await;
    expect_error(
        "empty publish",
        r,
        Code::InvalidArgument,
        E::InvalidRequest,
        &["at least one record"],
    );

    let r = producer
        .publish(publish("orders", 7, vec![record("k", "v")]))
        .await;
    expect_error(
        "publish unknown partition",
        r,
        Code::NotFound,
        E::UnknownPartition,
        &["partitions 0 to 1", "partition 7"],
    );
    let r = consumer.fetch(fetch("orders", 7, 0)).await;
    expect_error(
        "fetch unknown partition",
        r,
        Code::NotFound,
        E::UnknownPartition,
        &["partitions 0 to 1"],
    );

    // The limit counts what the producer controls: key, value, header names and values.
    let at_limit = pb::Record {
        key: vec![b'k'; 24].into(),
        value: vec![b'v'; MAX_RECORD - 24 - 8 - 8].into(),
        headers: vec![pb::Header {
            key: "h".repeat(8),
            value: vec![b'x'; 8].into(),
        }],
        timestamp_ms: 0,
    };
    let mut too_large = at_limit.clone();
    too_large.value = vec![b'v'; MAX_RECORD - 24 - 8 - 8 + 1].into();
    for id in [leader, follower] {
        let r = c
            .producer(id)
            .await
            .publish(publish(
                "orders",
                0,
                vec![record("k", "small"), too_large.clone()],
            ))
            .await;
        expect_error(
            &format!("oversized record to node {id}"),
            r,
            Code::InvalidArgument,
            E::RecordTooLarge,
            &[
                "record 1 is 1025 bytes",
                "limit of 1024 bytes",
                "max_record_bytes",
            ],
        );
    }
    match Producer::new(c.addrs(), "orders", 0, leader)
        .send(vec![at_limit])
        .await
    {
        Sent::Acked(offset) => assert_eq!(offset, 0, "the refused batches wrote nothing"),
        // Leadership moved on its own meanwhile; the record may or may not be there.
        Sent::Unknown(why) => eprintln!("the record at the limit has an unknown outcome: {why}"),
    }

    // Leader and followers answer differently: these run against the leader of the
    // moment, again if leadership moved meanwhile (then the answers prove nothing).
    let (leader, _, (end, beyond, at_end)) = with_stable_leader(&c, async |leader, _| {
        let mut consumer = c.consumer(leader).await;
        let end = consumer
            .fetch(fetch("orders", 0, 0))
            .await
            .expect("fetch")
            .into_inner()
            .high_watermark;
        (
            end,
            consumer.fetch(fetch("orders", 0, end + 1)).await,
            consumer.fetch(fetch("orders", 0, end)).await,
        )
    })
    .await;
    expect_error(
        &format!("fetch beyond the end on the leader (node {leader})"),
        beyond,
        Code::OutOfRange,
        E::OffsetOutOfRange,
        &[
            &format!("offset {} is out of range", end + 1),
            &format!("0 to {end}"),
        ],
    );
    let at_end = at_end.expect("fetch at the end").into_inner();
    assert!(
        at_end.records.is_empty() && at_end.high_watermark == end,
        "{at_end:?}"
    );

    let (leader, follower, r) = with_stable_leader(&c, async |_, follower| {
        c.producer(follower)
            .await
            .publish(publish("orders", 0, vec![record("k", "v")]))
            .await
    })
    .await;
    let details = expect_error(
        &format!("publish to a follower (node {follower})"),
        r,
        Code::FailedPrecondition,
        E::NotLeader,
        &[
            "not the leader",
            &format!("node {leader} at {}", c.addr(leader)),
        ],
    );
    let hint = details.leader.expect("a leader hint");
    assert_eq!(
        (hint.node_id, hint.address),
        (leader, c.addr(leader).to_string())
    );
}

/// Runs `attempt(leader, follower)` for partition 0 of "orders" as the cluster reports
/// them, again while leadership moved between before and after it; returns the pair and
/// the attempt's result.
async fn with_stable_leader<T>(c: &Cluster, attempt: impl AsyncFn(u64, u64) -> T) -> (u64, u64, T) {
    for _ in 0..10 {
        let leader = c.leaders("orders").await[0];
        let follower = (1..=3).find(|&id| id != leader).expect("a follower");
        let result = attempt(leader, follower).await;
        if c.leaders("orders").await[0] == leader {
            return (leader, follower, result);
        }
    }
    panic!("the leadership of orders/0 kept moving");
}
