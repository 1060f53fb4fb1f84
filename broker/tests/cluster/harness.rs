//! A cluster of real broker processes on loopback, and gRPC clients to them.
//!
//! Nodes keep their address and data directory across `kill` (SIGKILL) and `restart`, so
//! a test can crash a node and bring it back on the same data. When a test panics, the
//! cluster's directory (data and one log per node) is kept and its path printed (after a
//! success too with `PAXLOG_TEST_KEEP=1`).
//!
//! ## Why nodes run this test binary, not `paxlog-broker`
//! The cargo target directory is shared by several checkouts, and `CARGO_BIN_EXE_paxlog-broker`
//! is its one uplifted `target/debug/paxlog-broker`: another checkout's build replaces it at
//! any time, and a node restarted mid-test then runs foreign code (seen: a restarted node
//! that had no peer service). This binary's own path is unique to this build, so a node is
//! this executable re-run with [`AS_BROKER`] set: [`broker_process`] then runs the broker
//! library exactly as `main.rs` does, configured through `PAXLOG_*` variables.

use paxlog_proto::v1 as pb;
use pb::{
    admin_client::AdminClient, consumer_client::ConsumerClient, producer_client::ProducerClient,
};
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// How long the cluster may take to do what a test waits for (debug build, 2 cores). Only
/// a bound for failing instead of hanging: tests poll conditions, never wait for time.
pub const DEADLINE: Duration = Duration::from_secs(60);
/// Pause between two polls of a condition.
pub const POLL: Duration = Duration::from_millis(25);
/// Lines of each node's log shown in a failure message (the full logs are kept on disk).
const LOG_TAIL: usize = 40;
/// Set in a node's environment: this test binary then runs a broker instead of tests.
const AS_BROKER: &str = "PAXLOG_TEST_AS_BROKER";

/// Not a test: the entry point of a node process (see the module docs). Without
/// [`AS_BROKER`] it returns at once; with it, it runs a broker until the process is killed.
#[test]
fn broker_process() {
    if std::env::var_os(AS_BROKER).is_none() {
        return;
    }
    let config = match paxlog_broker::Config::load(None, std::env::vars(), Default::default()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("paxlog-broker: invalid configuration: {err}");
            std::process::exit(2);
        }
    };
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // SIGTERM stops the node gracefully, as it stops paxlog-broker (Cluster::stop).
    let result = runtime.block_on(async {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("SIGTERM handler");
        paxlog_broker::run(config, async move {
            terminate.recv().await;
        })
        .await
    });
    if let Err(err) = result {
        eprintln!("paxlog-broker: {err}");
        std::process::exit(1);
    }
    std::process::exit(0);
}

use super::ports::free_addr;

/// One broker process of the cluster.
pub struct Node {
    pub id: u64,
    pub grpc: SocketAddr,
    pub metrics: SocketAddr,
    pub data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Node {
    /// The process id, while the node runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// Brokers `1..=n` with fixed addresses; nodes can be killed and restarted on the same data.
pub struct Cluster {
    pub nodes: Vec<Node>,
    peers: String,
    /// `PAXLOG_*` settings every node gets besides identity, addresses and peers.
    settings: Vec<(String, String)>,
    /// How the harness reaches the nodes (TLS when `settings` turn it on).
    security: paxlog_client::Security,
    /// `None` once kept for a failed test (see `Drop`).
    dir: Option<tempfile::TempDir>,
}

impl Cluster {
    /// Starts `n` brokers and waits until every one serves.
    pub async fn start(n: u64) -> Cluster {
        Cluster::start_with(n, &[]).await
    }

    /// Starts `n` brokers, each with the extra `PAXLOG_*` `settings` (e.g.
    /// `("PAXLOG_MAX_RECORD_BYTES", "1024")`), and waits until every one serves.
    pub async fn start_with(n: u64, settings: &[(&str, &str)]) -> Cluster {
        Cluster::start_secured(n, settings, paxlog_client::Security::none()).await
    }

    /// Like [`Cluster::start_with`] for nodes that run TLS (given in `settings`): the
    /// harness checks their health through `security`.
    pub async fn start_secured(
        n: u64,
        settings: &[(&str, &str)],
        security: paxlog_client::Security,
    ) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let nodes: Vec<Node> = (1..=n)
            .map(|id| Node {
                id,
                grpc: free_addr(),
                metrics: free_addr(),
                data_dir: dir.path().join(format!("node-{id}")),
                log: dir.path().join(format!("node-{id}.log")),
                child: None,
            })
            .collect();
        let peers = nodes
            .iter()
            .map(|n| format!("{}={}", n.id, n.grpc))
            .collect::<Vec<_>>()
            .join(",");
        let settings = settings
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut cluster = Cluster {
            nodes,
            peers,
            settings,
            security,
            dir: Some(dir),
        };
        for id in 1..=n {
            cluster.spawn(id);
        }
        for id in 1..=n {
            cluster.wait_serving(id).await;
        }
        cluster
    }

    pub fn node(&self, id: u64) -> &Node {
        &self.nodes[(id - 1) as usize]
    }

    fn node_mut(&mut self, id: u64) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    /// Starts node `id` (again), appending to its log.
    pub fn spawn(&mut self, id: u64) {
        let peers = self.peers.clone();
        let settings = self.settings.clone();
        let node = self.node_mut(id);
        assert!(node.child.is_none(), "node {id} is already running");
        let log = File::options()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("log file");
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut command = Command::new(exe);
        // Only this cluster's settings: none inherited from whoever runs the tests.
        for (var, _) in std::env::vars().filter(|(var, _)| var.starts_with("PAXLOG_")) {
            command.env_remove(var);
        }
        let child = command
            .args([
                "harness::broker_process",
                "--exact",
                "--nocapture",
                "--test-threads=1",
                "-q",
            ])
            .env(AS_BROKER, "1")
            .env("PAXLOG_ID", id.to_string())
            .env("PAXLOG_LISTEN", node.grpc.to_string())
            .env("PAXLOG_METRICS", node.metrics.to_string())
            .env("PAXLOG_DATA_DIR", &node.data_dir)
            .env("PAXLOG_PEERS", peers)
            .envs(settings)
            .env(
                "RUST_LOG",
                std::env::var("PAXLOG_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .expect("spawn paxlog-broker");
        node.child = Some(child);
    }

    /// kill -9: no graceful shutdown, nothing flushed beyond what the node already synced.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.node_mut(id).child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, as an operator stops a broker: waits until the node exited and returns its
    /// exit status (success after a graceful stop).
    pub async fn stop(&mut self, id: u64) -> std::process::ExitStatus {
        use rustix::process::{Pid, Signal, kill_process};
        let mut child = self
            .node_mut(id)
            .child
            .take()
            .unwrap_or_else(|| panic!("node {id} is not running"));
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid")).expect("pid");
        kill_process(pid, Signal::TERM).expect("signal the node");
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "node {id} ignored SIGTERM:\n{}",
                self.logs()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// SIGSTOP (`true`) or SIGCONT of node `id`: a paused broker keeps its connections and
    /// answers nothing, like a stalled machine.
    pub fn pause(&mut self, id: u64, pause: bool) {
        use rustix::process::{Pid, Signal, kill_process};
        let pid = self
            .node(id)
            .child
            .as_ref()
            .and_then(|c| Pid::from_raw(i32::try_from(c.id()).ok()?))
            .unwrap_or_else(|| panic!("node {id} is not running"));
        let signal = if pause { Signal::STOP } else { Signal::CONT };
        kill_process(pid, signal).expect("signal the node");
    }

    /// Starts a killed node again on its data and waits until it serves.
    pub async fn restart(&mut self, id: u64) {
        self.spawn(id);
        self.wait_serving(id).await;
    }

    /// The node's log so far.
    pub fn log(&self, id: u64) -> String {
        std::fs::read_to_string(&self.node(id).log).unwrap_or_default()
    }

    /// The end of every node's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            let log = self.log(n.id);
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL)..];
            out.push_str(&format!(
                "---- node {} (last {} lines) ----\n{}\n",
                n.id,
                tail.len(),
                tail.join("\n")
            ));
        }
        out
    }

    /// Waits until node `id` answers health SERVING.
    pub async fn wait_serving(&mut self, id: u64) {
        let addr = self.node(id).grpc;
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(child) = self.node_mut(id).child.as_mut()
                && let Some(status) = child.try_wait().expect("try_wait")
            {
                panic!("node {id} exited with {status}:\n{}", self.logs());
            }
            let health = paxlog_client::health::check_secured(
                &addr.to_string(),
                Duration::from_secs(5),
                &self.security,
            )
            .await;
            if health.is_serving() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {id} not serving:\n{}",
                self.logs()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until node `id`'s log contains `needle`; returns the matching line.
    pub async fn wait_log(&self, id: u64, needle: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(line) = self.log(id).lines().find(|l| l.contains(needle)) {
                return line.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "node {id} never logged {needle:?}:\n{}",
                self.logs()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// The ids of the nodes running now.
    pub fn running(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.id)
            .collect()
    }

    /// Node `id`'s gRPC address.
    pub fn addr(&self, id: u64) -> SocketAddr {
        self.node(id).grpc
    }

    /// Every node's gRPC address, by id.
    pub fn addrs(&self) -> std::collections::BTreeMap<u64, SocketAddr> {
        self.nodes.iter().map(|n| (n.id, n.grpc)).collect()
    }

    /// Node `id`'s data directory.
    pub fn data_dir(&self, id: u64) -> &Path {
        &self.node(id).data_dir
    }

    pub async fn admin(&self, id: u64) -> AdminClient<Channel> {
        AdminClient::new(channel(self.addr(id)).await.expect("connect"))
    }

    pub async fn producer(&self, id: u64) -> ProducerClient<Channel> {
        ProducerClient::new(channel(self.addr(id)).await.expect("connect"))
    }

    pub async fn consumer(&self, id: u64) -> ConsumerClient<Channel> {
        ConsumerClient::new(channel(self.addr(id)).await.expect("connect"))
    }

    /// Creates a topic through whichever running node leads metadata (following hints).
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        replication: u32,
    ) -> pb::TopicDescription {
        self.create_topic_with(name, partitions, replication, &[])
            .await
    }

    /// [`Cluster::create_topic`] with topic settings.
    pub async fn create_topic_with(
        &self,
        name: &str,
        partitions: u32,
        replication: u32,
        config: &[(&str, &str)],
    ) -> pb::TopicDescription {
        let deadline = Instant::now() + DEADLINE;
        let mut last = String::new();
        while Instant::now() < deadline {
            for id in self.running() {
                let req = pb::CreateTopicRequest {
                    name: name.into(),
                    partitions,
                    replication_factor: replication,
                    config: config
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                    timeout_ms: 10_000,
                };
                match self.admin(id).await.create_topic(req).await {
                    Ok(r) => return r.into_inner().topic.expect("topic in response"),
                    Err(s) => last = format!("{s:?}"),
                }
            }
            tokio::time::sleep(POLL * 4).await;
        }
        panic!("could not create topic {name}: {last}\n{}", self.logs());
    }

    /// Waits until every partition of `topic` has a leader that all running replicas agree on;
    /// returns the leader of each partition.
    pub async fn leaders(&self, topic: &str) -> Vec<u64> {
        self.leaders_among(topic, &self.running()).await
    }

    /// Like [`Cluster::leaders`], asking only nodes `ids` (e.g. leaving out one whose replica
    /// is out of service).
    pub async fn leaders_among(&self, topic: &str, ids: &[u64]) -> Vec<u64> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let running: Vec<u64> = self
                .running()
                .into_iter()
                .filter(|id| ids.contains(id))
                .collect();
            let mut views = Vec::new();
            for &id in &running {
                let Ok(ch) = channel(self.addr(id)).await else {
                    continue;
                };
                let req = pb::DescribeTopicRequest { name: topic.into() };
                if let Ok(r) = AdminClient::new(ch).describe_topic(req).await {
                    let t = r.into_inner().topic.expect("topic");
                    views.push(t.partitions.iter().map(|p| p.leader).collect::<Vec<_>>());
                }
            }
            if views.len() == running.len()
                && let Some(first) = views.first()
                && views.iter().all(|v| v == first)
                && first.iter().all(|l| running.contains(l))
            {
                return first.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no agreed leaders for {topic}: {views:?}\n{}",
                self.logs()
            );
            tokio::time::sleep(POLL * 4).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        // PAXLOG_TEST_KEEP keeps them after a success too, to read what happened.
        let keep = std::thread::panicking() || std::env::var_os("PAXLOG_TEST_KEEP").is_some();
        if keep && let Some(dir) = self.dir.take() {
            eprintln!(
                "cluster data and node logs kept in {}",
                dir.keep().display()
            );
        }
    }
}

/// A channel to `addr` with short timeouts.
pub async fn channel(addr: SocketAddr) -> Result<Channel, tonic::transport::Error> {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("valid url")
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(15))
        .connect()
        .await
}

/// A record with a value.
pub fn record(key: &str, value: &str) -> pb::Record {
    pb::Record {
        key: key.as_bytes().to_vec().into(),
        value: value.as_bytes().to_vec().into(),
        headers: vec![],
        timestamp_ms: 0,
    }
}

/// Every record of a partition read from node `id`, from offset 0 to its high watermark.
pub async fn read_all(c: &Cluster, id: u64, topic: &str, partition: u32) -> Vec<(u64, String)> {
    match try_read_all(c.addr(id), topic, partition).await {
        Ok(records) => records,
        Err(s) => panic!("fetch from node {id}: {s:?}\n{}", c.logs()),
    }
}

/// Like [`read_all`], from `addr`, returning the first error instead of panicking.
pub async fn try_read_all(
    addr: SocketAddr,
    topic: &str,
    partition: u32,
) -> Result<Vec<(u64, String)>, tonic::Status> {
    let ch = channel(addr)
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut consumer = ConsumerClient::new(ch);
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let r = consumer
            .fetch(pb::FetchRequest {
                topic: topic.into(),
                partition,
                offset,
                max_wait_ms: 0,
                min_bytes: 0,
                max_bytes: 1 << 20,
            })
            .await?
            .into_inner();
        if r.records.is_empty() {
            return Ok(out);
        }
        for rec in r.records {
            offset = rec.offset + 1;
            let value = rec.record.expect("record").value;
            out.push((rec.offset, String::from_utf8_lossy(&value).into_owned()));
        }
    }
}

/// Waits until node `id` serves exactly `want` for the partition (a restarted or repairing
/// replica catches up); while it catches up, everything it serves must be a prefix of
/// `want`: a replica never serves a record the others do not have at that offset.
pub async fn wait_replica_equals(
    c: &Cluster,
    id: u64,
    topic: &str,
    partition: u32,
    want: &[(u64, String)],
) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let got = try_read_all(c.addr(id), topic, partition).await;
        if let Ok(got) = &got {
            assert!(
                want.starts_with(got),
                "node {id} partition {partition} serves records the others do not have: {} records, first difference at {:?}",
                got.len(),
                got.iter().zip(want).find(|(a, b)| a != b)
            );
            if got.len() == want.len() {
                return;
            }
        }
        let summary = got.map(|g| format!("{} of {} records", g.len(), want.len()));
        assert!(
            Instant::now() < deadline,
            "node {id} partition {partition} did not catch up: {summary:?}\n{}",
            c.logs()
        );
        tokio::time::sleep(POLL * 4).await;
    }
}
