//! One peer as seen from this node: its bounded send queue and the stream currently
//! serving it.
//!
//! The queue outlives streams: messages queued while the peer is away wait (up to the
//! bound) for the next stream. Only one stream's writer drains the queue at a time, which
//! is what keeps messages to a peer in order.

use super::config::TransportConfig;
use super::metrics::{DropReason, PeerCounters};
use crate::config::NodeId;
use paxlog_consensus::{Message, MessageBody};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

/// Bytes a message counts against the queue's byte bound besides its payload: keeps a
/// flood of tiny messages from looking free.
const MESSAGE_OVERHEAD: usize = 64;

/// A message waiting for the peer's stream.
#[derive(Debug)]
pub(crate) struct Queued {
    pub(crate) group: u64,
    pub(crate) message: Message,
    /// What it counts against the byte bound; given back when it leaves the queue.
    size: usize,
}

/// A peer: address, queue, current stream, metrics.
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) peer: NodeId,
    pub(crate) addr: String,
    pub(crate) counters: PeerCounters,
    sender: mpsc::Sender<Queued>,
    /// Held by the writer of the current stream; a tokio mutex because the writer holds it
    /// across `.await` for the stream's life. A replaced writer releases it when cancelled.
    receiver: tokio::sync::Mutex<mpsc::Receiver<Queued>>,
    queued_bytes: AtomicUsize,
    queue_bytes: usize,
    session: Mutex<SessionSlot>,
}

#[derive(Debug, Default)]
struct SessionSlot {
    /// Sessions begun so far; the next one's id.
    begun: u64,
    /// The live session: its id and the sender whose drop cancels it.
    current: Option<(u64, oneshot::Sender<()>)>,
}

/// A session's registration: its id (for [`Link::end_session`]) and a receiver that
/// completes when a newer session replaces it.
#[derive(Debug)]
pub(crate) struct SessionTicket {
    pub(crate) id: u64,
    pub(crate) replaced: oneshot::Receiver<()>,
}

impl Link {
    pub(crate) fn new(
        peer: NodeId,
        addr: String,
        config: &TransportConfig,
        counters: PeerCounters,
    ) -> Link {
        // tokio panics on a zero-capacity channel; a queue of one still works.
        let (sender, receiver) = mpsc::channel(config.queue_messages.max(1));
        Link {
            peer,
            addr,
            counters,
            sender,
            receiver: tokio::sync::Mutex::new(receiver),
            queued_bytes: AtomicUsize::new(0),
            queue_bytes: config.queue_bytes,
            session: Mutex::new(SessionSlot::default()),
        }
    }

    /// Queues `message` without waiting; `Err` says why it was dropped instead.
    pub(crate) fn enqueue(&self, group: u64, message: Message) -> Result<(), DropReason> {
        let size = queue_size(&message);
        let before = self.queued_bytes.fetch_add(size, Ordering::AcqRel);
        // An empty queue takes any message, so one value larger than the bound still gets
        // through once the peer drains its queue.
        if before > 0 && before.saturating_add(size) > self.queue_bytes {
            self.queued_bytes.fetch_sub(size, Ordering::AcqRel);
            return Err(DropReason::QueueFull);
        }
        let queued = Queued {
            group,
            message,
            size,
        };
        self.sender.try_send(queued).map_err(|err| {
            self.queued_bytes.fetch_sub(size, Ordering::AcqRel);
            match err {
                TrySendError::Full(_) => DropReason::QueueFull,
                // The link owns its receiver, so this only happens while it is torn down.
                TrySendError::Closed(_) => DropReason::Shutdown,
            }
        })
    }

    /// Takes the queue for the calling writer; waits while a replaced writer still has it.
    pub(crate) async fn take_queue(&self) -> QueueReader<'_> {
        QueueReader {
            receiver: self.receiver.lock().await,
            queued_bytes: &self.queued_bytes,
        }
    }

    /// Registers a new stream as the current one, cancelling the previous one if any.
    /// Returns the ticket and whether this is a reconnect (not the first stream).
    pub(crate) fn begin_session(&self) -> (SessionTicket, bool) {
        let mut slot = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        slot.begun += 1;
        let id = slot.begun;
        let (cancel, replaced) = oneshot::channel();
        // Dropping the old sender completes the old session's `replaced`.
        slot.current = Some((id, cancel));
        self.counters.connected.set(1);
        let reconnect = id > 1;
        if reconnect {
            self.counters.reconnects.inc();
        }
        (SessionTicket { id, replaced }, reconnect)
    }

    /// Unregisters session `id` unless a newer one already replaced it.
    pub(crate) fn end_session(&self, id: u64) {
        let mut slot = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        if slot
            .current
            .as_ref()
            .is_some_and(|(current, _)| *current == id)
        {
            slot.current = None;
            self.counters.connected.set(0);
        }
    }

    /// Whether a stream to the peer is established.
    pub(crate) fn is_connected(&self) -> bool {
        let slot = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        slot.current.is_some()
    }
}

/// The queue's receiving end, held by one writer at a time.
#[derive(Debug)]
pub(crate) struct QueueReader<'a> {
    receiver: tokio::sync::MutexGuard<'a, mpsc::Receiver<Queued>>,
    queued_bytes: &'a AtomicUsize,
}

impl QueueReader<'_> {
    /// Waits for at least one message, then moves up to `limit` queued messages into
    /// `buffer`. Returns how many; 0 only if the queue is closed.
    pub(crate) async fn recv_many(&mut self, buffer: &mut Vec<Queued>, limit: usize) -> usize {
        let start = buffer.len();
        let n = self.receiver.recv_many(buffer, limit.max(1)).await;
        let freed: usize = buffer[start..].iter().map(|queued| queued.size).sum();
        self.queued_bytes.fetch_sub(freed, Ordering::AcqRel);
        n
    }
}

/// What a message counts against the queue's byte bound: its payload bytes plus a fixed
/// overhead. Cheap (no encoding): it runs on the caller of `send`.
fn queue_size(message: &Message) -> usize {
    let payload = match &message.body {
        MessageBody::Promise { entries, .. }
        | MessageBody::Accept { entries, .. }
        | MessageBody::Decided { entries, .. } => entries
            .iter()
            .map(|(_, entry)| MESSAGE_OVERHEAD / 2 + entry.value.len())
            .sum(),
        MessageBody::Accepted { slots, .. } => slots.len() * size_of::<u64>(),
        MessageBody::InstallSnapshot { data, .. } => data.len(),
        MessageBody::Prepare { .. }
        | MessageBody::TimeoutNow { .. }
        | MessageBody::Nack { .. }
        | MessageBody::Heartbeat { .. }
        | MessageBody::HeartbeatAck { .. }
        | MessageBody::Learn { .. } => 0,
    };
    MESSAGE_OVERHEAD + payload
}
