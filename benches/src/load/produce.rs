//! `paxlog-bench produce`: producers × in-flight lanes publishing record batches of a fixed
//! size, round-robin over the topic's partitions, each to its leader.
//!
//! ```text
//!   producer 0 ── Connection ──┬─ lane 0: publish ─ack─ publish ─ack─ ...
//!                              └─ lane 1: publish ─ack─ publish ─ack─ ...  (--in-flight 2)
//!   producer 1 ── Connection ──┬─ ...
//! ```
//!
//! A lane has one publish outstanding at a time, so a producer has `--in-flight` outstanding
//! publishes pipelined on its connection. Publishes are not idempotent: a failure is counted
//! by kind and the lane moves on; the SDK retries only what cannot duplicate (a NOT_LEADER
//! answer, a broker it could not reach), never a write whose outcome is unknown.

use super::progress::Live;
use super::stats::{ErrorCounts, Latency};
use super::{Stop, Until, claim, now_ms, topic};
use bytes::Bytes;
use paxlog_client::Error;
use paxlog_client::connection::{CallKind, Connection};
use paxlog_proto::v1::{self as pb, producer_client::ProducerClient};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Pause of a lane after a failed publish, so a cluster that refuses everything is not
/// flooded (and the error counts stay readable).
const ERROR_PAUSE: Duration = Duration::from_millis(50);
/// Bytes of random data record values are cut from (distinct, incompressible values).
const PAYLOAD_POOL: usize = 4 << 20;

/// What `produce` does.
#[derive(Clone, Debug)]
pub struct ProduceConfig {
    /// Topic to publish to.
    pub topic: String,
    /// Partitions of the topic if it has to be created.
    pub partitions: u32,
    /// Replication factor of the topic if it has to be created.
    pub replication: u32,
    /// Producers, each with its own connection.
    pub producers: usize,
    /// Bytes of each record's value.
    pub record_size: usize,
    /// Records per publish.
    pub batch: usize,
    /// Publishes outstanding per producer.
    pub in_flight: usize,
    /// Target records per second over all producers; 0 is unlimited.
    pub rate: f64,
    /// When measuring stops.
    pub until: Until,
    /// Publishing before measuring starts (connections, caches, leaders warm up).
    pub warmup: Duration,
    /// Deadline of one publish, SDK retries included.
    pub timeout: Duration,
}

impl Default for ProduceConfig {
    fn default() -> Self {
        ProduceConfig {
            topic: "bench".to_owned(),
            partitions: 3,
            replication: 3,
            producers: 1,
            record_size: 1024,
            batch: 1,
            in_flight: 1,
            rate: 0.0,
            until: Until::Duration(Duration::from_secs(30)),
            warmup: Duration::from_secs(2),
            timeout: Duration::from_secs(15),
        }
    }
}

impl ProduceConfig {
    /// Checks the numbers make a run.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |what: &str| Err(Error::InvalidArgument(what.to_owned()));
        if self.producers == 0 || self.in_flight == 0 || self.batch == 0 {
            return bad("--producers, --in-flight and --batch must be at least 1");
        }
        if self.partitions == 0 || self.replication == 0 {
            return bad("--partitions and --replication must be at least 1");
        }
        if !self.rate.is_finite() || self.rate < 0.0 {
            return bad("--rate must be 0 (unlimited) or a positive number of records/s");
        }
        if self.until == Until::Count(0) || self.until == Until::Duration(Duration::ZERO) {
            return bad("--count and --duration must be more than 0");
        }
        Ok(())
    }

    /// All lanes of all producers.
    fn lanes(&self) -> usize {
        self.producers * self.in_flight
    }

    /// Time between two publishes of one lane under `--rate`.
    fn lane_interval(&self) -> Option<Duration> {
        (self.rate > 0.0)
            .then(|| Duration::from_secs_f64(self.lanes() as f64 * self.batch as f64 / self.rate))
    }
}

/// What a produce run measured (after the warmup).
#[derive(Clone, Debug, Default)]
pub struct ProduceOutcome {
    /// Partitions of the topic.
    pub partitions: u32,
    /// Whether the run created the topic.
    pub created_topic: bool,
    /// From the end of the warmup to the last measured acknowledgement.
    pub elapsed: Duration,
    /// Records acknowledged.
    pub records: u64,
    /// Value bytes acknowledged.
    pub bytes: u64,
    /// Publishes acknowledged.
    pub publishes: u64,
    /// Latency of each acknowledged publish.
    pub latency: Latency,
    /// Failed publishes, by kind.
    pub errors: ErrorCounts,
    /// Records of failed publishes (not acknowledged; some may be stored, see errors).
    pub failed_records: u64,
}

/// State every lane shares.
#[derive(Debug)]
struct Run {
    cfg: ProduceConfig,
    partitions: u32,
    payload: Bytes,
    /// When the warmup ends and measuring starts.
    measure_at: Instant,
    /// Records still to publish in a counted run.
    remaining: AtomicU64,
    live: Arc<Live>,
    stop: Stop,
}

/// What one lane measured.
#[derive(Debug, Default)]
struct LaneResult {
    outcome: ProduceOutcome,
    last_ack: Option<Instant>,
}

/// Creates the topic if needed, publishes until `cfg.until` (or `stop`), and returns the
/// measurements.
pub async fn run(
    seeds: &[String],
    cfg: &ProduceConfig,
    live: Arc<Live>,
    stop: Stop,
) -> Result<ProduceOutcome, Error> {
    cfg.validate()?;
    let admin = super::connect(seeds)?;
    let ready = topic::ensure(
        &admin,
        &cfg.topic,
        Some((cfg.partitions, cfg.replication)),
        cfg.timeout,
    )
    .await?;
    let start = Instant::now();
    let run = Arc::new(Run {
        cfg: cfg.clone(),
        partitions: ready.partitions,
        payload: payload_pool(cfg.record_size),
        measure_at: start + cfg.warmup,
        remaining: AtomicU64::new(match cfg.until {
            Until::Count(n) => n,
            Until::Duration(_) => u64::MAX,
        }),
        live,
        stop,
    });
    let mut lanes = JoinSet::new();
    for producer in 0..cfg.producers {
        let conn = super::connect(seeds)?;
        for lane in 0..cfg.in_flight {
            let index = producer * cfg.in_flight + lane;
            lanes.spawn(run_lane(run.clone(), conn.clone(), index, start));
        }
    }
    let mut total = ProduceOutcome {
        partitions: ready.partitions,
        created_topic: ready.created,
        ..ProduceOutcome::default()
    };
    let mut last_ack: Option<Instant> = None;
    while let Some(joined) = lanes.join_next().await {
        let Ok(lane) = joined else { continue };
        let o = lane.outcome;
        total.records += o.records;
        total.bytes += o.bytes;
        total.publishes += o.publishes;
        total.failed_records += o.failed_records;
        total.latency.merge(&o.latency);
        total.errors.merge(&o.errors);
        last_ack = last_ack.max(lane.last_ack);
    }
    total.elapsed = last_ack.map_or(Duration::ZERO, |at| {
        at.saturating_duration_since(run.measure_at)
    });
    Ok(total)
}

/// One lane: publishes one batch at a time until the run ends.
async fn run_lane(
    run: Arc<Run>,
    conn: Arc<Connection>,
    index: usize,
    start: Instant,
) -> LaneResult {
    let cfg = &run.cfg;
    let interval = cfg.lane_interval();
    // Lanes under --rate start spread over one interval, not all at once.
    let mut next_send = start
        + interval.map_or(Duration::ZERO, |iv| {
            iv.mul_f64(index as f64 / cfg.lanes() as f64)
        });
    let mut partition = u32::try_from(index).unwrap_or(0) % run.partitions;
    let mut cursor = index.wrapping_mul(cfg.batch);
    let end = match cfg.until {
        Until::Duration(d) => Some(run.measure_at + d),
        Until::Count(_) => None,
    };
    let mut result = LaneResult::default();
    while !run.stop.is_stopped() {
        let intended = match interval {
            Some(iv) => {
                tokio::time::sleep_until(next_send).await;
                let at = next_send;
                next_send += iv;
                at
            }
            None => Instant::now(),
        };
        let measured = Instant::now() >= run.measure_at;
        if end.is_some_and(|end| Instant::now() >= end) {
            break;
        }
        let count = if measured {
            claim(&run.remaining, cfg.batch as u64) as usize
        } else {
            cfg.batch
        };
        if count == 0 {
            break;
        }
        let records = records(&run.payload, cfg.record_size, count, &mut cursor);
        let outcome = publish(&conn, &cfg.topic, partition, records, cfg.timeout).await;
        let acked_at = Instant::now();
        partition = (partition + 1) % run.partitions;
        match outcome {
            Ok(()) => {
                run.live.add_records(count as u64);
                if measured {
                    let o = &mut result.outcome;
                    o.latency.record(acked_at - intended);
                    o.records += count as u64;
                    o.bytes += (count * cfg.record_size) as u64;
                    o.publishes += 1;
                    result.last_ack = Some(acked_at);
                }
            }
            Err(error) => {
                run.live.add_error();
                if measured {
                    result.outcome.errors.add(&error);
                    result.outcome.failed_records += count as u64;
                    result.last_ack = Some(acked_at);
                }
                tokio::time::sleep(ERROR_PAUSE).await;
            }
        }
    }
    result
}

/// One publish through the SDK, to the partition's leader.
async fn publish(
    conn: &Connection,
    topic: &str,
    partition: u32,
    records: Vec<pb::Record>,
    timeout: Duration,
) -> Result<(), Error> {
    let request = pb::PublishRequest {
        topic: topic.to_owned(),
        partition: Some(partition),
        records,
        ..pb::PublishRequest::default()
    };
    let kind = CallKind::Publish {
        topic: topic.to_owned(),
        partition,
    };
    conn.call_leader(kind, timeout, |channel| {
        // Record values are `Bytes`: a clone per attempt copies no payload.
        let request = request.clone();
        async move { ProducerClient::new(channel).publish(request).await }
    })
    .await
    .map(|_| ())
}

/// `count` records whose values are consecutive `size`-byte slices of the pool (zero-copy;
/// the pool is random, so values neither repeat within a batch nor compress).
fn records(pool: &Bytes, size: usize, count: usize, cursor: &mut usize) -> Vec<pb::Record> {
    let slots = (pool.len() / size.max(1)).max(1);
    let timestamp_ms = now_ms();
    (0..count)
        .map(|_| {
            let at = (*cursor % slots) * size;
            *cursor = cursor.wrapping_add(1);
            pb::Record {
                key: Bytes::new(),
                value: pool.slice(at..at + size),
                headers: Vec::new(),
                timestamp_ms,
            }
        })
        .collect()
}

/// Random bytes (splitmix64): at least [`PAYLOAD_POOL`] and at least one record.
fn payload_pool(record_size: usize) -> Bytes {
    let len = PAYLOAD_POOL.max(record_size);
    let mut state = 0x5EED_u64 ^ now_ms().unsigned_abs();
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_distinct_slices_of_the_pool() {
        let pool = payload_pool(1024);
        assert_eq!(pool.len(), PAYLOAD_POOL);
        let mut cursor = 0;
        let batch = records(&pool, 1024, 16, &mut cursor);
        assert_eq!(batch.len(), 16);
        assert!(batch.iter().all(|r| r.value.len() == 1024));
        assert_ne!(batch[0].value, batch[1].value);
        assert_eq!(cursor, 16);
        let big = payload_pool(8 << 20);
        assert_eq!(
            records(&big, 8 << 20, 2, &mut cursor)[1].value.len(),
            8 << 20
        );
    }

    #[test]
    fn rate_is_split_over_lanes() {
        let cfg = ProduceConfig {
            producers: 2,
            in_flight: 5,
            batch: 10,
            rate: 1000.0,
            ..ProduceConfig::default()
        };
        // 10 lanes share 1000 records/s: 100 records/s each, a batch of 10 every 100 ms.
        assert_eq!(cfg.lane_interval(), Some(Duration::from_millis(100)));
        assert_eq!(ProduceConfig::default().lane_interval(), None);
        assert!(
            ProduceConfig {
                rate: -1.0,
                ..cfg.clone()
            }
            .validate()
            .is_err()
        );
        assert!(
            ProduceConfig {
                batch: 0,
                ..cfg.clone()
            }
            .validate()
            .is_err()
        );
        assert!(cfg.validate().is_ok());
    }
}
