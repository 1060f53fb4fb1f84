//! One harness run: a local cluster, the queue workload through the SDK, a nemesis, a
//! final read, the checker and a report.
//!
//! ```text
//!   start N brokers (loopback) ─▶ topic "jepsen" (4 partitions, replication min(3, N))
//!   producers ×2: idempotent sends of unique values to 8 keys     ─┐
//!   consumers ×2: group "jepsen" subscribe, polls, commits, crashes ├─▶ history
//!   nemesis: fault (kill / pause of one, a minority, a majority,    │
//!            all; partitions; damaged files) for 1-3 s, heal,       │
//!            quiet 2-4 s, seeded                                    │
//!   end: heal everything, final read of every partition from 0  ───┤
//!        and each replica's own log of each partition             ───┘
//!   checker ─▶ report (counts, anomalies, fault windows, unavailability, latency):
//!              text, JSON, HTML with SVG plots
//! ```
//!
//! Kill and pause are signals to broker processes. With `network` (root), each broker runs
//! in its own network namespace ([`crate::net`]) and the kernel makes the network faults:
//! a node or a minority cut off (link down), a majority/minority split, a bridge, a ring
//! (5 nodes) and a one-way cut (blackhole routes between brokers; clients still reach all),
//! and netem (delay, loss, duplication, reordering) where the kernel has it. A disk fault
//! damages a file of a stopped node (flipped bytes in a table file, write-ahead log or
//! MANIFEST, or a table file cut short); the restarted broker must report it (refuse to
//! start, or take the damaged replica out of service), and the node stays out of the run.
//! The clients' write timeout is 1 s, so faults leave many sends with an unknown outcome
//! that the idempotent producers retry.

use crate::checker::{self, Violation};
use crate::history::{Function, History, Op, OpType, OpValue, Polled};
use paxlog_client::cli::topic::CreateTopic;
use paxlog_client::cluster::{ClusterSpec, LocalCluster};
use paxlog_client::connection::ConnectOptions;
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
    /// Network partition: a node or a minority cut off from everyone (link down), a
    /// majority/minority split, a bridge, a ring (5 nodes or more) or a one-way cut, made
    /// with blackhole routes in the brokers' namespaces.
    Partition,
    /// tc netem on one node, a minority or all: delay, loss, duplication or reordering.
    Netem,
    /// A damaged data file on one node while it is down (bytes flipped in a table file, a
    /// write-ahead log or the MANIFEST, or a table file cut short): the restarted broker
    /// must detect it (refuse to start, or take the damaged replica out of service). The
    /// node then stays out of the run, so one node per run gets one (a minority of every
    /// partition's three replicas).
    Disk,
    /// kill -9 of one node, a minority, a majority or all, losing every write they had not
    /// fsynced (their data directories are [`crate::lazyfs`] mounts), then restart.
    Crash,
}

impl Nemesis {
    /// Whether the fault needs network namespaces.
    pub fn needs_net(self) -> bool {
        matches!(self, Nemesis::Partition | Nemesis::Netem)
    }

    /// Whether the fault needs the brokers' data on lazy (FUSE) mounts.
    pub fn needs_lazyfs(self) -> bool {
        self == Nemesis::Crash
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
            "disk" => Ok(Nemesis::Disk),
            "crash" => Ok(Nemesis::Crash),
            other => Err(format!(
                "unknown nemesis {other:?}: use kill, pause, partition, netem, disk or crash"
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
    /// What exactly: netem's settings, the partition's shape, the damage done to a file
    /// and whether it was detected.
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
            t.push_str("anomalies: none (lost 0, duplicate 0, inconsistent 0, unseen 0, commit regressions 0, commits lost 0, replica divergence 0, undetected disk damage 0)\n");
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
    // Declared before the cluster, so the brokers are gone before their mounts.
    let mut disks = Vec::new();
    if cfg.nemesis.iter().any(|n| n.needs_lazyfs()) {
        if !crate::lazyfs::LazyFs::available() {
            return Err(
                "the crash fault needs FUSE mounts (root and /dev/fuse): drop crash from the nemesis"
                    .into(),
            );
        }
        for node in spec.node_specs() {
            let backing = cfg.dir.join("disks").join(format!("node-{}", node.id));
            disks.push((
                node.id,
                crate::lazyfs::LazyFs::mount(&backing, &node.data_dir)?,
            ));
        }
    }
    let mut cluster = LocalCluster::start(&spec).await?;
    cluster.wait_ready(DEADLINE).await?;
    let seeds: Vec<String> = cluster.nodes.iter().map(|n| n.spec.grpc.clone()).collect();
    // Short write timeouts, as in Jepsen's Kafka tests: a send to a paused or cut-off
    // leader comes back unknown within a second and is retried, so idempotence is tested
    // under every fault, not only when a connection breaks.
    let options = ConnectOptions {
        write_timeout: Duration::from_secs(1),
        ..ConnectOptions::default()
    };
    let client = Client::connect_with(seeds, options, Duration::from_secs(30)).await?;
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
    let Faults {
        windows: faults,
        retired,
        undetected,
    } = nemesis(&mut cluster, net.as_ref(), &disks, cfg, &rec).await?;
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
    replica_reads(&client, &rec, &retired).await?;
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
    if !undetected.is_empty() {
        report.anomalies.push(Anomaly {
            invariant: "undetected_disk_damage".into(),
            count: undetected.len(),
            examples: undetected.into_iter().take(3).collect(),
        });
    }
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

/// What the nemesis did.
struct Faults {
    windows: Vec<FaultWindow>,
    /// Nodes out of the run after a disk fault.
    retired: BTreeSet<u64>,
    /// Disk damage the broker did not report.
    undetected: Vec<String>,
}

/// Applies seeded faults until `cfg.time` has passed; heals everything at the end.
async fn nemesis(
    cluster: &mut LocalCluster,
    net: Option<&crate::net::Net>,
    disks: &[(u64, crate::lazyfs::LazyFs)],
    cfg: &RunConfig,
    rec: &Recorder,
) -> Result<Faults, Failure> {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let ids: Vec<u64> = cluster.nodes.iter().map(|n| n.spec.id).collect();
    // Disk faults take their node out for good: at most a minority of every partition's
    // replicas (replication min(3, N)), so one node per run.
    let max_retired = (ids.len().min(3) - 1) / 2;
    let mut out = Faults {
        windows: Vec::new(),
        retired: BTreeSet::new(),
        undetected: Vec::new(),
    };
    let end = Instant::now() + cfg.time;
    // Let the workload get going first.
    tokio::time::sleep(Duration::from_secs(2).min(cfg.time / 4)).await;
    while Instant::now() + Duration::from_secs(3) < end {
        let kinds: Vec<Nemesis> = cfg
            .nemesis
            .iter()
            .copied()
            .filter(|k| *k != Nemesis::Disk || out.retired.len() < max_retired)
            .collect();
        if kinds.is_empty() {
            break;
        }
        let kind = kinds[rng.random_range(0..kinds.len())];
        let mut pool: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|id| !out.retired.contains(id))
            .collect();
        let n = ids.len();
        let count = match (kind, rng.random_range(0..4)) {
            (Nemesis::Disk, _) => 1,
            (Nemesis::Kill | Nemesis::Crash | Nemesis::Netem, 3) => n, // all
            (Nemesis::Kill | Nemesis::Crash, 2) => n / 2 + 1,          // a majority
            (_, 1) => (n - 1) / 2,                                     // a minority
            _ => 1,                                                    // one
        }
        .clamp(1, pool.len());
        const NETEM: [&str; 4] = [
            "delay 50ms 20ms",
            "loss 20%",
            "duplicate 25%",
            "delay 20ms reorder 30% 50%",
        ];
        let netem = NETEM[rng.random_range(0..NETEM.len())];
        let shape = match kind {
            Nemesis::Partition => {
                let mut shapes = vec!["isolate", "split", "one-way"];
                if pool.len() >= 3 {
                    shapes.push("bridge");
                }
                if pool.len() >= 4 {
                    shapes.push("ring");
                }
                shapes[rng.random_range(0..shapes.len())]
            }
            _ => "",
        };
        let mut victims = Vec::new();
        for _ in 0..count {
            victims.push(pool.remove(rng.random_range(0..pool.len())));
        }
        // Blackhole partitions work on every live node, in a random order.
        let mut blocked = Vec::new();
        let mut detail = match kind {
            Nemesis::Netem => netem.to_owned(),
            _ => shape.to_owned(),
        };
        if kind == Nemesis::Partition && shape != "isolate" {
            let mut order = victims.clone();
            order.extend(pool.iter().copied());
            for i in (1..order.len()).rev() {
                order.swap(i, rng.random_range(0..=i));
            }
            let (pairs, singled, text) = grudge(shape, &order);
            blocked = pairs;
            victims = singled;
            detail = text;
        }
        victims.sort_unstable();
        let start_s = rec.start.elapsed().as_secs_f64();
        if kind == Nemesis::Disk {
            let id = victims[0];
            let (text, detected) = disk_fault(cluster, id, &mut rng).await?;
            out.retired.insert(id);
            if !detected {
                out.undetected.push(format!("node {id}: {text}"));
            }
            detail = text;
        }
        for (from, to) in &blocked {
            if let Some(net) = net {
                net.block(*from, *to, true)?;
            }
        }
        let mut lost = crate::lazyfs::Dropped::default();
        for id in victims.iter().filter(|_| blocked.is_empty()) {
            match (kind, net) {
                (Nemesis::Crash, _) => {
                    cluster.kill(*id).await?;
                    if let Some((_, disk)) = disks.iter().find(|(d, _)| d == id) {
                        let dropped = disk.crash();
                        lost.files += dropped.files;
                        lost.bytes += dropped.bytes;
                    }
                }
                (Nemesis::Kill, _) => cluster.kill(*id).await?,
                (Nemesis::Pause, _) => cluster.pause(*id, true)?,
                (Nemesis::Partition, Some(net)) => net.isolate(*id, true)?,
                (Nemesis::Netem, Some(net)) => net.netem(*id, Some(netem))?,
                _ => {}
            }
        }
        if kind != Nemesis::Disk {
            tokio::time::sleep(Duration::from_millis(rng.random_range(1_000..3_000))).await;
        }
        for (from, to) in &blocked {
            if let Some(net) = net {
                net.block(*from, *to, false)?;
            }
        }
        if kind == Nemesis::Crash {
            detail = format!("lost {} unsynced bytes in {} files", lost.bytes, lost.files);
        }
        for id in victims.iter().filter(|_| blocked.is_empty()) {
            match (kind, net) {
                (Nemesis::Kill | Nemesis::Crash, _) => cluster.restart(*id)?,
                (Nemesis::Pause, _) => cluster.pause(*id, false)?,
                (Nemesis::Partition, Some(net)) => net.isolate(*id, false)?,
                (Nemesis::Netem, Some(net)) => net.netem(*id, None)?,
                _ => {}
            }
        }
        out.windows.push(FaultWindow {
            kind,
            detail,
            nodes: victims,
            start_s,
            end_s: rec.start.elapsed().as_secs_f64(),
        });
        tokio::time::sleep(Duration::from_millis(rng.random_range(2_000..4_000))).await;
    }
    let left = end.saturating_duration_since(Instant::now());
    tokio::time::sleep(left).await;
    Ok(out)
}

/// A network partition of `nodes` (in a random order) by `shape`: the (from, to) pairs
/// whose packets are dropped, the nodes it singles out, and a description.
fn grudge(shape: &str, nodes: &[u64]) -> (Vec<(u64, u64)>, Vec<u64>, String) {
    let both = |a: &[u64], b: &[u64]| -> Vec<(u64, u64)> {
        a.iter()
            .flat_map(|x| b.iter().flat_map(move |y| [(*x, *y), (*y, *x)]))
            .collect()
    };
    let minority = ((nodes.len() - 1) / 2).max(1);
    match shape {
        // The first nodes (a minority) on one side, the rest on the other.
        "split" => {
            let (small, big) = nodes.split_at(minority);
            let text = format!("split {small:?} | {big:?}");
            (both(small, big), small.to_vec(), text)
        }
        // Two sides that only the node between them hears.
        "bridge" => {
            let (left, rest) = nodes.split_at(minority);
            let (bridge, right) = rest.split_at(1);
            let text = format!("bridge {left:?} | {bridge:?} | {right:?}");
            (both(left, right), bridge.to_vec(), text)
        }
        // Every node hears only its two neighbours.
        "ring" => {
            let n = nodes.len();
            let mut pairs = Vec::new();
            for i in 0..n {
                for j in 0..n {
                    let d = (i + n - j) % n;
                    if d > 1 && d < n - 1 {
                        pairs.push((nodes[i], nodes[j]));
                    }
                }
            }
            (pairs, nodes.to_vec(), format!("ring {nodes:?}"))
        }
        // What the first node sends to the others is lost; what they send reaches it.
        _ => {
            let pairs = nodes[1..].iter().map(|to| (nodes[0], *to)).collect();
            let text = format!(
                "one-way: node {} cannot send to {:?}",
                nodes[0],
                &nodes[1..]
            );
            (pairs, vec![nodes[0]], text)
        }
    }
}

/// Damages one file of node `id`'s data while it is down, restarts it and waits until it
/// says so (it refuses to start, or takes the damaged replica out of service). Returns
/// what was done and seen, and whether it was detected. The node is retired either way.
async fn disk_fault(
    cluster: &mut LocalCluster,
    id: u64,
    rng: &mut ChaCha8Rng,
) -> Result<(String, bool), Failure> {
    cluster.kill(id).await?;
    let spec = cluster
        .nodes
        .iter()
        .find(|n| n.spec.id == id)
        .ok_or("no such node")?
        .spec
        .clone();
    let damage = damage_a_file(&spec.data_dir, rng)?;
    let log_from = std::fs::metadata(&spec.log).map_or(0, |m| m.len());
    cluster.restart(id)?;
    cluster.retire(id)?;
    let deadline = Instant::now() + DISK_DETECTION;
    loop {
        let exited = cluster.exit_status(id)?;
        let serving = exited.is_none()
            && paxlog_client::health::check(&spec.grpc, Duration::from_millis(500)).await
                == paxlog_client::health::Health::Serving;
        let log = std::fs::read(&spec.log).unwrap_or_default();
        let new = String::from_utf8_lossy(log.get(log_from as usize..).unwrap_or_default());
        if let Some(line) = new.lines().find(|l| l.contains("orrupt")) {
            let line: String = line.chars().take(300).collect();
            return Ok((format!("{damage}; detected: {}", line.trim()), true));
        }
        if let Some(status) = exited {
            let last = new
                .lines()
                .last()
                .unwrap_or("")
                .chars()
                .take(300)
                .collect::<String>();
            return Ok((
                format!("{damage}; the broker refused to start ({status}): {last}"),
                true,
            ));
        }
        if serving || Instant::now() > deadline {
            return Ok((
                format!("{damage}; NOT detected: the broker serves without reporting it"),
                false,
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How long a restarted broker may take to report damage.
const DISK_DETECTION: Duration = Duration::from_secs(30);

/// Flips 1-8 bytes of a table or blob file, write-ahead log or MANIFEST of `dir`, or cuts a
/// table or blob file short (a cut write-ahead log cannot be told from a crash in mid-write, so logs are
/// only flipped). Returns what it did.
fn damage_a_file(dir: &std::path::Path, rng: &mut ChaCha8Rng) -> Result<String, Failure> {
    let mut files: Vec<(PathBuf, u64)> = std::fs::read_dir(dir)?
        .filter_map(|e| {
            let path = e.ok()?.path();
            let name = path.file_name()?.to_str()?.to_owned();
            let len = std::fs::metadata(&path).ok()?.len();
            let kind = name.ends_with(".sst")
                || name.ends_with(".blob")
                || name.ends_with(".log")
                || name.starts_with("MANIFEST-");
            (kind && len > 16).then_some((path, len))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("no data file to damage in {}", dir.display()).into());
    }
    let tables: Vec<&(PathBuf, u64)> = files
        .iter()
        .filter(|(p, _)| p.extension().is_some_and(|e| e == "sst" || e == "blob"))
        .collect();
    let name = |p: &PathBuf| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    if !tables.is_empty() && rng.random_bool(0.4) {
        let (path, len) = tables[rng.random_range(0..tables.len())];
        let cut = rng.random_range(0..*len);
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)?
            .set_len(cut)?;
        return Ok(format!("cut {} from {len} to {cut} bytes", name(path)));
    }
    let (path, len) = &files[rng.random_range(0..files.len())];
    let n = rng.random_range(1..=8u64);
    let at = rng.random_range(0..len - n);
    let mut bytes = std::fs::read(path)?;
    for b in &mut bytes[at as usize..(at + n) as usize] {
        *b ^= rng.random_range(1..=255u8);
    }
    std::fs::write(path, bytes)?;
    Ok(format!(
        "flipped {n} bytes at {at} of {} ({len} bytes)",
        name(path)
    ))
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
        if let Err(e) = consumer.seek(TOPIC, p, Position::Latest).await {
            if e.server_code() == Some(paxlog_proto::v1::ErrorCode::UnknownTopic) {
                // The cluster forgot the topic (only a broken broker does): the final read
                // finds nothing, and the checker counts what that loses.
                eprintln!("paxlog-jepsen: the final read found no topic {TOPIC:?}: {e}");
                rec.record(100, OpType::Ok, Function::Assign, OpValue::default());
                return Ok(());
            }
            return Err(e.into());
        }
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
async fn replica_reads(
    client: &Client,
    rec: &Recorder,
    retired: &BTreeSet<u64>,
) -> Result<(), Failure> {
    use paxlog_proto::v1::{FetchRequest, consumer_client::ConsumerClient};
    let conn = client.connection();
    let meta = conn.metadata(DEADLINE).await?;
    let Some(topic) = meta.topics.get(TOPIC) else {
        return Ok(()); // forgotten: see final_read
    };
    for p in &topic.partitions {
        for node in p.replicas.iter().filter(|n| !retired.contains(n)) {
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
