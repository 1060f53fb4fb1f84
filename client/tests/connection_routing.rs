//! `Connection::call_leader` against in-process fake brokers (see `fake_cluster`): leader
//! hints, dead and silent brokers, throttling, unknown outcomes and deadlines, seen through
//! `paxlog produce`'s library function.

mod fake_cluster;

use fake_cluster::{FakeCluster, Fault};
use paxlog_client::Error;
use paxlog_client::cli::produce::{self, KeyMode, ProduceOptions};
use paxlog_client::cli::topic::{self, CreateTopic};
use paxlog_client::connection::{CallKind, ConnectOptions, Connection};
use paxlog_proto::v1::{self as pb, producer_client::ProducerClient};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(10);

async fn create(conn: &Connection, name: &str, partitions: u32) {
    let request = CreateTopic {
        name: name.into(),
        partitions,
        replication: 3,
        config: BTreeMap::new(),
    };
    topic::create(conn, request, TIMEOUT)
        .await
        .expect("create topic");
}

fn produce_options(topic: &str, timeout: Duration) -> ProduceOptions {
    ProduceOptions {
        topic: topic.into(),
        partition: None,
        keys: KeyMode::None,
        batch: 10,
        linger: Duration::from_millis(50),
        json: false,
        timeout,
        // The plain path: these brokers are fakes, and these tests check its stops.
        idempotent: false,
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn publishes_follow_hints_past_a_dead_seed_and_unknown_leaders() {
    let cluster = FakeCluster::start(3, 3).await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let mut seeds = vec![dead.to_string()];
    seeds.extend(cluster.addresses.iter().cloned());
    let conn = Connection::new(seeds, ConnectOptions::default()).expect("connection");
    create(&conn, "t", 3).await;
    cluster.state().hide_leaders = true;

    let input: &[u8] = b"one\ntwo\nthree\nfour\n";
    let mut out = Vec::new();
    let summary = produce::run(&conn, &produce_options("t", TIMEOUT), input, &mut out)
        .await
        .expect("produce");
    assert_eq!(summary.records, 4);
    let state = cluster.state();
    let stored: usize = state.topics["t"].iter().map(|p| p.records.len()).sum();
    assert_eq!(stored, 4, "each record once");
    let attempts: u32 = state.publishes.values().sum();
    assert!(
        attempts > 1,
        "with leaders hidden some publishes were redirected: {:?}",
        state.publishes
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn throttled_publishes_are_retried_with_backoff() {
    let cluster = FakeCluster::start(3, 1).await;
    let conn = Connection::new(cluster.addresses.clone(), ConnectOptions::default()).expect("conn");
    create(&conn, "t", 1).await;
    cluster.state().faults = vec![Fault::Throttled, Fault::Throttled];
    let started = Instant::now();
    let mut out = Vec::new();
    let summary = produce::run(&conn, &produce_options("t", TIMEOUT), &b"x\n"[..], &mut out)
        .await
        .expect("produce");
    assert_eq!(summary.records, 1);
    let leader = cluster.state().topics["t"][0].leader;
    assert_eq!(
        cluster.state().publishes.get(&leader),
        Some(&3),
        "two throttled, one accepted"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(25),
        "backed off between attempts"
    );
    assert_eq!(text(&out), "partition 0: offsets 0-0 (1 record)\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_whose_outcome_is_unknown_is_reported_not_retried() {
    let cluster = FakeCluster::start(3, 1).await;
    let conn = Connection::new(cluster.addresses.clone(), ConnectOptions::default()).expect("conn");
    create(&conn, "t", 1).await;
    let mut opts = produce_options("t", TIMEOUT);
    opts.batch = 2;
    let mut out = Vec::new();
    // The first batch is stored; the second meets a leadership change.
    let input = &b"a\nb\nc\nd\n"[..];
    let first = produce::run(&conn, &opts, &b"a\nb\n"[..], &mut out)
        .await
        .expect("first batch");
    assert_eq!(first.records, 2);
    cluster.state().faults = vec![Fault::LostLeadership];
    let err = produce::run(&conn, &opts, input, &mut out)
        .await
        .expect_err("unknown outcome");
    assert!(
        matches!(&err, Error::Incomplete { error, .. } if matches!(**error, Error::OutcomeUnknown { .. }))
            || matches!(err, Error::OutcomeUnknown { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("outcome unknown"), "{err}");
    let leader = cluster.state().topics["t"][0].leader;
    assert_eq!(
        cluster.state().publishes.get(&leader),
        Some(&2),
        "no blind retry"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_leader_calls_give_up_at_the_deadline_naming_the_last_failure() {
    let cluster = FakeCluster::start(3, 1).await;
    let conn = Connection::new(cluster.addresses.clone(), ConnectOptions::default()).expect("conn");
    create(&conn, "t", 1).await;
    cluster.state().no_leader = true;
    let started = Instant::now();
    let mut out = Vec::new();
    let err = produce::run(
        &conn,
        &produce_options("t", Duration::from_millis(600)),
        &b"x\n"[..],
        &mut out,
    )
    .await
    .expect_err("no leader");
    let elapsed = started.elapsed();
    assert!(matches!(err, Error::GaveUp { .. }), "{err:?}");
    assert!(err.to_string().contains("no leader is known yet"), "{err}");
    assert!(
        elapsed < Duration::from_secs(3),
        "gave up at the deadline, took {elapsed:?}"
    );
    assert!(
        cluster.state().publishes.values().sum::<u32>() >= 2,
        "retried before giving up"
    );
}

/// The metadata lookup a retry needs may be what runs out of time: the error still names
/// the call's own last failure, not the lookup's timeout (this failed CI once, by timing).
#[tokio::test(flavor = "multi_thread")]
async fn a_lookup_cut_short_by_the_deadline_still_names_the_calls_last_failure() {
    let cluster = FakeCluster::start(3, 1).await;
    let conn = Connection::new(cluster.addresses.clone(), ConnectOptions::default()).expect("conn");
    create(&conn, "t", 1).await;
    let kind = CallKind::Publish {
        topic: "t".into(),
        partition: 0,
    };
    let publish = |channel| async move {
        let request = pb::PublishRequest {
            topic: "t".into(),
            partition: Some(0),
            records: vec![pb::Record {
                value: b"x".to_vec().into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        ProducerClient::new(channel).publish(request).await
    };
    // The first publish learns the leader (and caches metadata); from then on there is no
    // leader, and every metadata lookup hangs.
    conn.call_leader(kind.clone(), TIMEOUT, publish)
        .await
        .expect("first publish");
    {
        let mut state = cluster.state();
        state.no_leader = true;
        state.silent_metadata = true;
    }
    let err = conn
        .call_leader(kind, Duration::from_millis(600), publish)
        .await
        .expect_err("no leader");
    assert!(matches!(err, Error::GaveUp { .. }), "{err:?}");
    assert!(err.to_string().contains("no leader is known yet"), "{err}");
    assert!(!err.to_string().contains("metadata"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_broker_costs_one_timeout_not_one_per_call() {
    let cluster = FakeCluster::start(3, 1).await;
    // Accepts connections (the kernel does) but never answers, like a paused process.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut seeds = vec![silent.local_addr().expect("addr").to_string()];
    seeds.extend(cluster.addresses.iter().cloned());
    let opts = ConnectOptions {
        read_timeout: Duration::from_millis(300),
        ..ConnectOptions::default()
    };
    let conn = Connection::new(seeds, opts).expect("conn");
    let started = Instant::now();
    topic::list(&conn, TIMEOUT).await.expect("first list");
    let first = started.elapsed();
    assert!(
        first >= Duration::from_millis(300),
        "the silent seed was tried first: {first:?}"
    );
    for _ in 0..5 {
        let started = Instant::now();
        topic::list(&conn, TIMEOUT).await.expect("list");
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(250),
            "the silent broker was skipped: {took:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_partition_does_not_cost_the_records_of_the_others() {
    let cluster = FakeCluster::start(3, 1).await;
    let conn = Connection::new(cluster.addresses.clone(), ConnectOptions::default()).expect("conn");
    create(&conn, "t", 1).await;
    {
        let mut state = cluster.state();
        let p = &mut state.topics.get_mut("t").expect("topic")[0];
        for i in 0..3 {
            p.records.push(paxlog_proto::v1::Record {
                value: format!("r{i}").into_bytes().into(),
                ..Default::default()
            });
        }
    }
    let mut consumer = paxlog_client::Consumer::new(
        std::sync::Arc::new(conn),
        paxlog_client::ConsumerConfig {
            request_timeout: Duration::from_secs(2),
            ..Default::default()
        },
    );
    // Partition 1 does not exist: its fetch fails while partition 0 returns records.
    consumer.assign("t", [0, 1]);
    for p in [0, 1] {
        let to = paxlog_client::Position::Offset(0);
        consumer.seek("t", p, to).await.expect("seek");
    }
    let records = consumer
        .poll(Duration::from_millis(100))
        .await
        .expect("the healthy partition's records, not the other's error");
    let values: Vec<String> = records.iter().map(|r| text(&r.value)).collect();
    assert_eq!(values, ["r0", "r1", "r2"]);
    assert_eq!(consumer.position("t", 0), Some(3));
    // With nothing else to return, the error is reported.
    assert!(consumer.poll(Duration::from_millis(100)).await.is_err());
}
