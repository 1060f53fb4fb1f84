//! `paxlog-bench consume`: consumers reading a topic's partitions with `Fetch`, measuring
//! records and bytes received, the latency of each fetch, and the age of each record when
//! it arrives (its end-to-end latency when reading live, `--from latest` while a producer
//! runs; how old the backlog is when draining it, `--from earliest`).
//!
//! ```text
//!   consumer c ── Connection ──┬─ partition p (p % consumers == c): Fetch ─▶ records ─▶ Fetch ...
//!                              └─ partition p + consumers: ...
//! ```
//!
//! Partitions are shared out like a consumer group's, each read by one consumer; a consumer
//! fetches its partitions concurrently. Without `--duration` or `--count`, every partition
//! is read up to the end it had when the run started (drain), then the run ends.

use super::progress::Live;
use super::stats::{ErrorCounts, Latency};
use super::{Stop, Until, claim, now_ms, topic};
use paxlog_client::Error;
use paxlog_client::cli::consume::StartFrom;
use paxlog_client::cli::topic::describe;
use paxlog_client::connection::{CallKind, Connection};
use paxlog_proto::v1::{self as pb, consumer_client::ConsumerClient};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Pause of a partition's reader after a failed fetch.
const ERROR_PAUSE: Duration = Duration::from_millis(100);

/// What `consume` does.
#[derive(Clone, Debug)]
pub struct ConsumeConfig {
    /// Topic to read.
    pub topic: String,
    /// Consumers, each with its own connection; partitions are shared out among them.
    pub consumers: usize,
    /// Where each partition is read from.
    pub from: StartFrom,
    /// When measuring stops; `None` reads each partition to the end it had at the start.
    pub until: Option<Until>,
    /// Reading before measuring starts.
    pub warmup: Duration,
    /// Most record bytes per fetch (0: the broker's default, 1 MiB).
    pub fetch_bytes: u32,
    /// Longest a fetch waits at the end of a partition for new records.
    pub max_wait: Duration,
    /// Deadline of one fetch, SDK retries included (the long-poll wait comes on top).
    pub timeout: Duration,
}

impl Default for ConsumeConfig {
    fn default() -> Self {
        ConsumeConfig {
            topic: "bench".to_owned(),
            consumers: 1,
            from: StartFrom::Earliest,
            until: None,
            warmup: Duration::ZERO,
            fetch_bytes: 0,
            max_wait: Duration::from_millis(500),
            timeout: Duration::from_secs(15),
        }
    }
}

impl ConsumeConfig {
    /// Checks the numbers make a run.
    pub fn validate(&self) -> Result<(), Error> {
        if self.consumers == 0 {
            return Err(Error::InvalidArgument(
                "--consumers must be at least 1".to_owned(),
            ));
        }
        if matches!(
            self.until,
            Some(Until::Count(0) | Until::Duration(Duration::ZERO))
        ) {
            return Err(Error::InvalidArgument(
                "--count and --duration must be more than 0".to_owned(),
            ));
        }
        Ok(())
    }
}

/// What a consume run measured (after the warmup).
#[derive(Clone, Debug, Default)]
pub struct ConsumeOutcome {
    /// Partitions of the topic.
    pub partitions: u32,
    /// From the end of the warmup to the last record received (or the end of a timed run).
    pub elapsed: Duration,
    /// Records received.
    pub records: u64,
    /// Key and value bytes received.
    pub bytes: u64,
    /// Fetches answered.
    pub fetches: u64,
    /// Latency of each answered fetch (includes long-poll waits at the end of a partition).
    pub fetch_latency: Latency,
    /// Age of each record on arrival: now − its `timestamp_ms` (millisecond clock).
    pub age: Latency,
    /// Records that were in the partitions but not read yet, at the end (by the last
    /// high watermark each fetch reported).
    pub behind: u64,
    /// Failed fetches, by kind.
    pub errors: ErrorCounts,
}

/// State every partition reader shares.
#[derive(Debug)]
struct Run {
    cfg: ConsumeConfig,
    measure_at: Instant,
    end: Option<Instant>,
    remaining: AtomicU64,
    live: Arc<Live>,
    stop: Stop,
}

/// Reads until `cfg.until` (or the ends seen at the start, or `stop`) and returns the
/// measurements.
pub async fn run(
    seeds: &[String],
    cfg: &ConsumeConfig,
    live: Arc<Live>,
    stop: Stop,
) -> Result<ConsumeOutcome, Error> {
    cfg.validate()?;
    let admin = super::connect(seeds)?;
    let ready = topic::ensure(&admin, &cfg.topic, None, cfg.timeout).await?;
    let start = Instant::now();
    let measure_at = start + cfg.warmup;
    let run = Arc::new(Run {
        cfg: cfg.clone(),
        measure_at,
        end: match cfg.until {
            Some(Until::Duration(d)) => Some(measure_at + d),
            _ => None,
        },
        remaining: AtomicU64::new(match cfg.until {
            Some(Until::Count(n)) => n,
            _ => u64::MAX,
        }),
        live,
        stop,
    });
    let connections = (0..cfg.consumers.min(ready.partitions as usize))
        .map(|_| super::connect(seeds))
        .collect::<Result<Vec<_>, _>>()?;
    let mut readers = JoinSet::new();
    for partition in 0..ready.partitions {
        let conn = connections[partition as usize % connections.len()].clone();
        readers.spawn(read_partition(run.clone(), conn, partition));
    }
    let mut total = ConsumeOutcome {
        partitions: ready.partitions,
        ..ConsumeOutcome::default()
    };
    let mut last_record: Option<Instant> = None;
    let mut first_error = None;
    while let Some(joined) = readers.join_next().await {
        let Ok(reader) = joined else { continue };
        let (o, last) = match reader {
            Ok(done) => done,
            Err(error) => {
                first_error.get_or_insert(error);
                continue;
            }
        };
        total.records += o.records;
        total.bytes += o.bytes;
        total.fetches += o.fetches;
        total.behind += o.behind;
        total.fetch_latency.merge(&o.fetch_latency);
        total.age.merge(&o.age);
        total.errors.merge(&o.errors);
        last_record = last_record.max(last);
    }
    if let Some(error) = first_error
        && total.records == 0
    {
        return Err(error);
    }
    let finished = match run.end {
        Some(end) if !run.stop.is_stopped() => Some(end),
        _ => last_record,
    };
    total.elapsed = finished.map_or(Duration::ZERO, |at| {
        at.saturating_duration_since(measure_at)
    });
    Ok(total)
}

/// Reads one partition; returns what it measured and when its last measured record came.
async fn read_partition(
    run: Arc<Run>,
    conn: Arc<Connection>,
    partition: u32,
) -> Result<(ConsumeOutcome, Option<Instant>), Error> {
    let cfg = &run.cfg;
    let kind = CallKind::Fetch {
        topic: cfg.topic.clone(),
        partition,
    };
    let view = describe(&conn, &cfg.topic, kind.clone(), cfg.timeout).await?;
    let (start, end) = view
        .partitions
        .iter()
        .find(|p| p.partition == partition)
        .map(|p| (p.log_start_offset, p.log_end_offset))
        .unwrap_or_default();
    let mut offset = match cfg.from {
        StartFrom::Earliest => start,
        StartFrom::Latest => end,
        StartFrom::Offset(offset) => offset.clamp(start, end),
    };
    let drain_to = cfg.until.is_none().then_some(end);
    let mut o = ConsumeOutcome::default();
    let mut last_record = None;
    let mut high_watermark = end;
    let budget = cfg.timeout + cfg.max_wait;
    let attempt = conn.options().read_timeout + cfg.max_wait;
    loop {
        if run.stop.is_stopped()
            || drain_to.is_some_and(|end| offset >= end)
            || run.end.is_some_and(|end| Instant::now() >= end)
        {
            break;
        }
        let request = pb::FetchRequest {
            topic: cfg.topic.clone(),
            partition,
            offset,
            max_wait_ms: u32::try_from(cfg.max_wait.as_millis()).unwrap_or(u32::MAX),
            min_bytes: 1,
            max_bytes: cfg.fetch_bytes,
        };
        let sent = Instant::now();
        let fetched = conn
            .call_leader_with(kind.clone(), budget, attempt, |channel| {
                let request = request.clone();
                async move { ConsumerClient::new(channel).fetch(request).await }
            })
            .await;
        let now = Instant::now();
        let measured = sent >= run.measure_at;
        let response = match fetched {
            Ok(response) => response,
            Err(error) => {
                run.live.add_error();
                if measured {
                    o.errors.add(&error);
                }
                tokio::time::sleep(ERROR_PAUSE).await;
                continue;
            }
        };
        high_watermark = response.high_watermark;
        let mut records = response.records;
        if let Some(end) = drain_to {
            records.retain(|r| r.offset < end);
        }
        let Some(last) = records.last() else {
            continue;
        };
        offset = last.offset + 1;
        run.live.add_records(records.len() as u64);
        if !measured {
            continue;
        }
        o.fetches += 1;
        o.fetch_latency.record(now - sent);
        let wanted = claim(&run.remaining, records.len() as u64);
        let arrived_ms = now_ms();
        for r in records.iter().take(wanted as usize) {
            let Some(record) = &r.record else { continue };
            o.records += 1;
            o.bytes += (record.key.len() + record.value.len()) as u64;
            let age_ms = arrived_ms.saturating_sub(record.timestamp_ms).max(0);
            o.age.record_us(age_ms.unsigned_abs().saturating_mul(1000));
        }
        if wanted > 0 {
            last_record = Some(now);
        }
        if wanted < records.len() as u64 {
            break;
        }
    }
    o.behind = high_watermark.saturating_sub(offset);
    Ok((o, last_record))
}
