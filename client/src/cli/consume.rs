//! `paxlog consume TOPIC`: reads records from one or all partitions and prints them.
//!
//! ```text
//!   start offsets: DescribeTopic at each partition's replica (leader first)
//!        │  earliest = log start, latest = log end, or a given offset
//!        ▼
//!   one task per partition: Fetch (long-poll) from a replica ──▶ bounded channel ──▶ print
//!        │  without --follow a task stops at the log end seen at the start
//!        └─ --max N stops everything after N records
//! ```
//!
//! Text output: one tab-separated line per record, `partition offset key value`, key and
//! value as escaped UTF-8 (see [`escape_text`]). JSON output: one object per line,
//! `{"partition","offset","timestamp_ms","key","value"}` (+ `key_base64`/`value_base64` for
//! bytes that are not UTF-8, `headers` when there are any; see [`super`]). Records of one
//! partition come in offset order; partitions interleave.

use super::{JsonBytes, escape_text, json_line, topic, write_line};
use crate::connection::{CallKind, Connection};
use crate::error::Error;
use paxlog_proto::v1::{self as pb, consumer_client::ConsumerClient};
use serde::Serialize;
use std::io::Write;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Batches buffered between the fetching tasks and the printer.
const CHANNEL_BATCHES: usize = 8;

/// Where reading starts in each partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartFrom {
    /// The oldest retained record.
    Earliest,
    /// The end: only records written from now on.
    Latest,
    /// This offset, in every partition read.
    Offset(u64),
}

impl FromStr for StartFrom {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "earliest" => Ok(StartFrom::Earliest),
            "latest" => Ok(StartFrom::Latest),
            _ => s.parse().map(StartFrom::Offset).map_err(|_| {
                format!("{s:?} is not earliest, latest or an offset (a number from 0)")
            }),
        }
    }
}

/// What `consume` does.
#[derive(Clone, Debug)]
pub struct ConsumeOptions {
    /// Topic name.
    pub topic: String,
    /// Only this partition; all partitions if `None`.
    pub partition: Option<u32>,
    /// Where to start.
    pub from: StartFrom,
    /// Stop after this many records.
    pub max: Option<u64>,
    /// Keep waiting for new records instead of stopping at the end.
    pub follow: bool,
    /// JSON lines instead of text.
    pub json: bool,
    /// Longest time one fetch waits for new records (long-poll).
    pub max_wait: Duration,
    /// Deadline of each request, retries included.
    pub timeout: Duration,
}

/// A record as JSON (a `consume --json` line, and each record of a function's batch); see
/// the module docs of [`super`] for the bytes rule.
#[derive(Serialize)]
pub(crate) struct RecordJson {
    partition: u32,
    offset: u64,
    timestamp_ms: i64,
    key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_base64: Option<String>,
    value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_base64: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    headers: Vec<HeaderJson>,
}

/// A record header in JSON.
#[derive(Serialize)]
struct HeaderJson {
    key: String,
    value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_base64: Option<String>,
}

impl RecordJson {
    /// A record's JSON form (an empty key is none).
    pub(crate) fn new<'a>(
        partition: u32,
        offset: u64,
        timestamp_ms: i64,
        key: &[u8],
        value: &[u8],
        headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> RecordJson {
        let key = (!key.is_empty()).then(|| JsonBytes::new(key));
        let value = JsonBytes::new(value);
        RecordJson {
            partition,
            offset,
            timestamp_ms,
            key_base64: key.as_ref().and_then(|k| k.base64.clone()),
            key: key.map(|k| k.text),
            value: value.text,
            value_base64: value.base64,
            headers: headers
                .into_iter()
                .map(|(k, v)| {
                    let value = JsonBytes::new(v);
                    HeaderJson {
                        key: k.to_owned(),
                        value: value.text,
                        value_base64: value.base64,
                    }
                })
                .collect(),
        }
    }
}

/// A record as printed: a tab-separated text line, or one JSON object.
pub fn render_record(partition: u32, record: &pb::StoredRecord, json: bool) -> String {
    let stored = record.record.clone().unwrap_or_default();
    if !json {
        return format!(
            "{partition}\t{}\t{}\t{}",
            record.offset,
            escape_text(&stored.key),
            escape_text(&stored.value)
        );
    }
    json_line(&RecordJson::new(
        partition,
        record.offset,
        stored.timestamp_ms,
        &stored.key,
        &stored.value,
        stored
            .headers
            .iter()
            .map(|h| (h.key.as_str(), h.value.as_ref())),
    ))
}

/// What a partition task sends to the printer.
enum Item {
    Records(u32, Vec<pb::StoredRecord>),
    Failed(Error),
}

/// Reads and prints until `--max`, the end (without `--follow`), or a failure; returns the
/// number of records printed.
pub async fn run(
    conn: Arc<Connection>,
    opts: &ConsumeOptions,
    out: &mut dyn Write,
) -> Result<u64, Error> {
    let meta = conn.topic_metadata(&opts.topic, opts.timeout).await?;
    let count = u32::try_from(meta.partitions.len()).unwrap_or(u32::MAX);
    let partitions: Vec<u32> = match opts.partition {
        Some(p) if p >= count => {
            return Err(Error::InvalidArgument(format!(
                "--partition {p}: topic {:?} has partitions 0 to {}",
                opts.topic,
                count.saturating_sub(1)
            )));
        }
        Some(p) => vec![p],
        None => (0..count).collect(),
    };
    if opts.max == Some(0) {
        return Ok(0);
    }

    let (tx, mut rx) = mpsc::channel(CHANNEL_BATCHES);
    let mut tasks = JoinSet::new();
    for partition in partitions {
        let (conn, opts, tx) = (conn.clone(), opts.clone(), tx.clone());
        tasks.spawn(async move {
            if let Err(error) = read_partition(&conn, &opts, partition, &tx).await {
                // The printer may be gone already (--max reached): nothing to report then.
                let _ = tx.send(Item::Failed(error)).await;
            }
        });
    }
    // The channel closes when every task has finished and dropped its sender.
    drop(tx);

    let mut printed = 0u64;
    let result = loop {
        let Some(item) = rx.recv().await else {
            break Ok(printed);
        };
        let (partition, records) = match item {
            Item::Records(partition, records) => (partition, records),
            Item::Failed(error) => break Err(error),
        };
        let mut done = false;
        for record in &records {
            write_line(out, &render_record(partition, record, opts.json))?;
            printed += 1;
            if opts.max.is_some_and(|max| printed >= max) {
                done = true;
                break;
            }
        }
        if done {
            break Ok(printed);
        }
    };
    tasks.abort_all();
    match result {
        Err(error) if printed > 0 => Err(Error::Incomplete {
            done: format!("{printed} records were printed before it"),
            error: Box::new(error),
        }),
        other => other,
    }
}

/// Fetches one partition from its start offset, sending batches to the printer, until the
/// end seen at the start (unless following) or until the printer stops listening.
async fn read_partition(
    conn: &Connection,
    opts: &ConsumeOptions,
    partition: u32,
    tx: &mpsc::Sender<Item>,
) -> Result<(), Error> {
    let replica = CallKind::Fetch {
        topic: opts.topic.clone(),
        partition,
    };
    let view = topic::describe(conn, &opts.topic, replica.clone(), opts.timeout).await?;
    let bounds = view
        .partitions
        .iter()
        .find(|p| p.partition == partition)
        .map(|p| (p.log_start_offset, p.log_end_offset))
        .unwrap_or_default();
    let (start, end) = bounds;
    let mut offset = match opts.from {
        StartFrom::Earliest => start,
        StartFrom::Latest => end,
        StartFrom::Offset(offset) if (start..=end).contains(&offset) => offset,
        StartFrom::Offset(offset) => {
            return Err(Error::InvalidArgument(format!(
                "--from {offset}: partition {partition} of {:?} holds offsets {start} to {end} (exclusive); start within them, or use --from earliest|latest",
                opts.topic
            )));
        }
    };
    let budget = opts.timeout + opts.max_wait;
    // A fetch waits up to max_wait on purpose; only a silence beyond that is a failure.
    let attempt = conn.options().read_timeout + opts.max_wait;
    loop {
        if !opts.follow && offset >= end {
            return Ok(());
        }
        let request = pb::FetchRequest {
            topic: opts.topic.clone(),
            partition,
            offset,
            max_wait_ms: u32::try_from(opts.max_wait.as_millis()).unwrap_or(u32::MAX),
            min_bytes: 1,
            max_bytes: 0,
        };
        let response = conn
            .call_leader_with(replica.clone(), budget, attempt, |channel| {
                let request = request.clone();
                async move { ConsumerClient::new(channel).fetch(request).await }
            })
            .await?;
        let mut records = response.records;
        if !opts.follow {
            records.retain(|r| r.offset < end);
        }
        let Some(last) = records.last() else {
            continue;
        };
        offset = last.offset + 1;
        if tx.send(Item::Records(partition, records)).await.is_err() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn stored(offset: u64, key: &'static [u8], value: &'static [u8]) -> pb::StoredRecord {
        pb::StoredRecord {
            offset,
            record: Some(pb::Record {
                key: Bytes::from_static(key),
                value: Bytes::from_static(value),
                headers: vec![],
                timestamp_ms: 1_700_000_000_000,
            }),
        }
    }

    #[test]
    fn start_positions_parse() {
        assert_eq!("earliest".parse(), Ok(StartFrom::Earliest));
        assert_eq!("latest".parse(), Ok(StartFrom::Latest));
        assert_eq!("42".parse(), Ok(StartFrom::Offset(42)));
        let err = "-1".parse::<StartFrom>().expect_err("negative");
        assert!(err.contains("earliest, latest or an offset"), "{err}");
        assert!("first".parse::<StartFrom>().is_err());
    }

    #[test]
    fn text_lines_are_tab_separated_and_escaped() {
        assert_eq!(
            render_record(2, &stored(7, b"k", b"a\tb"), false),
            "2\t7\tk\ta\\tb"
        );
        assert_eq!(render_record(0, &stored(0, b"", b"v"), false), "0\t0\t\tv");
    }

    #[test]
    fn json_lines_carry_text_and_base64_only_when_needed() {
        let line = render_record(1, &stored(5, b"user-1", b"hello"), true);
        assert!(line.starts_with(r#"{"partition":1,"offset":5,"#), "{line}");
        let json: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(
            json,
            serde_json::json!({"partition": 1, "offset": 5, "timestamp_ms": 1_700_000_000_000_i64,
                               "key": "user-1", "value": "hello"})
        );
        let mut binary = stored(6, b"", &[0xff, 0x00]);
        if let Some(r) = binary.record.as_mut() {
            r.headers.push(pb::Header {
                key: "trace".into(),
                value: Bytes::from_static(b"abc"),
            });
        }
        let json: serde_json::Value =
            serde_json::from_str(&render_record(1, &binary, true)).expect("JSON");
        assert_eq!(json["key"], serde_json::Value::Null);
        assert_eq!(json["value"], "\u{fffd}\u{0}");
        assert_eq!(json["value_base64"], "/wA=");
        assert_eq!(
            json["headers"],
            serde_json::json!([{"key": "trace", "value": "abc"}])
        );
        assert!(!line.contains('\n'));
    }
}
