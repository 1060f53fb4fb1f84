//! `paxlog produce TOPIC`: every input line becomes a record, published in batches to the
//! partition leaders.
//!
//! ```text
//!   stdin ─lines─▶ line_to_record ─▶ batch (full at --batch, or --linger-ms after the last line)
//!                                       │ split by partition: --partition, else hash of the key,
//!                                       │ else one partition per batch, round-robin
//!                                       ▼
//!                          Publish to each partition's leader (Connection::call_leader)
//!                                       │
//!                          one line per publish: partition, offsets, count
//! ```
//!
//! A line's value is the line without its `\n` (and `\r`). Empty lines are records with
//! an empty value. Publishes are idempotent by default (an identity from InitProducer and
//! per-partition sequences): a publish whose outcome is unknown (leader change mid-write)
//! is sent again and written at most once. With `--no-idempotence`, producing stops on an
//! unknown outcome and says so rather than risk a duplicate.

use super::{json_line, plural, write_line};
use crate::connection::Connection;
use crate::error::Error;
use crate::partitioner::partition_for_key;
use bytes::Bytes;
use paxlog_proto::v1 as pb;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// How a line's key is chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyMode {
    /// No key: the whole line is the value.
    None,
    /// The same key for every record (`--key K`).
    Fixed(Bytes),
    /// `KEY<sep>VALUE` per line, split at the first separator (`--key-separator SEP`).
    Separator(String),
}

/// What `produce` does.
#[derive(Clone, Debug)]
pub struct ProduceOptions {
    /// Topic name.
    pub topic: String,
    /// Every record to this partition, instead of by key or round-robin.
    pub partition: Option<u32>,
    /// How keys are chosen.
    pub keys: KeyMode,
    /// Most records per batch (at least 1).
    pub batch: usize,
    /// A partial batch is sent once no line arrived for this long.
    pub linger: Duration,
    /// JSON lines instead of text.
    pub json: bool,
    /// Deadline of each publish, retries included.
    pub timeout: Duration,
    /// Idempotent publishes (retries never duplicate).
    pub idempotent: bool,
}

/// Where one publish went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Published {
    /// The partition.
    pub partition: u32,
    /// Offset of its first record.
    pub base_offset: u64,
    /// Offset of its last record.
    pub last_offset: u64,
    /// Number of records.
    pub records: u64,
}

/// What a whole `produce` did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProduceSummary {
    /// Records written.
    pub records: u64,
    /// Publish requests that succeeded.
    pub publishes: u64,
    /// Records written per partition.
    pub partitions: BTreeMap<u32, u64>,
}

impl Published {
    /// `partition 1: offsets 10-19 (10 records)`, or one JSON object.
    pub fn render(&self, json: bool) -> String {
        if json {
            json_line(self)
        } else {
            format!(
                "partition {}: offsets {}-{} ({})",
                self.partition,
                self.base_offset,
                self.last_offset,
                plural(self.records, "record")
            )
        }
    }
}

impl ProduceSummary {
    /// `produced 100 records in 4 requests to "orders" (partition 0: 40, 1: 60)`.
    pub fn describe(&self, topic: &str) -> String {
        let per_partition: Vec<String> = self
            .partitions
            .iter()
            .map(|(p, n)| format!("{p}: {n}"))
            .collect();
        let detail = if per_partition.is_empty() {
            String::new()
        } else {
            format!(" (partition {})", per_partition.join(", "))
        };
        format!(
            "produced {} in {} to {topic:?}{detail}",
            plural(self.records, "record"),
            plural(self.publishes, "request")
        )
    }
}

/// Turns input line `line_no` (from 1, for messages) into a record. `line` has no `\n`; a
/// trailing `\r` is dropped too.
pub fn line_to_record(
    mut line: Vec<u8>,
    keys: &KeyMode,
    line_no: u64,
) -> Result<pb::Record, Error> {
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    let (key, value) = match keys {
        KeyMode::None => (Bytes::new(), Bytes::from(line)),
        KeyMode::Fixed(key) => (key.clone(), Bytes::from(line)),
        KeyMode::Separator(sep) => {
            let sep = sep.as_bytes();
            let at = line
                .windows(sep.len().max(1))
                .position(|w| w == sep)
                .filter(|_| !sep.is_empty())
                .ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "line {line_no} has no key separator {:?}: write KEY{0}VALUE",
                        String::from_utf8_lossy(sep)
                    ))
                })?;
            let line = Bytes::from(line);
            (line.slice(..at), line.slice(at + sep.len()..))
        }
    };
    Ok(pb::Record {
        key,
        value,
        headers: Vec::new(),
        timestamp_ms: 0,
    })
}

/// Reads lines from `input` until its end and publishes them; prints one line per publish
/// to `out`. On failure, the error says how many records were written before it.
pub async fn run<R>(
    conn: &Connection,
    opts: &ProduceOptions,
    input: R,
    out: &mut dyn Write,
) -> Result<ProduceSummary, Error>
where
    R: AsyncBufRead + Unpin,
{
    let topic = conn.topic_metadata(&opts.topic, opts.timeout).await?;
    let partitions = u32::try_from(topic.partitions.len()).unwrap_or(u32::MAX);
    if partitions == 0 {
        return Err(Error::InvalidArgument(format!(
            "topic {:?} has no partitions",
            opts.topic
        )));
    }
    if let Some(p) = opts.partition
        && p >= partitions
    {
        return Err(Error::InvalidArgument(format!(
            "--partition {p}: topic {:?} has partitions 0 to {}",
            opts.topic,
            partitions - 1
        )));
    }
    let identity = match opts.idempotent {
        true => Some(crate::producer::init_producer(conn, opts.timeout).await?),
        false => None,
    };
    let mut producer = Producer {
        conn,
        opts,
        identity,
        sequences: BTreeMap::new(),
        partitions,
        // Start the round-robin at a different partition per process, spreading small runs.
        next_round_robin: std::process::id() % partitions,
        summary: ProduceSummary::default(),
    };
    let result = producer.read_and_publish(input, out).await;
    let summary = producer.summary;
    match result {
        Ok(()) => Ok(summary),
        Err(error) if summary.records == 0 => Err(error),
        Err(error) => Err(Error::Incomplete {
            done: format!("{} records were written before it", summary.records),
            error: Box::new(error),
        }),
    }
}

struct Producer<'a> {
    conn: &'a Connection,
    opts: &'a ProduceOptions,
    /// The idempotent producer id and epoch.
    identity: Option<(u64, u32)>,
    /// The next sequence per partition.
    sequences: BTreeMap<u32, u64>,
    partitions: u32,
    next_round_robin: u32,
    summary: ProduceSummary,
}

impl Producer<'_> {
    async fn read_and_publish<R>(&mut self, input: R, out: &mut dyn Write) -> Result<(), Error>
    where
        R: AsyncBufRead + Unpin,
    {
        let mut lines = input.split(b'\n');
        let mut batch = Vec::new();
        let mut line_no = 0u64;
        loop {
            // Waiting for the first line of a batch has no limit; later lines have
            // `linger` to arrive before the partial batch goes out. `next_segment` is
            // cancellation safe: a timed-out read loses no bytes.
            let next = if batch.is_empty() {
                Some(lines.next_segment().await)
            } else {
                tokio::time::timeout(self.opts.linger, lines.next_segment())
                    .await
                    .ok()
            };
            match next {
                None => self.publish_batch(std::mem::take(&mut batch), out).await?,
                Some(Err(source)) => {
                    return Err(Error::Stream {
                        action: "read stdin",
                        source,
                    });
                }
                Some(Ok(None)) => {
                    return self.publish_batch(batch, out).await;
                }
                Some(Ok(Some(line))) => {
                    line_no += 1;
                    match line_to_record(line, &self.opts.keys, line_no) {
                        Ok(record) => batch.push(record),
                        Err(error) => {
                            // Every line before the bad one is written, none after it.
                            self.publish_batch(std::mem::take(&mut batch), out).await?;
                            return Err(error);
                        }
                    }
                    if batch.len() >= self.opts.batch.max(1) {
                        self.publish_batch(std::mem::take(&mut batch), out).await?;
                    }
                }
            }
        }
    }

    /// Splits a batch by partition (keeping each partition's records in input order) and
    /// publishes each part to its leader.
    async fn publish_batch(
        &mut self,
        batch: Vec<pb::Record>,
        out: &mut dyn Write,
    ) -> Result<(), Error> {
        if batch.is_empty() {
            return Ok(());
        }
        let round_robin = self.next_round_robin;
        self.next_round_robin = (round_robin + 1) % self.partitions;
        let mut parts: BTreeMap<u32, Vec<pb::Record>> = BTreeMap::new();
        for record in batch {
            let partition = match self.opts.partition {
                Some(p) => p,
                None if !record.key.is_empty() => partition_for_key(&record.key, self.partitions),
                None => round_robin,
            };
            parts.entry(partition).or_default().push(record);
        }
        for (partition, records) in parts {
            let published = self.publish(partition, records).await?;
            self.summary.records += published.records;
            self.summary.publishes += 1;
            *self.summary.partitions.entry(partition).or_default() += published.records;
            write_line(out, &published.render(self.opts.json))?;
        }
        Ok(())
    }

    async fn publish(
        &mut self,
        partition: u32,
        records: Vec<pb::Record>,
    ) -> Result<Published, Error> {
        let count = records.len() as u64;
        let (producer_id, producer_epoch) = self.identity.unwrap_or((0, 0));
        let base_sequence = self.sequences.get(&partition).copied().unwrap_or(0);
        let request = pb::PublishRequest {
            topic: self.opts.topic.clone(),
            partition: Some(partition),
            records,
            timeout_ms: 0,
            producer_id,
            producer_epoch,
            base_sequence: if producer_id == 0 { 0 } else { base_sequence },
        };
        let deadline = tokio::time::Instant::now() + self.opts.timeout;
        let response = crate::producer::publish_until(self.conn, &request, deadline, false)
            .await?
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "partition {partition}: the broker reports this batch written long ago (DUPLICATE_SEQUENCE); its offsets are unknown"
                ))
            })?;
        self.sequences.insert(partition, base_sequence + count);
        Ok(Published {
            partition: response.partition,
            base_offset: response.base_offset,
            last_offset: response.last_offset,
            records: count,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(line: &str, keys: &KeyMode) -> Result<pb::Record, Error> {
        line_to_record(line.as_bytes().to_vec(), keys, 7)
    }

    #[test]
    fn lines_become_values_without_line_endings() {
        let r = record("hello world\r", &KeyMode::None).expect("record");
        assert_eq!(r.value, "hello world");
        assert!(r.key.is_empty());
        let r = record("", &KeyMode::None).expect("empty line");
        assert!(r.value.is_empty());
    }

    #[test]
    fn fixed_key_applies_to_every_line() {
        let keys = KeyMode::Fixed(Bytes::from_static(b"user-1"));
        let r = record("a=b", &keys).expect("record");
        assert_eq!(
            (r.key.as_ref(), r.value.as_ref()),
            (&b"user-1"[..], &b"a=b"[..])
        );
    }

    #[test]
    fn separator_splits_at_the_first_occurrence() {
        let keys = KeyMode::Separator("::".into());
        let r = record("k1::v::with::seps", &keys).expect("record");
        assert_eq!(
            (r.key.as_ref(), r.value.as_ref()),
            (&b"k1"[..], &b"v::with::seps"[..])
        );
        let r = record("::no key", &keys).expect("empty key");
        assert_eq!(
            (r.key.as_ref(), r.value.as_ref()),
            (&b""[..], &b"no key"[..])
        );
        let r = record("tab\tsep", &KeyMode::Separator("\t".into())).expect("tab");
        assert_eq!(r.key, "tab");
    }

    #[test]
    fn a_line_without_separator_is_an_error_naming_the_line() {
        let err =
            record("no separator here", &KeyMode::Separator("|".into())).expect_err("missing");
        assert!(err.to_string().contains("line 7"), "{err}");
        assert!(err.to_string().contains("\"|\""), "{err}");
        assert!(record("x", &KeyMode::Separator(String::new())).is_err());
    }

    #[test]
    fn output_shapes() {
        let p = Published {
            partition: 1,
            base_offset: 10,
            last_offset: 19,
            records: 10,
        };
        assert_eq!(p.render(false), "partition 1: offsets 10-19 (10 records)");
        let json: serde_json::Value = serde_json::from_str(&p.render(true)).expect("JSON");
        assert_eq!(
            json,
            serde_json::json!({"partition": 1, "base_offset": 10, "last_offset": 19, "records": 10})
        );
        let summary = ProduceSummary {
            records: 100,
            publishes: 4,
            partitions: [(0, 40), (1, 60)].into(),
        };
        assert_eq!(
            summary.describe("orders"),
            "produced 100 records in 4 requests to \"orders\" (partition 0: 40, 1: 60)"
        );
    }
}
