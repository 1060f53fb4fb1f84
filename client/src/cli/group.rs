//! `paxlog group list|describe|reset-offsets` and `paxlog consume --group`.

use super::consume::{StartFrom, render_record};
use super::{json_document, write_line};
use crate::client::Admin;
use crate::consumer::{Consumer, OffsetReset};
use crate::error::Error;
use paxlog_proto::v1 as pb;
use serde::Serialize;
use std::io::Write;
use std::time::Duration;

/// One group as `group list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupRow {
    /// Group name.
    pub group: String,
    /// `empty` or `stable`.
    pub state: String,
    /// Members now.
    pub members: u32,
}

/// Lists groups.
pub async fn list(admin: &Admin, json: bool, out: &mut dyn Write) -> Result<(), Error> {
    let rows: Vec<GroupRow> = admin
        .list_groups()
        .await?
        .into_iter()
        .map(|g| GroupRow {
            state: state_name(g.state),
            group: g.group,
            members: g.members,
        })
        .collect();
    if json {
        return write_line(out, &json_document(&serde_json::json!({ "groups": rows })));
    }
    let mut text = format!("{:<32} {:<10} {:>7}\n", "GROUP", "STATE", "MEMBERS");
    for r in &rows {
        text.push_str(&format!(
            "{:<32} {:<10} {:>7}\n",
            r.group, r.state, r.members
        ));
    }
    write_line(out, text.trim_end())
}

fn state_name(state: i32) -> String {
    match pb::GroupState::try_from(state) {
        Ok(pb::GroupState::Empty) => "empty",
        Ok(pb::GroupState::Rebalancing) => "rebalancing",
        Ok(pb::GroupState::Stable) => "stable",
        _ => "unknown",
    }
    .to_owned()
}

/// A partition's progress as `group describe` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LagRow {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Committed offset (the next to consume), if any.
    pub committed_offset: Option<u64>,
    /// The partition's end offset.
    pub end_offset: u64,
    /// Records not consumed yet.
    pub lag: u64,
    /// Age of the oldest record not consumed yet, in ms (0 without lag).
    pub lag_ms: u64,
    /// Owner now (empty if none).
    pub member: String,
}

/// A group as `group describe` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupView {
    /// Group name.
    pub group: String,
    /// State.
    pub state: String,
    /// Generation.
    pub generation: u64,
    /// Coordinator node id.
    pub coordinator: u64,
    /// Member ids with their partitions (`topic/partition`).
    pub members: Vec<(String, Vec<String>)>,
    /// Per partition.
    pub partitions: Vec<LagRow>,
}

impl GroupView {
    /// From the wire answer.
    pub fn from_wire(d: pb::DescribeGroupResponse) -> GroupView {
        GroupView {
            state: state_name(d.state),
            group: d.group,
            generation: d.generation,
            coordinator: d.coordinator,
            members: d
                .members
                .into_iter()
                .map(|m| {
                    let parts = m
                        .assignment
                        .iter()
                        .flat_map(|tp| tp.partitions.iter().map(|p| format!("{}/{p}", tp.topic)))
                        .collect();
                    (m.member_id, parts)
                })
                .collect(),
            partitions: d
                .partitions
                .into_iter()
                .map(|p| LagRow {
                    topic: p.topic,
                    partition: p.partition,
                    committed_offset: p.committed_offset,
                    end_offset: p.end_offset,
                    lag: p.lag,
                    lag_ms: p.lag_ms,
                    member: p.member_id,
                })
                .collect(),
        }
    }

    /// A table for people.
    pub fn to_table(&self) -> String {
        let mut t = format!(
            "group {}  state {}  generation {}  coordinator node {}\n",
            self.group, self.state, self.generation, self.coordinator
        );
        for (id, parts) in &self.members {
            t.push_str(&format!("  member {id}: {}\n", parts.join(" ")));
        }
        t.push_str(&format!(
            "{:<24} {:>9} {:>10} {:>10} {:>8} {:>10}  MEMBER\n",
            "TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "LAG_SEC"
        ));
        for r in &self.partitions {
            let committed = r.committed_offset.map_or("-".to_owned(), |c| c.to_string());
            t.push_str(&format!(
                "{:<24} {:>9} {:>10} {:>10} {:>8} {:>10.1}  {}\n",
                r.topic,
                r.partition,
                committed,
                r.end_offset,
                r.lag,
                r.lag_ms as f64 / 1000.0,
                r.member
            ));
        }
        t
    }
}

/// Describes a group.
pub async fn describe(
    admin: &Admin,
    group: &str,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let view = GroupView::from_wire(admin.describe_group(group).await?);
    let text = if json {
        json_document(&view)
    } else {
        view.to_table()
    };
    write_line(out, text.trim_end())
}

/// Sets the group's committed offsets of every partition of `topic` to `to`.
pub async fn reset_offsets(
    admin: &Admin,
    group: &str,
    topic: &str,
    to: StartFrom,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let view = admin.describe_topic(topic).await?;
    let offsets: Vec<(String, u32, u64)> = view
        .partitions
        .iter()
        .map(|p| {
            let offset = match to {
                StartFrom::Earliest => p.log_start_offset,
                StartFrom::Latest => p.log_end_offset,
                StartFrom::Offset(o) => o,
            };
            (topic.to_owned(), p.partition, offset)
        })
        .collect();
    admin.reset_offsets(group, &offsets).await?;
    if json {
        let rows: Vec<_> = offsets
            .iter()
            .map(|(t, p, o)| serde_json::json!({ "topic": t, "partition": p, "offset": o }))
            .collect();
        return write_line(
            out,
            &json_document(&serde_json::json!({ "group": group, "reset": rows })),
        );
    }
    for (t, p, o) in offsets {
        write_line(
            out,
            &format!("group {group}: {t}/{p} committed offset set to {o}"),
        )?;
    }
    Ok(())
}

/// Reads `topic` as a member of the consumer's group, printing records, committing after
/// each batch printed; stops after `max` records, or (without `follow`) once a poll of
/// `idle` brings nothing. Leaves the group at the end.
pub async fn consume(
    mut consumer: Consumer,
    topic: &str,
    max: Option<u64>,
    follow: bool,
    idle: Duration,
    json: bool,
    out: &mut dyn Write,
) -> Result<u64, Error> {
    consumer.subscribe(&[topic]).await?;
    let mut printed = 0u64;
    let mut quiet_since = tokio::time::Instant::now();
    loop {
        let records = consumer.poll(Duration::from_millis(500)).await?;
        if records.is_empty() {
            if !follow && quiet_since.elapsed() >= idle {
                break;
            }
            continue;
        }
        quiet_since = tokio::time::Instant::now();
        let mut stop = false;
        let mut unprinted: std::collections::BTreeMap<u32, u64> = Default::default();
        for r in records {
            if stop {
                // Not printed: the next member (or run) reads it; commit only up to here.
                unprinted.entry(r.partition).or_insert(r.offset);
                continue;
            }
            let stored = pb::StoredRecord {
                offset: r.offset,
                record: Some(pb::Record {
                    key: r.key,
                    value: r.value,
                    headers: r
                        .headers
                        .into_iter()
                        .map(|(key, value)| pb::Header { key, value })
                        .collect(),
                    timestamp_ms: r.timestamp_ms,
                }),
            };
            write_line(out, &render_record(r.partition, &stored, json))?;
            printed += 1;
            stop = max.is_some_and(|m| printed >= m);
        }
        for (partition, offset) in unprinted {
            consumer
                .seek(topic, partition, crate::consumer::Position::Offset(offset))
                .await?;
        }
        consumer.commit().await?;
        if stop {
            break;
        }
    }
    consumer.close().await?;
    Ok(printed)
}

/// The reset policy a `--from` gives a group consumer without committed offsets.
pub fn reset_of(from: &StartFrom) -> Result<OffsetReset, Error> {
    match from {
        StartFrom::Earliest => Ok(OffsetReset::Earliest),
        StartFrom::Latest => Ok(OffsetReset::Latest),
        StartFrom::Offset(_) => Err(Error::InvalidArgument(
            "--from OFFSET does not apply with --group: a group starts at its committed offsets (earliest or latest when it has none); use `paxlog group reset-offsets` to move them".into(),
        )),
    }
}
