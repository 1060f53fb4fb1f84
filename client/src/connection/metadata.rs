//! The cluster as a broker described it (`Metadata.GetMetadata`), converted from the wire
//! types once, and the routing of requests to brokers that is based on it.

use crate::error::ServerError;
use paxlog_proto::v1::{self as pb, ErrorCode};
use std::collections::BTreeMap;

/// Brokers, topics and leaders, as one broker knew them when it answered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterMetadata {
    /// gRPC address (`host:port`) of every broker, by node id.
    pub brokers: BTreeMap<u64, String>,
    /// The metadata group's leader, when known.
    pub metadata_leader: Option<u64>,
    /// Topics by name.
    pub topics: BTreeMap<String, TopicMetadata>,
}

/// Placement and leadership of one topic's partitions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicMetadata {
    /// One entry per partition, by partition number.
    pub partitions: Vec<PartitionMetadata>,
}

/// Who leads and who replicates one partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartitionMetadata {
    /// Partition number, from 0.
    pub partition: u32,
    /// The leader's node id, when known.
    pub leader: Option<u64>,
    /// Node ids of the replicas.
    pub replicas: Vec<u64>,
}

impl ClusterMetadata {
    /// Converts a `GetMetadata` answer. Topics the broker reported as errors (a requested
    /// topic that does not exist) are left out; see [`ClusterMetadata::topic_errors`].
    pub fn from_wire(response: &pb::GetMetadataResponse) -> ClusterMetadata {
        let brokers = response
            .brokers
            .iter()
            .map(|b| (b.id, b.address.clone()))
            .collect();
        let topics = response
            .topics
            .iter()
            .filter(|t| t.error.is_none())
            .map(|t| {
                let mut partitions: Vec<PartitionMetadata> = t
                    .partitions
                    .iter()
                    .map(|p| PartitionMetadata {
                        partition: p.partition,
                        leader: (p.leader != 0).then_some(p.leader),
                        replicas: p.replicas.clone(),
                    })
                    .collect();
                partitions.sort_by_key(|p| p.partition);
                (t.name.clone(), TopicMetadata { partitions })
            })
            .collect();
        ClusterMetadata {
            brokers,
            metadata_leader: (response.metadata_leader != 0).then_some(response.metadata_leader),
            topics,
        }
    }

    /// The per-topic errors of a `GetMetadata` answer (e.g. UNKNOWN_TOPIC), by topic name.
    pub fn topic_errors(response: &pb::GetMetadataResponse) -> Vec<(String, ServerError)> {
        response
            .topics
            .iter()
            .filter_map(|t| {
                let error = t.error.clone()?;
                Some((
                    t.name.clone(),
                    ServerError::from_wire(tonic::Code::Ok, error),
                ))
            })
            .collect()
    }

    /// A broker's address by node id.
    pub fn address(&self, node: u64) -> Option<&str> {
        self.brokers.get(&node).map(String::as_str)
    }

    /// The metadata leader's address, when known.
    pub fn metadata_leader_address(&self) -> Option<&str> {
        self.metadata_leader.and_then(|id| self.address(id))
    }

    /// One partition of a topic, or the error to report when either does not exist here.
    pub fn partition(
        &self,
        topic: &str,
        partition: u32,
    ) -> Result<&PartitionMetadata, ServerError> {
        let t = self.topics.get(topic).ok_or_else(|| {
            ServerError::local(
                tonic::Code::NotFound,
                ErrorCode::UnknownTopic,
                format!(
                    "topic {topic:?} does not exist: create it with `paxlog topic create {topic}`"
                ),
            )
        })?;
        t.partitions
            .iter()
            .find(|p| p.partition == partition)
            .ok_or_else(|| {
                ServerError::local(
                    tonic::Code::NotFound,
                    ErrorCode::UnknownPartition,
                    format!(
                        "topic {topic:?} has partitions 0 to {}; partition {partition} does not exist",
                        t.partitions.len().saturating_sub(1)
                    ),
                )
            })
    }

    /// Addresses of a partition's brokers to try in order: the leader first (it is the most
    /// up to date), then the other replicas. Replicas without a known address are skipped.
    pub fn replica_addresses(&self, partition: &PartitionMetadata) -> Vec<String> {
        let leader = partition.leader.into_iter();
        let others = partition
            .replicas
            .iter()
            .copied()
            .filter(|id| Some(*id) != partition.leader);
        let mut addresses: Vec<String> = Vec::new();
        for id in leader.chain(others) {
            if let Some(address) = self.address(id)
                && !addresses.iter().any(|a| a == address)
            {
                addresses.push(address.to_owned());
            }
        }
        addresses
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response() -> pb::GetMetadataResponse {
        pb::GetMetadataResponse {
            error: None,
            brokers: (1..=3)
                .map(|id| pb::Broker {
                    id,
                    address: format!("127.0.0.1:700{id}"),
                })
                .collect(),
            topics: vec![
                pb::TopicMetadata {
                    name: "orders".into(),
                    error: None,
                    partitions: vec![
                        pb::PartitionMetadata {
                            partition: 1,
                            leader: 0,
                            replicas: vec![3, 1],
                        },
                        pb::PartitionMetadata {
                            partition: 0,
                            leader: 2,
                            replicas: vec![1, 2, 3],
                        },
                    ],
                },
                pb::TopicMetadata {
                    name: "missing".into(),
                    error: Some(pb::Error {
                        code: ErrorCode::UnknownTopic as i32,
                        message: "unknown topic \"missing\"".into(),
                        leader: None,
                    }),
                    partitions: vec![],
                },
            ],
            metadata_leader: 3,
        }
    }

    #[test]
    fn converts_leaders_and_sorts_partitions() {
        let meta = ClusterMetadata::from_wire(&response());
        assert_eq!(meta.metadata_leader_address(), Some("127.0.0.1:7003"));
        let orders = &meta.topics["orders"];
        assert_eq!(orders.partitions[0].leader, Some(2));
        assert_eq!(orders.partitions[1].leader, None, "0 means unknown");
        assert!(!meta.topics.contains_key("missing"));
        let errors = ClusterMetadata::topic_errors(&response());
        assert_eq!(errors[0].0, "missing");
        assert_eq!(errors[0].1.code, ErrorCode::UnknownTopic);
    }

    #[test]
    fn replicas_are_tried_leader_first() {
        let meta = ClusterMetadata::from_wire(&response());
        let p0 = meta.partition("orders", 0).expect("partition 0");
        assert_eq!(
            meta.replica_addresses(p0),
            ["127.0.0.1:7002", "127.0.0.1:7001", "127.0.0.1:7003"]
        );
        let p1 = meta.partition("orders", 1).expect("partition 1");
        assert_eq!(
            meta.replica_addresses(p1),
            ["127.0.0.1:7003", "127.0.0.1:7001"]
        );
    }

    #[test]
    fn unknown_topics_and_partitions_say_what_exists() {
        let meta = ClusterMetadata::from_wire(&response());
        let err = meta.partition("nope", 0).expect_err("unknown topic");
        assert_eq!(err.code, ErrorCode::UnknownTopic);
        assert!(err.message.contains("paxlog topic create nope"), "{err}");
        let err = meta.partition("orders", 5).expect_err("unknown partition");
        assert_eq!(err.code, ErrorCode::UnknownPartition);
        assert!(err.message.contains("partitions 0 to 1"), "{err}");
    }
}
