//! `paxlog-bench failover`: how long a partition is unwritable after its leader dies.
//!
//! Starts its own local cluster (real broker processes, see
//! [`paxlog_client::cluster::LocalCluster`]), creates a one-partition topic and keeps
//! writers publishing to it, each one request at a time. Then, `kills` times: finds the
//! partition's leader, kill -9s it, and measures the time from the kill to the first
//! acknowledgement of a publish *sent after* the kill (a write in flight before it cannot
//! tell anything about the new leader); restarts the node and waits until the cluster is
//! whole and writes flow again before the next kill. The figure is what a producer sees:
//! election timeout, the new leader's phase 1, and the SDK finding the new leader.

use crate::load::stats::{Latency, LatencySummary};
use paxlog_client::Error;
use paxlog_client::cluster::{ClusterSpec, LocalCluster};
use paxlog_client::connection::{CallKind, ConnectOptions, Connection};
use paxlog_proto::v1::{self as pb, producer_client::ProducerClient};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Topic the benchmark creates in its own cluster.
const TOPIC: &str = "failover";
/// How long one kill may take to recover before the run gives up on it.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(30);
/// How long a restarted node may take to serve again.
const RESTART_DEADLINE: Duration = Duration::from_secs(60);
/// A writer's pause after a failed publish (so a dead cluster is not hammered).
const ERROR_PAUSE: Duration = Duration::from_millis(5);

/// What to run.
#[derive(Clone, Debug)]
pub struct FailoverConfig {
    /// Leader kills.
    pub kills: u32,
    /// Nodes of the cluster (3 or 5; the topic's replication is 3 either way).
    pub nodes: u16,
    /// Writers, each with one publish in flight.
    pub writers: usize,
    /// Deadline of one publish, the SDK's retries included.
    pub publish_timeout: Duration,
    /// The broker executable.
    pub broker_bin: PathBuf,
    /// Parent of the nodes' data directories and logs.
    pub data: PathBuf,
    /// Keep `data` at the end (the nodes' logs tell what each election did).
    pub keep_data: bool,
    /// gRPC port of node 1 (metrics: +2000).
    pub base_port: u16,
}

/// One kill.
#[derive(Clone, Debug, Serialize)]
pub struct Kill {
    /// The node killed (the partition's leader).
    pub node: u64,
    /// Kill to the first acknowledged publish sent after it, in milliseconds.
    pub unavailable_ms: f64,
    /// Publishes that failed (gave up or outcome unknown) during the kill's window.
    pub failed_publishes: u64,
}

/// The run's result.
#[derive(Clone, Debug, Serialize)]
pub struct FailoverReport {
    /// Nodes of the cluster.
    pub nodes: u16,
    /// Writers.
    pub writers: usize,
    /// Every kill, in order.
    pub kills: Vec<Kill>,
    /// Percentiles of `unavailable_ms` over the kills, in microseconds.
    pub unavailable: LatencySummary,
    /// Kills the cluster did not recover from within the deadline.
    pub not_recovered: u32,
}

impl FailoverReport {
    /// Human-readable lines.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for (i, k) in self.kills.iter().enumerate() {
            out.push_str(&format!(
                "kill {:>2}: leader node {} -> first acknowledged write after {:>7.1} ms ({} publishes failed meanwhile)\n",
                i + 1,
                k.node,
                k.unavailable_ms,
                k.failed_publishes
            ));
        }
        let ms = |us: u64| us as f64 / 1000.0;
        let u = &self.unavailable;
        out.push_str(&format!(
            "failover over {} leader kills ({} nodes, {} writers): p50 {:.1} ms  p90 {:.1}  p99 {:.1}  max {:.1}",
            u.count,
            self.nodes,
            self.writers,
            ms(u.p50_us),
            ms(u.p90_us),
            ms(u.p99_us),
            ms(u.max_us)
        ));
        if self.not_recovered > 0 {
            out.push_str(&format!(
                "\n{} kills not recovered within {} s",
                self.not_recovered,
                RECOVERY_DEADLINE.as_secs()
            ));
        }
        out
    }

    /// One JSON line.
    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What the writers saw: acknowledged publishes as (sent, acknowledged), and failures.
#[derive(Debug, Default)]
struct Acks {
    acked: Vec<(Instant, Instant)>,
    failed: Vec<Instant>,
}

impl Acks {
    /// The first acknowledgement of a publish sent at or after `since`.
    fn first_sent_after(&self, since: Instant) -> Option<Instant> {
        self.acked
            .iter()
            .filter(|(sent, _)| *sent >= since)
            .map(|(_, acked)| *acked)
            .min()
    }
}

/// Runs the benchmark; the cluster is stopped however it ends, and its data deleted unless
/// `keep_data`.
pub async fn run(cfg: &FailoverConfig) -> Result<FailoverReport, Error> {
    if cfg.kills == 0 || cfg.writers == 0 || cfg.nodes < 3 {
        return Err(Error::InvalidArgument(
            "failover needs --kills and --writers of at least 1 and --nodes of at least 3".into(),
        ));
    }
    let spec = ClusterSpec::new(
        cfg.nodes,
        cfg.base_port,
        cfg.data.clone(),
        cfg.broker_bin.clone(),
    )?;
    let mut cluster = LocalCluster::start(&spec).await?;
    let result = measure(cfg, &spec, &mut cluster).await;
    let _ = cluster.stop().await;
    if !cfg.keep_data {
        let _ = std::fs::remove_dir_all(&cfg.data);
    }
    result
}

async fn measure(
    cfg: &FailoverConfig,
    spec: &ClusterSpec,
    cluster: &mut LocalCluster,
) -> Result<FailoverReport, Error> {
    cluster.wait_ready(RESTART_DEADLINE).await?;
    let seeds: Vec<String> = spec.node_specs().into_iter().map(|n| n.grpc).collect();
    let conn = Arc::new(Connection::new(seeds, ConnectOptions::default())?);
    crate::load::topic::ensure(&conn, TOPIC, Some((1, 3)), RESTART_DEADLINE).await?;
    let acks = Arc::new(Mutex::new(Acks::default()));
    let mut writers = JoinSet::new();
    for _ in 0..cfg.writers {
        writers.spawn(write_forever(
            conn.clone(),
            acks.clone(),
            cfg.publish_timeout,
        ));
    }
    let mut kills = Vec::new();
    let mut latency = Latency::default();
    let mut not_recovered = 0;
    for _ in 0..cfg.kills {
        // Writes flow (through a settled leader) before each kill.
        let settled = Instant::now();
        wait_for(RECOVERY_DEADLINE, || lock(&acks).first_sent_after(settled)).await?;
        let leader = leader_of(spec).await?;
        let killed_at = Instant::now();
        cluster.kill(leader).await?;
        let first = wait_for(RECOVERY_DEADLINE, || {
            lock(&acks).first_sent_after(killed_at)
        })
        .await;
        match first {
            Ok(at) => {
                let unavailable = at.saturating_duration_since(killed_at);
                latency.record(unavailable);
                let failed = lock(&acks)
                    .failed
                    .iter()
                    .filter(|t| **t >= killed_at && **t <= at)
                    .count() as u64;
                kills.push(Kill {
                    node: leader,
                    unavailable_ms: unavailable.as_secs_f64() * 1000.0,
                    failed_publishes: failed,
                });
            }
            Err(_) => not_recovered += 1,
        }
        {
            let mut a = lock(&acks);
            a.acked.clear();
            a.failed.clear();
        }
        cluster.restart(leader)?;
        cluster.wait_ready(RESTART_DEADLINE).await?;
    }
    writers.abort_all();
    Ok(FailoverReport {
        nodes: cfg.nodes,
        writers: cfg.writers,
        kills,
        unavailable: latency.summary(),
        not_recovered,
    })
}

/// The partition's leader: the node that says it leads (asked directly, so a node with a
/// stale view cannot send the kill to a follower).
async fn leader_of(spec: &ClusterSpec) -> Result<u64, Error> {
    let deadline = Instant::now() + RECOVERY_DEADLINE;
    loop {
        for node in spec.node_specs() {
            let Ok(conn) = Connection::new(vec![node.grpc.clone()], ConnectOptions::default())
            else {
                continue;
            };
            let leader = conn
                .topic_metadata(TOPIC, Duration::from_secs(1))
                .await
                .ok()
                .and_then(|meta| meta.partitions.first().and_then(|p| p.leader));
            if leader == Some(node.id) {
                return Ok(node.id);
            }
        }
        if Instant::now() >= deadline {
            return Err(Error::InvalidArgument(format!(
                "no node says it leads {TOPIC}/0 after {} s",
                RECOVERY_DEADLINE.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn lock(acks: &Mutex<Acks>) -> MutexGuard<'_, Acks> {
    acks.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Polls `check` every millisecond until it gives a value or `limit` passes.
async fn wait_for<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Result<T, Error> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(Error::InvalidArgument(format!(
                "writes did not resume within {} s",
                limit.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// One writer: a small record at a time, for ever (aborted at the end).
async fn write_forever(conn: Arc<Connection>, acks: Arc<Mutex<Acks>>, timeout: Duration) {
    let kind = CallKind::Publish {
        topic: TOPIC.to_owned(),
        partition: 0,
    };
    let request = pb::PublishRequest {
        topic: TOPIC.to_owned(),
        partition: Some(0),
        records: vec![pb::Record {
            value: bytes::Bytes::from_static(b"failover"),
            ..pb::Record::default()
        }],
        ..pb::PublishRequest::default()
    };
    loop {
        let sent = Instant::now();
        let outcome = conn
            .call_leader(kind.clone(), timeout, |channel| {
                let request = request.clone();
                async move { ProducerClient::new(channel).publish(request).await }
            })
            .await;
        let at = Instant::now();
        let ok = outcome.is_ok();
        {
            let mut a = lock(&acks);
            if ok {
                a.acked.push((sent, at));
            } else {
                a.failed.push(at);
            }
        }
        if !ok {
            tokio::time::sleep(ERROR_PAUSE).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_publishes_sent_after_the_kill_count() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let acks = Acks {
            // Sent before the kill at 10 ms, acknowledged after it: not evidence.
            acked: vec![(ms(5), ms(12)), (ms(30), ms(45)), (ms(20), ms(50))],
            failed: Vec::new(),
        };
        assert_eq!(acks.first_sent_after(ms(10)), Some(ms(45)));
        assert_eq!(acks.first_sent_after(ms(31)), None);
    }
}
