//! The broker binary's lifecycle over real gRPC and HTTP on loopback: start, serve health,
//! reflection and metrics, stop on SIGTERM, restart on its data, refuse foreign data.

mod common;

use common::{BrokerProcess, get_metrics, health, run_to_exit};
use tonic_health::pb::health_check_response::ServingStatus;

#[tokio::test]
async fn serves_health_and_metrics_stops_on_sigterm_and_restarts_on_its_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("node-1");

    let mut broker = BrokerProcess::start(1, &data, dir.path());
    broker.wait_serving().await;
    assert_eq!(
        health(broker.grpc, "paxlog.v1.Producer").await,
        Some(ServingStatus::Serving)
    );
    assert_eq!(
        health(broker.grpc, "paxlog.v1.Peer").await,
        Some(ServingStatus::Serving)
    );

    let metrics = get_metrics(broker.metrics);
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(metrics.contains("paxlog_up{node=\"1\"} 1"), "{metrics}");
    assert!(metrics.contains("paxlog_build_info{"), "{metrics}");

    let status = broker.terminate().await;
    assert!(status.success(), "exit {status}:\n{}", broker.log());
    assert!(broker.log().contains("broker stopped"), "{}", broker.log());

    let mut again = BrokerProcess::start(1, &data, dir.path());
    again.wait_serving().await;
    let status = again.terminate().await;
    assert!(status.success(), "exit {status}:\n{}", again.log());
}

#[tokio::test]
async fn logs_one_json_object_per_line_with_span_fields_when_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("node-4");
    let mut broker = BrokerProcess::start_with(4, &data, dir.path(), &["--log-format=json"]);
    broker.wait_serving().await;
    let status = broker.terminate().await;
    assert!(status.success(), "exit {status}:\n{}", broker.log());

    let log = broker.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
        })
        .collect();
    let serving = lines
        .iter()
        .find(|l| l["message"] == "broker serving")
        .unwrap_or_else(|| panic!("no \"broker serving\" event:\n{log}"));
    assert_eq!(serving["level"], "INFO", "{serving}");
    assert_eq!(serving["listen"], broker.grpc.to_string(), "{serving}");
    assert_eq!(serving["span"]["name"], "broker", "{serving}");
    assert_eq!(serving["span"]["node"], 4, "{serving}");
    assert_eq!(serving["spans"][0]["node"], 4, "{serving}");
    assert!(
        lines.iter().any(|l| l["message"] == "broker stopped"),
        "{log}"
    );
}

#[tokio::test]
async fn refuses_an_unknown_log_format_listing_the_choices() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (status, log) = run_to_exit(
        &["--id=1".to_owned(), "--log-format=xml".to_owned()],
        dir.path(),
    )
    .await;
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(
        log.contains("'xml'") && log.contains("text") && log.contains("json"),
        "{log}"
    );
}

#[tokio::test]
async fn refuses_a_data_dir_that_belongs_to_another_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("node-1");
    let mut first = BrokerProcess::start(1, &data, dir.path());
    first.wait_serving().await;
    assert!(first.terminate().await.success(), "{}", first.log());

    let args = [
        "--id=2".to_owned(),
        format!("--listen={}", common::free_addr()),
        format!("--metrics={}", common::free_addr()),
        format!("--data-dir={}", data.display()),
    ];
    let (status, log) = run_to_exit(&args, dir.path()).await;
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("belongs to node 1, not node 2"), "{log}");
    assert!(
        log.contains("--id 1"),
        "the message says how to fix it: {log}"
    );
}

#[tokio::test]
async fn rejects_invalid_configuration_with_a_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = format!("--data-dir={}", dir.path().join("data").display());
    let cases: [(&[&str], &str); 4] = [
        (&["--id=0"], "node id is missing or 0"),
        (&[], "node id is missing or 0"),
        (
            &["--id=1", "--peers=1=127.0.0.1:7001,1=127.0.0.1:7002"],
            "node 1 is listed twice",
        ),
        (
            &["--id=3", "--peers=1=127.0.0.1:7001,2=127.0.0.1:7002"],
            "but not this node (3)",
        ),
    ];
    for (flags, message) in cases {
        let mut args: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
        args.push(data.clone());
        let (status, log) = run_to_exit(&args, dir.path()).await;
        assert_eq!(status.code(), Some(2), "{args:?}: {log}");
        assert!(
            log.contains(message),
            "{args:?}: expected {message:?} in:\n{log}"
        );
    }
    assert!(
        !dir.path().join("data").exists(),
        "no data dir is created for a rejected config"
    );
}
