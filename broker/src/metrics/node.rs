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
//!   paxlog_publish_requests_total{outcome}       ok, or the error code (not_leader, ...)
//!   paxlog_publish_records_total / paxlog_publish_bytes_total
//!   paxlog_publish_latency_seconds               received -> acknowledged (histogram)
//!   paxlog_fetch_records_total / paxlog_fetch_bytes_total
//! ```
//!
//! The metadata group is `topic="__metadata",partition="0"`. A deleted topic's series are
//! removed, so the number of series follows the partitions that exist.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

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

/// The outcome label of a publish.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `ok`, or the lower-case error code.
    pub outcome: String,
}

/// The node's driver and service metrics. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct NodeMetrics {
    fsync: Histogram,
    commit_groups: Histogram,
    commit_bytes: Histogram,
    decided: Family<PartitionLabels, Gauge>,
    high_watermark: Family<PartitionLabels, Gauge>,
    log_start: Family<PartitionLabels, Gauge>,
    leader: Family<PartitionLabels, Gauge>,
    ballot: Family<PartitionLabels, Gauge>,
    leader_changes: Family<PartitionLabels, Counter>,
    publish_requests: Family<OutcomeLabels, Counter>,
    publish_records: Counter,
    publish_bytes: Counter,
    publish_latency: Histogram,
    fetch_records: Counter,
    fetch_bytes: Counter,
}

/// What the driver publishes of one group after a round.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupGauges {
    /// Decided index.
    pub decided: u64,
    /// Next offset (0 for the metadata group).
    pub high_watermark: u64,
    /// First offset stored.
    pub log_start: u64,
    /// Whether this node leads.
    pub leading: bool,
    /// Round of the highest ballot known.
    pub ballot_round: u64,
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
            m.decided.clone(),
        );
        registry.register(
            "partition_high_watermark",
            "The offset the partition's next record gets (end of what consumers read)",
            m.high_watermark.clone(),
        );
        registry.register(
            "partition_log_start_offset",
            "The partition's first retained offset on this replica",
            m.log_start.clone(),
        );
        registry.register(
            "partition_leader",
            "1 while this node leads the partition",
            m.leader.clone(),
        );
        registry.register(
            "partition_ballot_round",
            "Round of the highest ballot this replica knows for the partition",
            m.ballot.clone(),
        );
        registry.register(
            "partition_leader_changes",
            "Leadership changes this replica observed for the partition",
            m.leader_changes.clone(),
        );
        registry.register(
            "publish_requests",
            "Publish requests answered, by outcome (ok or the error code)",
            m.publish_requests.clone(),
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
            "fetch_records",
            "Records served to consumers",
            m.fetch_records.clone(),
        );
        registry.register(
            "fetch_bytes",
            "Record bytes served to consumers",
            m.fetch_bytes.clone(),
        );
        m
    }

    /// Metrics registered nowhere (tests, tools).
    pub fn unregistered() -> Self {
        Self {
            fsync: latency_buckets(),
            commit_groups: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            commit_bytes: Histogram::new(exponential_buckets(256.0, 4.0, 12)),
            decided: Family::default(),
            high_watermark: Family::default(),
            log_start: Family::default(),
            leader: Family::default(),
            ballot: Family::default(),
            leader_changes: Family::default(),
            publish_requests: Family::default(),
            publish_records: Counter::default(),
            publish_bytes: Counter::default(),
            publish_latency: latency_buckets(),
            fetch_records: Counter::default(),
            fetch_bytes: Counter::default(),
        }
    }

    /// One synced group commit.
    pub fn commit(&self, seconds: f64, groups: usize, bytes: usize) {
        self.fsync.observe(seconds);
        self.commit_groups.observe(groups as f64);
        self.commit_bytes.observe(bytes as f64);
    }

    /// A group's state after a round.
    pub fn group(&self, labels: &PartitionLabels, g: GroupGauges) {
        let set = |family: &Family<PartitionLabels, Gauge>, value: u64| {
            family
                .get_or_create(labels)
                .set(i64::try_from(value).unwrap_or(i64::MAX));
        };
        set(&self.decided, g.decided);
        set(&self.high_watermark, g.high_watermark);
        set(&self.log_start, g.log_start);
        set(&self.leader, u64::from(g.leading));
        set(&self.ballot, g.ballot_round);
    }

    /// This replica saw the partition's leadership change.
    pub fn leader_changed(&self, labels: &PartitionLabels) {
        self.leader_changes.get_or_create(labels).inc();
    }

    /// Drops a deleted partition's series.
    pub fn remove_group(&self, labels: &PartitionLabels) {
        self.decided.remove(labels);
        self.high_watermark.remove(labels);
        self.log_start.remove(labels);
        self.leader.remove(labels);
        self.ballot.remove(labels);
        self.leader_changes.remove(labels);
    }

    /// A publish answered: `outcome` is `ok` or an error code.
    pub fn publish(&self, outcome: &str, records: u64, bytes: u64, seconds: f64) {
        self.publish_requests
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
        if outcome == "ok" {
            self.publish_records.inc_by(records);
            self.publish_bytes.inc_by(bytes);
            self.publish_latency.observe(seconds);
        }
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

    #[test]
    fn series_appear_and_deleted_partitions_disappear() {
        let mut registry = Registry::with_prefix("paxlog");
        let m = NodeMetrics::register(&mut registry);
        let p = PartitionLabels {
            topic: "orders".into(),
            partition: 2,
        };
        m.group(
            &p,
            GroupGauges {
                decided: 7,
                high_watermark: 12,
                log_start: 3,
                leading: true,
                ballot_round: 4,
            },
        );
        m.leader_changed(&p);
        m.commit(0.002, 3, 4096);
        m.publish("ok", 5, 100, 0.003);
        m.publish("not_leader", 5, 100, 0.0);
        let text = |r: &Registry| {
            let mut s = String::new();
            prometheus_client::encoding::text::encode(&mut s, r).expect("encode");
            s
        };
        let t = text(&registry);
        for line in [
            "paxlog_partition_decided_index{topic=\"orders\",partition=\"2\"} 7",
            "paxlog_partition_high_watermark{topic=\"orders\",partition=\"2\"} 12",
            "paxlog_partition_leader{topic=\"orders\",partition=\"2\"} 1",
            "paxlog_partition_leader_changes_total{topic=\"orders\",partition=\"2\"} 1",
            "paxlog_commit_fsync_seconds_count 1",
            "paxlog_publish_requests_total{outcome=\"ok\"} 1",
            "paxlog_publish_requests_total{outcome=\"not_leader\"} 1",
            "paxlog_publish_records_total 5",
        ] {
            assert!(t.contains(line), "missing {line}:\n{t}");
        }
        m.remove_group(&p);
        assert!(!text(&registry).contains("topic=\"orders\""));
    }
}
