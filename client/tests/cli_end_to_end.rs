//! The `paxlog` CLI against a real three-node cluster started with `paxlog cluster up`:
//! create a topic, produce 100 lines through stdin, consume them back exactly once at the
//! offsets produce reported, see a leader per partition in `topic describe` and `status`,
//! and get clear errors and non-zero exits for bad input.

mod common;

use common::{
    ClusterUp, DEADLINE, POLL, assert_broker_built, free_base_port, local_brokers, run_paxlog, show,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Output;
use std::time::Instant;

const TOPIC: &str = "events";
const LINES: usize = 100;

fn json_lines(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect()
}

fn json_document(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not one JSON document ({e}):\n{}", show(output)))
}

/// Runs `paxlog` with `--brokers` and asserts it succeeded.
fn ok(args: &[&str], brokers: &str, stdin: &str) -> Output {
    let output = run_paxlog(&[args, &["--brokers", brokers]].concat(), stdin);
    assert!(
        output.status.success(),
        "paxlog {args:?} failed:\n{}",
        show(&output)
    );
    output
}

/// Runs `paxlog` with `--brokers`, asserts it failed and that stderr mentions `expected`.
fn fails(args: &[&str], brokers: &str, stdin: &str, expected: &str) {
    let output = run_paxlog(&[args, &["--brokers", brokers]].concat(), stdin);
    assert!(
        !output.status.success(),
        "paxlog {args:?} succeeded:\n{}",
        show(&output)
    );
    let stderr = String::from_utf8_lossy(&output.stderr).to_lowercase();
    assert!(
        stderr.contains(&expected.to_lowercase()),
        "paxlog {args:?}: stderr does not mention {expected:?}:\n{}",
        show(&output)
    );
}

/// Polls `check` (with the output of `paxlog ARGS`) until it holds or the deadline passes.
fn eventually(args: &[&str], brokers: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let output = run_paxlog(&[args, &["--brokers", brokers]].concat(), "");
        if output.status.success() || args[0] == "status" {
            let json = json_document(&output);
            if check(&json) {
                return json;
            }
            assert!(
                Instant::now() < deadline,
                "{what} within {DEADLINE:?}: {json:#}"
            );
        } else {
            assert!(Instant::now() < deadline, "{what}:\n{}", show(&output));
        }
        std::thread::sleep(POLL);
    }
}

fn every_partition_has_a_leader(partitions: &Value) -> bool {
    partitions
        .as_array()
        .is_some_and(|ps| !ps.is_empty() && ps.iter().all(|p| p["leader"].is_u64()))
}

#[test]
fn cli_creates_produces_consumes_and_reports_on_a_real_cluster() {
    assert_broker_built();
    let dir = tempfile::tempdir().expect("tempdir");
    let base = free_base_port();
    let brokers = local_brokers(base).join(",");
    let mut cluster =
        ClusterUp::start(base, &dir.path().join("data"), dir.path().join("up.stderr"));
    cluster.wait_serving(&brokers);
    eventually(&["status", "--json"], &brokers, "a metadata leader", |s| {
        s["metadata_leader"].is_object()
    });

    ok(
        &[
            "topic",
            "create",
            TOPIC,
            "--partitions",
            "3",
            "--replication",
            "3",
        ],
        &brokers,
        "",
    );

    // Produce: one JSON line per publish; lines fill publishes in input order, so line i
    // gets the next offset of its publish.
    let input: String = (0..LINES).map(|i| format!("line-{i:03}\n")).collect();
    let produced = ok(
        &["produce", TOPIC, "--batch", "10", "--json"],
        &brokers,
        &input,
    );
    let mut expected: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut next_line = 0usize;
    for publish in json_lines(&produced) {
        let partition = publish["partition"].as_u64().expect("partition");
        let (base, last) = (
            publish["base_offset"].as_u64().expect("base"),
            publish["last_offset"].as_u64().expect("last"),
        );
        assert_eq!(
            last - base + 1,
            publish["records"].as_u64().expect("records"),
            "{publish}"
        );
        for offset in base..=last {
            expected.insert(format!("line-{next_line:03}"), (partition, offset));
            next_line += 1;
        }
    }
    assert_eq!(
        next_line,
        LINES,
        "every line published once:\n{}",
        show(&produced)
    );
    assert_eq!(expected.len(), LINES);

    // Consume everything back: each line exactly once, where produce said it went.
    let consumed = ok(
        &[
            "consume", TOPIC, "--from", "earliest", "--max", "100", "--json",
        ],
        &brokers,
        "",
    );
    let records = json_lines(&consumed);
    assert_eq!(records.len(), LINES, "{}", show(&consumed));
    let mut seen: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for r in &records {
        let value = r["value"].as_str().expect("UTF-8 value").to_owned();
        let at = (
            r["partition"].as_u64().expect("partition"),
            r["offset"].as_u64().expect("offset"),
        );
        assert!(
            seen.insert(value.clone(), at).is_none(),
            "{value} came back twice"
        );
        assert!(r["key"].is_null(), "no key was produced: {r}");
    }
    assert_eq!(
        seen, expected,
        "consumed lines at the offsets produce reported"
    );

    // Without --max, consume stops at the end of every partition.
    let all = ok(&["consume", TOPIC, "--json"], &brokers, "");
    assert_eq!(json_lines(&all).len(), LINES, "{}", show(&all));

    let describe = eventually(
        &["topic", "describe", TOPIC, "--json"],
        &brokers,
        "leaders and ends",
        |d| {
            let ends: u64 = d["partitions"].as_array().map_or(0, |ps| {
                ps.iter().filter_map(|p| p["log_end_offset"].as_u64()).sum()
            });
            every_partition_has_a_leader(&d["partitions"]) && ends == LINES as u64
        },
    );
    assert_eq!(describe["replication_factor"], 3, "{describe:#}");
    for p in describe["partitions"].as_array().expect("partitions") {
        assert_eq!(p["replicas"].as_array().map(Vec::len), Some(3), "{p}");
        assert!(p["decided_index"].as_u64().is_some_and(|d| d > 0), "{p}");
    }

    // Move partition 0's leadership to another replica; describe then names it.
    let p0 = &describe["partitions"][0];
    let leader = p0["leader"].as_u64().expect("leader");
    let to = (1..=3u64).find(|&n| n != leader).expect("another replica");
    let elected = ok(
        &[
            "partition",
            "elect",
            TOPIC,
            "0",
            "--to",
            &to.to_string(),
            "--json",
        ],
        &brokers,
        "",
    );
    assert_eq!(json_document(&elected)["leader"], to, "{}", show(&elected));
    eventually(
        &["topic", "describe", TOPIC, "--json"],
        &brokers,
        "the elected leader",
        |d| d["partitions"][0]["leader"] == to,
    );
    fails(
        &["partition", "elect", TOPIC, "0", "--to", "9"],
        &brokers,
        "",
        "holds no replica",
    );
    eventually(
        &["status", "--json"],
        &brokers,
        "status shows a leader per partition",
        |s| {
            let topic = s["topics"]
                .as_array()
                .and_then(|ts| ts.iter().find(|t| t["name"] == TOPIC));
            s["metadata_leader"]["id"].is_u64()
                && s["serving"] == 3
                && topic.is_some_and(|t| every_partition_has_a_leader(&t["partitions"]))
        },
    );
    let list = ok(&["topic", "list", "--json"], &brokers, "");
    assert_eq!(json_document(&list)["topics"][0]["name"], TOPIC);

    // A consumer group: two runs of `consume --group` read every line once between them,
    // the second starting where the first committed; describe shows lag = end - committed.
    let first = ok(
        &[
            "consume", TOPIC, "--group", "readers", "--max", "40", "--json",
        ],
        &brokers,
        "",
    );
    let first = json_lines(&first);
    assert_eq!(first.len(), 40);
    let group = json_document(&ok(
        &["group", "describe", "readers", "--json"],
        &brokers,
        "",
    ));
    let rows = group["partitions"].as_array().expect("partitions").clone();
    let committed: u64 = rows
        .iter()
        .filter_map(|r| r["committed_offset"].as_u64())
        .sum();
    assert_eq!(committed, 40, "{group:#}");
    for r in &rows {
        let end = r["end_offset"].as_u64().expect("end");
        let base = r["committed_offset"].as_u64().unwrap_or(0);
        assert_eq!(r["lag"].as_u64(), Some(end - base), "{r}");
    }
    assert_eq!(
        group["members"].as_array().map(Vec::len),
        Some(0),
        "{group:#}"
    );
    let second = json_lines(&ok(
        &[
            "consume",
            TOPIC,
            "--group",
            "readers",
            "--json",
            "--max-wait-ms",
            "500",
        ],
        &brokers,
        "",
    ));
    let mut values: Vec<String> = first
        .iter()
        .chain(&second)
        .map(|r| r["value"].as_str().expect("value").to_owned())
        .collect();
    values.sort();
    let all_lines: Vec<String> = (0..LINES).map(|i| format!("line-{i:03}")).collect();
    assert_eq!(values, all_lines, "each line once across the two runs");
    let groups = json_document(&ok(&["group", "list", "--json"], &brokers, ""));
    assert_eq!(groups["groups"][0]["group"], "readers", "{groups:#}");
    ok(
        &[
            "group",
            "reset-offsets",
            "readers",
            "--topic",
            TOPIC,
            "--to",
            "earliest",
        ],
        &brokers,
        "",
    );
    let group = json_document(&ok(
        &["group", "describe", "readers", "--json"],
        &brokers,
        "",
    ));
    let lag: u64 = group["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .filter_map(|r| r["lag"].as_u64())
        .sum();
    assert_eq!(
        lag, LINES as u64,
        "reset to earliest: everything is lag again: {group:#}"
    );
    fails(
        &["consume", TOPIC, "--group", "readers", "--from", "5"],
        &brokers,
        "",
        "--from OFFSET does not apply",
    );

    // Bad input: clear errors, non-zero exits.
    fails(
        &["topic", "create", "zero", "--partitions", "0"],
        &brokers,
        "",
        "--partitions",
    );
    fails(
        &[
            "topic",
            "create",
            "wide",
            "--partitions",
            "1",
            "--replication",
            "4",
        ],
        &brokers,
        "",
        "replica",
    );
    fails(
        &["topic", "create", "a/b", "--partitions", "1"],
        &brokers,
        "",
        "name",
    );
    fails(
        &["topic", "create", TOPIC, "--partitions", "1"],
        &brokers,
        "",
        "exists",
    );
    fails(
        &["produce", "no-such-topic"],
        &brokers,
        "x\n",
        "unknown topic",
    );
    fails(
        &["consume", TOPIC, "--from", "100000"],
        &brokers,
        "",
        "offset",
    );

    ok(&["topic", "delete", TOPIC], &brokers, "");
    fails(&["topic", "describe", TOPIC], &brokers, "", "unknown topic");
    let status = cluster.signal_and_wait(rustix::process::Signal::TERM);
    assert!(
        status.success(),
        "cluster up exited with {status}\n{}",
        cluster.output()
    );
}
