//! `paxlog topic create | list | describe | delete`.
//!
//! Creating and deleting go to the metadata group's leader ([`CallKind::Admin`]); listing
//! is answered by any broker, from its own view of the cluster; describing asks each
//! partition's leader for that partition's row ([`describe_at_leaders`]).

use super::json_document;
use crate::connection::{CallKind, Connection};
use crate::error::Error;
use paxlog_proto::v1::{self as pb, admin_client::AdminClient};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// What `topic create` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateTopic {
    /// Topic name.
    pub name: String,
    /// Number of partitions.
    pub partitions: u32,
    /// Replicas per partition; 0 means the broker default.
    pub replication: u32,
    /// Per-topic settings (`retention.ms`, ...).
    pub config: BTreeMap<String, String>,
}

/// A topic as `topic describe` (and `topic create`) show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TopicView {
    /// Topic name.
    pub name: String,
    /// Replicas per partition.
    pub replication_factor: u32,
    /// Effective settings.
    pub config: BTreeMap<String, String>,
    /// One entry per partition.
    pub partitions: Vec<PartitionView>,
}

/// One partition's state, as the answering broker knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PartitionView {
    /// Partition number.
    pub partition: u32,
    /// The leader's node id; `null` while none is known.
    pub leader: Option<u64>,
    /// Node ids of the replicas.
    pub replicas: Vec<u64>,
    /// Every Paxos slot up to this one is decided.
    pub decided_index: u64,
    /// Oldest retained offset.
    pub log_start_offset: u64,
    /// The next offset to be written (the high watermark).
    pub log_end_offset: u64,
}

/// A topic as `topic list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TopicSummary {
    /// Topic name.
    pub name: String,
    /// Number of partitions.
    pub partitions: u32,
    /// Replicas per partition.
    pub replication_factor: u32,
}

/// The answer of `topic list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TopicList {
    /// Topics, sorted by name.
    pub topics: Vec<TopicSummary>,
}

/// Parses `--config key=value` items; a key given twice is an error.
pub fn parse_config(items: &[String]) -> Result<BTreeMap<String, String>, Error> {
    let mut config = BTreeMap::new();
    for item in items {
        let (key, value) = item
            .split_once('=')
            .filter(|(key, _)| !key.trim().is_empty())
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "--config {item:?} is not key=value (e.g. --config retention.ms=86400000)"
                ))
            })?;
        if config
            .insert(key.trim().to_owned(), value.trim().to_owned())
            .is_some()
        {
            return Err(Error::InvalidArgument(format!(
                "--config {key:?} is given twice"
            )));
        }
    }
    Ok(config)
}

/// Creates a topic on the metadata leader and returns it as placed.
pub async fn create(
    conn: &Connection,
    request: CreateTopic,
    budget: Duration,
) -> Result<TopicView, Error> {
    let what = format!("create topic {:?}", request.name);
    let wire = pb::CreateTopicRequest {
        name: request.name.clone(),
        partitions: request.partitions,
        replication_factor: request.replication,
        config: request.config.into_iter().collect(),
        timeout_ms: 0,
    };
    let response = conn
        .call_leader(CallKind::Admin, budget, |channel| {
            let wire = wire.clone();
            async move { AdminClient::new(channel).create_topic(wire).await }
        })
        .await
        .map_err(|err| err.with_what(&what))?;
    let topic = response.topic.ok_or_else(|| missing(&what, "topic"))?;
    Ok(TopicView::from_wire(topic))
}

/// Creates a topic unless one of that name exists (then leaves it as it is).
pub async fn create_if_missing(
    conn: &Connection,
    request: CreateTopic,
    budget: Duration,
) -> Result<(), Error> {
    match create(conn, request, budget).await {
        Ok(_) => Ok(()),
        Err(e) if e.server_code() == Some(pb::ErrorCode::TopicExists) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Deletes a topic.
pub async fn delete(conn: &Connection, name: &str, budget: Duration) -> Result<(), Error> {
    let wire = pb::DeleteTopicRequest {
        name: name.to_owned(),
        timeout_ms: 0,
    };
    conn.call_leader(CallKind::Admin, budget, |channel| {
        let wire = wire.clone();
        async move { AdminClient::new(channel).delete_topic(wire).await }
    })
    .await
    .map_err(|err| err.with_what(format!("delete topic {name:?}")))?;
    Ok(())
}

/// Moves the leadership of `topic`/`partition` to `node` (one of its replicas); returns
/// once `node` leads. Sent to the partition's leader (NOT_LEADER hints are followed).
pub async fn elect_leader(
    conn: &Connection,
    topic: &str,
    partition: u32,
    node: u64,
    budget: Duration,
) -> Result<u64, Error> {
    let wire = pb::ElectLeaderRequest {
        topic: topic.to_owned(),
        partition,
        node_id: node,
        timeout_ms: 0,
    };
    let kind = CallKind::Fetch {
        topic: topic.to_owned(),
        partition,
    };
    let response = conn
        .call_leader(kind, budget, |channel| {
            let wire = wire.clone();
            async move { AdminClient::new(channel).elect_leader(wire).await }
        })
        .await
        .map_err(|err| {
            err.with_what(format!(
                "move the leader of {topic}/{partition} to node {node}"
            ))
        })?;
    Ok(response.leader)
}

/// Lists all topics.
pub async fn list(conn: &Connection, budget: Duration) -> Result<TopicList, Error> {
    let response = conn
        .call_leader(CallKind::AnyBroker, budget, |channel| async move {
            AdminClient::new(channel)
                .list_topics(pb::ListTopicsRequest {})
                .await
        })
        .await
        .map_err(|err| err.with_what("list topics"))?;
    let mut topics: Vec<TopicSummary> = response
        .topics
        .into_iter()
        .map(|t| TopicSummary {
            name: t.name,
            partitions: t.partitions,
            replication_factor: t.replication_factor,
        })
        .collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(TopicList { topics })
}

/// Describes one topic, as the broker `kind` routes to sees it (`AnyBroker`, or a
/// partition's replica for that partition's exact offsets).
pub async fn describe(
    conn: &Connection,
    name: &str,
    kind: CallKind,
    budget: Duration,
) -> Result<TopicView, Error> {
    let what = format!("describe topic {name:?}");
    let wire = pb::DescribeTopicRequest {
        name: name.to_owned(),
    };
    let response = conn
        .call_leader(kind, budget, |channel| {
            let wire = wire.clone();
            async move { AdminClient::new(channel).describe_topic(wire).await }
        })
        .await
        .map_err(|err| err.with_what(&what))?;
    let topic = response.topic.ok_or_else(|| missing(&what, "topic"))?;
    Ok(TopicView::from_wire(topic))
}

/// Describes a topic with each partition's row taken from that partition's leader (a
/// replica while no leader is known): a follower learns of decisions a little later, so its
/// offsets and decided index can lag. One request per partition, plus one.
pub async fn describe_at_leaders(
    conn: &Connection,
    name: &str,
    budget: Duration,
) -> Result<TopicView, Error> {
    let mut view = describe(conn, name, CallKind::AnyBroker, budget).await?;
    for row in &mut view.partitions {
        let kind = CallKind::Fetch {
            topic: name.to_owned(),
            partition: row.partition,
        };
        let at_leader = describe(conn, name, kind, budget).await?;
        if let Some(fresh) = at_leader
            .partitions
            .into_iter()
            .find(|p| p.partition == row.partition)
        {
            *row = fresh;
        }
    }
    Ok(view)
}

/// A response lacked a field the contract promises.
pub(crate) fn missing(what: &str, field: &str) -> Error {
    Error::Server {
        what: what.to_owned(),
        error: Box::new(crate::error::ServerError::plain(
            tonic::Code::Internal,
            format!("the broker's answer has no `{field}`: is it a compatible paxlog version?"),
        )),
    }
}

impl TopicView {
    /// Converts the wire description; partitions sorted by number.
    pub fn from_wire(topic: pb::TopicDescription) -> TopicView {
        let mut partitions: Vec<PartitionView> = topic
            .partitions
            .into_iter()
            .map(|p| PartitionView {
                partition: p.partition,
                leader: (p.leader != 0).then_some(p.leader),
                replicas: p.replicas,
                decided_index: p.decided_index,
                log_start_offset: p.log_start_offset,
                log_end_offset: p.log_end_offset,
            })
            .collect();
        partitions.sort_by_key(|p| p.partition);
        TopicView {
            name: topic.name,
            replication_factor: topic.replication_factor,
            config: topic.config.into_iter().collect(),
            partitions,
        }
    }

    /// A header line, then one line per partition.
    pub fn to_table(&self) -> String {
        let config: Vec<String> = self
            .config
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let config = if config.is_empty() {
            "-".to_owned()
        } else {
            config.join(",")
        };
        let mut rows = vec![[
            "PARTITION".to_owned(),
            "LEADER".to_owned(),
            "REPLICAS".to_owned(),
            "DECIDED".to_owned(),
            "LOG_START".to_owned(),
            "LOG_END".to_owned(),
        ]];
        for p in &self.partitions {
            let replicas: Vec<String> = p.replicas.iter().map(u64::to_string).collect();
            rows.push([
                p.partition.to_string(),
                p.leader.map_or_else(|| "-".to_owned(), |l| l.to_string()),
                replicas.join(","),
                p.decided_index.to_string(),
                p.log_start_offset.to_string(),
                p.log_end_offset.to_string(),
            ]);
        }
        format!(
            "topic {}  partitions {}  replication {}  config {config}\n{}",
            self.name,
            self.partitions.len(),
            self.replication_factor,
            table(&rows)
        )
    }

    /// One JSON document (this struct's fields).
    pub fn to_json(&self) -> String {
        json_document(self)
    }
}

impl TopicList {
    /// One line per topic, or a note that there are none.
    pub fn to_table(&self) -> String {
        if self.topics.is_empty() {
            return "no topics (create one with `paxlog topic create NAME --partitions N`)\n"
                .to_owned();
        }
        let mut rows = vec![[
            "TOPIC".to_owned(),
            "PARTITIONS".to_owned(),
            "REPLICATION".to_owned(),
        ]];
        for t in &self.topics {
            rows.push([
                t.name.clone(),
                t.partitions.to_string(),
                t.replication_factor.to_string(),
            ]);
        }
        table(&rows)
    }

    /// `{"topics":[{"name":..,"partitions":..,"replication_factor":..},..]}`.
    pub fn to_json(&self) -> String {
        json_document(self)
    }
}

/// Left-aligned columns two spaces apart, one row per line, trailing spaces trimmed.
pub(crate) fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(widths) {
            line.push_str(&format!("{cell:<width$}  "));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TopicView {
        TopicView::from_wire(pb::TopicDescription {
            name: "orders".into(),
            replication_factor: 3,
            config: [("retention.ms".to_owned(), "1000".to_owned())].into(),
            partitions: vec![
                pb::PartitionDescription {
                    partition: 1,
                    leader: 0,
                    replicas: vec![2, 3, 1],
                    decided_index: 0,
                    log_start_offset: 0,
                    log_end_offset: 0,
                },
                pb::PartitionDescription {
                    partition: 0,
                    leader: 2,
                    replicas: vec![1, 2, 3],
                    decided_index: 17,
                    log_start_offset: 5,
                    log_end_offset: 120,
                },
            ],
        })
    }

    #[test]
    fn config_items_parse_and_bad_ones_say_why() {
        let items = ["retention.ms=1000".to_owned(), " a = b=c ".to_owned()];
        let config = parse_config(&items).expect("valid");
        assert_eq!(config["retention.ms"], "1000");
        assert_eq!(config["a"], "b=c");
        let err = parse_config(&["novalue".to_owned()]).expect_err("no =");
        assert!(err.to_string().contains("key=value"), "{err}");
        assert!(parse_config(&["=x".to_owned()]).is_err());
        let twice = ["a=1".to_owned(), "a=2".to_owned()];
        assert!(
            parse_config(&twice)
                .expect_err("twice")
                .to_string()
                .contains("twice")
        );
    }

    #[test]
    fn describe_table_shows_every_partition_and_unknown_leaders() {
        assert_eq!(
            sample().to_table(),
            "topic orders  partitions 2  replication 3  config retention.ms=1000\n\
             PARTITION  LEADER  REPLICAS  DECIDED  LOG_START  LOG_END\n\
             0          2       1,2,3     17       5          120\n\
             1          -       2,3,1     0        0          0\n"
        );
    }

    #[test]
    fn describe_json_shape() {
        let json: serde_json::Value = serde_json::from_str(&sample().to_json()).expect("JSON");
        assert_eq!(
            json,
            serde_json::json!({
                "name": "orders",
                "replication_factor": 3,
                "config": {"retention.ms": "1000"},
                "partitions": [
                    {"partition": 0, "leader": 2, "replicas": [1, 2, 3], "decided_index": 17,
                     "log_start_offset": 5, "log_end_offset": 120},
                    {"partition": 1, "leader": null, "replicas": [2, 3, 1], "decided_index": 0,
                     "log_start_offset": 0, "log_end_offset": 0},
                ]
            })
        );
    }

    #[test]
    fn list_table_and_json() {
        let list = TopicList {
            topics: vec![TopicSummary {
                name: "orders".into(),
                partitions: 3,
                replication_factor: 3,
            }],
        };
        assert_eq!(
            list.to_table(),
            "TOPIC   PARTITIONS  REPLICATION\norders  3           3\n"
        );
        let json: serde_json::Value = serde_json::from_str(&list.to_json()).expect("JSON");
        assert_eq!(
            json,
            serde_json::json!({"topics": [{"name": "orders", "partitions": 3, "replication_factor": 3}]})
        );
        assert!(
            TopicList { topics: vec![] }
                .to_table()
                .starts_with("no topics")
        );
    }
}
