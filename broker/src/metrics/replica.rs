//! One Paxos group's observability inside the replica driver: its series, its tracing span,
//! and the leadership it last saw.
//!
//! ```text
//!   Driver::open_partition ──► NodeMetrics::replica(..) ──► ReplicaObserver (in the Group)
//!   flush, per group:  span().entered()      events carry node, partition, topic, ballot
//!                      leader_change(change) counts a new leadership, records its ballot
//!   publish_all:       observe(status, ..)   gauges, and the lag of each follower (leader)
//!   topic deleted:     remove()              the group's series go away
//! ```
//!
//! Series handles are resolved once, so a driver round sets atomics instead of hashing
//! labels under the families' locks.

use super::node::{FollowerLabels, NodeMetrics, PartitionLabels};
use paxlog_consensus::{Ballot, LeaderChange, NodeId, Slot, Status};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use std::sync::Arc;

/// A group's state after a driver round, beyond what its replica's [`Status`] says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupProgress {
    /// The offset the next record gets (0 for the metadata group).
    pub high_watermark: u64,
    /// The first offset stored.
    pub log_start: u64,
    /// Proposals made on this node still waiting for their outcome.
    pub in_flight: usize,
}

/// One Paxos group's series and span. The default is detached (registered nowhere, no
/// span), for groups built before the driver names them, and for tests.
#[derive(Debug)]
pub struct ReplicaObserver {
    metrics: Arc<NodeMetrics>,
    labels: PartitionLabels,
    span: tracing::Span,
    decided: Gauge,
    high_watermark: Gauge,
    log_start: Gauge,
    leader: Gauge,
    ballot: Gauge,
    in_flight: Gauge,
    leader_changes: Counter,
    /// While leading: the lag series of each follower that has reported.
    followers: Vec<(NodeId, Gauge)>,
    /// The ballot of the last leadership counted, and the one recorded on the span.
    leadership: Option<Ballot>,
    span_ballot: Option<Ballot>,
    /// Node and group the span names (none for a detached observer).
    pub(super) span_ids: Option<(NodeId, u64)>,
}

impl Default for ReplicaObserver {
    fn default() -> Self {
        let metrics = Arc::new(NodeMetrics::unregistered());
        ReplicaObserver::new(metrics, PartitionLabels::metadata(), tracing::Span::none())
    }
}

impl ReplicaObserver {
    /// The observer of the group `labels` names, creating its series (visible at 0 from
    /// now on). `span` is the group's span (see [`NodeMetrics::replica`]).
    pub(super) fn new(
        metrics: Arc<NodeMetrics>,
        labels: PartitionLabels,
        span: tracing::Span,
    ) -> Self {
        let f = &metrics.partition;
        Self {
            decided: f.decided.get_or_create_owned(&labels),
            high_watermark: f.high_watermark.get_or_create_owned(&labels),
            log_start: f.log_start.get_or_create_owned(&labels),
            leader: f.leader.get_or_create_owned(&labels),
            ballot: f.ballot.get_or_create_owned(&labels),
            in_flight: f.in_flight.get_or_create_owned(&labels),
            leader_changes: f.leader_changes.get_or_create_owned(&labels),
            followers: Vec::new(),
            leadership: None,
            span_ballot: None,
            span_ids: None,
            span,
            labels,
            metrics,
        }
    }

    /// The span the driver's work on this group runs in.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// The replica's view of leadership changed (a `Ready`'s `leader`): a leader under a
    /// ballot not seen before is a new leadership, counted once; an election under way
    /// (no leader) is not. The span records the ballot whenever it changes.
    pub fn leader_change(&mut self, change: &LeaderChange) {
        if is_new_leadership(self.leadership, change) {
            self.leadership = Some(change.ballot);
            self.leader_changes.inc();
        }
        if self.span_ballot != Some(change.ballot) {
            self.span_ballot = Some(change.ballot);
            // A fresh span per ballot: log lines show every value a span field was ever
            // recorded with, so recording it again would pile up `ballot=` fields.
            if let Some((node, group)) = self.span_ids {
                self.span = tracing::info_span!(
                    parent: None,
                    "replica",
                    node,
                    partition = group,
                    topic = %self.labels.topic,
                    ballot = %change.ballot,
                );
            }
        }
    }

    /// Publishes the group's state after a round. `followers` is the replica's
    /// [`followers`](paxlog_consensus::Replica::followers): empty unless this node leads,
    /// and then each follower's lag (this node's decided index minus the follower's last
    /// report) is exported; a node that stops leading drops its followers' series.
    pub fn observe(
        &mut self,
        status: &Status,
        progress: GroupProgress,
        followers: impl Iterator<Item = (NodeId, Option<Slot>)>,
    ) {
        self.decided.set(gauge_value(status.decided));
        self.high_watermark
            .set(gauge_value(progress.high_watermark));
        self.log_start.set(gauge_value(progress.log_start));
        self.leader.set(i64::from(status.leader == Some(status.id)));
        self.ballot.set(gauge_value(status.promised.round));
        self.in_flight.set(gauge_value(progress.in_flight as u64));
        let mut seen = 0;
        for (follower, decided) in followers {
            seen += 1;
            let Some(decided) = decided else { continue };
            let lag = gauge_value(status.decided.saturating_sub(decided));
            match self.followers.iter().find(|(id, _)| *id == follower) {
                Some((_, gauge)) => {
                    gauge.set(lag);
                }
                None => {
                    let gauge = self.follower_series(follower);
                    gauge.set(lag);
                    self.followers.push((follower, gauge));
                }
            }
        }
        if seen == 0 && !self.followers.is_empty() {
            self.remove_followers();
        }
    }

    /// Removes every series of the group (its topic was deleted).
    pub fn remove(&mut self) {
        self.remove_followers();
        let f = &self.metrics.partition;
        f.decided.remove(&self.labels);
        f.high_watermark.remove(&self.labels);
        f.log_start.remove(&self.labels);
        f.leader.remove(&self.labels);
        f.ballot.remove(&self.labels);
        f.in_flight.remove(&self.labels);
        f.leader_changes.remove(&self.labels);
    }

    fn follower_series(&self, follower: NodeId) -> Gauge {
        let labels = FollowerLabels::new(&self.labels, follower);
        self.metrics
            .partition
            .follower_lag
            .get_or_create_owned(&labels)
    }

    fn remove_followers(&mut self) {
        for (follower, _) in self.followers.drain(..) {
            let labels = FollowerLabels::new(&self.labels, follower);
            self.metrics.partition.follower_lag.remove(&labels);
        }
    }
}

/// Whether `change` announces a leadership other than the last one counted (`last`, its
/// ballot): a leader is known, under a ballot not counted yet.
fn is_new_leadership(last: Option<Ballot>, change: &LeaderChange) -> bool {
    change.leader.is_some() && last != Some(change.ballot)
}

/// A Prometheus gauge holds an `i64`; slots and offsets never come near its limit.
fn gauge_value(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(leader: Option<NodeId>, round: u64, node: NodeId) -> LeaderChange {
        LeaderChange {
            leader,
            ballot: Ballot::new(round, node),
            is_self: false,
        }
    }

    #[test]
    fn a_leadership_counts_once_and_an_election_not_at_all() {
        assert!(is_new_leadership(None, &change(Some(2), 1, 2)));
        assert!(!is_new_leadership(
            Some(Ballot::new(1, 2)),
            &change(Some(2), 1, 2)
        ));
        assert!(!is_new_leadership(
            Some(Ballot::new(1, 2)),
            &change(None, 2, 3)
        ));
        // The same node leading again after an election is a new leadership.
        assert!(is_new_leadership(
            Some(Ballot::new(1, 2)),
            &change(Some(2), 3, 2)
        ));
    }

    #[test]
    fn gauges_saturate_instead_of_wrapping() {
        assert_eq!(gauge_value(7), 7);
        assert_eq!(gauge_value(u64::MAX), i64::MAX);
    }
}
