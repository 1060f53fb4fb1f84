//! `paxlog cluster up` as a real process: three real brokers come up, `paxlog status`
//! sees them SERVING, a signal stops all of them cleanly, and a second run reuses the data.

mod common;

use common::{
    ClusterUp, DEADLINE, POLL, assert_broker_built, free_base_port, local_brokers, run_paxlog_with,
    serving_count, show,
};
use rustix::process::{Pid, Signal, test_kill_process};

fn assert_gone(pids: &[i32], output: &str) {
    for &pid in pids {
        let pid = Pid::from_raw(pid).expect("positive pid");
        assert!(
            test_kill_process(pid).is_err(),
            "broker {pid:?} still runs\n{output}"
        );
    }
}

#[test]
fn cluster_up_serves_three_nodes_and_stops_them_on_signals() {
    assert_broker_built();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let base = free_base_port();
    let brokers = local_brokers(base).join(",");

    let mut first = ClusterUp::start(base, &data, dir.path().join("first.stderr"));
    first.wait_serving(&brokers);
    let output = first.output();
    assert!(
        output.contains(&format!("metrics http://127.0.0.1:{}/metrics", base + 2000)),
        "{output}"
    );
    assert!(output.contains("paxlog status"), "next-step hint\n{output}");
    let pids = first.broker_pids();
    let status = first.signal_and_wait(Signal::TERM);
    let output = first.output();
    assert!(
        status.success(),
        "cluster up exited with {status}\n{output}"
    );
    assert!(output.contains("all nodes stopped cleanly"), "{output}");
    assert_gone(&pids, &output);
    assert_eq!(serving_count(&brokers), 0);

    // Same data directories, now stopped with Ctrl-C's signal.
    let mut second = ClusterUp::start(base, &data, dir.path().join("second.stderr"));
    second.wait_serving(&brokers);
    let pids = second.broker_pids();
    let status = second.signal_and_wait(Signal::INT);
    let output = second.output();
    assert!(
        status.success(),
        "second cluster up exited with {status}\n{output}"
    );
    assert_gone(&pids, &output);
    let log = std::fs::read_to_string(data.join("node-1.log")).expect("node log");
    assert_eq!(
        log.matches("starting node 1").count(),
        2,
        "one log across runs:\n{log}"
    );
    assert_eq!(
        log.matches("initialised new data directory").count(),
        1,
        "the second run reused the data:\n{log}"
    );
}

#[test]
fn cluster_up_tls_runs_mutual_tls_with_token_auth_and_says_how_to_connect() {
    assert_broker_built();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let base = free_base_port();
    let brokers = local_brokers(base).join(",");
    let mut up = ClusterUp::start_with(base, &data, dir.path().join("tls.stderr"), &["--tls"]);
    // cluster up writes the CA and token before it starts any broker.
    let started = std::time::Instant::now();
    while !data.join("tls/admin.token").is_file() {
        assert!(
            started.elapsed() < DEADLINE,
            "no admin token\n{}",
            up.output()
        );
        std::thread::sleep(POLL);
    }
    let tls = data.canonicalize().expect("data dir").join("tls");
    let ca = tls.join("ca.pem").display().to_string();
    let token = std::fs::read_to_string(tls.join("admin.token")).expect("admin token");
    let secure = [
        ("PAXLOG_TLS_CA", ca.clone()),
        ("PAXLOG_TOKEN", token.trim().to_owned()),
    ];
    up.wait_serving_with(&brokers, &secure[..1]);
    let output = up.output();
    assert!(
        output.contains(&format!(
            "export PAXLOG_TLS_CA={ca} PAXLOG_TOKEN=$(cat {})",
            tls.join("admin.token").display()
        )),
        "{output}"
    );

    // With the printed CA and token, the CLI works end to end.
    let with = |args: &[&str], stdin: &str, env: &[(&str, String)]| {
        run_paxlog_with(&[args, &["--brokers", &brokers]].concat(), stdin, env)
    };
    for (args, stdin) in [
        (&["topic", "create", "secure", "--partitions", "1"][..], ""),
        (&["produce", "secure"][..], "one\ntwo\n"),
    ] {
        let out = with(args, stdin, &secure);
        assert!(out.status.success(), "{}", show(&out));
    }
    let out = with(
        &["consume", "secure", "--from", "earliest", "--max", "2"],
        "",
        &secure,
    );
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        2,
        "{}",
        show(&out)
    );

    // Without the token: refused, saying how to pass one. Without the CA: no connection.
    let out = with(&["topic", "list"], "", &secure[..1]);
    assert!(!out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("requires a token"),
        "{}",
        show(&out)
    );
    let out = with(&["topic", "list", "--timeout-ms", "3000"], "", &secure[1..]);
    assert!(!out.status.success(), "{}", show(&out));

    let status = up.signal_and_wait(Signal::TERM);
    assert!(status.success(), "{}", up.output());
}
