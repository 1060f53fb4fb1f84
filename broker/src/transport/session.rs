//! One established stream with a peer, on either side: a writer that drains the peer's
//! queue into batches, and a reader that decodes batches and hands messages to the node.
//!
//! ```text
//!   Link queue ──recv_many──▶ writer ──PeerBatch──▶ outgoing (request or response stream)
//!   incoming stream ──PeerBatch──▶ reader ──decode──▶ Inbound ──▶ node (bounded mpsc)
//! ```
//!
//! Both run in one task under a `select!`; the session ends when either ends, when a newer
//! stream from the same peer replaces it, or on shutdown. Whatever the writer had taken
//! from the queue but not yet sent is lost then; Paxos retransmits.

use super::Shared;
use super::link::{Link, Queued};
use super::metrics::DropReason;
use super::{Inbound, stopped};
use crate::convert::peer::{decode_batch, encode_batch, encode_message};
use paxlog_proto::v1 as pb;
use prost::Message as _;
use std::fmt;
use tokio::sync::mpsc;

/// Bytes a message adds to a `PeerBatch` besides its own encoding (field tag and length
/// prefix), and bytes of the batch itself (`from_node`): both at most 11.
const FRAMING: usize = 11;

/// An established stream's two halves, as either side sees them.
#[derive(Debug)]
pub(crate) struct Streams {
    /// Batches from the peer.
    pub(crate) incoming: tonic::Streaming<pb::PeerBatch>,
    /// Batches to the peer (feeds the request stream of a dialer, the response stream of
    /// an acceptor). Bounded: a full channel means the peer reads slowly.
    pub(crate) outgoing: mpsc::Sender<pb::PeerBatch>,
    /// A batch already read from `incoming` (the acceptor reads the first one to check who
    /// is calling), delivered before the rest.
    pub(crate) first: Option<pb::PeerBatch>,
}

/// Why a session ended (logged).
#[derive(Debug)]
pub(crate) enum SessionEnd {
    /// The hub is shutting down.
    Shutdown,
    /// A newer stream from the same peer took over.
    Replaced,
    /// The peer ended its side of the stream.
    Closed,
    /// The stream failed (connection reset, keepalive timeout, frame too large, ...).
    Failed(tonic::Status),
    /// Our side of the stream can no longer be written: the peer or gRPC dropped it.
    OutgoingClosed,
    /// A batch claimed to come from another node than the one this stream belongs to.
    WrongSender(u64),
    /// The node no longer takes inbound messages (it is stopping).
    InboundClosed,
}

impl fmt::Display for SessionEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionEnd::Shutdown => f.write_str("shutting down"),
            SessionEnd::Replaced => f.write_str("replaced by a newer stream from the same peer"),
            SessionEnd::Closed => f.write_str("the peer closed the stream"),
            SessionEnd::Failed(status) => write!(f, "stream failed: {}", status.message()),
            SessionEnd::OutgoingClosed => f.write_str("the stream can no longer be written"),
            SessionEnd::WrongSender(from) => {
                write!(f, "a batch claimed to come from node {from}; closing")
            }
            SessionEnd::InboundClosed => f.write_str("the node stopped taking messages"),
        }
    }
}

/// Runs one stream with `link`'s peer until it ends, and says why.
pub(crate) async fn run(shared: &Shared, link: &Link, streams: Streams) -> SessionEnd {
    let (ticket, reconnect) = link.begin_session();
    tracing::info!(node = shared.node, peer = link.peer, addr = %link.addr, reconnect, "peer connected");
    let Streams {
        mut incoming,
        outgoing,
        first,
    } = streams;
    let mut shutdown = shared.shutdown.clone();
    let end = tokio::select! {
        end = write(shared, link, &outgoing) => end,
        end = read(shared, link, &mut incoming, first) => end,
        _ = ticket.replaced => SessionEnd::Replaced,
        () = stopped(&mut shutdown) => SessionEnd::Shutdown,
    };
    link.end_session(ticket.id);
    tracing::info!(node = shared.node, peer = link.peer, reason = %end, "peer disconnected");
    end
}

/// Drains the queue into batches of at most `batch_messages` messages and `batch_bytes`
/// bytes, for as long as the stream takes them. Returns only when the stream is gone.
async fn write(shared: &Shared, link: &Link, outgoing: &mpsc::Sender<pb::PeerBatch>) -> SessionEnd {
    let config = &shared.config;
    let batch_bytes = config.batch_bytes.min(config.max_frame_bytes);
    let mut queue = link.take_queue().await;
    let mut taken: Vec<Queued> = Vec::new();
    loop {
        if queue.recv_many(&mut taken, config.batch_messages).await == 0 {
            return SessionEnd::Shutdown;
        }
        let mut batch = Vec::with_capacity(taken.len());
        let mut bytes = FRAMING;
        for queued in taken.drain(..) {
            let kind = queued.message.body.kind();
            let wire = encode_message(queued.group, queued.message);
            let size = wire.encoded_len() + FRAMING;
            if size + FRAMING > config.max_frame_bytes {
                // The peer would reset the stream on it, and every retransmission again.
                link.counters.drop_one(DropReason::TooLarge);
                tracing::warn!(
                    node = shared.node,
                    peer = link.peer,
                    group = wire.group,
                    kind,
                    size,
                    limit = config.max_frame_bytes,
                    "dropping a Paxos message larger than the peer frame limit; lower the consensus batch size"
                );
                continue;
            }
            if !batch.is_empty() && bytes + size > batch_bytes {
                if let Err(end) = flush(shared, link, outgoing, std::mem::take(&mut batch)).await {
                    return end;
                }
                bytes = FRAMING;
            }
            batch.push(wire);
            bytes += size;
        }
        if let Err(end) = flush(shared, link, outgoing, batch).await {
            return end;
        }
    }
}

/// Hands one batch to the stream, waiting while the stream's buffer is full (that wait is
/// the backpressure that lets the queue fill and `send` drop).
async fn flush(
    shared: &Shared,
    link: &Link,
    outgoing: &mpsc::Sender<pb::PeerBatch>,
    batch: Vec<pb::GroupMessage>,
) -> Result<(), SessionEnd> {
    if batch.is_empty() {
        return Ok(());
    }
    let n = batch.len() as u64;
    outgoing
        .send(encode_batch(shared.node, batch))
        .await
        .map_err(|_| SessionEnd::OutgoingClosed)?;
    link.counters.sent.inc_by(n);
    link.counters.batches.inc();
    Ok(())
}

/// Reads batches until the stream ends, delivering their messages in order.
async fn read(
    shared: &Shared,
    link: &Link,
    incoming: &mut tonic::Streaming<pb::PeerBatch>,
    first: Option<pb::PeerBatch>,
) -> SessionEnd {
    if let Some(batch) = first
        && let Err(end) = deliver(shared, link, batch).await
    {
        return end;
    }
    loop {
        let batch = match incoming.message().await {
            Ok(Some(batch)) => batch,
            Ok(None) => return SessionEnd::Closed,
            Err(status) => return SessionEnd::Failed(status),
        };
        if let Err(end) = deliver(shared, link, batch).await {
            return end;
        }
    }
}

/// Decodes `batch` and hands its messages to the node. Waits when the node's inbound
/// channel is full: that stops reading the stream, and HTTP/2 flow control then slows the
/// peer down, rather than dropping messages that already crossed the network.
async fn deliver(shared: &Shared, link: &Link, batch: pb::PeerBatch) -> Result<(), SessionEnd> {
    if batch.from_node != link.peer {
        return Err(SessionEnd::WrongSender(batch.from_node));
    }
    for decoded in decode_batch(batch) {
        let (group, message) = match decoded {
            Ok(decoded) => decoded,
            Err(err) => {
                link.counters.drop_one(DropReason::Malformed);
                tracing::debug!(node = shared.node, peer = link.peer, error = %err, "dropping a malformed peer message");
                continue;
            }
        };
        if message.to != shared.node {
            link.counters.drop_one(DropReason::Misaddressed);
            tracing::debug!(
                node = shared.node,
                peer = link.peer,
                to = message.to,
                group,
                "dropping a message addressed to another node"
            );
            continue;
        }
        // Counted before the hand-over so that whoever gets the message sees the count.
        link.counters.received.inc();
        shared
            .inbound
            .send(Inbound { group, message })
            .await
            .map_err(|_| SessionEnd::InboundClosed)?;
    }
    Ok(())
}
