//! The replica driver's and the client services' Prometheus metrics: what an operator
//! graphs to see whether writes are durable, fast and led where placement intends.
//!
//! ```text
//!   paxlog_commit_fsync_seconds                  one synced group commit (histogram)
//!   paxlog_commit_groups / paxlog_commit_bytes   groups and bytes per synced commit
//!   paxlog_partition_decided_index{topic,partition}
//!   paxlog_partition_high_watermark{topic,partition}
//!   paxlog_partition_log_start_offset{topic,partition}
//!   paxlog_partition_leader{topic,partition}     1 while this node leads
//!   paxlog_partition_ballot_round{topic,partition}
//!   paxlog_partition_leader_changes_total{topic,partition}
//!   paxlog_partition_proposals_in_flight{topic,partition}
//!   paxlog_partition_follower_lag_slots{topic,partition,follower}   on the leader only
//!   paxlog_publish_requests_total{outcome}       ok, or the error code (not_leader, ...)
//!   paxlog_publish_records_total / paxlog_publish_bytes_total
//!   paxlog_publish_latency_seconds               received -> acknowledged (histogram)
//!   paxlog_publish_inflight_bytes                publish bytes awaiting consensus (budget:
//!                                                max_inflight_bytes; past it THROTTLED)
//!   paxlog_fetch_requests_total{outcome}
//!   paxlog_fetch_records_total / paxlog_fetch_bytes_total
//!   paxlog_group_*{group,..}                     on group coordinators; see super::groups
//! ```
//!
//! The metadata group is `topic="__metadata",partition="0"`. A deleted topic's series are
//! removed, so the number of series follows the partitions that exist. The per-partition
//! series are set by each group's [`ReplicaObserver`].

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;

use super::groups::GroupMetrics;
use super::replica::ReplicaObserver;
use crate::config::NodeId;

/// Which partition a series is about.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    /// Topic name (`__metadata` for the metadata group).
    pub topic: String,
    /// Partition number within the topic.
    pub partition: u32,
}

impl PartitionLabels {
    /// The labels of the metadata group.
    pub fn metadata() -> Self {
        Self {
            topic: "__metadata".to_owned(),
            partition: 0,
        }
    }
}

/// Which follower of which partition a lag series is about.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FollowerLabels {
    /// Topic name.
    pub topic: String,
    /// Partition number within the topic.
    pub partition: u32,
    /// The follower's node id.
    pub follower: NodeId,
}

impl FollowerLabels {
    pub(super) fn new(p: &PartitionLabels, follower: NodeId) -> Self {
        Self {
            topic: p.topic.clone(),
            partition: p.partition,
            follower,
        }
    }
}

/// The outcome label of a publish or fetch.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `ok`, or the lower-case error code.
    pub outcome: String,
}

/// Requests by outcome; the `ok` series is resolved once (the common case skips the
/// family's lock and an allocation) and shows from the start.
#[derive(Debug)]
struct Outcomes {
    family: Family<OutcomeLabels, Counter>,
    ok: Counter,
}

impl Default for Outcomes {
    fn default() -> Self {
        let family = Family::<OutcomeLabels, Counter>::default();
        let ok = family.get_or_create_owned(&OutcomeLabels {
            outcome: "ok".to_owned(),
        });
        Self { family, ok }
    }
}

impl Outcomes {
    fn count(&self, outcome: &str) {
        if outcome == "ok" {
            self.ok.inc();
            return;
        }
        let labels = OutcomeLabels {
            outcome: outcome.to_owned(),
        };
        self.family.get_or_create(&labels).inc();
    }
}

/// The node's driver and service metrics. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct NodeMetrics {
    fsync: Histogram,
    commit_groups: Histogram,
    commit_bytes: Histogram,
    pub(super) partition: PartitionFamilies,
    publish_requests: Outcomes,
    publish_records: Counter,
    publish_bytes: Counter,
    publish_latency: Histogram,
    /// Publish bytes held between taking and answering them.
    pub(crate) publish_inflight_bytes: Gauge,
    fetch_requests: Outcomes,
    fetch_records: Counter,
    fetch_bytes: Counter,
    /// Consumer group series of the groups this node coordinates.
    pub(crate) groups: GroupMetrics,
}

/// The per-partition families, which [`ReplicaObserver`]s fill.
#[derive(Debug, Default)]
pub(super) struct PartitionFamilies {
    pub(super) decided: Family<PartitionLabels, Gauge>,
    pub(super) high_watermark: Family<PartitionLabels, Gauge>,
    pub(super) log_start: Family<PartitionLabels, Gauge>,
    pub(super) leader: Family<PartitionLabels, Gauge>,
    pub(super) ballot: Family<PartitionLabels, Gauge>,
    pub(super) leader_changes: Family<PartitionLabels, Counter>,
    pub(super) in_flight: Family<PartitionLabels, Gauge>,
    pub(super) follower_lag: Family<FollowerLabels, Gauge>,
}

fn latency_buckets() -> Histogram {
    // 50 µs .. ~3.3 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 17))
}

impl NodeMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::unregistered();
        registry.register(
            "commit_fsync_seconds",
            "Time of one synced group commit (RocksDB write + fsync)",
            m.fsync.clone(),
        );
        registry.register(
            "commit_groups",
            "Paxos groups whose writes one synced group commit carried",
            m.commit_groups.clone(),
        );
        registry.register(
            "commit_bytes",
            "Bytes of one synced group commit's write batch",
            m.commit_bytes.clone(),
        );
        registry.register(
            "partition_decided_index",
            "The partition's decided Paxos slot on this replica",
            m.partition.decided.clone(),
        );
        registry.register(
            "partition_high_watermark",
            "The offset the partition's next record gets (end of what consumers read)",
            m.partition.high_watermark.clone(),
        );
        registry.register(
            "partition_log_start_offset",
            "The partition's first retained offset on this replica",
            m.partition.log_start.clone(),
        );
        registry.register(
            "partition_leader",
            "1 while this node leads the partition",
            m.partition.leader.clone(),
        );
        registry.register(
            "partition_ballot_round",
            "Round of the highest ballot this replica knows for the partition",
            m.partition.ballot.clone(),
        );
        registry.register(
            "partition_leader_changes",
            "New leaderships (a leader under a new ballot) this replica observed for the partition",
            m.partition.leader_changes.clone(),
        );
        registry.register(
            "partition_proposals_in_flight",
            "Proposals made on this node for the partition and waiting for their outcome",
            m.partition.in_flight.clone(),
        );
        registry.register(
            "partition_follower_lag_slots",
            "On the leader: its decided index minus the one the follower last reported",
            m.partition.follower_lag.clone(),
        );
        registry.register(
            "publish_requests",
            "Publish requests answered, by outcome (ok or the error code)",
            m.publish_requests.family.clone(),
        );
        registry.register(
            "publish_records",
            "Records acknowledged to producers",
            m.publish_records.clone(),
        );
        registry.register(
            "publish_bytes",
            "Key, value and header bytes acknowledged to producers",
            m.publish_bytes.clone(),
        );
        registry.register(
            "publish_latency_seconds",
            "Time from receiving a publish to acknowledging it (majority fsynced)",
            m.publish_latency.clone(),
        );
        registry.register(
            "publish_inflight_bytes",
            "Bytes of publishes this broker holds awaiting consensus (budget: max_inflight_bytes)",
            m.publish_inflight_bytes.clone(),
        );
        registry.register(
            "fetch_requests",
            "Fetch requests answered, by outcome (ok or the error code)",
            m.fetch_requests.family.clone(),
        );
        registry.register(
            "fetch_records",
            "Records served to consumers",
            m.fetch_records.clone(),
        );
        registry.register(
            "fetch_bytes",
            "Record bytes served to consumers",
            m.fetch_bytes.clone(),
        );
        m.groups.register(registry);
        m
    }

    /// Metrics registered nowhere (tests, tools).
    pub fn unregistered() -> Self {
        Self {
            fsync: latency_buckets(),
            commit_groups: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            commit_bytes: Histogram::new(exponential_buckets(256.0, 4.0, 12)),
            partition: PartitionFamilies::default(),
            publish_requests: Outcomes::default(),
            publish_records: Counter::default(),
            publish_bytes: Counter::default(),
            publish_latency: latency_buckets(),
            publish_inflight_bytes: Gauge::default(),
            fetch_requests: Outcomes::default(),
            fetch_records: Counter::default(),
            fetch_bytes: Counter::default(),
            groups: GroupMetrics::default(),
        }
    }

    /// One synced group commit.
    pub fn commit(&self, seconds: f64, groups: usize, bytes: usize) {
        self.fsync.observe(seconds);
        self.commit_groups.observe(groups as f64);
        self.commit_bytes.observe(bytes as f64);
    }

    /// The observer of Paxos group `group` on node `node`, named by `labels`: its series,
    /// and the span its driver work runs in (fields `node`, `partition` (the group id, as
    /// in every log line of the driver), `topic`, and `ballot`, recorded as it changes).
    pub fn replica(
        self: &Arc<Self>,
        node: NodeId,
        group: u64,
        labels: PartitionLabels,
    ) -> ReplicaObserver {
        // A root span: the metadata group's is made before the driver runs in the broker's.
        let span = tracing::info_span!(
            parent: None,
            "replica",
            node,
            partition = group,
            topic = %labels.topic,
            ballot = tracing::field::Empty,
        );
        let mut obs = ReplicaObserver::new(self.clone(), labels, span);
        obs.span_ids = Some((node, group));
        obs
    }

    /// A publish answered: `outcome` is `ok` or an error code.
    pub fn publish(&self, outcome: &str, records: u64, bytes: u64, seconds: f64) {
        self.publish_requests.count(outcome);
        if outcome == "ok" {
            self.publish_records.inc_by(records);
            self.publish_bytes.inc_by(bytes);
            self.publish_latency.observe(seconds);
        }
    }

    /// A fetch answered: `outcome` is `ok` or an error code.
    pub fn fetch_request(&self, outcome: &str) {
        self.fetch_requests.count(outcome);
    }

    /// Records served by a fetch or a subscribe batch.
    pub fn fetched(&self, records: u64, bytes: u64) {
        self.fetch_records.inc_by(records);
        self.fetch_bytes.inc_by(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::GroupProgress;
    use paxlog_consensus::{Ballot, LeaderChange, Status};

    fn text(r: &Registry) -> String {
        let mut s = String::new();
        prometheus_client::encoding::text::encode(&mut s, r).expect("encode");
        s
    }

    fn status(leader: Option<u64>, decided: u64) -> Status {
        Status {
            id: 1,
            role: if leader == Some(1) {
                "leader"
            } else {
                "follower"
            },
            leader,
            promised: Ballot::new(4, 1),
            decided,
            last_slot: decided,
            repairing: false,
        }
    }

    #[test]
    fn series_appear_followers_go_with_leadership_and_deleted_partitions_disappear() {
        let mut registry = Registry::with_prefix("paxlog");
        let m = Arc::new(NodeMetrics::register(&mut registry));
        let p = PartitionLabels {
            topic: "orders".into(),
            partition: 2,
        };
        let mut obs = m.replica(1, 17, p);
        obs.leader_change(&LeaderChange {
            leader: Some(1),
            ballot: Ballot::new(4, 1),
            is_self: true,
        });
        let progress = GroupProgress {
            high_watermark: 12,
            log_start: 3,
            in_flight: 2,
        };
        let followers = [(2, Some(4)), (3, None)];
        obs.observe(&status(Some(1), 7), progress, followers.into_iter());
        m.commit(0.002, 3, 4096);
        m.publish("ok", 5, 100, 0.003);
        m.publish("not_leader", 5, 100, 0.0);
        m.fetch_request("ok");
        let t = text(&registry);
        for line in [
            "paxlog_partition_decided_index{topic=\"orders\",partition=\"2\"} 7",
            "paxlog_partition_high_watermark{topic=\"orders\",partition=\"2\"} 12",
            "paxlog_partition_log_start_offset{topic=\"orders\",partition=\"2\"} 3",
            "paxlog_partition_leader{topic=\"orders\",partition=\"2\"} 1",
            "paxlog_partition_ballot_round{topic=\"orders\",partition=\"2\"} 4",
            "paxlog_partition_leader_changes_total{topic=\"orders\",partition=\"2\"} 1",
            "paxlog_partition_proposals_in_flight{topic=\"orders\",partition=\"2\"} 2",
            "paxlog_partition_follower_lag_slots{topic=\"orders\",partition=\"2\",follower=\"2\"} 3",
            "paxlog_commit_fsync_seconds_count 1",
            "paxlog_publish_requests_total{outcome=\"ok\"} 1",
            "paxlog_publish_requests_total{outcome=\"not_leader\"} 1",
            "paxlog_publish_records_total 5",
            "paxlog_fetch_requests_total{outcome=\"ok\"} 1",
        ] {
            assert!(t.contains(line), "missing {line}:\n{t}");
        }
        assert!(!t.contains("follower=\"3\""), "3 never reported:\n{t}");

        // Another node takes over: this one drops its followers' series.
        obs.observe(&status(Some(2), 8), progress, std::iter::empty());
        let t = text(&registry);
        assert!(!t.contains("follower_lag_slots{"), "{t}");
        assert!(
            t.contains("paxlog_partition_leader{topic=\"orders\",partition=\"2\"} 0"),
            "{t}"
        );

        obs.remove();
        assert!(!text(&registry).contains("topic=\"orders\""));
    }
}
