//! The transport's tunables, with their defaults defined once here.

use crate::security::TlsMaterial;
use std::time::Duration;

/// Default per-peer send queue bound, in messages.
pub const DEFAULT_QUEUE_MESSAGES: usize = 16 * 1024;
/// Default per-peer send queue bound, in payload bytes (see [`TransportConfig::queue_bytes`]).
pub const DEFAULT_QUEUE_BYTES: usize = 64 << 20;
/// Default most messages in one `PeerBatch`.
pub const DEFAULT_BATCH_MESSAGES: usize = 4096;
/// Default most encoded bytes in one `PeerBatch` (a single larger message goes alone).
pub const DEFAULT_BATCH_BYTES: usize = 4 << 20;
/// Default largest frame sent or accepted. It must hold the largest single Paxos message:
/// an `Accept` of `max_batch_entries` values, each up to `max_record_bytes`.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 256 << 20;

/// How the [`PeerHub`](super::PeerHub) queues, batches, dials and backs off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportConfig {
    /// Messages queued per peer before `send` drops new ones. Paxos retransmits, so a
    /// bounded queue costs a retransmission, never correctness.
    pub queue_messages: usize,
    /// Payload bytes (values and snapshots; small messages count a fixed overhead) queued
    /// per peer before `send` drops new ones, so large values cannot exhaust memory while a
    /// peer is away. One message is always admitted into an empty queue.
    pub queue_bytes: usize,
    /// Most messages coalesced into one `PeerBatch`.
    pub batch_messages: usize,
    /// Most encoded bytes in one `PeerBatch`; a single larger message is sent alone.
    pub batch_bytes: usize,
    /// Largest frame this node sends or accepts (gRPC message size limit, both ways). A
    /// message that alone exceeds it is dropped at the sender, since the receiver would
    /// reset the stream.
    pub max_frame_bytes: usize,
    /// Bound on establishing a stream: TCP connect plus the `Peer/Stream` handshake, and
    /// how long an accepting node waits for the first batch.
    pub connect_timeout: Duration,
    /// First delay before redialing a peer; doubles per failure, with jitter.
    pub backoff_min: Duration,
    /// Longest delay between dials.
    pub backoff_max: Duration,
    /// HTTP/2 ping interval on a dialed stream, so a silently dead peer (power loss,
    /// partition) is noticed even when there is nothing to send.
    pub keepalive_interval: Duration,
    /// How long a ping may go unanswered before the connection is considered dead.
    pub keepalive_timeout: Duration,
    /// Mutual TLS: peers are dialed over TLS with this node's certificate, and accepted
    /// streams must come with a certificate the CA verified. `None`: plain text.
    pub tls: Option<TlsMaterial>,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            queue_messages: DEFAULT_QUEUE_MESSAGES,
            queue_bytes: DEFAULT_QUEUE_BYTES,
            batch_messages: DEFAULT_BATCH_MESSAGES,
            batch_bytes: DEFAULT_BATCH_BYTES,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            connect_timeout: Duration::from_secs(3),
            backoff_min: Duration::from_millis(20),
            backoff_max: Duration::from_secs(2),
            keepalive_interval: Duration::from_secs(1),
            keepalive_timeout: Duration::from_secs(3),
            tls: None,
        }
    }
}
