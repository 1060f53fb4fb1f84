//! Round trips of every `MessageBody` variant, and malformed wire messages rejected with
//! the offending field named.

use super::*;
use bytes::Bytes;
use proptest::prelude::*;

fn ballot() -> impl Strategy<Value = Ballot> {
    (any::<u64>(), any::<u64>()).prop_map(|(round, node)| Ballot::new(round, node))
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Noop),
        // Empty data is a valid payload and must stay `Data`, not turn into a no-op.
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(|b| Value::Data(Bytes::from(b))),
    ]
}

fn entries() -> impl Strategy<Value = Vec<(Slot, Entry)>> {
    let entry = (ballot(), value()).prop_map(|(ballot, value)| Entry { ballot, value });
    proptest::collection::vec((any::<u64>(), entry), 0..8)
}

fn body() -> impl Strategy<Value = MessageBody> {
    let slots = proptest::collection::vec(any::<u64>(), 0..16);
    let data = proptest::collection::vec(any::<u8>(), 0..256).prop_map(Bytes::from);
    prop_oneof![
        (ballot(), any::<u64>(), any::<bool>()).prop_map(|(ballot, from_slot, transfer)| {
            MessageBody::Prepare {
                ballot,
                from_slot,
                transfer,
            }
        }),
        ballot().prop_map(|ballot| MessageBody::TimeoutNow { ballot }),
        (ballot(), any::<u64>(), entries()).prop_map(|(ballot, decided, entries)| {
            MessageBody::Promise {
                ballot,
                decided,
                entries,
            }
        }),
        (ballot(), ballot()).prop_map(|(ballot, promised)| MessageBody::Nack { ballot, promised }),
        (ballot(), any::<u64>(), entries()).prop_map(|(ballot, decided, entries)| {
            MessageBody::Accept {
                ballot,
                decided,
                entries,
            }
        }),
        (ballot(), any::<u64>(), slots).prop_map(|(ballot, decided, slots)| {
            MessageBody::Accepted {
                ballot,
                decided,
                slots,
            }
        }),
        (ballot(), any::<u64>(), any::<u64>()).prop_map(|(ballot, decided, last_slot)| {
            MessageBody::Heartbeat {
                ballot,
                decided,
                last_slot,
            }
        }),
        (ballot(), any::<u64>())
            .prop_map(|(ballot, decided)| MessageBody::HeartbeatAck { ballot, decided }),
        any::<u64>().prop_map(|from_slot| MessageBody::Learn { from_slot }),
        (any::<u64>(), entries())
            .prop_map(|(decided, entries)| MessageBody::Decided { decided, entries }),
        (any::<u64>(), data).prop_map(|(slot, data)| MessageBody::InstallSnapshot { slot, data }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (1..=u64::MAX, 1..=u64::MAX, body()).prop_map(|(from, to, body)| Message { from, to, body })
}

/// Encodes to bytes and back, as the wire does, so prost's encoding is covered too.
fn through_the_wire(group: u64, message: Message) -> Result<(u64, Message), ConvertError> {
    use prost::Message as _;
    let from = message.from;
    let bytes = encode_message(group, message).encode_to_vec();
    let wire = pb::GroupMessage::decode(bytes.as_slice()).expect("prost decodes what it encoded");
    decode_message(from, wire)
}

proptest! {
    #[test]
    fn every_message_round_trips(group in any::<u64>(), message in message()) {
        let decoded = through_the_wire(group, message.clone());
        prop_assert_eq!(decoded, Ok((group, message)));
    }

    #[test]
    fn batches_round_trip_in_order(
        from in 1..=u64::MAX,
        messages in proptest::collection::vec((any::<u64>(), message()), 0..16),
    ) {
        let messages: Vec<(u64, Message)> = messages
            .into_iter()
            .map(|(group, m)| (group, Message { from, ..m }))
            .collect();
        let wire = messages.iter().cloned().map(|(g, m)| encode_message(g, m)).collect();
        let decoded: Result<Vec<_>, _> = decode_batch(encode_batch(from, wire)).collect();
        prop_assert_eq!(decoded, Ok(messages));
    }
}

/// One fixed example per variant, so a new variant that the strategy forgets still shows up
/// here as a compile error in `kind()`'s match and a missing line below.
#[test]
fn each_variant_has_a_wire_form() {
    let b = Ballot::new(3, 2);
    let entries = vec![
        (
            5,
            Entry {
                ballot: b,
                value: Value::Noop,
            },
        ),
        (
            6,
            Entry {
                ballot: b,
                value: Value::Data(Bytes::from_static(b"x")),
            },
        ),
    ];
    let bodies = [
        MessageBody::Prepare {
            ballot: b,
            from_slot: 4,
            transfer: true,
        },
        MessageBody::TimeoutNow { ballot: b },
        MessageBody::Promise {
            ballot: b,
            decided: 4,
            entries: entries.clone(),
        },
        MessageBody::Nack {
            ballot: b,
            promised: Ballot::new(4, 1),
        },
        MessageBody::Accept {
            ballot: b,
            decided: 4,
            entries: entries.clone(),
        },
        MessageBody::Accepted {
            ballot: b,
            decided: 4,
            slots: vec![5, 6],
        },
        MessageBody::Heartbeat {
            ballot: b,
            decided: 4,
            last_slot: 6,
        },
        MessageBody::HeartbeatAck {
            ballot: b,
            decided: 4,
        },
        MessageBody::Learn { from_slot: 5 },
        MessageBody::Decided {
            decided: 6,
            entries,
        },
        MessageBody::InstallSnapshot {
            slot: 9,
            data: Bytes::from_static(b"state"),
        },
    ];
    let kinds: std::collections::BTreeSet<_> = bodies.iter().map(MessageBody::kind).collect();
    assert_eq!(kinds.len(), bodies.len(), "one example per variant");
    for body in bodies {
        let message = Message {
            from: 2,
            to: 1,
            body,
        };
        assert_eq!(through_the_wire(7, message.clone()), Ok((7, message)));
    }
}

fn missing(field: &str) -> Result<(u64, Message), ConvertError> {
    Err(ConvertError::Missing {
        field: field.to_owned(),
    })
}

fn wire(body: Body) -> pb::GroupMessage {
    pb::GroupMessage {
        group: 1,
        to: 2,
        body: Some(body),
    }
}

fn good_entry() -> pb::SlotEntry {
    pb::SlotEntry {
        slot: 1,
        entry: Some(pb::Entry {
            ballot: Some(pb::Ballot { round: 1, node: 1 }),
            value: Some(pb::Value {
                kind: Some(pb::value::Kind::Noop(pb::Noop {})),
            }),
        }),
    }
}

#[test]
fn missing_body_is_rejected() {
    let message = pb::GroupMessage {
        group: 1,
        to: 2,
        body: None,
    };
    assert_eq!(decode_message(1, message), missing("GroupMessage.body"));
}

#[test]
fn zero_receiver_is_rejected() {
    let message = pb::GroupMessage {
        to: 0,
        ..wire(Body::Learn(pb::Learn { from_slot: 1 }))
    };
    let err = decode_message(1, message).expect_err("to = 0");
    assert_eq!(
        err,
        ConvertError::ZeroNode {
            field: "GroupMessage.to"
        }
    );
    assert!(err.to_string().contains("GroupMessage.to"), "{err}");
}

#[test]
fn missing_ballots_are_rejected_by_name() {
    let cases = [
        (
            Body::Prepare(pb::Prepare {
                ballot: None,
                from_slot: 1,
                transfer: false,
            }),
            "Prepare.ballot",
        ),
        (
            Body::TimeoutNow(pb::TimeoutNow { ballot: None }),
            "TimeoutNow.ballot",
        ),
        (Body::Promise(pb::Promise::default()), "Promise.ballot"),
        (Body::Accept(pb::Accept::default()), "Accept.ballot"),
        (Body::Accepted(pb::Accepted::default()), "Accepted.ballot"),
        (
            Body::Heartbeat(pb::Heartbeat::default()),
            "Heartbeat.ballot",
        ),
        (
            Body::HeartbeatAck(pb::HeartbeatAck::default()),
            "HeartbeatAck.ballot",
        ),
        (Body::Nack(pb::Nack::default()), "Nack.ballot"),
        (
            Body::Nack(pb::Nack {
                ballot: Some(pb::Ballot::default()),
                promised: None,
            }),
            "Nack.promised",
        ),
    ];
    for (body, field) in cases {
        assert_eq!(decode_message(1, wire(body)), missing(field), "{field}");
    }
}

#[test]
fn malformed_entries_are_rejected_by_index_and_field() {
    let ballot = Some(pb::Ballot { round: 1, node: 1 });
    let mut no_entry = good_entry();
    no_entry.entry = None;
    let edited = |edit: fn(&mut pb::Entry)| {
        let mut slot_entry = good_entry();
        if let Some(entry) = slot_entry.entry.as_mut() {
            edit(entry);
        }
        slot_entry
    };
    let no_ballot = edited(|e| e.ballot = None);
    let no_value = edited(|e| e.value = None);
    let no_kind = edited(|e| e.value = Some(pb::Value { kind: None }));

    let accept = |bad: pb::SlotEntry| {
        Body::Accept(pb::Accept {
            ballot,
            decided: 0,
            entries: vec![good_entry(), bad],
        })
    };
    assert_eq!(
        decode_message(1, wire(accept(no_entry))),
        missing("Accept.entries[1].entry")
    );
    assert_eq!(
        decode_message(1, wire(accept(no_ballot))),
        missing("Accept.entries[1].entry.ballot")
    );
    assert_eq!(
        decode_message(1, wire(accept(no_value))),
        missing("Accept.entries[1].entry.value")
    );
    let promise = Body::Promise(pb::Promise {
        ballot,
        decided: 0,
        entries: vec![no_kind.clone()],
    });
    assert_eq!(
        decode_message(1, wire(promise)),
        missing("Promise.entries[0].entry.value.kind")
    );
    let decided = Body::Decided(pb::Decided {
        decided: 0,
        entries: vec![no_kind],
    });
    assert_eq!(
        decode_message(1, wire(decided)),
        missing("Decided.entries[0].entry.value.kind")
    );
}

#[test]
fn a_malformed_message_does_not_spoil_its_batch() {
    let good = encode_message(
        4,
        Message {
            from: 3,
            to: 2,
            body: MessageBody::Learn { from_slot: 1 },
        },
    );
    let bad = pb::GroupMessage {
        group: 4,
        to: 2,
        body: None,
    };
    let decoded: Vec<_> = decode_batch(encode_batch(3, vec![good.clone(), bad, good])).collect();
    assert_eq!(decoded.len(), 3);
    assert!(decoded[0].is_ok() && decoded[2].is_ok(), "{decoded:?}");
    assert_eq!(decoded[1], missing("GroupMessage.body"));
    let Ok((group, message)) = &decoded[2] else {
        unreachable!()
    };
    assert_eq!((*group, message.from, message.to), (4, 3, 2));
}
