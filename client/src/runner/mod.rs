//! The function runner (`paxlog runner`): a stateless process that runs every trigger of
//! the cluster. Run one or many; they share each trigger's partitions through its consumer
//! group (`trigger.<name>`), so a runner that dies is replaced by the others once its group
//! session times out.
//!
//! ```text
//!   every second: ListTriggers ─▶ start / stop / restart (settings changed) trigger tasks
//!   trigger task (task.rs): group consumer ─▶ Work (work.rs) ─▶ Invoker (invoke.rs)
//!                           concurrency from Scaler (scale.rs); metrics (metrics.rs)
//!   every 2 s: one status record per trigger to __trigger_status (what `trigger describe`
//!              shows: invocations, errors, last error, lag, concurrency per runner)
//! ```
//!
//! Delivery is at-least-once: a partition's committed offset only passes records whose
//! function call succeeded or that are stored in the dead-letter topic. Records of one key
//! are processed in offset order, one batch at a time; keyless records in any order.

pub mod invoke;
pub mod metrics;
pub mod redrive;
pub mod scale;
pub mod task;
pub mod work;

use crate::connection::Connection;
use crate::error::Error;
use crate::producer::{Producer, ProducerConfig, ProducerRecord};
use invoke::{Function, Invoker};
use metrics::RunnerMetrics;
use paxlog_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use work::RetryPolicy;

/// The internal topic runners report their per-trigger status to.
pub const STATUS_TOPIC: &str = "__trigger_status";
/// How often runners report.
pub const STATUS_EVERY: Duration = Duration::from_secs(2);

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A trigger's settings as a runner uses them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Name.
    pub name: String,
    /// Source topic.
    pub topic: String,
    /// The function.
    pub function: Function,
    /// Most records per call.
    pub batch_size: u32,
    /// Gathering window.
    pub batch_window: Duration,
    /// Start at the earliest record (else the latest) without a committed offset.
    pub start_earliest: bool,
    /// Retries, backoff, age limit, bisection.
    pub policy: RetryPolicy,
    /// Dead-letter topic.
    pub dead_letter_topic: String,
    /// Most calls in flight (over all runners' shares).
    pub concurrency_max: u32,
    /// Call timeout.
    pub function_timeout: Duration,
    /// Output topic.
    pub output_topic: Option<String>,
    /// Paused.
    pub paused: bool,
}

impl Settings {
    /// From a broker's answer (every field set there; defaults only guard old brokers).
    pub fn from_wire(t: &pb::Trigger) -> Settings {
        let function = match t.http_url.is_empty() {
            false => Function::Http(t.http_url.clone()),
            true => Function::Command(t.command.clone()),
        };
        let age = t.max_record_age_ms.unwrap_or(-1);
        let ms = |v: Option<u32>, d: u64| Duration::from_millis(v.map_or(d, u64::from));
        Settings {
            name: t.name.clone(),
            topic: t.topic.clone(),
            function,
            batch_size: t.batch_size.unwrap_or(100).max(1),
            batch_window: ms(t.batch_window_ms, 0),
            start_earliest: t.start_position.as_deref() == Some("earliest"),
            policy: RetryPolicy {
                max_retries: t.max_retries.unwrap_or(3),
                backoff: ms(t.retry_backoff_ms, 200),
                backoff_max: ms(t.retry_backoff_max_ms, 30_000),
                max_record_age: (age > 0).then(|| Duration::from_millis(age as u64)),
                bisect: t.bisect_on_error.unwrap_or(false),
            },
            dead_letter_topic: t
                .dead_letter_topic
                .clone()
                .unwrap_or_else(|| format!("{}.dlq", t.name)),
            concurrency_max: t.concurrency_max.unwrap_or(10).max(1),
            function_timeout: ms(t.function_timeout_ms, 30_000),
            output_topic: t.output_topic.clone().filter(|o| !o.is_empty()),
            paused: t.paused,
        }
    }

    /// The trigger's consumer group.
    pub fn group(&self) -> String {
        group_of(&self.name)
    }
}

/// The consumer group of trigger `name`.
pub fn group_of(name: &str) -> String {
    format!("trigger.{name}")
}

/// What one runner reports about one trigger (a record of [`STATUS_TOPIC`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// The runner's id.
    #[serde(default)]
    pub runner: String,
    /// Invocations since the runner started.
    pub invocations: u64,
    /// Invocations that failed (errors, not throttles).
    pub errors: u64,
    /// Invocations the function throttled.
    pub throttles: u64,
    /// Records processed successfully.
    pub records_done: u64,
    /// Records sent to the dead-letter topic.
    pub dead_letters: u64,
    /// The last failure.
    pub last_error: String,
    /// When it happened (ms since the epoch; 0: never).
    pub last_error_ms: i64,
    /// Records not processed yet in this runner's partitions.
    pub lag_records: u64,
    /// The concurrency target.
    pub concurrency: u32,
    /// Calls in flight.
    pub in_flight: u32,
    /// Partitions this runner owns.
    pub partitions: Vec<u32>,
    /// When this was reported (ms since the epoch).
    #[serde(default)]
    pub at_ms: i64,
}

/// Settings of a runner process.
#[derive(Clone, Debug)]
pub struct RunnerOptions {
    /// This runner's id in status records and logs.
    pub id: String,
    /// Where to serve `/metrics`, if anywhere.
    pub metrics_addr: Option<SocketAddr>,
    /// Run only these triggers (all when empty).
    pub only: Vec<String>,
}

struct Running {
    settings: Settings,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Runs triggers until `shutdown` resolves; then finishes calls in flight, commits and
/// leaves every trigger's group.
pub async fn run(
    conn: Arc<Connection>,
    opts: RunnerOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), Error> {
    let metrics = Arc::new(RunnerMetrics::new());
    if let Some(addr) = opts.metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Stream {
                action: "bind the runner's metrics address",
                source,
            })?;
        tracing::info!(%addr, "runner metrics on http://{addr}/metrics");
        tokio::spawn(metrics::serve(listener, metrics.clone()));
    }
    let producer = Producer::new(
        conn.clone(),
        ProducerConfig {
            linger: Duration::from_millis(1),
            ..ProducerConfig::default()
        },
    )?;
    let shared = Arc::new(task::Shared {
        conn: conn.clone(),
        producer: producer.clone(),
        invoker: Invoker::new(),
        runner: opts.id.clone(),
        metrics,
        stats: Default::default(),
    });
    ensure_status_topic(&conn).await;
    let mut running: BTreeMap<String, Running> = BTreeMap::new();
    let mut last_status = tokio::time::Instant::now();
    tokio::pin!(shutdown);
    loop {
        match crate::cli::trigger::list(&conn, Duration::from_secs(5)).await {
            Ok(triggers) => {
                let wanted: BTreeMap<String, Settings> = triggers
                    .iter()
                    .map(Settings::from_wire)
                    .filter(|s| !s.paused)
                    .filter(|s| opts.only.is_empty() || opts.only.contains(&s.name))
                    .map(|s| (s.name.clone(), s))
                    .collect();
                let stale: Vec<String> = running
                    .iter()
                    // A task that ended by itself (its group consumer gave up) starts again.
                    .filter(|(name, r)| {
                        wanted.get(*name) != Some(&r.settings) || r.task.is_finished()
                    })
                    .map(|(name, _)| name.clone())
                    .collect();
                for name in stale {
                    if let Some(r) = running.remove(&name) {
                        tracing::info!(trigger = %name, "stopping trigger (paused, deleted or changed)");
                        stop(r).await;
                    }
                }
                for (name, settings) in wanted {
                    if running.contains_key(&name) {
                        continue;
                    }
                    tracing::info!(trigger = %name, topic = %settings.topic, "starting trigger");
                    let (tx, rx) = watch::channel(false);
                    let task = tokio::spawn(task::run(shared.clone(), settings.clone(), rx));
                    running.insert(
                        name,
                        Running {
                            settings,
                            stop: tx,
                            task,
                        },
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list triggers; keeping the current ones"),
        }
        if last_status.elapsed() >= STATUS_EVERY {
            last_status = tokio::time::Instant::now();
            publish_status(&shared, &opts.id, &running).await;
        }
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    tracing::info!("runner stopping: finishing calls in flight");
    let names: Vec<String> = running.keys().cloned().collect();
    for name in &names {
        if let Some(r) = running.get(name) {
            let _ = r.stop.send(true);
        }
    }
    for name in names {
        if let Some(r) = running.remove(&name) {
            let _ = r.task.await;
        }
    }
    producer.close().await;
    Ok(())
}

async fn stop(r: Running) {
    let _ = r.stop.send(true);
    let _ = r.task.await;
}

/// Creates [`STATUS_TOPIC`] if it is missing (one partition, records kept a day).
pub async fn ensure_status_topic(conn: &Connection) {
    if conn
        .topic_metadata(STATUS_TOPIC, Duration::from_secs(5))
        .await
        .is_ok()
    {
        return;
    }
    let brokers = conn
        .metadata(Duration::from_secs(5))
        .await
        .map_or(1, |m| m.brokers.len().max(1) as u32);
    let request = crate::cli::topic::CreateTopic {
        name: STATUS_TOPIC.to_owned(),
        partitions: 1,
        replication: brokers.min(3),
        config: [("retention.ms".to_owned(), "86400000".to_owned())].into(),
    };
    let created = crate::cli::topic::create_if_missing(conn, request, Duration::from_secs(10));
    if let Err(e) = created.await {
        tracing::warn!(error = %e, "cannot create {STATUS_TOPIC}; status reports will fail");
    }
}

async fn publish_status(shared: &task::Shared, runner: &str, running: &BTreeMap<String, Running>) {
    let snapshot: Vec<(String, Stats)> = {
        let stats = shared.stats.lock().unwrap_or_else(|p| p.into_inner());
        running
            .keys()
            .map(|name| (name.clone(), stats.get(name).cloned().unwrap_or_default()))
            .collect()
    };
    for (name, mut st) in snapshot {
        st.runner = runner.to_owned();
        st.at_ms = now_ms();
        let value = serde_json::to_vec(&st).unwrap_or_default();
        let record = ProducerRecord::new(STATUS_TOPIC, value).key(name.into_bytes());
        // Fire and forget: a lost status report is replaced by the next one.
        if let Err(e) = shared.producer.send(record).await {
            tracing::debug!(error = %e, "status report not sent");
        }
    }
}
