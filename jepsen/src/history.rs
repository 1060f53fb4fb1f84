//! The history of a run: every operation's invocation and completion, as JSON lines.
//!
//! ```text
//!   {"process":3,"type":"invoke","f":"send","value":{"key":"k1","value":"3-17"},"time":1200}
//!   {"process":3,"type":"ok","f":"send","value":{"key":"k1","value":"3-17","partition":0,"offset":41},"time":4100}
//!   {"process":5,"type":"ok","f":"poll","value":{"records":[{"partition":0,"offset":41,"value":"3-17"}]},"time":5200}
//! ```
//!
//! `type`: `invoke` (started), `ok` (acknowledged), `fail` (certainly did not happen),
//! `info` (outcome unknown: a timed-out send may or may not be stored). `time` is in
//! nanoseconds since the run started. Sends carry values unique in the run
//! (`process-sequence`), so a value identifies one attempted write.

use serde::{Deserialize, Serialize};
use std::io::BufRead;

/// How an operation ended (or that it started).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    /// Started.
    Invoke,
    /// Acknowledged.
    Ok,
    /// Certainly did not take effect.
    Fail,
    /// Outcome unknown.
    Info,
}

/// What an operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Function {
    /// Publish one record.
    Send,
    /// Read records (a consumer poll, or the final read of a partition).
    Poll,
    /// Commit consumer group offsets.
    Commit,
    /// A consumer's partitions changed (assign, or a group rebalance): positions restart.
    Assign,
    /// A client process crashed and restarted: its positions restart.
    Crash,
    /// Read a group's committed offsets (`offsets`, `group`).
    FetchOffsets,
}

/// One record as a poll returned it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Polled {
    /// Partition.
    pub partition: u32,
    /// Offset.
    pub offset: u64,
    /// Value (unique per send).
    pub value: String,
}

/// An operation's payload.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpValue {
    /// Send: the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Send: the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Send (ok): where it was stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    /// Send (ok): its offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Poll (ok): the records, in the order returned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<Polled>,
    /// Commit (ok): `(partition, next offset)` committed for `group`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offsets: Vec<(u32, u64)>,
    /// Commit: the consumer group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Poll: read from this replica's log only (the end-of-run replica comparison).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<u64>,
}

/// One history entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// The client process (a producer or consumer instance).
    pub process: u64,
    /// Invocation or completion.
    #[serde(rename = "type")]
    pub kind: OpType,
    /// What it does.
    pub f: Function,
    /// Its payload.
    #[serde(default)]
    pub value: OpValue,
    /// Nanoseconds since the run started.
    pub time: u64,
}

/// A whole history, in the order operations were recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// The operations.
    pub ops: Vec<Op>,
}

impl History {
    /// Reads JSON lines; the error names the line.
    pub fn read(input: impl BufRead) -> Result<History, String> {
        let mut ops = Vec::new();
        for (n, line) in input.lines().enumerate() {
            let line = line.map_err(|e| format!("line {}: {e}", n + 1))?;
            if line.trim().is_empty() {
                continue;
            }
            let op: Op = serde_json::from_str(&line).map_err(|e| format!("line {}: {e}", n + 1))?;
            ops.push(op);
        }
        Ok(History { ops })
    }

    /// Writes JSON lines.
    pub fn write(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        for op in &self.ops {
            let line = serde_json::to_string(op).map_err(std::io::Error::other)?;
            writeln!(out, "{line}")?;
        }
        Ok(())
    }

    /// Completed operations of function `f` and type `kind`, with their indexes.
    pub fn completed(&self, f: Function, kind: OpType) -> impl Iterator<Item = (usize, &Op)> {
        self.ops
            .iter()
            .enumerate()
            .filter(move |(_, op)| op.f == f && op.kind == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_as_json_lines_and_names_bad_lines() {
        let text = r#"{"process":3,"type":"invoke","f":"send","value":{"key":"k1","value":"3-17"},"time":1200}
{"process":3,"type":"ok","f":"send","value":{"key":"k1","value":"3-17","partition":0,"offset":41},"time":4100}
{"process":5,"type":"ok","f":"poll","value":{"records":[{"partition":0,"offset":41,"value":"3-17"}]},"time":5200}
"#;
        let h = History::read(text.as_bytes()).expect("valid");
        assert_eq!(h.ops.len(), 3);
        assert_eq!(h.ops[1].value.offset, Some(41));
        let mut out = Vec::new();
        h.write(&mut out).expect("write");
        assert_eq!(History::read(&out[..]).expect("again"), h);
        let err = History::read(&b"{\"process\":1}\n"[..]).expect_err("incomplete");
        assert!(err.starts_with("line 1:"), "{err}");
    }
}
