//! The gRPC services of `paxlog.v1`.
//!
//! ```text
//!   Admin ─────► metadata group (propose) ──► View.metadata
//!   Metadata ──► View (brokers, topics, leaders)
//!   Producer ──► partition leader's driver (propose record batch) ──► offsets
//!   Consumer ──► Db::read_records up to the high watermark (long-poll on its watch)
//! ```
//!   Groups ────► group coordinator (leader of the group's __consumer_offsets partition)
//!   Triggers ──► metadata group (propose) ──► View.metadata (runners list them)
//! The peer service is the replication transport's ([`crate::transport::PeerHub::service`]).

mod admin;
mod consumer;
mod group_metrics;
mod groups;
mod metadata;
mod producer;
mod triggers;

use crate::config::NodeId;
use crate::error::Error;
use crate::metadata::{PartitionInfo, Topic};
use crate::metrics::NodeMetrics;
use crate::node::{DriverHandle, View};
use crate::storage::Db;
use paxlog_proto::v1::{
    admin_server, consumer_server, groups_server, metadata_server, peer_server, producer_server,
    triggers_server,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// Fully qualified names of the `paxlog.v1` services this node registers; health reports
/// each of them.
pub const SERVICE_NAMES: [&str; 7] = [
    admin_server::SERVICE_NAME,
    metadata_server::SERVICE_NAME,
    producer_server::SERVICE_NAME,
    consumer_server::SERVICE_NAME,
    groups_server::SERVICE_NAME,
    triggers_server::SERVICE_NAME,
    peer_server::SERVICE_NAME,
];

/// Default time a write waits for its outcome when the request gives none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the client services share.
#[derive(Clone, Debug)]
pub struct ClientApi {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    node: NodeId,
    members: BTreeMap<NodeId, String>,
    driver: DriverHandle,
    view: Arc<View>,
    db: Arc<Db>,
    max_record_bytes: u32,
    /// Publish bytes awaiting consensus, node-wide; see [`Limits::max_inflight_bytes`].
    inflight: Arc<tokio::sync::Semaphore>,
    max_inflight_bytes: u64,
    /// Each partition's share of it, by Paxos group, made on its first publish.
    partition_inflight: std::sync::Mutex<BTreeMap<u64, Arc<tokio::sync::Semaphore>>>,
    max_partition_inflight: u64,
    round_robin: AtomicU64,
    metrics: Arc<NodeMetrics>,
    live_groups: groups::LiveGroups,
    member_ids: AtomicU64,
}

/// What the client API takes at most (from [`crate::config::Config`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// See [`crate::config::Config::max_record_bytes`].
    pub max_record_bytes: u32,
    /// See [`crate::config::Config::max_inflight_bytes`].
    pub max_inflight_bytes: u64,
    /// See [`crate::config::Config::partition_inflight_limit`].
    pub max_inflight_bytes_per_partition: u64,
}

impl ClientApi {
    /// Services over a running node.
    pub fn new(
        node: NodeId,
        members: BTreeMap<NodeId, String>,
        driver: DriverHandle,
        view: Arc<View>,
        db: Arc<Db>,
        limits: Limits,
        metrics: Arc<NodeMetrics>,
    ) -> Self {
        let budget = usize::try_from(limits.max_inflight_bytes)
            .unwrap_or(usize::MAX)
            .min(tokio::sync::Semaphore::MAX_PERMITS);
        let inner = Inner {
            node,
            members,
            driver,
            view,
            db,
            max_record_bytes: limits.max_record_bytes,
            inflight: Arc::new(tokio::sync::Semaphore::new(budget)),
            max_inflight_bytes: budget as u64,
            partition_inflight: Default::default(),
            max_partition_inflight: limits.max_inflight_bytes_per_partition.min(budget as u64),
            round_robin: AtomicU64::new(0),
            metrics,
            live_groups: Default::default(),
            member_ids: AtomicU64::new(1),
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    fn topic(&self, name: &str) -> Result<Topic, Error> {
        self.inner
            .view
            .metadata()
            .topic(name)
            .cloned()
            .ok_or_else(|| Error::UnknownTopic(name.to_owned()))
    }

    fn partition(&self, topic: &Topic, partition: u32) -> Result<PartitionInfo, Error> {
        topic
            .partitions
            .get(partition as usize)
            .cloned()
            .ok_or_else(|| Error::UnknownPartition {
                topic: topic.name.clone(),
                partition,
                count: topic.partitions.len() as u32,
            })
    }

    /// `NotLeader` naming `leader` (or, when unknown, nobody).
    fn not_leader(&self, leader: Option<NodeId>) -> Error {
        let leader = leader.and_then(|id| self.inner.members.get(&id).map(|a| (id, a.clone())));
        Error::NotLeader { leader }
    }

    /// The leader of `group` as this broker knows it.
    fn leader_of(&self, group: u64) -> Option<NodeId> {
        self.inner.view.group(group).and_then(|s| s.leader)
    }
}

/// A status's outcome as a metric label: the `paxlog.v1.Error` code in lower case
/// (`not_leader`, `timeout`, ...), else the gRPC code.
fn outcome_of(status: &tonic::Status) -> String {
    use prost::Message as _;
    match paxlog_proto::v1::Error::decode(status.details()) {
        Ok(e) if e.code != 0 => e
            .code()
            .as_str_name()
            .trim_start_matches("ERROR_CODE_")
            .to_ascii_lowercase(),
        _ => format!("{:?}", status.code()).to_ascii_lowercase(),
    }
}

fn timeout_of(ms: u32) -> Duration {
    if ms == 0 {
        DEFAULT_TIMEOUT
    } else {
        Duration::from_millis(ms as u64)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
