//! `paxlog status`: the health of every broker and, from the cluster's metadata, the
//! metadata leader and each partition's leader and decided index; as a table or as one
//! JSON document.

use crate::cli::topic::{self, table};
use crate::connection::Connection;
use crate::health::{self, Health};
use crate::security::Security;
use serde::Serialize;
use std::time::Duration;

/// One broker's health.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BrokerStatus {
    /// The address asked (`host:port`).
    pub address: String,
    /// What it said.
    #[serde(flatten)]
    pub health: Health,
}

/// The health of a set of brokers, in the order they were given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClusterStatus {
    /// One entry per broker.
    pub brokers: Vec<BrokerStatus>,
    /// How many are SERVING.
    pub serving: usize,
    /// How many were asked.
    pub total: usize,
    /// Leaders and progress, from the metadata.
    #[serde(flatten)]
    pub cluster: ClusterView,
}

/// Leaders and progress as one reachable broker sees them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ClusterView {
    /// The metadata group's leader; `null` while unknown (or metadata was unavailable).
    pub metadata_leader: Option<NodeRef>,
    /// Every topic, by name.
    pub topics: Vec<TopicStatus>,
    /// Why leaders are not shown, when no broker answered with metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata_error: Option<String>,
}

/// A broker by node id and address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeRef {
    /// Node id.
    pub id: u64,
    /// gRPC address, `host:port` (empty if the metadata does not list the node).
    pub address: String,
}

/// One topic's partitions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TopicStatus {
    /// Topic name.
    pub name: String,
    /// One entry per partition.
    pub partitions: Vec<PartitionStatus>,
}

/// One partition's leader and progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PartitionStatus {
    /// Partition number.
    pub partition: u32,
    /// The leader's node id; `null` while none is known.
    pub leader: Option<u64>,
    /// Every Paxos slot up to this one is decided (as the partition's leader knows).
    pub decided_index: u64,
}

impl ClusterStatus {
    /// Whether every broker is SERVING.
    pub fn all_serving(&self) -> bool {
        self.serving == self.total
    }

    /// A table for people: one broker per line and a summary line, then the metadata
    /// leader and one line per partition.
    pub fn to_table(&self) -> String {
        let mut out = self.brokers_table();
        out.push_str(&self.cluster.to_table());
        out
    }

    fn brokers_table(&self) -> String {
        let width = self
            .brokers
            .iter()
            .map(|b| b.address.len())
            .max()
            .unwrap_or(0)
            .max(6);
        let mut out = format!("{:<width$}  {:<11}  DETAIL\n", "BROKER", "STATUS");
        for broker in &self.brokers {
            let detail = match &broker.health {
                Health::Unreachable(reason) => reason.as_str(),
                _ => "",
            };
            let line = format!(
                "{:<width$}  {:<11}  {detail}",
                broker.address,
                broker.health.label()
            );
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out.push_str(&format!(
            "{}/{} brokers SERVING\n",
            self.serving, self.total
        ));
        out
    }

    /// One JSON document: `{"brokers":[{"address":..,"status":"SERVING"},..],"serving":..,
    /// "total":..,"metadata_leader":{"id":..,"address":..},"topics":[{"name":..,"partitions":
    /// [{"partition":..,"leader":..,"decided_index":..}]}]}`; unreachable brokers carry an
    /// `"error"` field, and `"metadata_error"` says why leaders are missing.
    pub fn to_json(&self) -> String {
        // Serializing plain strings and integers cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

impl ClusterView {
    /// `metadata leader: node 1 (host:port)`, then `TOPIC PARTITION LEADER DECIDED` rows.
    pub fn to_table(&self) -> String {
        if let Some(error) = &self.metadata_error {
            return format!("metadata unavailable: {error}\n");
        }
        let mut out = match &self.metadata_leader {
            Some(node) => format!("metadata leader: node {} ({})\n", node.id, node.address),
            None => "metadata leader: none known (election under way?)\n".to_owned(),
        };
        if self.topics.is_empty() {
            out.push_str("no topics\n");
            return out;
        }
        let mut rows = vec![[
            "TOPIC".to_owned(),
            "PARTITION".to_owned(),
            "LEADER".to_owned(),
            "DECIDED".to_owned(),
        ]];
        for topic in &self.topics {
            for p in &topic.partitions {
                rows.push([
                    topic.name.clone(),
                    p.partition.to_string(),
                    p.leader.map_or_else(|| "-".to_owned(), |l| l.to_string()),
                    p.decided_index.to_string(),
                ]);
            }
        }
        out.push_str(&table(&rows));
        out
    }
}

/// The metadata leader, and each partition's leader and decided index: GetMetadata and
/// ListTopics from whichever broker answers, then each partition's row of DescribeTopic from
/// its leader ([`topic::describe_at_leaders`]). Never fails: an error is kept in
/// [`ClusterView::metadata_error`].
pub async fn cluster_view(conn: &Connection, budget: Duration) -> ClusterView {
    match try_cluster_view(conn, budget).await {
        Ok(view) => view,
        Err(err) => ClusterView {
            metadata_error: Some(err.to_string()),
            ..ClusterView::default()
        },
    }
}

async fn try_cluster_view(
    conn: &Connection,
    budget: Duration,
) -> Result<ClusterView, crate::Error> {
    let meta = conn.metadata(budget).await?;
    let metadata_leader = meta.metadata_leader.map(|id| NodeRef {
        id,
        address: meta.address(id).unwrap_or_default().to_owned(),
    });
    let mut topics = Vec::new();
    for summary in topic::list(conn, budget).await?.topics {
        let view = topic::describe_at_leaders(conn, &summary.name, budget).await?;
        topics.push(TopicStatus {
            name: view.name,
            partitions: view
                .partitions
                .into_iter()
                .map(|p| PartitionStatus {
                    partition: p.partition,
                    leader: p.leader,
                    decided_index: p.decided_index,
                })
                .collect(),
        });
    }
    Ok(ClusterView {
        metadata_leader,
        topics,
        metadata_error: None,
    })
}

/// Checks every broker concurrently; `timeout` bounds each connect and each call. The
/// returned [`ClusterStatus::cluster`] is empty: fill it with [`cluster_view`].
pub async fn check_brokers(
    addresses: &[String],
    timeout: Duration,
    security: &Security,
) -> ClusterStatus {
    let mut checks = tokio::task::JoinSet::new();
    for (index, address) in addresses.iter().enumerate() {
        let (address, security) = (address.clone(), security.clone());
        checks.spawn(async move {
            let health = health::check_secured(&address, timeout, &security).await;
            (index, health)
        });
    }
    let mut healths = vec![Health::Unknown; addresses.len()];
    while let Some(joined) = checks.join_next().await {
        match joined {
            Ok((index, health)) => healths[index] = health,
            // A panicked check leaves that broker UNKNOWN rather than failing the command.
            Err(err) => tracing::warn!(error = %err, "health check task failed"),
        }
    }
    let brokers: Vec<BrokerStatus> = addresses
        .iter()
        .zip(healths)
        .map(|(address, health)| BrokerStatus {
            address: address.clone(),
            health,
        })
        .collect();
    let serving = brokers.iter().filter(|b| b.health.is_serving()).count();
    ClusterStatus {
        total: brokers.len(),
        serving,
        brokers,
        cluster: ClusterView::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ClusterStatus {
        ClusterStatus {
            brokers: vec![
                BrokerStatus {
                    address: "127.0.0.1:7001".into(),
                    health: Health::Serving,
                },
                BrokerStatus {
                    address: "127.0.0.1:7002".into(),
                    health: Health::Unreachable("connection refused".into()),
                },
            ],
            serving: 1,
            total: 2,
            cluster: ClusterView {
                metadata_leader: Some(NodeRef {
                    id: 1,
                    address: "127.0.0.1:7001".into(),
                }),
                topics: vec![TopicStatus {
                    name: "orders".into(),
                    partitions: vec![
                        PartitionStatus {
                            partition: 0,
                            leader: Some(3),
                            decided_index: 17,
                        },
                        PartitionStatus {
                            partition: 1,
                            leader: None,
                            decided_index: 0,
                        },
                    ],
                }],
                metadata_error: None,
            },
        }
    }

    #[test]
    fn table_shows_status_and_reason() {
        let table = sample().to_table();
        assert_eq!(
            table,
            "BROKER          STATUS       DETAIL\n\
             127.0.0.1:7001  SERVING\n\
             127.0.0.1:7002  UNREACHABLE  connection refused\n\
             1/2 brokers SERVING\n\
             metadata leader: node 1 (127.0.0.1:7001)\n\
             TOPIC   PARTITION  LEADER  DECIDED\n\
             orders  0          3       17\n\
             orders  1          -       0\n"
        );
    }

    #[test]
    fn table_says_why_leaders_are_missing() {
        let status = ClusterStatus {
            cluster: ClusterView {
                metadata_error: Some("get cluster metadata: not implemented".into()),
                ..ClusterView::default()
            },
            ..sample()
        };
        assert!(
            status.to_table().ends_with(
                "1/2 brokers SERVING\nmetadata unavailable: get cluster metadata: not implemented\n"
            ),
            "{}",
            status.to_table()
        );
        let json: serde_json::Value = serde_json::from_str(&status.to_json()).expect("valid JSON");
        assert_eq!(
            json["metadata_error"],
            "get cluster metadata: not implemented"
        );
        assert_eq!(json["metadata_leader"], serde_json::Value::Null);
        assert_eq!(json["topics"], serde_json::json!([]));
    }

    #[test]
    fn json_has_one_status_field_per_broker() {
        let json: serde_json::Value =
            serde_json::from_str(&sample().to_json()).expect("valid JSON");
        assert_eq!(json["brokers"][0]["status"], "SERVING");
        assert!(json["brokers"][0].get("error").is_none());
        assert_eq!(json["brokers"][1]["status"], "UNREACHABLE");
        assert_eq!(json["brokers"][1]["error"], "connection refused");
        assert_eq!(json["serving"], 1);
        assert_eq!(json["total"], 2);
        assert_eq!(
            json["metadata_leader"],
            serde_json::json!({"id": 1, "address": "127.0.0.1:7001"})
        );
        assert_eq!(
            json["topics"],
            serde_json::json!([{"name": "orders", "partitions": [
                {"partition": 0, "leader": 3, "decided_index": 17},
                {"partition": 1, "leader": null, "decided_index": 0},
            ]}])
        );
        assert!(json.get("metadata_error").is_none());
    }

    #[tokio::test]
    async fn closed_port_is_unreachable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("ephemeral port")
            .port();
        let status = check_brokers(
            &[format!("127.0.0.1:{port}")],
            Duration::from_secs(2),
            &Security::none(),
        )
        .await;
        assert!(
            matches!(status.brokers[0].health, Health::Unreachable(_)),
            "{status:?}"
        );
        assert!(!status.all_serving());
    }
}
