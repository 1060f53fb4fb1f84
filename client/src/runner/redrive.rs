//! `paxlog trigger redrive NAME`: replays a trigger's dead-letter topic into its function.
//!
//! Reads the dead-letter topic as group `trigger.<name>.redrive` from its committed offsets
//! up to the end as it was when the redrive started, rebuilds each original record (its
//! topic, partition, offset, timestamp and headers, from the dead-letter headers, so the
//! function sees the same ids as before), calls the function in batches with the trigger's
//! retries, and dead-letters again what still fails. Then commits, so the next redrive
//! starts after these records.

use super::invoke::{Invoker, encode_batch};
use super::task::{dlq_headers as h, send_dead_letter};
use super::work::{Outcome, Pending};
use super::{Settings, group_of};
use crate::connection::Connection;
use crate::consumer::{ConsumedRecord, Consumer, ConsumerConfig, OffsetReset};
use crate::error::Error;
use crate::producer::{Producer, ProducerConfig};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Most throttled answers in a row before a redrive gives a batch up.
const MAX_THROTTLES: u32 = 20;

/// What a redrive did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RedriveSummary {
    /// Dead letters read.
    pub read: u64,
    /// Records the function now processed.
    pub succeeded: u64,
    /// Records that failed again and went back to the dead-letter topic.
    pub dead_again: u64,
}

/// The original record of a dead letter (its own coordinates when headers are missing).
pub fn original(dead: ConsumedRecord) -> Pending {
    let header = |name: &str| {
        dead.headers
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    let attempts = header(h::ATTEMPTS)
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    let error = header(h::ERROR).unwrap_or_default();
    let record = ConsumedRecord {
        topic: header(h::TOPIC).unwrap_or_else(|| dead.topic.clone()),
        partition: header(h::PARTITION)
            .and_then(|p| p.parse().ok())
            .unwrap_or(dead.partition),
        offset: header(h::OFFSET)
            .and_then(|o| o.parse().ok())
            .unwrap_or(dead.offset),
        timestamp_ms: header(h::TIMESTAMP)
            .and_then(|t| t.parse().ok())
            .unwrap_or(dead.timestamp_ms),
        headers: dead
            .headers
            .iter()
            .filter(|(k, _)| !k.starts_with("paxlog."))
            .cloned()
            .collect(),
        key: dead.key,
        value: dead.value,
    };
    let mut p = Pending::new(record);
    p.attempts = attempts;
    p.last_error = error;
    p
}

/// Redrives `settings`' dead-letter topic; see the module docs.
pub async fn redrive(conn: Arc<Connection>, settings: &Settings) -> Result<RedriveSummary, Error> {
    let dlq = &settings.dead_letter_topic;
    let partitions = conn
        .topic_metadata(dlq, Duration::from_secs(30))
        .await?
        .partitions
        .len() as u32;
    let mut consumer = Consumer::new(
        conn.clone(),
        ConsumerConfig {
            group: Some(format!("{}.redrive", group_of(&settings.name))),
            auto_offset_reset: OffsetReset::Earliest,
            auto_commit: false,
            ..ConsumerConfig::default()
        },
    );
    consumer.assign(dlq, 0..partitions);
    let producer = Producer::new(conn, ProducerConfig::default())?;
    let invoker = Invoker::new();
    let mut summary = RedriveSummary::default();
    // Each partition's end when first seen: records dead-lettered again land after it.
    let mut caps: BTreeMap<u32, u64> = BTreeMap::new();
    loop {
        let records = consumer.poll(Duration::from_millis(500)).await?;
        for p in 0..partitions {
            if let Some(end) = consumer.end_offset(dlq, p) {
                caps.entry(p).or_insert(end);
            }
        }
        let batch: Vec<Pending> = records
            .into_iter()
            .filter(|r| caps.get(&r.partition).is_some_and(|c| r.offset < *c))
            .map(original)
            .collect();
        summary.read += batch.len() as u64;
        for chunk in batch.chunks(settings.batch_size as usize) {
            let failed = call_with_retries(&invoker, settings, chunk.to_vec()).await;
            summary.succeeded += (chunk.len() - failed.len()) as u64;
            summary.dead_again += failed.len() as u64;
            for p in failed {
                send_dead_letter(&producer, &settings.name, dlq, &p).await?;
            }
        }
        let done = (0..partitions).all(|p| {
            let cap = caps.get(&p);
            let pos = consumer.position(dlq, p);
            matches!((cap, pos), (Some(c), Some(o)) if o >= *c)
        });
        if done {
            break;
        }
    }
    let commit: Vec<_> = caps.iter().map(|(p, c)| ((dlq.clone(), *p), *c)).collect();
    consumer.commit_offsets(&commit).await?;
    consumer.close().await?;
    producer.close().await;
    Ok(summary)
}

/// Calls the function until every record succeeded or ran out of attempts; returns those
/// that did, with their attempts and last error.
async fn call_with_retries(
    invoker: &Invoker,
    s: &Settings,
    mut left: Vec<Pending>,
) -> Vec<Pending> {
    for p in &mut left {
        p.attempts = 0;
    }
    let mut throttles = 0;
    let mut failed_for_good = Vec::new();
    while !left.is_empty() {
        let body = encode_batch(&s.name, "redrive", &left);
        let answer = invoker
            .call(&s.name, &s.function, body, s.function_timeout)
            .await;
        let mut retry = Vec::new();
        match answer.outcome {
            Outcome::Ok { failed } => {
                for mut p in left {
                    if failed.contains(&p.id()) {
                        p.attempts += 1;
                        p.last_error = "the function reported this record as failed".into();
                        retry.push(p);
                    }
                }
            }
            Outcome::Error(e) => {
                for mut p in left {
                    p.attempts += 1;
                    p.last_error = e.clone();
                    retry.push(p);
                }
            }
            Outcome::Throttled(e) => {
                throttles += 1;
                for mut p in left {
                    p.last_error = e.clone();
                    if throttles > MAX_THROTTLES {
                        p.attempts += 1;
                    }
                    retry.push(p);
                }
            }
        }
        let (out, again): (Vec<Pending>, Vec<Pending>) = retry
            .into_iter()
            .partition(|p| p.attempts > s.policy.max_retries || throttles > MAX_THROTTLES);
        failed_for_good.extend(out);
        left = again;
        if !left.is_empty() {
            let attempt = left.iter().map(|p| p.attempts).max().unwrap_or(1);
            let wait = s.policy.backoff_ceiling(attempt.max(1));
            tokio::time::sleep(wait).await;
        }
    }
    failed_for_good
}
