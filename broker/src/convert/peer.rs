//! The peer protocol: [`Message`] of a Paxos group ⇄ [`pb::GroupMessage`], and
//! the messages of a [`pb::PeerBatch`].
//!
//! ```text
//!   (group, Message { from, to, body })
//!        │ encode_message                      ▲ decode_message(from, _)
//!        ▼                                     │
//!   GroupMessage { group, to, body }  ──  PeerBatch { from_node, messages }
//! ```
//!
//! The sender is not repeated per message: it travels once per batch as `from_node`, and
//! [`decode_batch`] gives it back to every message of the batch. Each wire message mirrors
//! one [`MessageBody`] variant field by field; a change to either side must change both
//! (see `peer.proto`).

use super::ConvertError;
use paxlog_consensus::{Ballot, Entry, Message, MessageBody, NodeId, Slot, Value};
use paxlog_proto::v1 as pb;
use pb::group_message::Body;

/// Encodes `message` of Paxos group `group` for the wire. `message.from` is left out: the
/// batch carries it (see [`decode_message`]). Payloads are `Bytes`, so nothing is copied.
pub fn encode_message(group: u64, message: Message) -> pb::GroupMessage {
    let body = match message.body {
        MessageBody::Prepare {
            ballot,
            from_slot,
            transfer,
        } => Body::Prepare(pb::Prepare {
            ballot: Some(ballot_to_wire(ballot)),
            from_slot,
            transfer,
        }),
        MessageBody::TimeoutNow { ballot } => Body::TimeoutNow(pb::TimeoutNow {
            ballot: Some(ballot_to_wire(ballot)),
        }),
        MessageBody::Promise {
            ballot,
            decided,
            entries,
        } => Body::Promise(pb::Promise {
            ballot: Some(ballot_to_wire(ballot)),
            decided,
            entries: entries_to_wire(entries),
        }),
        MessageBody::Nack { ballot, promised } => Body::Nack(pb::Nack {
            ballot: Some(ballot_to_wire(ballot)),
            promised: Some(ballot_to_wire(promised)),
        }),
        MessageBody::Accept {
            ballot,
            decided,
            entries,
        } => Body::Accept(pb::Accept {
            ballot: Some(ballot_to_wire(ballot)),
            decided,
            entries: entries_to_wire(entries),
        }),
        MessageBody::Accepted {
            ballot,
            decided,
            slots,
        } => Body::Accepted(pb::Accepted {
            ballot: Some(ballot_to_wire(ballot)),
            decided,
            slots,
        }),
        MessageBody::Heartbeat {
            ballot,
            decided,
            last_slot,
        } => Body::Heartbeat(pb::Heartbeat {
            ballot: Some(ballot_to_wire(ballot)),
            decided,
            last_slot,
        }),
        MessageBody::HeartbeatAck { ballot, decided } => Body::HeartbeatAck(pb::HeartbeatAck {
            ballot: Some(ballot_to_wire(ballot)),
            decided,
        }),
        MessageBody::Learn { from_slot } => Body::Learn(pb::Learn { from_slot }),
        MessageBody::Decided { decided, entries } => Body::Decided(pb::Decided {
            decided,
            entries: entries_to_wire(entries),
        }),
        MessageBody::InstallSnapshot { slot, data } => {
            Body::InstallSnapshot(pb::InstallSnapshot { slot, data })
        }
    };
    pb::GroupMessage {
        group,
        to: message.to,
        body: Some(body),
    }
}

/// Decodes a wire message sent by node `from` into its group and [`Message`].
///
/// Fails, naming the field, when the body oneof, a ballot, an entry or a value is missing,
/// or when `to` is 0. Callers drop such a message and count it: Paxos tolerates the loss,
/// and one bad message must not take the stream (or the node) down.
pub fn decode_message(
    from: NodeId,
    wire: pb::GroupMessage,
) -> Result<(u64, Message), ConvertError> {
    if wire.to == 0 {
        return Err(ConvertError::ZeroNode {
            field: "GroupMessage.to",
        });
    }
    let body = match wire.body {
        None => return Err(ConvertError::missing("GroupMessage.body")),
        Some(Body::Prepare(m)) => MessageBody::Prepare {
            ballot: ballot_from_wire(m.ballot, "Prepare.ballot")?,
            from_slot: m.from_slot,
            transfer: m.transfer,
        },
        Some(Body::TimeoutNow(m)) => MessageBody::TimeoutNow {
            ballot: ballot_from_wire(m.ballot, "TimeoutNow.ballot")?,
        },
        Some(Body::Promise(m)) => MessageBody::Promise {
            ballot: ballot_from_wire(m.ballot, "Promise.ballot")?,
            decided: m.decided,
            entries: entries_from_wire("Promise", m.entries)?,
        },
        Some(Body::Nack(m)) => MessageBody::Nack {
            ballot: ballot_from_wire(m.ballot, "Nack.ballot")?,
            promised: ballot_from_wire(m.promised, "Nack.promised")?,
        },
        Some(Body::Accept(m)) => MessageBody::Accept {
            ballot: ballot_from_wire(m.ballot, "Accept.ballot")?,
            decided: m.decided,
            entries: entries_from_wire("Accept", m.entries)?,
        },
        Some(Body::Accepted(m)) => MessageBody::Accepted {
            ballot: ballot_from_wire(m.ballot, "Accepted.ballot")?,
            decided: m.decided,
            slots: m.slots,
        },
        Some(Body::Heartbeat(m)) => MessageBody::Heartbeat {
            ballot: ballot_from_wire(m.ballot, "Heartbeat.ballot")?,
            decided: m.decided,
            last_slot: m.last_slot,
        },
        Some(Body::HeartbeatAck(m)) => MessageBody::HeartbeatAck {
            ballot: ballot_from_wire(m.ballot, "HeartbeatAck.ballot")?,
            decided: m.decided,
        },
        Some(Body::Learn(m)) => MessageBody::Learn {
            from_slot: m.from_slot,
        },
        Some(Body::Decided(m)) => MessageBody::Decided {
            decided: m.decided,
            entries: entries_from_wire("Decided", m.entries)?,
        },
        Some(Body::InstallSnapshot(m)) => MessageBody::InstallSnapshot {
            slot: m.slot,
            data: m.data,
        },
    };
    let message = Message {
        from,
        to: wire.to,
        body,
    };
    Ok((wire.group, message))
}

/// Builds a batch of already encoded messages from node `from`.
pub fn encode_batch(from: NodeId, messages: Vec<pb::GroupMessage>) -> pb::PeerBatch {
    pb::PeerBatch {
        from_node: from,
        messages,
    }
}

/// Decodes every message of `batch`, in order, each with the batch's `from_node` as sender.
/// A malformed message yields an `Err` in its place and does not affect the others.
pub fn decode_batch(
    batch: pb::PeerBatch,
) -> impl Iterator<Item = Result<(u64, Message), ConvertError>> {
    let from = batch.from_node;
    batch
        .messages
        .into_iter()
        .map(move |wire| decode_message(from, wire))
}

fn ballot_to_wire(ballot: Ballot) -> pb::Ballot {
    pb::Ballot {
        round: ballot.round,
        node: ballot.node,
    }
}

/// `field` is a path like `Nack.promised`; it is only formatted on the error path.
fn ballot_from_wire(ballot: Option<pb::Ballot>, field: &str) -> Result<Ballot, ConvertError> {
    let ballot = ballot.ok_or_else(|| ConvertError::missing(field))?;
    Ok(Ballot::new(ballot.round, ballot.node))
}

fn entries_to_wire(entries: Vec<(Slot, Entry)>) -> Vec<pb::SlotEntry> {
    entries
        .into_iter()
        .map(|(slot, entry)| pb::SlotEntry {
            slot,
            entry: Some(pb::Entry {
                ballot: Some(ballot_to_wire(entry.ballot)),
                value: Some(value_to_wire(entry.value)),
            }),
        })
        .collect()
}

/// `kind` is the wire message holding the entries, for error paths like
/// `Accept.entries[2].entry.value`.
fn entries_from_wire(
    kind: &str,
    entries: Vec<pb::SlotEntry>,
) -> Result<Vec<(Slot, Entry)>, ConvertError> {
    entries
        .into_iter()
        .enumerate()
        .map(|(i, slot_entry)| {
            let path = || format!("{kind}.entries[{i}].entry");
            let entry = slot_entry
                .entry
                .ok_or_else(|| ConvertError::missing(path()))?;
            let ballot = entry
                .ballot
                .ok_or_else(|| ConvertError::missing(format!("{}.ballot", path())))?;
            let value = entry
                .value
                .ok_or_else(|| ConvertError::missing(format!("{}.value", path())))?;
            let value = value_from_wire(value)
                .ok_or_else(|| ConvertError::missing(format!("{}.value.kind", path())))?;
            let entry = Entry {
                ballot: Ballot::new(ballot.round, ballot.node),
                value,
            };
            Ok((slot_entry.slot, entry))
        })
        .collect()
}

fn value_to_wire(value: Value) -> pb::Value {
    let kind = match value {
        Value::Noop => pb::value::Kind::Noop(pb::Noop {}),
        Value::Data(data) => pb::value::Kind::Data(data),
    };
    pb::Value { kind: Some(kind) }
}

/// `None` when the oneof is unset.
fn value_from_wire(value: pb::Value) -> Option<Value> {
    match value.kind? {
        pb::value::Kind::Noop(pb::Noop {}) => Some(Value::Noop),
        pb::value::Kind::Data(data) => Some(Value::Data(data)),
    }
}

#[cfg(test)]
#[path = "peer_tests.rs"]
mod tests;
