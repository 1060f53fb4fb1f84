//! `paxlog cluster up` as a real process: three real brokers come up, `paxlog status`
//! sees them SERVING, a signal stops all of them cleanly, and a second run reuses the data.

use rustix::process::{Pid, Signal, kill_process, test_kill_process};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(200);

fn paxlog_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_paxlog"))
}

/// The broker is another package's binary: cargo builds it into the same directory when
/// the whole workspace is built (`cargo test --workspace`).
fn assert_broker_built() {
    let broker = paxlog_bin().with_file_name("paxlog-broker");
    assert!(
        broker.is_file(),
        "{} is missing: run the tests with `cargo test --workspace` so the broker binary is built too",
        broker.display()
    );
}

/// A base port P with P..P+2 and P+2000..P+2002 free right now.
fn free_base_port() -> u16 {
    for _ in 0..100 {
        let seed = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("ephemeral port");
        let base = seed.port();
        if base > 60000 {
            continue;
        }
        let ports = (0..3).flat_map(|i| [base + i, base + 2000 + i]);
        let listeners: Vec<_> = ports.map(|p| TcpListener::bind(("127.0.0.1", p))).collect();
        if listeners.iter().all(Result::is_ok) {
            return base;
        }
    }
    panic!("no free port range found");
}

/// `paxlog cluster up` with its stdout collected line by line.
struct ClusterUp {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr_log: PathBuf,
}

impl ClusterUp {
    fn start(base_port: u16, data: &Path, stderr_log: PathBuf) -> ClusterUp {
        let stderr = std::fs::File::create(&stderr_log).expect("create stderr log");
        let mut child = Command::new(paxlog_bin())
            .args([
                "cluster",
                "up",
                "--base-port",
                &base_port.to_string(),
                "--data",
            ])
            .arg(data)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn paxlog cluster up");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let pipe = child.stdout.take().expect("piped stdout");
        let lines = stdout.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().expect("lock").push(line);
            }
        });
        ClusterUp {
            child,
            stdout,
            stderr_log,
        }
    }

    fn output(&self) -> String {
        let stdout = self.stdout.lock().expect("lock").join("\n");
        let stderr = std::fs::read_to_string(&self.stderr_log).unwrap_or_default();
        format!("stdout:\n{stdout}\nstderr:\n{stderr}")
    }

    /// The broker pids from the "node N ... pid P" lines.
    fn broker_pids(&self) -> Vec<i32> {
        let lines = self.stdout.lock().expect("lock");
        lines
            .iter()
            .filter(|l| l.trim_start().starts_with("node "))
            .filter_map(|l| {
                l.rsplit_once("pid ")
                    .and_then(|(_, pid)| pid.trim().parse().ok())
            })
            .collect()
    }

    /// Polls `paxlog status --json` until all three brokers are SERVING.
    fn wait_serving(&mut self, brokers: &str) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!(
                    "cluster up exited with {status} before serving\n{}",
                    self.output()
                );
            }
            if serving_count(brokers) == 3 && self.broker_pids().len() == 3 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "cluster not SERVING within {DEADLINE:?}\n{}",
                self.output()
            );
            std::thread::sleep(POLL);
        }
    }

    fn signal_and_wait(&mut self, signal: Signal) -> ExitStatus {
        kill_process(Pid::from_child(&self.child), signal).expect("signal cluster up");
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "cluster up did not exit\n{}",
                self.output()
            );
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for ClusterUp {
    fn drop(&mut self) {
        // On a failed assertion: SIGTERM lets paxlog stop its brokers instead of orphaning them.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = kill_process(Pid::from_child(&self.child), Signal::TERM);
            let _ = self.child.wait();
        }
    }
}

fn serving_count(brokers: &str) -> u64 {
    let output = Command::new(paxlog_bin())
        .args(["status", "--json", "--brokers", brokers])
        .output()
        .expect("run paxlog status");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("status --json printed invalid JSON ({err}): {output:?}"));
    json["serving"].as_u64().expect("serving count")
}

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
