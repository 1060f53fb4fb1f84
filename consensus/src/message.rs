//! Messages exchanged between replicas of one Paxos group.
//!
//! The broker maps these one to one onto the `paxlog.v1` peer protocol; nothing here knows
//! about the wire.

use crate::types::{Ballot, Entry, NodeId, Slot};
use bytes::Bytes;

/// A message from one replica to another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Sender.
    pub from: NodeId,
    /// Receiver.
    pub to: NodeId,
    /// What is said.
    pub body: MessageBody,
}

/// The protocol's messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageBody {
    /// Phase 1a, sent by a candidate: promise `ballot` for every slot from `from_slot` on.
    Prepare {
        /// The candidate's ballot.
        ballot: Ballot,
        /// The first slot the candidate has not seen decided.
        from_slot: Slot,
        /// The candidacy was asked for by the leader handing over (`TimeoutNow`): acceptors
        /// do not ignore it for having heard that leader recently.
        transfer: bool,
    },
    /// From a leader handing leadership over: the receiver starts an election at once, if
    /// it still follows that leader at `ballot`.
    TimeoutNow {
        /// The leader's ballot.
        ballot: Ballot,
    },
    /// Phase 1b: the acceptor promised `ballot` and reports what it accepted above its decided
    /// index (and at or after the candidate's `from_slot`).
    Promise {
        /// The ballot promised.
        ballot: Ballot,
        /// The acceptor's decided index: every slot up to it is decided on the acceptor.
        decided: Slot,
        /// Accepted entries, in slot order.
        entries: Vec<(Slot, Entry)>,
    },
    /// Rejection of a `Prepare`, `Accept` or `Heartbeat` whose ballot is below the acceptor's
    /// promise; tells the sender which ballot it must exceed.
    Nack {
        /// The rejected ballot.
        ballot: Ballot,
        /// The acceptor's promised ballot.
        promised: Ballot,
    },
    /// Phase 2a, batched: accept these entries (all under `ballot`). Carries the leader's decided
    /// index so followers learn decisions without extra messages.
    Accept {
        /// The leader's ballot.
        ballot: Ballot,
        /// The leader's decided index.
        decided: Slot,
        /// Entries to accept, in slot order.
        entries: Vec<(Slot, Entry)>,
    },
    /// Phase 2b: the acceptor accepted `slots` under `ballot` (durably: it is sent after persist).
    Accepted {
        /// The leader's ballot.
        ballot: Ballot,
        /// The acceptor's decided index.
        decided: Slot,
        /// Slots accepted.
        slots: Vec<Slot>,
    },
    /// Leader liveness and decided index, sent when the leader has had nothing else to send.
    Heartbeat {
        /// The leader's ballot.
        ballot: Ballot,
        /// The leader's decided index.
        decided: Slot,
        /// The highest slot the leader has proposed.
        last_slot: Slot,
    },
    /// Answer to a heartbeat: the follower is alive and follows `ballot`.
    HeartbeatAck {
        /// The leader's ballot.
        ballot: Ballot,
        /// The follower's decided index.
        decided: Slot,
    },
    /// A lagging replica asks for decided values from `from_slot` on.
    Learn {
        /// The first slot the requester lacks.
        from_slot: Slot,
    },
    /// Decided values, in slot order and without gaps, answering a `Learn`.
    Decided {
        /// The sender's decided index.
        decided: Slot,
        /// Decided entries.
        entries: Vec<(Slot, Entry)>,
    },
    /// The sender's snapshot, for a replica that needs slots the sender has trimmed.
    InstallSnapshot {
        /// The last slot the snapshot covers.
        slot: Slot,
        /// The application's state as of `slot`.
        data: Bytes,
    },
}

impl MessageBody {
    /// Whether a driver may send this message before the `persist` of its
    /// [`Ready`](crate::Ready) is durable (the others wait for it).
    ///
    /// Only a leader's phase-2a [`MessageBody::Accept`]: the leader's own acceptance of
    /// those entries counts only once [`persisted`](crate::Replica::persisted) says it is
    /// durable (its vote to itself waits for that), so nothing is decided on a copy that
    /// could vanish; and the ballot the message carries was made durable by an earlier
    /// `Ready` (leading needs peers' promises, which answer a `Prepare` sent only after
    /// the promise was persisted), so a restarted leader never reuses it. Sending it early
    /// lets the followers' fsyncs run at the same time as the leader's.
    pub fn may_precede_persist(&self) -> bool {
        matches!(self, MessageBody::Accept { .. })
    }

    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            MessageBody::Prepare { .. } => "prepare",
            MessageBody::TimeoutNow { .. } => "timeout_now",
            MessageBody::Promise { .. } => "promise",
            MessageBody::Nack { .. } => "nack",
            MessageBody::Accept { .. } => "accept",
            MessageBody::Accepted { .. } => "accepted",
            MessageBody::Heartbeat { .. } => "heartbeat",
            MessageBody::HeartbeatAck { .. } => "heartbeat_ack",
            MessageBody::Learn { .. } => "learn",
            MessageBody::Decided { .. } => "decided",
            MessageBody::InstallSnapshot { .. } => "install_snapshot",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only a leader's Accept may leave before its `Ready` is durable: every reply vouches
    /// for persisted state, and a Prepare announces a ballot that must be durable first.
    #[test]
    fn only_accepts_may_precede_persist() {
        let b = Ballot::new(2, 1);
        let all = [
            MessageBody::Prepare {
                ballot: b,
                from_slot: 1,
                transfer: false,
            },
            MessageBody::TimeoutNow { ballot: b },
            MessageBody::Promise {
                ballot: b,
                decided: 0,
                entries: vec![],
            },
            MessageBody::Nack {
                ballot: b,
                promised: b,
            },
            MessageBody::Accept {
                ballot: b,
                decided: 0,
                entries: vec![],
            },
            MessageBody::Accepted {
                ballot: b,
                decided: 0,
                slots: vec![1],
            },
            MessageBody::Heartbeat {
                ballot: b,
                decided: 0,
                last_slot: 0,
            },
            MessageBody::HeartbeatAck {
                ballot: b,
                decided: 0,
            },
            MessageBody::Learn { from_slot: 1 },
            MessageBody::Decided {
                decided: 0,
                entries: vec![],
            },
            MessageBody::InstallSnapshot {
                slot: 1,
                data: Bytes::new(),
            },
        ];
        let early: Vec<&str> = all
            .iter()
            .filter(|m| m.may_precede_persist())
            .map(MessageBody::kind)
            .collect();
        assert_eq!(early, ["accept"]);
    }
}
