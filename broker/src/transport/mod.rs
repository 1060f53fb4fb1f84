//! Replication transport: the [`PeerHub`] carries the Paxos messages of every group
//! between this node and its peers, over one long-lived bidirectional gRPC stream
//! (`paxlog.v1.Peer/Stream`) per pair of nodes.
//!
//! ```text
//!        node 1 (lower id: dials)                    node 2 (higher id: accepts)
//!
//!   driver ─ hub.send(group, msg) ─┐               ┌─ hub.send(group, msg) ─ driver
//!      (never waits: a full queue  ▼               ▼   drops and counts)
//!                            queue[2]             queue[1]        bounded, all groups
//!                                │                   │
//!                             writer              writer          one PeerBatch per drain
//!                                │                   │
//!                                ├── request ──────▶ reader ─▶ inbound mpsc ─▶ driver
//!   driver ◀─ inbound mpsc ◀─ reader ◀── response ───┤
//!                                   one Peer/Stream
//! ```
//!
//! - **One stream per pair.** The node with the lower id dials (`dial.rs`), sends a
//!   first `PeerBatch` announcing its `from_node`, and both directions of that one stream
//!   are then used. The higher node ([`PeerService`]) refuses unknown callers
//!   (`PERMISSION_DENIED`) and callers that should not dial it (`INVALID_ARGUMENT`); a
//!   newer stream from a peer replaces the older one.
//! - **Batching.** Per peer, one bounded queue holds messages of all groups; the writer of
//!   the current stream drains whatever is queued (up to a count and byte cap) into one
//!   batch, so messages are coalesced per peer and stay in order.
//! - **Loss, not blocking.** Paxos retransmits, so when a peer is slow or away its queue
//!   fills and further messages are dropped and counted. Across a reconnect, messages the
//!   writer had taken but not yet sent are lost; the transport never duplicates.
//! - **Reconnect** with exponential backoff and jitter, forever, until the hub is dropped.
//! - Inbound messages go to one bounded channel for the node; when it is full the readers
//!   wait, and HTTP/2 flow control pushes back on the peers.

mod accept;
mod config;
mod dial;
mod link;
mod metrics;
mod session;

pub use accept::{PeerRejected, PeerService};
pub use config::{
    DEFAULT_BATCH_BYTES, DEFAULT_BATCH_MESSAGES, DEFAULT_MAX_FRAME_BYTES, DEFAULT_QUEUE_BYTES,
    DEFAULT_QUEUE_MESSAGES, TransportConfig,
};
pub use metrics::{DropReason, PeerMetrics};

use crate::config::NodeId;
use link::Link;
use paxlog_consensus::Message;
use paxlog_proto::v1::peer_server::PeerServer;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

/// Batches buffered between a stream's writer and gRPC. Small: the real buffer is the
/// peer's queue, and a full buffer here is how a slow peer makes that queue fill.
const OUTGOING_BATCHES: usize = 4;

/// A message received from a peer, for the replica of `group` on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inbound {
    /// The Paxos group: 0 is cluster metadata, others are partitions.
    pub group: u64,
    /// The message; `message.from` is the peer, `message.to` is this node.
    pub message: Message,
}

/// The node's replication transport; see the [module docs](self).
///
/// Created inside a tokio runtime (it spawns its dialers). Dropping it (or calling
/// [`PeerHub::shutdown`]) stops every dialer and stream; its service then refuses new
/// streams with `UNAVAILABLE`.
#[derive(Debug)]
pub struct PeerHub {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
}

/// State shared by the hub, its service, dialers and sessions.
#[derive(Debug)]
struct Shared {
    node: NodeId,
    /// Every peer (this node excluded); fixed for the hub's life.
    links: BTreeMap<NodeId, Arc<Link>>,
    inbound: mpsc::Sender<Inbound>,
    metrics: PeerMetrics,
    config: TransportConfig,
    /// Turns true, or loses its sender, when the hub stops.
    shutdown: watch::Receiver<bool>,
}

impl PeerHub {
    /// Starts the transport of node `node` with the default [`TransportConfig`].
    ///
    /// `peers` maps node ids to the `host:port` of their gRPC server; it may include
    /// `node` itself (as `Config::peers` does), which is skipped. Received messages go to
    /// `inbound`. `metrics` are the families to count into (see
    /// [`PeerMetrics::register`]).
    pub fn new(
        node: NodeId,
        peers: BTreeMap<NodeId, String>,
        inbound: mpsc::Sender<Inbound>,
        metrics: PeerMetrics,
    ) -> PeerHub {
        PeerHub::with_config(node, peers, inbound, metrics, TransportConfig::default())
    }

    /// Like [`PeerHub::new`] with explicit tunables.
    pub fn with_config(
        node: NodeId,
        peers: BTreeMap<NodeId, String>,
        inbound: mpsc::Sender<Inbound>,
        metrics: PeerMetrics,
        config: TransportConfig,
    ) -> PeerHub {
        let links: BTreeMap<NodeId, Arc<Link>> = peers
            .into_iter()
            .filter(|(peer, _)| *peer != node)
            .map(|(peer, addr)| {
                let link = Link::new(peer, addr, &config, metrics.for_peer(peer));
                (peer, Arc::new(link))
            })
            .collect();
        let (stop, shutdown) = watch::channel(false);
        let shared = Arc::new(Shared {
            node,
            links,
            inbound,
            metrics,
            config,
            shutdown,
        });
        for link in shared.links.values().filter(|link| link.peer > node) {
            // Events carry `node` and `peer` themselves; the caller's span (if any) stays.
            tokio::spawn(dial::dial_forever(shared.clone(), link.clone()).in_current_span());
        }
        PeerHub { shared, stop }
    }

    /// This node's id.
    pub fn node(&self) -> NodeId {
        self.shared.node
    }

    /// Queues `message` (of Paxos group `group`) for node `message.to`, without waiting.
    ///
    /// Messages to one peer are sent in the order queued. If the peer's queue is full
    /// (peer slow or unreachable), `message.to` is not a peer, or the hub is shutting down,
    /// the message is dropped and counted in `paxlog_peer_messages_dropped_total`: Paxos
    /// retransmits, and the caller (the replica driver) must never wait on a peer.
    pub fn send(&self, group: u64, message: Message) {
        let to = message.to;
        let Some(link) = self.shared.links.get(&to) else {
            self.shared.metrics.dropped(to, DropReason::NotAPeer);
            tracing::debug!(
                node = self.shared.node,
                to,
                group,
                "dropping a message to a node that is not a peer"
            );
            return;
        };
        if *self.shared.shutdown.borrow() {
            link.counters.drop_one(DropReason::Shutdown);
            return;
        }
        if let Err(reason) = link.enqueue(group, message) {
            link.counters.drop_one(reason);
        }
    }

    /// The `paxlog.v1.Peer` gRPC service, to register on the node's gRPC server. Frame
    /// size limits are set from [`TransportConfig::max_frame_bytes`].
    pub fn service(&self) -> PeerServer<PeerService> {
        let limit = self.shared.config.max_frame_bytes;
        PeerServer::new(PeerService::new(self.shared.clone()))
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit)
    }

    /// The peers a stream is established with right now, in id order.
    pub fn connected(&self) -> Vec<NodeId> {
        let links = self.shared.links.values();
        links
            .filter(|link| link.is_connected())
            .map(|link| link.peer)
            .collect()
    }

    /// The configured peers (this node excluded), in id order.
    pub fn peers(&self) -> Vec<NodeId> {
        self.shared.links.keys().copied().collect()
    }

    /// Stops every dialer and stream now; [`send`](PeerHub::send) then drops. Dropping
    /// the hub does the same.
    pub fn shutdown(&self) {
        self.stop.send_replace(true);
    }
}

impl Drop for PeerHub {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Completes when the hub stops: the flag turned true or its sender is gone.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // An error means the sender was dropped, which means stop as well.
    let _ = shutdown.wait_for(|stop| *stop).await;
}
