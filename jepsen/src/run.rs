//! One harness run: a local cluster, the queue workload through the SDK, a nemesis, a
//! final read, the checker and a report.
//!
//! ```text
//!   start N brokers (loopback) ─▶ topic "jepsen" (4 partitions, replication min(3, N))
//!   producers ×2: idempotent sends of unique values to 8 keys     ─┐
//!   consumers ×2: group "jepsen" subscribe, polls, commits, crashes ├─▶ history
//!   nemesis: fault (kill / pause of one, a minority, a majority,    │
//!            all) for 1-3 s, heal, quiet 2-4 s, seeded               │
//!   end: heal everything, final read of every partition from 0  ───┤
//!        and each replica's own log of each partition             ───┘
//!   checker ─▶ report (counts, anomalies, fault windows, unavailability, latency):
//!              text, JSON, HTML with SVG plots
//! ```
//!
//! Kill and pause are signals to broker processes; with `network` (root), each broker runs
//! in its own network namespace ([`crate::net`]) and partitions (link down) and netem
//! (delay, loss, duplication, reordering) are made by the kernel.

use crate::checker::{self, Violation};
use crate::history::{Function, History, Op, OpType, OpValue, Polled};
use paxlog_client::cli::topic::CreateTopic;
use paxlog_client::cluster::{ClusterSpec, LocalCluster};
use paxlog_client::{Client, ConsumerConfig, OffsetReset, Position, ProducerRecord};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The topic every run writes.
pub const TOPIC: &str = "jepsen";
/// Its partitions.
pub const PARTITIONS: u32 = 4;
const DEADLINE: Duration = Duration::from_secs(90);

/// A fault kind the nemesis may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Nemesis {
    /// kill -9 of one node, a minority, a majority or all, then restart.
    Kill,
    /// SIGSTOP of one node or a minority, then SIGCONT.
    Pause,
    /// Network partition: one node or a minority cut off (link down in its namespace).
    Partition,
    /// tc netem on one node, a minority or all: delay, loss, duplication or reordering.
    Netem,
}

impl Nemesis {
    /// Whether the fault needs network namespaces.
    pub fn needs_net(self) -> bool {
        matches!(self, Nemesis::Partition | Nemesis::Netem)
    }
}

impl std::str::FromStr for Nemesis {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "kill" => Ok(Nemesis::Kill),
            "pause" => Ok(Nemesis::Pause),
            "partition" => Ok(Nemesis::Partition),
            "netem" => Ok(Nemesis::Netem),
            other => Err(format!(
                "unknown nemesis {other:?}: use kill, pause, partition or netem"
            )),
        }
    }
}

/// Settings of a run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Brokers (3 or 5).
    pub nodes: u16,
    /// How long the workload runs under faults.
    pub time: Duration,
    /// Fault kinds to mix.
    pub nemesis: Vec<Nemesis>,
    /// Seed of every random choice of the nemesis and the workload.
    pub seed: u64,
    /// The run's directory: data, node logs, history.jsonl, report.txt, report.json.
    pub dir: PathBuf,
    /// The broker executable.
    pub broker_bin: PathBuf,
    /// First gRPC port (N consecutive ports, and the same + 2000 for metrics).
    pub base_port: u16,
    /// Give each broker its own network namespace (needs root): required by the partition
    /// and netem faults; without it brokers share loopback.
    pub network: bool,
    /// A bug to plant in the brokers (`PAXLOG_PLANTED_BUG`, e.g. `skip-recovery`), to show
    /// that the harness catches it; `None` for real runs.
    pub planted_bug: Option<String>,
}

/// A fault as applied.
#[derive(Clone, Debug, Serialize)]
pub struct FaultWindow {
    /// The fault kind.
    pub kind: Nemesis,
    /// For netem, its settings.
    pub detail: String,
    /// The nodes.
    pub nodes: Vec<u64>,
    /// Seconds since the start when it began.
    pub start_s: f64,
    /// Seconds since the start when it was healed.
    pub end_s: f64,
}

/// One anomaly kind with its count and a few examples.
#[derive(Clone, Debug, Serialize)]
pub struct Anomaly {
    /// Invariant name.
    pub invariant: String,
    /// How many.
    pub count: usize,
    /// Up to three descriptions.
    pub examples: Vec<String>,
}

/// What a run found.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Seed.
    pub seed: u64,
    /// Brokers.
    pub nodes: u16,
    /// Seconds of workload.
    pub time_s: f64,
    /// Fault kinds.
    pub nemesis: Vec<Nemesis>,
    /// Sends acknowledged.
    pub sends_ok: usize,
    /// Sends that certainly failed.
    pub sends_fail: usize,
    /// Sends with unknown outcome.
    pub sends_info: usize,
    /// Polls that returned.
    pub polls: usize,
    /// Commits acknowledged.
    pub commits_ok: usize,
    /// Anomalies by invariant (only the kinds found).
    pub anomalies: Vec<Anomaly>,
    /// Faults applied.
    pub faults: Vec<FaultWindow>,
    /// Leaderships of the topic's partitions (distinct partition and ballot with a leader),
    /// from the brokers' logs.
    pub leader_changes: usize,
    /// Longest time without an acknowledged send, seconds.
    pub longest_unavailable_s: f64,
    /// Acknowledged send latency percentiles, ms: p50, p99, max.
    pub send_latency_ms: [f64; 3],
}

impl Report {
    /// Whether the run found nothing wrong.
    pub fn clean(&self) -> bool {
        self.anomalies.is_empty()
    }

    /// The report as text.
    pub fn to_text(&self) -> String {
        let mut t = format!(
            "paxlog-jepsen run: seed {}  nodes {}  time {:.0} s  nemesis {:?}\n\
             sends: {} ok, {} fail, {} info (unknown)   polls {}   commits ok {}\n\
             send latency ms: p50 {:.1}  p99 {:.1}  max {:.1}   longest unavailability {:.2} s\n\
             leaderships of the topic's partitions: {}\n",
            self.seed,
            self.nodes,
            self.time_s,
            self.nemesis,
            self.sends_ok,
            self.sends_fail,
            self.sends_info,
            self.polls,
            self.commits_ok,
            self.send_latency_ms[0],
            self.send_latency_ms[1],
            self.send_latency_ms[2],
            self.longest_unavailable_s,
            self.leader_changes
        );
        t.push_str(&format!("faults ({}):\n", self.faults.len()));
        for f in &self.faults {
            t.push_str(&format!(
                "  {:>7.2}-{:>7.2} s  {:?} {:?} {}\n",
                f.start_s, f.end_s, f.kind, f.nodes, f.detail
            ));
        }
        if self.anomalies.is_empty() {
            t.push_str("anomalies: none (lost 0, duplicate 0, inconsistent 0, unseen 0, commit regressions 0, commits lost 0, replica divergence 0)\n");
        }
        for a in &self.anomalies {
            t.push_str(&format!("ANOMALY {}: {}\n", a.invariant, a.count));
            for e in &a.examples {
                t.push_str(&format!("    {e}\n"));
            }
        }
        t
    }
}

/// Appends operations with their time since the run started.
#[derive(Clone)]
struct Recorder {
    ops: Arc<Mutex<Vec<Op>>>,
    start: Instant,
}

impl Recorder {
    fn record(&self, process: u64, kind: OpType, f: Function, value: OpValue) {
        let time = self.start.elapsed().as_nanos() as u64;
        let mut ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        ops.push(Op {
            process,
            kind,
            f,
            value,
            time,
        });
    }
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// Runs the harness; writes history.jsonl, report.txt, report.json and report.html to
/// `cfg.dir`.
pub async fn run(cfg: &RunConfig) -> Result<Report, Failure> {
    std::fs::create_dir_all(&cfg.dir)?;
    let mut spec = ClusterSpec::new(
        cfg.nodes,
        cfg.base_port,
        cfg.dir.join("data"),
        cfg.broker_bin.clone(),
    )?;
    if let Some(bug) = &cfg.planted_bug {
        spec.env.push(("PAXLOG_PLANTED_BUG".into(), bug.clone()));
    }
    if cfg.nemesis.iter().any(|n| n.needs_net()) && !cfg.network {
        return Err(
            "the partition and netem faults need network namespaces (--network, as root)".into(),
        );
    }
    let ids: Vec<u64> = (1..=u64::from(cfg.nodes)).collect();
    let net = match cfg.network {
        true => Some(crate::net::Net::create(
            (cfg.base_port % 250) as u8 + 1,
            &ids,
        )?),
        false => None,
    };
    if let Some(net) = &net
        && cfg.nemesis.contains(&Nemesis::Netem)
        && !net.netem_supported(1)
    {
        return Err(
            "netem is not available in this kernel (module sch_netem): drop netem from the nemesis"
                .into(),
        );
    }
    if let Some(net) = &net {
        spec.hosts = ids.iter().map(|n| net.ip(*n)).collect();
        spec.launchers = ids.iter().map(|n| net.launcher(*n)).collect();
    }
    let mut cluster = LocalCluster::start(&spec).await?;
    cluster.wait_ready(DEADLINE).await?;
    let seeds: Vec<String> = cluster.nodes.iter().map(|n| n.spec.grpc.clone()).collect();
    let client = Client::connect(seeds).await?;
    client
        .admin()
        .create_topic(CreateTopic {
            name: TOPIC.into(),
            partitions: PARTITIONS,
            replication: u32::from(cfg.nodes).min(3),
            config: Default::default(),
        })
        .await?;

    let rec = Recorder {
        ops: Arc::default(),
        start: Instant::now(),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for process in 0..2u64 {
        tasks.push(tokio::spawn(produce(
            client.clone(),
            rec.clone(),
            stop.clone(),
            process,
        )));
    }
    for process in 10..12u64 {
        let seed = cfg.seed ^ process;
        tasks.push(tokio::spawn(consume(
            client.clone(),
            rec.clone(),
            stop.clone(),
            process,
            seed,
        )));
    }

    let phase = |name: &str| {
        eprintln!(
            "paxlog-jepsen: {:>7.1} s  {name}",
            rec.start.elapsed().as_secs_f64()
        )
    };
    phase("workload and nemesis running");
    let faults = nemesis(&mut cluster, net.as_ref(), cfg, &rec).await?;
    phase("nemesis done; stopping the workload");
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await?;
    }
    phase("workload stopped; waiting for every broker to serve");
    cluster.wait_ready(DEADLINE).await?;
    phase("final read");
    final_read(&client, &rec).await?;
    phase("reading each replica's log and the group's committed offsets");
    replica_reads(&client, &rec).await?;
    committed_offsets(&client, &rec).await?;
    phase("stopping the cluster");
    let _ = cluster.stop().await;
    phase("checking the history");

    let history = History {
        ops: rec.ops.lock().unwrap_or_else(|p| p.into_inner()).clone(),
    };
    let mut out = std::fs::File::create(cfg.dir.join("history.jsonl"))?;
    history.write(&mut out)?;
    let mut report = report(cfg, &history, checker::check(&history), faults);
    report.leader_changes = leaderships(&cfg.dir.join("data"));
    std::fs::write(cfg.dir.join("report.txt"), report.to_text())?;
    std::fs::write(
        cfg.dir.join("report.html"),
        crate::html::page(&report, &history),
    )?;
    std::fs::write(
        cfg.dir.join("report.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    Ok(report)
}

/// Sends unique values (`process-n`) to 8 keys, one at a time, until stopped.
async fn produce(client: Client, rec: Recorder, stop: Arc<AtomicBool>, process: u64) {
    let Ok(producer) = client.producer(Default::default()) else {
        return;
    };
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let value = format!("{process}-{n}");
        let key = format!("k{}", n % 8);
        n += 1;
        let sent = OpValue {
            key: Some(key.clone()),
            value: Some(value.clone()),
            ..OpValue::default()
        };
        rec.record(process, OpType::Invoke, Function::Send, sent.clone());
        let result = tokio::time::timeout(
            Duration::from_secs(20),
            producer.send_and_wait(ProducerRecord::new(TOPIC, value).key(key)),
        )
        .await;
        match result {
            Ok(Ok(d)) => {
                let acked = OpValue {
                    partition: Some(d.partition),
                    offset: d.offset,
                    ..sent
                };
                rec.record(process, OpType::Ok, Function::Send, acked);
            }
            // A timed-out or failed send is not known to have failed: unknown.
            _ => rec.record(process, OpType::Info, Function::Send, sent),
        }
    }
    producer.close().await;
}

/// A group member: polls, records assignment changes, commits every few polls, and now
/// and then crashes (drops its consumer without leaving) and comes back.
async fn consume(client: Client, rec: Recorder, stop: Arc<AtomicBool>, process: u64, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    while !stop.load(Ordering::SeqCst) {
        let mut consumer = client.consumer(ConsumerConfig {
            group: Some("jepsen".into()),
            auto_offset_reset: OffsetReset::Earliest,
            auto_commit: false,
            session_timeout: Duration::from_secs(6),
            ..ConsumerConfig::default()
        });
        if consumer.subscribe(&[TOPIC]).await.is_err() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let mut assigned = BTreeSet::new();
        let lifetime = rng.random_range(40..120);
        for poll in 0..lifetime {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let polled = consumer.poll(Duration::from_millis(100)).await;
            let now: BTreeSet<u32> = consumer.assignment().into_iter().map(|(_, p)| p).collect();
            if now != assigned {
                assigned = now;
                rec.record(process, OpType::Ok, Function::Assign, OpValue::default());
            }
            let Ok(records) = polled else {
                continue;
            };
            let value = poll_value(&records);
            rec.record(process, OpType::Ok, Function::Poll, value);
            if poll % 5 == 4 {
                let offsets: Vec<(u32, u64)> = assigned
                    .iter()
                    .filter_map(|p| Some((*p, consumer.position(TOPIC, *p)?)))
                    .collect();
                let value = OpValue {
                    offsets: offsets.clone(),
                    group: Some("jepsen".into()),
                    ..OpValue::default()
                };
                rec.record(process, OpType::Invoke, Function::Commit, value.clone());
                let kind = match consumer.commit().await {
                    Ok(()) => OpType::Ok,
                    Err(_) => OpType::Info,
                };
                rec.record(process, kind, Function::Commit, value);
            }
        }
        // A crash: no commit, no leave; positions restart with the next consumer.
        rec.record(process, OpType::Info, Function::Crash, OpValue::default());
        drop(consumer);
    }
}

/// Applies seeded faults until `cfg.time` has passed; heals everything at the end.
async fn nemesis(
    cluster: &mut LocalCluster,
    net: Option<&crate::net::Net>,
    cfg: &RunConfig,
    rec: &Recorder,
) -> Result<Vec<FaultWindow>, Failure> {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let ids: Vec<u64> = cluster.nodes.iter().map(|n| n.spec.id).collect();
    let n = ids.len();
    let mut windows = Vec::new();
    let end = Instant::now() + cfg.time;
    // Let the workload get going first.
    tokio::time::sleep(Duration::from_secs(2).min(cfg.time / 4)).await;
    while Instant::now() + Duration::from_secs(3) < end && !cfg.nemesis.is_empty() {
        let kind = cfg.nemesis[rng.random_range(0..cfg.nemesis.len())];
        let count = match (kind, rng.random_range(0..4)) {
            (Nemesis::Kill | Nemesis::Netem, 3) => n, // all
            (Nemesis::Kill, 2) => n / 2 + 1,          // a majority
            (_, 1) => (n - 1) / 2,                    // a minority
            _ => 1,                                   // one
        }
        .max(1);
        const NETEM: [&str; 4] = [
            "delay 50ms 20ms",
            "loss 20%",
            "duplicate 25%",
            "delay 20ms reorder 30% 50%",
        ];
        let netem = NETEM[rng.random_range(0..NETEM.len())];
        let mut pool = ids.clone();
        let mut victims = Vec::new();
        for _ in 0..count {
            victims.push(pool.remove(rng.random_range(0..pool.len())));
        }
        victims.sort_unstable();
        let start_s = rec.start.elapsed().as_secs_f64();
        for id in &victims {
            match (kind, net) {
                (Nemesis::Kill, _) => cluster.kill(*id).await?,
                (Nemesis::Pause, _) => cluster.pause(*id, true)?,
                (Nemesis::Partition, Some(net)) => net.isolate(*id, true)?,
                (Nemesis::Netem, Some(net)) => net.netem(*id, Some(netem))?,
                (_, None) => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(1_000..3_000))).await;
        for id in &victims {
            match (kind, net) {
                (Nemesis::Kill, _) => cluster.restart(*id)?,
                (Nemesis::Pause, _) => cluster.pause(*id, false)?,
                (Nemesis::Partition, Some(net)) => net.isolate(*id, false)?,
                (Nemesis::Netem, Some(net)) => net.netem(*id, None)?,
                (_, None) => {}
            }
        }
        windows.push(FaultWindow {
            kind,
            detail: match kind {
                Nemesis::Netem => netem.to_owned(),
                _ => String::new(),
            },
            nodes: victims,
            start_s,
            end_s: rec.start.elapsed().as_secs_f64(),
        });
        tokio::time::sleep(Duration::from_millis(rng.random_range(2_000..4_000))).await;
    }
    let left = end.saturating_duration_since(Instant::now());
    tokio::time::sleep(left).await;
    Ok(windows)
}

/// A poll's records as a history value.
fn poll_value(records: &[paxlog_client::ConsumedRecord]) -> OpValue {
    OpValue {
        records: records
            .iter()
            .map(|r| Polled {
                partition: r.partition,
                offset: r.offset,
                value: String::from_utf8_lossy(&r.value).into_owned(),
            })
            .collect(),
        ..OpValue::default()
    }
}

/// Reads every partition from its start to its end, as process 100.
async fn final_read(client: &Client, rec: &Recorder) -> Result<(), Failure> {
    let mut consumer = client.consumer(ConsumerConfig::default());
    consumer.assign(TOPIC, 0..PARTITIONS);
    let mut ends = Vec::new();
    for p in 0..PARTITIONS {
        consumer.seek(TOPIC, p, Position::Latest).await?;
        ends.push(consumer.position(TOPIC, p).unwrap_or(0));
        consumer.seek(TOPIC, p, Position::Earliest).await?;
    }
    rec.record(100, OpType::Ok, Function::Assign, OpValue::default());
    let deadline = Instant::now() + DEADLINE;
    while (0..PARTITIONS).any(|p| consumer.position(TOPIC, p) < Some(ends[p as usize])) {
        if Instant::now() > deadline {
            return Err("the final read did not reach the end of every partition".into());
        }
        let records = consumer.poll(Duration::from_millis(200)).await?;
        let value = poll_value(&records);
        rec.record(100, OpType::Ok, Function::Poll, value);
    }
    Ok(())
}

/// Reads the group's committed offsets back (process 300), for `commit_lost`.
async fn committed_offsets(client: &Client, rec: &Recorder) -> Result<(), Failure> {
    let group = client.admin().describe_group("jepsen").await?;
    let offsets = group
        .partitions
        .iter()
        .filter_map(|p| Some((p.partition, p.committed_offset?)))
        .collect();
    let value = OpValue {
        offsets,
        group: Some("jepsen".into()),
        ..OpValue::default()
    };
    rec.record(300, OpType::Ok, Function::FetchOffsets, value);
    Ok(())
}

/// Reads each replica's own log of every partition (as process 200 + node), so the
/// checker can compare the replicas' decided logs directly.
async fn replica_reads(client: &Client, rec: &Recorder) -> Result<(), Failure> {
    use paxlog_proto::v1::{FetchRequest, consumer_client::ConsumerClient};
    let conn = client.connection();
    let meta = conn.metadata(DEADLINE).await?;
    let topic = meta.topics.get(TOPIC).ok_or("no metadata for the topic")?;
    for p in &topic.partitions {
        for node in &p.replicas {
            let address = meta
                .brokers
                .get(node)
                .ok_or("a replica without an address")?;
            let mut replica = ConsumerClient::new(conn.channel(address)?);
            let mut records = Vec::new();
            let mut offset = 0;
            loop {
                let request = FetchRequest {
                    topic: TOPIC.into(),
                    partition: p.partition,
                    offset,
                    max_wait_ms: 0,
                    min_bytes: 0,
                    max_bytes: 1 << 20,
                };
                let response = replica.fetch(request).await?.into_inner();
                let Some(last) = response.records.last() else {
                    break;
                };
                offset = last.offset + 1;
                records.extend(response.records.iter().map(|r| {
                    Polled {
                        partition: p.partition,
                        offset: r.offset,
                        value: String::from_utf8_lossy(&r.record.clone().unwrap_or_default().value)
                            .into_owned(),
                    }
                }));
            }
            let process = 200 + node;
            rec.record(process, OpType::Ok, Function::Assign, OpValue::default());
            let value = OpValue {
                records,
                node: Some(*node),
                ..OpValue::default()
            };
            rec.record(process, OpType::Ok, Function::Poll, value);
        }
    }
    Ok(())
}

/// Distinct (partition, ballot) leaderships of [`TOPIC`] that the brokers logged
/// ("leadership changed ... leader=Some(..)"), over every node log of the run.
fn leaderships(data: &std::path::Path) -> usize {
    let mut seen = BTreeSet::new();
    let Ok(entries) = std::fs::read_dir(data) else {
        return 0;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "log") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        for line in text.lines() {
            if !line.contains("leadership changed") || !line.contains(&format!("topic={TOPIC}")) {
                continue;
            }
            let field = |name: &str| {
                line.rsplit_once(&format!(" {name}="))
                    .and_then(|(_, rest)| rest.split_whitespace().next())
                    .map(str::to_owned)
            };
            let leader = field("leader").unwrap_or_default();
            if let (Some(p), Some(b), true) = (
                field("partition"),
                field("ballot"),
                leader.starts_with("Some"),
            ) {
                seen.insert((p, b));
            }
        }
    }
    seen.len()
}

fn report(
    cfg: &RunConfig,
    history: &History,
    violations: Vec<Violation>,
    faults: Vec<FaultWindow>,
) -> Report {
    let count = |f, k| history.completed(f, k).count();
    let mut anomalies: Vec<Anomaly> = Vec::new();
    for v in violations {
        match anomalies.iter_mut().find(|a| a.invariant == v.invariant) {
            Some(a) => {
                a.count += 1;
                if a.examples.len() < 3 {
                    a.examples.push(v.description);
                }
            }
            None => anomalies.push(Anomaly {
                invariant: v.invariant.to_owned(),
                count: 1,
                examples: vec![v.description],
            }),
        }
    }
    // Latency of acknowledged sends, and the longest gap between acknowledgements.
    let mut invoked = std::collections::BTreeMap::new();
    let mut latencies = Vec::new();
    let mut acks = Vec::new();
    for op in &history.ops {
        if op.f != Function::Send {
            continue;
        }
        let v = op.value.value.clone().unwrap_or_default();
        match op.kind {
            OpType::Invoke => {
                invoked.insert(v, op.time);
            }
            OpType::Ok => {
                if let Some(t) = invoked.get(&v) {
                    latencies.push((op.time - t) as f64 / 1e6);
                }
                acks.push(op.time);
            }
            _ => {}
        }
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    acks.sort_unstable();
    let gap = acks.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0) as f64 / 1e9;
    Report {
        seed: cfg.seed,
        nodes: cfg.nodes,
        time_s: cfg.time.as_secs_f64(),
        nemesis: cfg.nemesis.clone(),
        sends_ok: count(Function::Send, OpType::Ok),
        sends_fail: count(Function::Send, OpType::Fail),
        sends_info: count(Function::Send, OpType::Info),
        polls: count(Function::Poll, OpType::Ok),
        commits_ok: count(Function::Commit, OpType::Ok),
        anomalies,
        faults,
        leader_changes: 0,
        longest_unavailable_s: gap,
        send_latency_ms: [
            pct(0.5),
            pct(0.99),
            latencies.last().copied().unwrap_or(0.0),
        ],
    }
}
