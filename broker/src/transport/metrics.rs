//! The transport's Prometheus metrics, one series per peer (label `peer`).
//!
//! ```text
//!   paxlog_peer_messages_sent_total{peer}        handed to the peer's stream
//!   paxlog_peer_messages_received_total{peer}    decoded and handed to the node
//!   paxlog_peer_messages_dropped_total{peer,reason}
//!   paxlog_peer_batches_sent_total{peer}         PeerBatch frames written
//!   paxlog_peer_connected{peer}                  1 while a stream to the peer is up
//!   paxlog_peer_reconnects_total{peer}           streams established after the first
//! ```

use crate::config::NodeId;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Why a message was dropped; the `reason` label of `paxlog_peer_messages_dropped_total`.
///
/// Drops are normal under faults: Paxos retransmits what matters. A steady rate of
/// `malformed` or `misaddressed` points at a peer running an incompatible build or a
/// mismatched `--peers` list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The peer's send queue was full (peer slow or unreachable).
    QueueFull,
    /// One message alone exceeded the largest frame a peer accepts.
    TooLarge,
    /// A received message could not be decoded (see `convert::ConvertError`).
    Malformed,
    /// A received message was addressed to another node.
    Misaddressed,
    /// `send` named a node that is not a configured peer (or this node itself).
    NotAPeer,
    /// The hub was shutting down.
    Shutdown,
}

impl DropReason {
    /// Every reason, in declaration order.
    pub const ALL: [DropReason; 6] = [
        DropReason::QueueFull,
        DropReason::TooLarge,
        DropReason::Malformed,
        DropReason::Misaddressed,
        DropReason::NotAPeer,
        DropReason::Shutdown,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::TooLarge => "too_large",
            DropReason::Malformed => "malformed",
            DropReason::Misaddressed => "misaddressed",
            DropReason::NotAPeer => "not_a_peer",
            DropReason::Shutdown => "shutdown",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PeerLabels {
    peer: NodeId,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DropLabels {
    peer: NodeId,
    reason: &'static str,
}

/// The transport's metric families. Cloning shares them (handles, not copies).
#[derive(Clone, Debug, Default)]
pub struct PeerMetrics {
    sent: Family<PeerLabels, Counter>,
    received: Family<PeerLabels, Counter>,
    dropped: Family<DropLabels, Counter>,
    batches: Family<PeerLabels, Counter>,
    connected: Family<PeerLabels, Gauge>,
    reconnects: Family<PeerLabels, Counter>,
}

impl PeerMetrics {
    /// Creates the families and registers them in `registry` (normally
    /// [`crate::metrics::Metrics::registry_mut`], which adds the `paxlog_` prefix and the
    /// `node` label). [`PeerMetrics::default`] gives unregistered ones.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = PeerMetrics::default();
        registry.register(
            "peer_messages_sent",
            "Paxos messages handed to a peer's stream",
            metrics.sent.clone(),
        );
        registry.register(
            "peer_messages_received",
            "Paxos messages received from a peer and handed to the node",
            metrics.received.clone(),
        );
        registry.register(
            "peer_messages_dropped",
            "Paxos messages to or from a peer dropped, by reason (Paxos retransmits)",
            metrics.dropped.clone(),
        );
        registry.register(
            "peer_batches_sent",
            "PeerBatch frames written to a peer's stream",
            metrics.batches.clone(),
        );
        registry.register(
            "peer_connected",
            "1 while a stream to the peer is established, else 0",
            metrics.connected.clone(),
        );
        registry.register(
            "peer_reconnects",
            "Streams to a peer established after the first one",
            metrics.reconnects.clone(),
        );
        metrics
    }

    /// Handles to `peer`'s series, resolved once so the hot path skips the family's lock.
    /// Creating them also makes the series visible (at 0) before anything happens.
    pub(crate) fn for_peer(&self, peer: NodeId) -> PeerCounters {
        let labels = PeerLabels { peer };
        PeerCounters {
            sent: self.sent.get_or_create_owned(&labels),
            received: self.received.get_or_create_owned(&labels),
            batches: self.batches.get_or_create_owned(&labels),
            connected: self.connected.get_or_create_owned(&labels),
            reconnects: self.reconnects.get_or_create_owned(&labels),
            dropped: DropReason::ALL.map(|reason| {
                self.dropped.get_or_create_owned(&DropLabels {
                    peer,
                    reason: reason.as_str(),
                })
            }),
        }
    }

    /// Counts a drop for a node that has no [`PeerCounters`] (not a configured peer).
    pub(crate) fn dropped(&self, peer: NodeId, reason: DropReason) {
        let labels = DropLabels {
            peer,
            reason: reason.as_str(),
        };
        self.dropped.get_or_create(&labels).inc();
    }
}

/// One peer's series.
#[derive(Clone, Debug)]
pub(crate) struct PeerCounters {
    pub(crate) sent: Counter,
    pub(crate) received: Counter,
    pub(crate) batches: Counter,
    pub(crate) connected: Gauge,
    pub(crate) reconnects: Counter,
    dropped: [Counter; DropReason::ALL.len()],
}

impl PeerCounters {
    /// Counts `n` messages dropped for `reason`.
    pub(crate) fn drop_n(&self, reason: DropReason, n: u64) {
        self.dropped[reason.index()].inc_by(n);
    }

    /// Counts one message dropped for `reason`.
    pub(crate) fn drop_one(&self, reason: DropReason) {
        self.drop_n(reason, 1);
    }
}
