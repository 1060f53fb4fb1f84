//! A cluster of real `paxlog-broker` processes on loopback, and gRPC clients to them.

use paxlog_proto::v1 as pb;
use pb::{admin_client::AdminClient, consumer_client::ConsumerClient, producer_client::ProducerClient};
use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// How long the cluster may take to do what a test waits for (debug build, 2 cores).
pub const DEADLINE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(25);

fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr")
}

/// One broker process of the cluster.
pub struct Node {
    pub id: u64,
    pub grpc: SocketAddr,
    pub metrics: SocketAddr,
    pub data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// Brokers `1..=n` with fixed addresses; nodes can be killed and restarted on the same data.
pub struct Cluster {
    pub nodes: Vec<Node>,
    peers: String,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` brokers and waits until every one serves.
    pub async fn start(n: u64) -> Cluster {
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
        let peers = nodes.iter().map(|n| format!("{}={}", n.id, n.grpc)).collect::<Vec<_>>().join(",");
        let mut cluster = Cluster { nodes, peers, _dir: dir };
        for id in 1..=n {
            cluster.spawn(id);
        }
        for id in 1..=n {
            cluster.wait_serving(id).await;
        }
        cluster
    }

    fn node(&mut self, id: u64) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    /// Starts node `id` (again), appending to its log.
    pub fn spawn(&mut self, id: u64) {
        let peers = self.peers.clone();
        let node = self.node(id);
        let log = File::options().create(true).append(true).open(&node.log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_paxlog-broker"))
            .args([
                format!("--id={id}"),
                format!("--listen={}", node.grpc),
                format!("--metrics={}", node.metrics),
                format!("--data-dir={}", node.data_dir.display()),
                format!("--peers={peers}"),
            ])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .expect("spawn paxlog-broker");
        node.child = Some(child);
    }

    /// kill -9.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.node(id).child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The node's log so far.
    pub fn log(&self, id: u64) -> String {
        std::fs::read_to_string(&self.nodes[(id - 1) as usize].log).unwrap_or_default()
    }

    /// Every node's log, for failure messages.
    pub fn logs(&self) -> String {
        self.nodes.iter().map(|n| format!("---- node {} ----\n{}\n", n.id, self.log(n.id))).collect()
    }

    /// Waits until node `id` answers health SERVING.
    pub async fn wait_serving(&mut self, id: u64) {
        let addr = self.node(id).grpc;
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(child) = self.node(id).child.as_mut() {
                if let Some(status) = child.try_wait().expect("try_wait") {
                    panic!("node {id} exited with {status}:\n{}", self.logs());
                }
            }
            if let Ok(ch) = channel(addr).await {
                let mut health = tonic_health::pb::health_client::HealthClient::new(ch);
                let req = tonic_health::pb::HealthCheckRequest { service: String::new() };
                if let Ok(r) = health.check(req).await {
                    if r.into_inner().status == 1 {
                        return;
                    }
                }
            }
            assert!(Instant::now() < deadline, "node {id} not serving:\n{}", self.logs());
            tokio::time::sleep(POLL).await;
        }
    }

    pub fn is_running(&self, id: u64) -> bool {
        self.nodes[(id - 1) as usize].child.is_some()
    }

    pub async fn admin(&self, id: u64) -> AdminClient<Channel> {
        AdminClient::new(channel(self.nodes[(id - 1) as usize].grpc).await.expect("connect"))
    }

    pub async fn producer(&self, id: u64) -> ProducerClient<Channel> {
        ProducerClient::new(channel(self.nodes[(id - 1) as usize].grpc).await.expect("connect"))
    }

    pub async fn consumer(&self, id: u64) -> ConsumerClient<Channel> {
        ConsumerClient::new(channel(self.nodes[(id - 1) as usize].grpc).await.expect("connect"))
    }

    /// Creates a topic through whichever running node leads metadata (following hints).
    pub async fn create_topic(&self, name: &str, partitions: u32, replication: u32) -> pb::TopicDescription {
        let deadline = Instant::now() + DEADLINE;
        let mut last = String::new();
        while Instant::now() < deadline {
            for n in self.nodes.iter().filter(|n| n.child.is_some()) {
                let req = pb::CreateTopicRequest {
                    name: name.into(),
                    partitions,
                    replication_factor: replication,
                    config: Default::default(),
                    timeout_ms: 10_000,
                };
                match self.admin(n.id).await.create_topic(req).await {
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
        let deadline = Instant::now() + DEADLINE;
        loop {
            let mut views = Vec::new();
            for n in self.nodes.iter().filter(|n| n.child.is_some()) {
                if let Ok(r) = self.admin(n.id).await.describe_topic(pb::DescribeTopicRequest { name: topic.into() }).await {
                    let t = r.into_inner().topic.expect("topic");
                    views.push(t.partitions.iter().map(|p| p.leader).collect::<Vec<_>>());
                }
            }
            let running: Vec<u64> = self.nodes.iter().filter(|n| n.child.is_some()).map(|n| n.id).collect();
            if let Some(first) = views.first() {
                let agreed = views.iter().all(|v| v == first);
                if agreed && first.iter().all(|l| running.contains(l)) {
                    return first.clone();
                }
            }
            assert!(Instant::now() < deadline, "no agreed leaders for {topic}: {views:?}\n{}", self.logs());
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
    let mut consumer = c.consumer(id).await;
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let r = consumer
            .fetch(pb::FetchRequest { topic: topic.into(), partition, offset, max_wait_ms: 0, min_bytes: 0, max_bytes: 1 << 20 })
            .await
            .expect("fetch")
            .into_inner();
        if r.records.is_empty() {
            return out;
        }
        for rec in r.records {
            offset = rec.offset + 1;
            let value = rec.record.expect("record").value;
            out.push((rec.offset, String::from_utf8_lossy(&value).into_owned()));
        }
    }
}

pub fn data_dir(c: &Cluster, id: u64) -> &Path {
    &c.nodes[(id - 1) as usize].data_dir
}
