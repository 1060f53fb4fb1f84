//! `paxlog cluster up` as a real process: three real brokers come up, `paxlog status`
//! sees them SERVING, a signal stops all of them cleanly, and a second run reuses the data.

mod common;

use common::{ClusterUp, assert_broker_built, free_base_port, serving_count};
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
    let brokers = (0..3)
        .map(|i| format!("127.0.0.1:{}", base + i))
        .collect::<Vec<_>>()
        .join(",");

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
