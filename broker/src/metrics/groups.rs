//! Consumer group series, exported by each group's coordinator (the leader of the group's
//! `__consumer_offsets` partition), so lag is graphed and alerted on without a client.
//!
//! ```text
//!   paxlog_group_committed_offset{group,topic,partition}   next offset the group consumes
//!   paxlog_group_lag_records{group,topic,partition}        end - max(committed, log start),
//!                                                          where this node hosts the partition
//!   paxlog_group_members{group}                            members with a live session
//! ```
//!
//! The service takes a [`GroupsSnapshot`] of the groups it coordinates every few seconds
//! and [`GroupMetrics::show`]s it: series absent from the new snapshot (leadership moved,
//! topic deleted, offsets reset away) are removed, so one group is exported by one node.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::hash::Hash;
use std::sync::Mutex;

/// Which group and partition a series is about.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct GroupPartitionLabels {
    /// Consumer group.
    pub group: String,
    /// Topic name.
    pub topic: String,
    /// Partition number within the topic.
    pub partition: u32,
}

/// Which group a series is about.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct GroupLabels {
    /// Consumer group.
    pub group: String,
}

/// Every group series this node should export, with its value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupsSnapshot {
    /// Committed offsets.
    pub committed: BTreeMap<GroupPartitionLabels, u64>,
    /// Lags in records, where the partition's end is known here.
    pub lag: BTreeMap<GroupPartitionLabels, u64>,
    /// Members per group.
    pub members: BTreeMap<GroupLabels, u64>,
}

/// The group families, and what was last shown in them.
#[derive(Debug, Default)]
pub struct GroupMetrics {
    committed: Family<GroupPartitionLabels, Gauge>,
    lag: Family<GroupPartitionLabels, Gauge>,
    members: Family<GroupLabels, Gauge>,
    shown: Mutex<GroupsSnapshot>,
}

impl GroupMetrics {
    /// Registers the families in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "group_committed_offset",
            "On the group's coordinator: the offset the group consumes next in the partition",
            self.committed.clone(),
        );
        registry.register(
            "group_lag_records",
            "On the group's coordinator, if it hosts the partition: records after the group's \
             committed offset (from the log start without one)",
            self.lag.clone(),
        );
        registry.register(
            "group_members",
            "On the group's coordinator: members of the group with a live session",
            self.members.clone(),
        );
    }

    /// Makes the families show exactly `snapshot`: sets its series, removes the others.
    pub fn show(&self, snapshot: GroupsSnapshot) {
        let mut shown = self.shown.lock().unwrap_or_else(|p| p.into_inner());
        replace(&self.committed, &shown.committed, &snapshot.committed);
        replace(&self.lag, &shown.lag, &snapshot.lag);
        replace(&self.members, &shown.members, &snapshot.members);
        *shown = snapshot;
    }
}

/// Removes the series of `old` that `new` lacks, then sets `new`'s.
fn replace<L: Clone + Hash + Eq + Ord>(
    family: &Family<L, Gauge>,
    old: &BTreeMap<L, u64>,
    new: &BTreeMap<L, u64>,
) {
    for labels in old.keys().filter(|l| !new.contains_key(*l)) {
        family.remove(labels);
    }
    for (labels, value) in new {
        family
            .get_or_create(labels)
            .set(i64::try_from(*value).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(r: &Registry) -> String {
        let mut s = String::new();
        prometheus_client::encoding::text::encode(&mut s, r).expect("encode");
        s
    }

    fn labels(group: &str, partition: u32) -> GroupPartitionLabels {
        GroupPartitionLabels {
            group: group.into(),
            topic: "orders".into(),
            partition,
        }
    }

    #[test]
    fn a_snapshot_replaces_the_last_one_and_groups_not_in_it_disappear() {
        let mut registry = Registry::with_prefix("paxlog");
        let m = GroupMetrics::default();
        m.register(&mut registry);
        let group = |g: &str| GroupLabels { group: g.into() };
        m.show(GroupsSnapshot {
            committed: [(labels("a", 0), 5), (labels("b", 1), 2)].into(),
            lag: [(labels("a", 0), 3), (labels("b", 1), 0)].into(),
            members: [(group("a"), 2), (group("b"), 1)].into(),
        });
        let t = text(&registry);
        for line in [
            "paxlog_group_committed_offset{group=\"a\",topic=\"orders\",partition=\"0\"} 5",
            "paxlog_group_committed_offset{group=\"b\",topic=\"orders\",partition=\"1\"} 2",
            "paxlog_group_lag_records{group=\"a\",topic=\"orders\",partition=\"0\"} 3",
            "paxlog_group_members{group=\"a\"} 2",
            "paxlog_group_members{group=\"b\"} 1",
        ] {
            assert!(t.contains(line), "missing {line}:\n{t}");
        }

        // b moved to another coordinator; a committed further and lost its members.
        m.show(GroupsSnapshot {
            committed: [(labels("a", 0), 8)].into(),
            lag: [(labels("a", 0), 0)].into(),
            members: [(group("a"), 0)].into(),
        });
        let t = text(&registry);
        assert!(!t.contains("group=\"b\""), "b's series stay:\n{t}");
        for line in [
            "paxlog_group_committed_offset{group=\"a\",topic=\"orders\",partition=\"0\"} 8",
            "paxlog_group_lag_records{group=\"a\",topic=\"orders\",partition=\"0\"} 0",
            "paxlog_group_members{group=\"a\"} 0",
        ] {
            assert!(t.contains(line), "missing {line}:\n{t}");
        }

        m.show(GroupsSnapshot::default());
        assert!(!text(&registry).contains("group=\""));
    }
}
