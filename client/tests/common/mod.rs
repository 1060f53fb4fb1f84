//! Helpers shared by the tests that run `paxlog cluster up` as a real process.

#![allow(dead_code)] // each test file uses a different part

use rustix::process::{Pid, Signal, kill_process};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const DEADLINE: Duration = Duration::from_secs(90);
pub const POLL: Duration = Duration::from_millis(200);

pub fn paxlog_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_paxlog"))
}

/// The broker is another package's binary: cargo builds it into the same directory when
/// the whole workspace is built (`cargo test --workspace`).
pub fn assert_broker_built() {
    let broker = paxlog_bin().with_file_name("paxlog-broker");
    assert!(
        broker.is_file(),
        "{} is missing: run the tests with `cargo test --workspace` so the broker binary is built too",
        broker.display()
    );
}

/// The gRPC addresses of a `cluster up` of three nodes from `base`.
pub fn local_brokers(base: u16) -> Vec<String> {
    (0..3).map(|i| format!("127.0.0.1:{}", base + i)).collect()
}

/// A base port P with P..P+2 and P+2000..P+2002 free right now, below the ephemeral
/// port range: ports the OS hands out for `bind(0)` are also the source ports of outgoing
/// connections, so a broker could find "its" port taken by some client's connection.
/// Each test process starts at its own place (by process id) and never hands out a base
/// twice.
pub fn free_base_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 10_000;
    const LAST: u32 = 30_000; // P + 2002 stays below 32768, Linux's default range start
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let span = (LAST - FIRST) / 3;
    let _ = NEXT.compare_exchange(
        0,
        std::process::id().wrapping_mul(7_919) % span + 1,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..span {
        let base = (FIRST + 3 * (NEXT.fetch_add(1, Ordering::Relaxed) % span)) as u16;
        let ports = (0..3).flat_map(|i| [base + i, base + 2000 + i]);
        let listeners: Vec<_> = ports.map(|p| TcpListener::bind(("127.0.0.1", p))).collect();
        if listeners.iter().all(Result::is_ok) {
            return base;
        }
    }
    panic!("no free port range found between {FIRST} and {LAST}");
}

/// `paxlog cluster up` with its stdout collected line by line.
pub struct ClusterUp {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr_log: PathBuf,
}

impl ClusterUp {
    pub fn start(base_port: u16, data: &Path, stderr_log: PathBuf) -> ClusterUp {
        ClusterUp::start_with(base_port, data, stderr_log, &[])
    }

    /// [`ClusterUp::start`] with more `cluster up` flags.
    pub fn start_with(
        base_port: u16,
        data: &Path,
        stderr_log: PathBuf,
        flags: &[&str],
    ) -> ClusterUp {
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
            .args(flags)
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

    pub fn output(&self) -> String {
        let stdout = self.stdout.lock().expect("lock").join("\n");
        let stderr = std::fs::read_to_string(&self.stderr_log).unwrap_or_default();
        format!("stdout:\n{stdout}\nstderr:\n{stderr}")
    }

    /// The broker pids from the "node N ... pid P" lines.
    pub fn broker_pids(&self) -> Vec<i32> {
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
    pub fn wait_serving(&mut self, brokers: &str) {
        self.wait_serving_with(brokers, &[]);
    }

    /// [`ClusterUp::wait_serving`], with `env` for `paxlog status` (e.g. its CA).
    pub fn wait_serving_with(&mut self, brokers: &str, env: &[(&str, String)]) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!(
                    "cluster up exited with {status} before serving\n{}",
                    self.output()
                );
            }
            if serving_count_with(brokers, env) == 3 && self.broker_pids().len() == 3 {
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

    pub fn signal_and_wait(&mut self, signal: Signal) -> ExitStatus {
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

pub fn serving_count(brokers: &str) -> u64 {
    serving_count_with(brokers, &[])
}

/// [`serving_count`] with `env` for `paxlog status`.
pub fn serving_count_with(brokers: &str, env: &[(&str, String)]) -> u64 {
    let output = Command::new(paxlog_bin())
        .args(["status", "--json", "--brokers", brokers])
        .env_remove("PAXLOG_TLS_CA")
        .env_remove("PAXLOG_TOKEN")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run paxlog status");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("status --json printed invalid JSON ({err}): {output:?}"));
    json["serving"].as_u64().expect("serving count")
}

/// Creates `name` (replication 3) through the SDK, which must succeed.
pub async fn create_topic(client: &paxlog_client::Client, name: &str, partitions: u32) {
    let request = paxlog_client::cli::topic::CreateTopic {
        name: name.into(),
        partitions,
        replication: 3,
        config: std::collections::BTreeMap::new(),
    };
    client
        .admin()
        .create_topic(request)
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
}

/// Polls `consumer` until `n` records came (panics at the deadline).
pub async fn read_n(
    consumer: &mut paxlog_client::Consumer,
    n: usize,
) -> Vec<paxlog_client::ConsumedRecord> {
    let deadline = Instant::now() + DEADLINE;
    let mut out = Vec::new();
    while out.len() < n {
        assert!(Instant::now() < deadline, "read only {} of {n}", out.len());
        let polled = consumer.poll(Duration::from_millis(200)).await;
        out.extend(polled.expect("poll"));
    }
    out
}

/// Runs `paxlog ARGS` to completion with `stdin` as its input.
pub fn run_paxlog(args: &[&str], stdin: &str) -> std::process::Output {
    run_paxlog_with(args, stdin, &[])
}

/// [`run_paxlog`] with `env` (e.g. `PAXLOG_TLS_CA` and `PAXLOG_TOKEN`).
pub fn run_paxlog_with(args: &[&str], stdin: &str, env: &[(&str, String)]) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(paxlog_bin())
        .args(args)
        .env_remove("PAXLOG_BROKERS")
        .env_remove("PAXLOG_TLS_CA")
        .env_remove("PAXLOG_TOKEN")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn paxlog");
    let mut input = child.stdin.take().expect("piped stdin");
    let stdin = stdin.to_owned();
    // A separate thread: a large input must not block on a full pipe while paxlog waits
    // for us to read its output.
    let writer = std::thread::spawn(move || input.write_all(stdin.as_bytes()));
    let output = child.wait_with_output().expect("paxlog output");
    writer.join().expect("stdin writer").expect("write stdin");
    output
}

/// Exit status, stdout and stderr, for assertion messages.
pub fn show(output: &std::process::Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
