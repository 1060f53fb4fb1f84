//! The accepting side: the `paxlog.v1.Peer` service. A peer with a lower id opens
//! `Peer/Stream`; its first batch says who it is; we check that against the configuration
//! and then serve the stream as the current session with that peer.
//!
//! ```text
//!   Peer/Stream ──▶ read first PeerBatch (bounded by connect_timeout)
//!                     ├─ from_node unknown          ─▶ PERMISSION_DENIED
//!                     ├─ from_node 0, us, or higher ─▶ INVALID_ARGUMENT
//!                     └─ ok ─▶ spawn session::run ─▶ response stream (our batches)
//! ```

use super::link::Link;
use super::session::{self, Streams};
use super::{OUTGOING_BATCHES, Shared};
use crate::config::NodeId;
use crate::error::Error;
use paxlog_proto::v1 as pb;
use paxlog_proto::v1::peer_server::Peer;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

/// Why this node refused a peer's stream. Mapped to a gRPC status in `crate::error` (the
/// one place that does that); the dialer logs the message, so each says how to fix it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeerRejected {
    /// The caller announced a node id that is not in this node's peer list.
    #[error(
        "node {from} is not a peer of node {node} (its peers are {peers:?}): give every node the same --peers list"
    )]
    UnknownPeer {
        /// The announced id.
        from: NodeId,
        /// This node.
        node: NodeId,
        /// This node's configured peers.
        peers: Vec<NodeId>,
    },
    /// The caller has a higher id than this node, or this node's own id: streams are
    /// opened by the lower id only, so that each pair has exactly one.
    #[error(
        "node {from} opened a peer stream to node {node}, but streams are opened by the node with the lower id only; check that both nodes have the same --peers list and that ids map to the right addresses"
    )]
    WrongDirection {
        /// The announced id.
        from: NodeId,
        /// This node.
        node: NodeId,
    },
    /// The first batch was missing, late, or announced node 0.
    #[error(
        "bad peer stream handshake: {reason}; the first PeerBatch must carry the sender's from_node"
    )]
    BadHello {
        /// What was wrong.
        reason: String,
    },
    /// This node is shutting down.
    #[error("node {node} is shutting down; retry later")]
    ShuttingDown {
        /// This node.
        node: NodeId,
    },
}

/// The `paxlog.v1.Peer` service of a [`PeerHub`](super::PeerHub); get one with
/// [`PeerHub::service`](super::PeerHub::service).
#[derive(Clone, Debug)]
pub struct PeerService {
    shared: Arc<Shared>,
}

impl PeerService {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        PeerService { shared }
    }
}

/// The response stream: our batches to the peer.
type BatchStream = Pin<Box<dyn Stream<Item = Result<pb::PeerBatch, Status>> + Send>>;

#[tonic::async_trait]
impl Peer for PeerService {
    type StreamStream = BatchStream;

    async fn stream(
        &self,
        request: Request<Streaming<pb::PeerBatch>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let shared = &self.shared;
        if *shared.shutdown.borrow() {
            return Err(rejected(PeerRejected::ShuttingDown { node: shared.node }));
        }
        crate::security::require_peer_certificate(&request, shared.config.tls.is_some()).map_err(
            |err| {
                tracing::warn!(node = shared.node, peer = ?request.remote_addr(), error = %err, "refused a peer stream");
                tonic::Status::from(err)
            },
        )?;
        let mut incoming = request.into_inner();
        let timeout = shared.config.connect_timeout;
        let hello = match tokio::time::timeout(timeout, incoming.message()).await {
            Ok(Ok(Some(hello))) => hello,
            Ok(Ok(None)) => {
                let reason = "the stream ended before its first PeerBatch".to_owned();
                return Err(rejected(PeerRejected::BadHello { reason }));
            }
            Ok(Err(status)) => return Err(status),
            Err(_) => {
                let reason = format!("no PeerBatch within {timeout:?}");
                return Err(rejected(PeerRejected::BadHello { reason }));
            }
        };
        let link = check_caller(shared, hello.from_node).map_err(|err| {
            tracing::warn!(node = shared.node, from = hello.from_node, error = %err, "refused a peer stream");
            rejected(err)
        })?;

        let (outgoing, batches) = mpsc::channel(OUTGOING_BATCHES);
        let streams = Streams {
            incoming,
            outgoing,
            first: Some(hello),
        };
        let shared = shared.clone();
        tokio::spawn(
            async move {
                session::run(&shared, &link, streams).await;
            }
            .in_current_span(),
        );
        // The stream ends when the session drops `outgoing`.
        let responses: BatchStream = Box::pin(ReceiverStream::new(batches).map(Ok));
        Ok(Response::new(responses))
    }
}

/// Accepts `from` only if it is a configured peer with a lower id than ours.
fn check_caller(shared: &Shared, from: NodeId) -> Result<Arc<Link>, PeerRejected> {
    if from == 0 {
        let reason = "from_node is 0".to_owned();
        return Err(PeerRejected::BadHello { reason });
    }
    let Some(link) = shared.links.get(&from) else {
        // Our own id is not in `links` either, but that is a direction problem (a node
        // dialing itself through a wrong address), not an unknown node.
        if from == shared.node {
            return Err(PeerRejected::WrongDirection {
                from,
                node: shared.node,
            });
        }
        return Err(PeerRejected::UnknownPeer {
            from,
            node: shared.node,
            peers: shared.links.keys().copied().collect(),
        });
    };
    if from > shared.node {
        return Err(PeerRejected::WrongDirection {
            from,
            node: shared.node,
        });
    }
    Ok(link.clone())
}

fn rejected(err: PeerRejected) -> Status {
    Error::from(err).into()
}
