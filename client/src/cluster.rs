//! `paxlog cluster up`: a local cluster of `paxlog-broker` processes on 127.0.0.1.
//!
//! ```text
//!   LocalCluster::start ──spawn──▶ node 1..N (own process group, log in <data>/node-N.log)
//!          │
//!   wait_ready ── health SERVING on every node (deadline; fails fast if a node exits)
//!          │
//!   run_until(signal) ── a node exits ──▶ stop the others, Error::NodeExited
//!          │ signal
//!   stop ── SIGTERM each, wait (deadline), SIGKILL stragglers
//! ```
//!
//! Nodes run in their own process groups so that Ctrl-C in the terminal reaches only
//! `paxlog`, which then stops them in order and reports how each one ended.

use crate::METRICS_PORT_OFFSET;
use crate::error::Error;
use crate::health::{self, Health};
use crate::security::{LocalTls, Security};
use rustix::process::{Pid, Signal, kill_process};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// Name of the broker executable, looked up next to `paxlog` by default.
pub const BROKER_BIN: &str = "paxlog-broker";
/// How long `cluster up` waits for every node to report SERVING.
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(60);
/// How long stopping waits for nodes to exit after SIGTERM before it kills them. Longer
/// than the broker's own shutdown grace, so a healthy node always exits by itself.
pub const STOP_DEADLINE: Duration = Duration::from_secs(15);
/// How often node processes and health are polled.
const POLL: Duration = Duration::from_millis(100);
/// Lines of a node's log shown when it fails.
const LOG_TAIL_LINES: usize = 20;

/// Shape of the local cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSpec {
    /// Number of nodes (ids 1..=nodes).
    pub nodes: u16,
    /// gRPC port of node 1; node `n` uses `base_port + n - 1`.
    pub base_port: u16,
    /// Metrics port of node 1; node `n` uses `metrics_base_port + n - 1`.
    pub metrics_base_port: u16,
    /// Parent directory of the nodes' data (`<data>/node-N`) and logs (`<data>/node-N.log`).
    pub data: PathBuf,
    /// The `paxlog-broker` executable.
    pub broker_bin: PathBuf,
    /// Extra environment of every broker process (e.g. the harness's planted bug).
    pub env: Vec<(String, String)>,
    /// How this tool reaches the brokers it started (TLS when they run it; see
    /// [`ClusterSpec::with_local_tls`]).
    pub security: Security,
    /// Node `n`'s IP address at index `n - 1` (the fault-injection harness gives each node
    /// its own network namespace); missing entries mean 127.0.0.1.
    pub hosts: Vec<String>,
    /// Node `n`'s command prefix at index `n - 1` (e.g. `ip netns exec NS`); missing
    /// entries mean none.
    pub launchers: Vec<Vec<String>>,
}

/// One node of a [`ClusterSpec`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSpec {
    /// Node id, from 1.
    pub id: u64,
    /// gRPC address, `host:port` (127.0.0.1 unless [`ClusterSpec::hosts`] says otherwise).
    pub grpc: String,
    /// Metrics address, `host:port`.
    pub metrics: String,
    /// Command prefix the broker is started with (empty: none).
    pub launcher: Vec<String>,
    /// RocksDB directory.
    pub data_dir: PathBuf,
    /// Where the node's stdout and stderr go (appended across runs).
    pub log: PathBuf,
}

impl ClusterSpec {
    /// A spec with the default metrics ports (`base_port + 2000`), checking that every
    /// port exists.
    pub fn new(
        nodes: u16,
        base_port: u16,
        data: PathBuf,
        broker_bin: PathBuf,
    ) -> Result<Self, Error> {
        let metrics_base_port = base_port.checked_add(METRICS_PORT_OFFSET).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "--base-port {base_port} leaves no room for metrics ports (+{METRICS_PORT_OFFSET}); use a lower port"
            ))
        })?;
        Self {
            nodes,
            base_port,
            metrics_base_port,
            data,
            broker_bin,
            env: Vec::new(),
            security: Security::none(),
            hosts: Vec::new(),
            launchers: Vec::new(),
        }
        .validated()
    }

    /// Runs the brokers with TLS (mutual between them) and token auth, with the files of
    /// `tls`; this tool then reaches them with its CA and admin token.
    pub fn with_local_tls(mut self, tls: &LocalTls) -> Result<Self, Error> {
        for (var, path) in [
            ("PAXLOG_TLS_CERT", &tls.cert),
            ("PAXLOG_TLS_KEY", &tls.key),
            ("PAXLOG_TLS_CA", &tls.ca),
            ("PAXLOG_AUTH_FILE", &tls.auth_file),
        ] {
            self.env.push((var.to_owned(), path.display().to_string()));
        }
        self.security = Security::none()
            .with_ca_file(&tls.ca)?
            .with_token(tls.token.clone());
        Ok(self)
    }

    /// Checks node count and port ranges.
    pub fn validated(self) -> Result<Self, Error> {
        if self.nodes == 0 {
            return Err(Error::InvalidArgument(
                "--nodes must be at least 1".to_owned(),
            ));
        }
        let last = self.nodes - 1;
        for (flag, base) in [
            ("--base-port", self.base_port),
            ("--metrics-base-port", self.metrics_base_port),
        ] {
            if base == 0 || base.checked_add(last).is_none() {
                return Err(Error::InvalidArgument(format!(
                    "{flag} {base} with {} nodes needs ports {base}..{base}+{last}, which do not all exist",
                    self.nodes
                )));
            }
        }
        let (grpc, metrics) = (
            self.base_port..=self.base_port + last,
            self.metrics_base_port..=self.metrics_base_port + last,
        );
        if grpc.start() <= metrics.end() && metrics.start() <= grpc.end() {
            return Err(Error::InvalidArgument(format!(
                "gRPC ports {grpc:?} and metrics ports {metrics:?} overlap; pass another --metrics-base-port"
            )));
        }
        Ok(self)
    }

    /// The nodes, by id.
    pub fn node_specs(&self) -> Vec<NodeSpec> {
        (1..=self.nodes)
            .map(|n| NodeSpec {
                id: u64::from(n),
                grpc: format!("{}:{}", self.host(n), self.base_port + n - 1),
                metrics: format!("{}:{}", self.host(n), self.metrics_base_port + n - 1),
                launcher: self
                    .launchers
                    .get(usize::from(n) - 1)
                    .cloned()
                    .unwrap_or_default(),
                data_dir: self.data.join(format!("node-{n}")),
                log: self.data.join(format!("node-{n}.log")),
            })
            .collect()
    }

    fn host(&self, n: u16) -> &str {
        self.hosts
            .get(usize::from(n) - 1)
            .map_or("127.0.0.1", String::as_str)
    }

    /// The `--peers` value every node gets: all nodes, `1=127.0.0.1:7001,2=...`.
    pub fn peers_arg(&self) -> String {
        let peers: Vec<String> = self
            .node_specs()
            .iter()
            .map(|n| format!("{}={}", n.id, n.grpc))
            .collect();
        peers.join(",")
    }
}

/// The broker binary: `explicit` if given, else `paxlog-broker` next to the running
/// executable (where cargo puts both).
pub fn locate_broker_binary(explicit: Option<PathBuf>) -> Result<PathBuf, Error> {
    let path = match explicit {
        Some(path) => path,
        None => {
            let exe = std::env::current_exe().map_err(|source| Error::Io {
                action: "find the running executable",
                path: PathBuf::from("paxlog"),
                source,
            })?;
            exe.with_file_name(BROKER_BIN)
        }
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::BrokerBinaryNotFound { path })
    }
}

/// A running node.
#[derive(Debug)]
pub struct Node {
    /// What it was started with.
    pub spec: NodeSpec,
    child: Child,
    /// Taken out of the cluster's checks (see [`LocalCluster::retire`]).
    retired: bool,
}

impl Node {
    /// How the process ended, if it has.
    fn exited(&mut self) -> Result<Option<ExitStatus>, Error> {
        self.child.try_wait().map_err(|source| Error::Io {
            action: "check node process",
            path: self.spec.data_dir.clone(),
            source,
        })
    }

    /// Process id, while the process has not been reaped.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// The running local cluster.
#[derive(Debug)]
pub struct LocalCluster {
    /// The nodes, by id.
    pub nodes: Vec<Node>,
    /// The broker executable and the peers argument, to restart a node.
    broker_bin: PathBuf,
    peers: String,
    env: Vec<(String, String)>,
    security: Security,
}

impl LocalCluster {
    /// Starts every node of `spec` (creating the data directory) without waiting for them.
    /// If one fails to start, the ones already started are stopped.
    pub async fn start(spec: &ClusterSpec) -> Result<LocalCluster, Error> {
        std::fs::create_dir_all(&spec.data).map_err(|source| Error::Io {
            action: "create data directory",
            path: spec.data.clone(),
            source,
        })?;
        let peers = spec.peers_arg();
        let mut cluster = LocalCluster {
            nodes: Vec::new(),
            broker_bin: spec.broker_bin.clone(),
            peers: peers.clone(),
            env: spec.env.clone(),
            security: spec.security.clone(),
        };
        for node in spec.node_specs() {
            match spawn(&spec.broker_bin, &node, &peers, &spec.env) {
                Ok(child) => cluster.nodes.push(Node {
                    spec: node,
                    child,
                    retired: false,
                }),
                Err(err) => {
                    // Best effort: the spawn error is the one to report.
                    let _ = cluster.stop().await;
                    return Err(err);
                }
            }
        }
        Ok(cluster)
    }

    /// Waits until every node reports SERVING. Fails if a node exits first or the deadline
    /// passes.
    pub async fn wait_ready(&mut self, deadline: Duration) -> Result<(), Error> {
        let start = Instant::now();
        let mut ready: Vec<bool> = self.nodes.iter().map(|n| n.retired).collect();
        loop {
            self.check_alive()?;
            for (node, ready) in self
                .nodes
                .iter()
                .zip(ready.iter_mut())
                .filter(|(_, r)| !**r)
            {
                *ready = health::check_secured(&node.spec.grpc, POLL * 5, &self.security).await
                    == Health::Serving;
            }
            if ready.iter().all(|r| *r) {
                return Ok(());
            }
            if start.elapsed() > deadline {
                let index = ready.iter().position(|r| !r).unwrap_or(0);
                let spec = &self.nodes[index].spec;
                return Err(Error::NotReady {
                    node: spec.id,
                    address: spec.grpc.clone(),
                    waited: deadline,
                    log: spec.log.clone(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Runs until `shutdown` completes (`Ok`) or a node exits (`Err(NodeExited)`).
    pub async fn run_until(&mut self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        tokio::pin!(shutdown);
        let mut poll = tokio::time::interval(POLL);
        loop {
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                _ = poll.tick() => self.check_alive()?,
            }
        }
    }

    /// kill -9 of node `id` (for fault injection): nothing flushed beyond what it synced.
    pub async fn kill(&mut self, id: u64) -> Result<(), Error> {
        let node = self.node_mut(id)?;
        let _ = node.child.start_kill();
        node.child.wait().await.map_err(|source| Error::Io {
            action: "wait for a killed node",
            path: node.spec.data_dir.clone(),
            source,
        })?;
        Ok(())
    }

    /// SIGSTOP (`pause = true`) or SIGCONT of node `id` (for fault injection): a paused
    /// broker holds its connections open and answers nothing, like a stalled machine.
    pub fn pause(&mut self, id: u64, pause: bool) -> Result<(), Error> {
        let node = self.node_mut(id)?;
        let pid = node
            .child
            .id()
            .and_then(|pid| Pid::from_raw(i32::try_from(pid).ok()?))
            .ok_or_else(|| Error::InvalidArgument(format!("node {id} is not running")))?;
        let signal = if pause { Signal::STOP } else { Signal::CONT };
        kill_process(pid, signal).map_err(|e| {
            Error::InvalidArgument(format!("cannot signal node {id} ({signal:?}): {e}"))
        })
    }

    /// Starts node `id` again on its data (after [`LocalCluster::kill`]).
    pub fn restart(&mut self, id: u64) -> Result<(), Error> {
        let (binary, peers, env) = (
            self.broker_bin.clone(),
            self.peers.clone(),
            self.env.clone(),
        );
        let node = self.node_mut(id)?;
        node.child = spawn(&binary, &node.spec, &peers, &env)?;
        Ok(())
    }

    fn node_mut(&mut self, id: u64) -> Result<&mut Node, Error> {
        self.nodes
            .iter_mut()
            .find(|n| n.spec.id == id)
            .ok_or_else(|| Error::InvalidArgument(format!("the cluster has no node {id}")))
    }

    /// Takes node `id` out of [`LocalCluster::wait_ready`]'s and the exit checks' sight,
    /// running or not (for fault injection: a node whose data was damaged on purpose may
    /// refuse to start, or serve without its damaged replicas). [`LocalCluster::stop`]
    /// still stops it, and does not count its exit against the stop.
    pub fn retire(&mut self, id: u64) -> Result<(), Error> {
        self.node_mut(id)?.retired = true;
        Ok(())
    }

    /// How node `id` ended, if its process has exited.
    pub fn exit_status(&mut self, id: u64) -> Result<Option<ExitStatus>, Error> {
        self.node_mut(id)?.exited()
    }

    /// Errors with the first node that has exited.
    fn check_alive(&mut self) -> Result<(), Error> {
        for node in self.nodes.iter_mut().filter(|n| !n.retired) {
            let exited = node.exited()?;
            if let Some(status) = exited {
                return Err(Error::NodeExited {
                    node: node.spec.id,
                    status: status.to_string(),
                    log: node.spec.log.clone(),
                    tail: log_tail(&node.spec.log),
                });
            }
        }
        Ok(())
    }

    /// Stops every running node: SIGTERM, wait up to [`STOP_DEADLINE`], then SIGKILL.
    /// Returns how each node ended; `Err` lists nodes that had to be killed or failed.
    pub async fn stop(&mut self) -> Result<Vec<(u64, ExitStatus)>, Error> {
        for node in &self.nodes {
            // `id()` is `None` once the child was reaped: never signal a recycled pid.
            let pid = node
                .child
                .id()
                .and_then(|pid| Pid::from_raw(i32::try_from(pid).ok()?));
            if let Some(pid) = pid
                && let Err(err) = kill_process(pid, Signal::TERM)
            {
                tracing::warn!(node = node.spec.id, error = %err, "cannot send SIGTERM");
            }
        }
        let deadline = tokio::time::Instant::now() + STOP_DEADLINE;
        let mut ended = Vec::new();
        let mut problems = Vec::new();
        for node in &mut self.nodes {
            let status = match tokio::time::timeout_at(deadline, node.child.wait()).await {
                Ok(Ok(status)) => status,
                Ok(Err(err)) => {
                    problems.push(format!("node {}: cannot wait for it: {err}", node.spec.id));
                    continue;
                }
                Err(_) => {
                    problems.push(format!(
                        "node {} ignored SIGTERM for {STOP_DEADLINE:?} and was killed",
                        node.spec.id
                    ));
                    let _ = node.child.kill().await;
                    continue;
                }
            };
            if !status.success() && !node.retired {
                problems.push(format!("node {} exited with {status}", node.spec.id));
            }
            ended.push((node.spec.id, status));
        }
        if problems.is_empty() {
            Ok(ended)
        } else {
            Err(Error::UncleanStop(problems.join("; ")))
        }
    }
}

fn spawn(
    binary: &Path,
    node: &NodeSpec,
    peers: &str,
    env: &[(String, String)],
) -> Result<Child, Error> {
    let log_error = |source| Error::Io {
        action: "open node log",
        path: node.log.clone(),
        source,
    };
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&node.log)
        .map_err(log_error)?;
    // Runs append to one log; the marker shows where each run starts.
    writeln!(log, "--- paxlog cluster up: starting node {} ---", node.id).map_err(log_error)?;
    let stderr: File = log.try_clone().map_err(log_error)?;
    let mut command = match node.launcher.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(binary);
            c
        }
        None => Command::new(binary),
    };
    command
        .arg(format!("--id={}", node.id))
        .arg(format!("--listen={}", node.grpc))
        .arg(format!("--metrics={}", node.metrics))
        .arg(format!("--peers={peers}"))
        .arg(format!("--data-dir={}", node.data_dir.display()))
        // Security comes from `env` only: a CA or auth file the user exported for the CLI
        // must not half-configure TLS on the brokers.
        .env_remove("PAXLOG_TLS_CERT")
        .env_remove("PAXLOG_TLS_KEY")
        .env_remove("PAXLOG_TLS_CA")
        .env_remove("PAXLOG_AUTH_FILE")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(stderr)
        // Own process group: the terminal's Ctrl-C goes to paxlog only, which stops nodes
        // in order. If paxlog itself dies, dropping the child kills the node.
        .process_group(0)
        .kill_on_drop(true);
    command.spawn().map_err(|source| Error::Spawn {
        node: node.id,
        binary: binary.to_owned(),
        source,
    })
}

/// The last lines of a log file, indented, for error messages.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
    tail.iter().map(|line| format!("  {line}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(nodes: u16, base_port: u16) -> Result<ClusterSpec, Error> {
        ClusterSpec::new(
            nodes,
            base_port,
            PathBuf::from("data"),
            PathBuf::from("paxlog-broker"),
        )
    }

    #[test]
    fn default_cluster_layout() {
        let spec = spec(3, 7001).expect("valid");
        let nodes = spec.node_specs();
        assert_eq!(nodes[2].grpc, "127.0.0.1:7003");
        assert_eq!(nodes[2].metrics, "127.0.0.1:9003");
        assert_eq!(nodes[2].data_dir, PathBuf::from("data/node-3"));
        assert_eq!(nodes[2].log, PathBuf::from("data/node-3.log"));
        assert_eq!(
            spec.peers_arg(),
            "1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003"
        );
    }

    #[test]
    fn impossible_port_ranges_are_rejected() {
        assert!(spec(0, 7001).is_err());
        assert!(spec(3, 64000).is_err(), "metrics ports past 65535");
        let overlapping = ClusterSpec {
            metrics_base_port: 7002,
            ..spec(3, 7001).expect("valid")
        };
        assert!(overlapping.validated().is_err());
    }
}
