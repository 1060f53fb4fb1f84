//! The `paxlog` topic/produce/consume/status commands against in-process fake brokers
//! (see `fake_cluster`): real gRPC on loopback with the real brokers' NOT_LEADER rules.
//! `connection_routing.rs` covers retries and faults; `cli_end_to_end.rs` runs the same
//! commands against real brokers.

mod fake_cluster;

use fake_cluster::FakeCluster;
use paxlog_client::cli::consume::{self, ConsumeOptions, StartFrom};
use paxlog_client::cli::produce::{self, KeyMode, ProduceOptions};
use paxlog_client::cli::topic::{self, CreateTopic};
use paxlog_client::connection::{ConnectOptions, Connection};
use paxlog_client::partitioner::partition_for_key;
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the `paxlog` binary with `stdin` as its input.
async fn paxlog(args: &[&str], stdin: &str) -> Output {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_paxlog"))
        .args(args)
        .env_remove("PAXLOG_BROKERS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn paxlog");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.as_bytes())
        .await
        .expect("write stdin");
    drop(input);
    tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("paxlog finished within 60 s")
        .expect("paxlog output")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn describe(output: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    )
}

fn json_lines(output: &Output) -> Vec<serde_json::Value> {
    text(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

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

#[tokio::test(flavor = "multi_thread")]
async fn commands_round_trip_through_the_binary() {
    let cluster = FakeCluster::start(3, 2).await;
    // Node 1 first: it is not the metadata leader, so create must follow its hint.
    let brokers = cluster.brokers_from(1);
    let b = ["--brokers", brokers.as_str()];

    let out = paxlog(
        &[
            &[
                "topic",
                "create",
                "orders",
                "--partitions",
                "3",
                "--replication",
                "3",
            ][..],
            &b,
        ]
        .concat(),
        "",
    )
    .await;
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        text(&out.stdout).starts_with("created topic \"orders\""),
        "{}",
        describe(&out)
    );

    let input: String = (0..100)
        .map(|i| format!("key-{}:value-{i}\n", i % 10))
        .collect();
    let args = [
        &[
            "produce",
            "orders",
            "--key-separator",
            ":",
            "--batch",
            "16",
            "--json",
        ][..],
        &b,
    ]
    .concat();
    let out = paxlog(&args, &input).await;
    assert!(out.status.success(), "{}", describe(&out));
    let written: u64 = json_lines(&out)
        .iter()
        .map(|l| l["records"].as_u64().expect("records"))
        .sum();
    assert_eq!(written, 100, "{}", describe(&out));
    assert!(
        text(&out.stderr).contains("produced 100 records"),
        "{}",
        describe(&out)
    );

    let args = [
        &[
            "consume", "orders", "--from", "earliest", "--max", "100", "--json",
        ][..],
        &b,
    ]
    .concat();
    let out = paxlog(&args, "").await;
    assert!(out.status.success(), "{}", describe(&out));
    let records = json_lines(&out);
    assert_eq!(records.len(), 100, "{}", describe(&out));
    let mut seen = BTreeSet::new();
    let mut offsets: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for r in &records {
        let (partition, key) = (
            r["partition"].as_u64().expect("p"),
            r["key"].as_str().expect("key"),
        );
        assert_eq!(
            partition,
            u64::from(partition_for_key(key.as_bytes(), 3)),
            "{r}"
        );
        assert!(
            seen.insert(r["value"].as_str().expect("value").to_owned()),
            "duplicate {r}"
        );
        offsets
            .entry(partition)
            .or_default()
            .push(r["offset"].as_u64().expect("offset"));
    }
    for (partition, offsets) in offsets {
        let expected: Vec<u64> = (0..offsets.len() as u64).collect();
        assert_eq!(
            offsets, expected,
            "partition {partition} offsets in order, no gaps"
        );
    }

    let out = paxlog(
        &[&["topic", "describe", "orders", "--json"][..], &b].concat(),
        "",
    )
    .await;
    let view: serde_json::Value = serde_json::from_slice(&out.stdout).expect("describe JSON");
    let ends: u64 = (0..3)
        .map(|p| {
            view["partitions"][p]["log_end_offset"]
                .as_u64()
                .expect("end")
        })
        .sum();
    assert_eq!(ends, 100, "{view}");
    assert!(
        (0..3).all(|p| view["partitions"][p]["leader"].is_u64()),
        "{view}"
    );

    let out = paxlog(&["status", "--json", "--brokers", brokers.as_str()], "").await;
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert_eq!(status["metadata_leader"]["id"], 2, "{status}");
    assert_eq!(status["topics"][0]["name"], "orders", "{status}");
    assert_eq!(
        status["topics"][0]["partitions"][2]["leader"], 1,
        "{status}"
    );
    assert_eq!(
        status["topics"][0]["partitions"][0]["decided_index"],
        records.iter().filter(|r| r["partition"] == 0).count()
    );

    let out = paxlog(&[&["topic", "list"][..], &b].concat(), "").await;
    assert!(
        text(&out.stdout).contains("orders  3"),
        "{}",
        describe(&out)
    );
    let out = paxlog(&[&["topic", "delete", "orders"][..], &b].concat(), "").await;
    assert!(out.status.success(), "{}", describe(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_fails_with_the_brokers_message() {
    let cluster = FakeCluster::start(3, 1).await;
    let brokers = cluster.brokers_from(2);
    let b = ["--brokers", brokers.as_str()];
    let cases: [(&[&str], &str); 4] = [
        (
            &["topic", "create", "a/b", "--partitions", "1"],
            "INVALID_NAME",
        ),
        (
            &[
                "topic",
                "create",
                "t",
                "--partitions",
                "1",
                "--replication",
                "4",
            ],
            "INVALID_CONFIG",
        ),
        (&["topic", "describe", "nope"], "unknown topic \"nope\""),
        (&["produce", "nope"], "unknown topic \"nope\""),
    ];
    for (args, expected) in cases {
        let out = paxlog(&[args, &b].concat(), "a line\n").await;
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", describe(&out));
        assert!(
            text(&out.stderr).contains(expected),
            "{args:?}: {}",
            describe(&out)
        );
    }
    let out = paxlog(
        &[&["topic", "create", "t", "--partitions", "0"][..], &b].concat(),
        "",
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "usage error: {}",
        describe(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn consume_stops_at_the_end_unless_following() {
    let cluster = FakeCluster::start(3, 1).await;
    let conn = Arc::new(
        Connection::new(cluster.addresses.clone(), ConnectOptions::default()).expect("conn"),
    );
    create(&conn, "t", 2).await;
    let input: String = (0..30).map(|i| format!("v{i}\n")).collect();
    let mut out = Vec::new();
    produce::run(
        &conn,
        &produce_options("t", TIMEOUT),
        input.as_bytes(),
        &mut out,
    )
    .await
    .expect("produce");

    let mut opts = ConsumeOptions {
        topic: "t".into(),
        partition: None,
        from: StartFrom::Earliest,
        max: None,
        follow: false,
        json: false,
        max_wait: Duration::from_millis(100),
        timeout: TIMEOUT,
    };
    let mut printed = Vec::new();
    assert_eq!(
        consume::run(conn.clone(), &opts, &mut printed)
            .await
            .expect("earliest"),
        30
    );
    assert_eq!(text(&printed).lines().count(), 30);

    opts.from = StartFrom::Latest;
    assert_eq!(
        consume::run(conn.clone(), &opts, &mut Vec::new())
            .await
            .expect("latest"),
        0
    );

    opts.from = StartFrom::Offset(3);
    opts.partition = Some(0);
    let mut printed = Vec::new();
    let n = consume::run(conn.clone(), &opts, &mut printed)
        .await
        .expect("from offset");
    let first = text(&printed).lines().next().map(str::to_owned);
    assert!(
        first.as_deref().is_some_and(|l| l.starts_with("0\t3\t")),
        "{first:?}"
    );
    assert_eq!(n as usize, cluster.state().topics["t"][0].records.len() - 3);

    opts.from = StartFrom::Offset(1000);
    let err = consume::run(conn.clone(), &opts, &mut Vec::new())
        .await
        .expect_err("beyond end");
    assert!(err.to_string().contains("holds offsets 0 to"), "{err}");

    // Following: stops only at --max; here nothing new comes, so a timeout ends the wait.
    opts.from = StartFrom::Earliest;
    opts.follow = true;
    opts.max = Some(1000);
    let mut sink = Vec::new();
    let follow = consume::run(conn.clone(), &opts, &mut sink);
    assert!(
        tokio::time::timeout(Duration::from_millis(800), follow)
            .await
            .is_err(),
        "--follow keeps waiting"
    );
}
