//! Unit tests of exact outputs: feed one event, compare the whole `Ready` with `assert_eq!`.

use bytes::Bytes;
use paxlog_consensus::{
    Ballot, Config, Entry, Error, LeaderChange, MemStorage, Message, MessageBody, Outcome, Persist,
    ProposalId, ProposeError, Ready, Replica, Snapshot, Storage, Value,
};

/// Replica `id` of a 3-node group whose election timeout is exactly 2 ticks.
fn replica(id: u64) -> Replica<MemStorage> {
    let config = Config {
        id,
        voters: vec![1, 2, 3],
        heartbeat_ticks: 1,
        election_ticks_min: 2,
        election_ticks_max: 3,
        retransmit_ticks: 4,
        ..Config::default()
    };
    Replica::new(config, MemStorage::new()).expect("valid config")
}

fn msg(from: u64, to: u64, body: MessageBody) -> Message {
    Message { from, to, body }
}

fn data(s: &'static str) -> Value {
    Value::Data(Bytes::from_static(s.as_bytes()))
}

/// Takes the next `Ready` and executes its persist part as a driver would.
fn drive(r: &mut Replica<MemStorage>) -> Ready {
    let ready = r.ready();
    r.storage_mut().write(&ready.persist).expect("write");
    r.persisted(ready.number).expect("persisted");
    ready
}

const B1: Ballot = Ballot::new(1, 1);

/// Elects replica 1 with ballot 1.1 and returns it with nothing pending.
fn leader() -> Replica<MemStorage> {
    let mut r = replica(1);
    r.tick().expect("tick");
    r.tick().expect("tick");
    drive(&mut r);
    let promise = MessageBody::Promise {
        ballot: B1,
        decided: 0,
        entries: vec![],
    };
    r.step(msg(2, 1, promise)).expect("step");
    drive(&mut r);
    assert!(r.is_leader());
    r
}

#[test]
fn election_timeout_persists_ballot_and_sends_prepare() {
    let mut r = replica(1);
    r.tick().expect("tick");
    assert!(!r.has_ready(), "one tick is below the election timeout");
    r.tick().expect("tick");
    let prepare = MessageBody::Prepare {
        ballot: B1,
        from_slot: 1,
        transfer: false,
    };
    assert_eq!(
        r.ready(),
        Ready {
            number: 1,
            persist: Persist {
                promised: Some(B1),
                ..Persist::default()
            },
            messages: vec![msg(1, 2, prepare.clone()), msg(1, 3, prepare)],
            ..Ready::default()
        }
    );
}

#[test]
fn promise_from_a_majority_makes_a_leader_that_announces_itself() {
    let mut r = replica(1);
    r.tick().expect("tick");
    r.tick().expect("tick");
    drive(&mut r);
    assert!(
        !r.is_leader(),
        "its own promise alone is not a majority of 3"
    );
    r.step(msg(
        2,
        1,
        MessageBody::Promise {
            ballot: B1,
            decided: 0,
            entries: vec![],
        },
    ))
    .expect("step");
    let hb = MessageBody::Heartbeat {
        ballot: B1,
        decided: 0,
        last_slot: 0,
    };
    assert_eq!(
        r.ready(),
        Ready {
            number: 2,
            messages: vec![msg(1, 2, hb.clone()), msg(1, 3, hb)],
            leader: Some(LeaderChange {
                leader: Some(1),
                ballot: B1,
                is_self: true
            }),
            ..Ready::default()
        }
    );
}

#[test]
fn own_promise_counts_only_once_persisted() {
    let mut r = replica(1);
    r.tick().expect("tick");
    r.tick().expect("tick");
    let ready = r.ready();
    // Not persisted yet: the peer's promise plus an unpersisted own promise is no quorum.
    r.step(msg(
        2,
        1,
        MessageBody::Promise {
            ballot: B1,
            decided: 0,
            entries: vec![],
        },
    ))
    .expect("step");
    assert!(!r.is_leader());
    r.storage_mut().write(&ready.persist).expect("write");
    r.persisted(ready.number).expect("persisted");
    assert!(r.is_leader(), "own promise counts after persisted()");
}

#[test]
fn proposals_are_batched_into_one_accept_per_peer() {
    let mut r = leader();
    let a = r.propose(Bytes::from_static(b"a")).expect("propose");
    let b = r.propose(Bytes::from_static(b"b")).expect("propose");
    assert_eq!(
        a,
        ProposalId {
            ballot: B1,
            slot: 1
        }
    );
    assert_eq!(
        b,
        ProposalId {
            ballot: B1,
            slot: 2
        }
    );
    let entries = vec![
        (
            1,
            Entry {
                ballot: B1,
                value: data("a"),
            },
        ),
        (
            2,
            Entry {
                ballot: B1,
                value: data("b"),
            },
        ),
    ];
    let accept = MessageBody::Accept {
        ballot: B1,
        decided: 0,
        entries: entries.clone(),
    };
    assert_eq!(
        r.ready(),
        Ready {
            number: 3,
            persist: Persist {
                entries,
                ..Persist::default()
            },
            messages: vec![msg(1, 2, accept.clone()), msg(1, 3, accept)],
            ..Ready::default()
        }
    );
}

#[test]
fn one_peer_acceptance_decides_and_answers_the_proposer() {
    let mut r = leader();
    let id = r.propose(Bytes::from_static(b"a")).expect("propose");
    drive(&mut r);
    r.step(msg(
        2,
        1,
        MessageBody::Accepted {
            ballot: B1,
            decided: 0,
            slots: vec![1],
        },
    ))
    .expect("step");
    assert_eq!(
        r.ready(),
        Ready {
            number: 4,
            persist: Persist {
                decided: Some(1),
                ..Persist::default()
            },
            decided: vec![(1, data("a"))],
            outcomes: vec![Outcome { id, result: Ok(()) }],
            ..Ready::default()
        }
    );
}

#[test]
fn acceptance_under_an_older_ballot_does_not_count() {
    let mut r = leader();
    r.propose(Bytes::from_static(b"a")).expect("propose");
    drive(&mut r);
    let old = Ballot::new(0, 3);
    r.step(msg(
        2,
        1,
        MessageBody::Accepted {
            ballot: old,
            decided: 0,
            slots: vec![1],
        },
    ))
    .expect("step");
    assert!(
        !r.has_ready(),
        "an Accepted for another ballot must not decide anything"
    );
}

#[test]
fn follower_refuses_proposals_with_a_leader_hint() {
    let mut r = replica(2);
    r.step(msg(
        1,
        2,
        MessageBody::Heartbeat {
            ballot: B1,
            decided: 0,
            last_slot: 0,
        },
    ))
    .expect("step");
    assert_eq!(
        r.propose(Bytes::from_static(b"x")),
        Err(ProposeError::NotLeader { leader: Some(1) })
    );
}

#[test]
fn acceptor_promises_a_higher_ballot_and_reports_accepted_entries() {
    let mut r = replica(2);
    let e = Entry {
        ballot: B1,
        value: data("v"),
    };
    let accept = MessageBody::Accept {
        ballot: B1,
        decided: 0,
        entries: vec![(1, e.clone())],
    };
    r.step(msg(1, 2, accept)).expect("step");
    drive(&mut r);
    // Leader 1 went silent long enough for a Prepare to be considered.
    for _ in 0..2 {
        r.tick().expect("tick");
    }
    let _ = drive(&mut r); // replica 2 started its own election; take that Ready
    let b3 = Ballot::new(5, 3);
    r.step(msg(
        3,
        2,
        MessageBody::Prepare {
            ballot: b3,
            from_slot: 1,
            transfer: false,
        },
    ))
    .expect("step");
    let ready = r.ready();
    assert_eq!(
        ready.persist,
        Persist {
            promised: Some(b3),
            ..Persist::default()
        }
    );
    assert_eq!(
        ready.messages,
        vec![msg(
            2,
            3,
            MessageBody::Promise {
                ballot: b3,
                decided: 0,
                entries: vec![(1, e)]
            }
        )]
    );
}

#[test]
fn acceptor_nacks_a_lower_ballot() {
    let mut r = replica(2);
    let b5 = Ballot::new(5, 3);
    r.step(msg(
        3,
        2,
        MessageBody::Prepare {
            ballot: b5,
            from_slot: 1,
            transfer: false,
        },
    ))
    .expect("step");
    drive(&mut r);
    r.step(msg(
        1,
        2,
        MessageBody::Accept {
            ballot: B1,
            decided: 0,
            entries: vec![],
        },
    ))
    .expect("step");
    assert_eq!(
        r.ready().messages,
        vec![msg(
            2,
            1,
            MessageBody::Nack {
                ballot: B1,
                promised: b5
            }
        )]
    );
}

#[test]
fn accept_is_persisted_and_acknowledged_in_the_same_ready() {
    let mut r = replica(2);
    let e = Entry {
        ballot: B1,
        value: data("v"),
    };
    r.step(msg(
        1,
        2,
        MessageBody::Accept {
            ballot: B1,
            decided: 0,
            entries: vec![(1, e.clone())],
        },
    ))
    .expect("step");
    assert_eq!(
        r.ready(),
        Ready {
            number: 1,
            persist: Persist {
                promised: Some(B1),
                entries: vec![(1, e)],
                ..Persist::default()
            },
            messages: vec![msg(
                2,
                1,
                MessageBody::Accepted {
                    ballot: B1,
                    decided: 0,
                    slots: vec![1]
                }
            )],
            leader: Some(LeaderChange {
                leader: Some(1),
                ballot: B1,
                is_self: false
            }),
            ..Ready::default()
        }
    );
}

#[test]
fn follower_learns_decision_from_piggybacked_decided_index() {
    let mut r = replica(2);
    let e = Entry {
        ballot: B1,
        value: data("v"),
    };
    r.step(msg(
        1,
        2,
        MessageBody::Accept {
            ballot: B1,
            decided: 0,
            entries: vec![(1, e)],
        },
    ))
    .expect("step");
    drive(&mut r);
    r.step(msg(
        1,
        2,
        MessageBody::Heartbeat {
            ballot: B1,
            decided: 1,
            last_slot: 1,
        },
    ))
    .expect("step");
    assert_eq!(
        r.ready(),
        Ready {
            number: 2,
            persist: Persist {
                decided: Some(1),
                ..Persist::default()
            },
            messages: vec![msg(
                2,
                1,
                MessageBody::HeartbeatAck {
                    ballot: B1,
                    decided: 1
                }
            )],
            decided: vec![(1, data("v"))],
            ..Ready::default()
        }
    );
}

#[test]
fn entry_from_an_older_ballot_is_not_decided_by_the_hint_but_learned() {
    let mut r = replica(2);
    let old = Entry {
        ballot: Ballot::new(1, 3),
        value: data("old"),
    };
    r.step(msg(
        3,
        2,
        MessageBody::Accept {
            ballot: old.ballot,
            decided: 0,
            entries: vec![(1, old)],
        },
    ))
    .expect("step");
    drive(&mut r);
    let b2 = Ballot::new(2, 1);
    r.step(msg(
        1,
        2,
        MessageBody::Heartbeat {
            ballot: b2,
            decided: 1,
            last_slot: 1,
        },
    ))
    .expect("step");
    let ready = r.ready();
    assert!(
        ready.decided.is_empty(),
        "slot 1's entry is from another ballot: not known decided"
    );
    assert_eq!(
        ready.messages,
        vec![
            msg(
                2,
                1,
                MessageBody::HeartbeatAck {
                    ballot: b2,
                    decided: 0
                }
            ),
            msg(2, 1, MessageBody::Learn { from_slot: 1 }),
        ]
    );
}

#[test]
fn new_leader_reproposes_highest_ballot_value_and_fills_gaps_with_noop() {
    let mut r = replica(1);
    r.tick().expect("tick");
    r.tick().expect("tick");
    drive(&mut r);
    let low = Entry {
        ballot: Ballot::new(0, 2),
        value: data("low"),
    };
    let high = Entry {
        ballot: Ballot::new(0, 3),
        value: data("high"),
    };
    let far = Entry {
        ballot: Ballot::new(0, 2),
        value: data("far"),
    };
    let entries = vec![(1, low), (3, far)];
    r.step(msg(
        2,
        1,
        MessageBody::Promise {
            ballot: B1,
            decided: 0,
            entries,
        },
    ))
    .expect("step");
    // Replica 1 is already leader with its own promise and 2's; 3's arrives late and is ignored,
    // so it is 2's report that counts: slot 1 "low", slot 2 no-op, slot 3 "far".
    let ready = r.ready();
    let want = vec![
        (
            1,
            Entry {
                ballot: B1,
                value: data("low"),
            },
        ),
        (
            2,
            Entry {
                ballot: B1,
                value: Value::Noop,
            },
        ),
        (
            3,
            Entry {
                ballot: B1,
                value: data("far"),
            },
        ),
    ];
    assert_eq!(ready.persist.entries, want);
    let accept = MessageBody::Accept {
        ballot: B1,
        decided: 0,
        entries: want,
    };
    assert_eq!(
        ready.messages,
        vec![msg(1, 2, accept.clone()), msg(1, 3, accept)]
    );

    // With 5 voters, the quorum of 3 sees both reports and keeps the higher ballot's value.
    let config = Config {
        id: 1,
        voters: vec![1, 2, 3, 4, 5],
        heartbeat_ticks: 1,
        election_ticks_min: 2,
        election_ticks_max: 3,
        ..Config::default()
    };
    let mut r = Replica::new(config, MemStorage::new()).expect("config");
    r.tick().expect("tick");
    r.tick().expect("tick");
    drive(&mut r);
    let low = Entry {
        ballot: Ballot::new(0, 2),
        value: data("low"),
    };
    r.step(msg(
        2,
        1,
        MessageBody::Promise {
            ballot: B1,
            decided: 0,
            entries: vec![(1, low)],
        },
    ))
    .expect("step");
    r.step(msg(
        3,
        1,
        MessageBody::Promise {
            ballot: B1,
            decided: 0,
            entries: vec![(1, high)],
        },
    ))
    .expect("step");
    let ready = r.ready();
    assert_eq!(
        ready.persist.entries,
        vec![(
            1,
            Entry {
                ballot: B1,
                value: data("high")
            }
        )]
    );
}

#[test]
fn slots_a_quorum_member_reports_decided_are_learned_not_reproposed() {
    let mut r = replica(1);
    r.tick().expect("tick");
    r.tick().expect("tick");
    drive(&mut r);
    let e = Entry {
        ballot: Ballot::new(0, 2),
        value: data("later"),
    };
    r.step(msg(
        2,
        1,
        MessageBody::Promise {
            ballot: B1,
            decided: 2,
            entries: vec![(3, e)],
        },
    ))
    .expect("step");
    let ready = r.ready();
    let want = vec![(
        3,
        Entry {
            ballot: B1,
            value: data("later"),
        },
    )];
    assert_eq!(ready.persist.entries, want);
    let accept = MessageBody::Accept {
        ballot: B1,
        decided: 0,
        entries: want,
    };
    assert_eq!(
        ready.messages,
        vec![
            msg(1, 2, MessageBody::Learn { from_slot: 1 }),
            msg(1, 2, accept.clone()),
            msg(1, 3, accept),
        ]
    );
}

#[test]
fn learn_is_answered_with_decided_entries_then_with_the_snapshot_once_compacted() {
    let mut r = leader();
    for v in [b"a", b"b", b"c"] {
        r.propose(Bytes::from_static(v)).expect("propose");
    }
    drive(&mut r);
    r.step(msg(
        2,
        1,
        MessageBody::Accepted {
            ballot: B1,
            decided: 0,
            slots: vec![1, 2, 3],
        },
    ))
    .expect("step");
    drive(&mut r);
    assert_eq!(r.decided(), 3);
    r.step(msg(3, 1, MessageBody::Learn { from_slot: 2 }))
        .expect("step");
    let entries = vec![
        (
            2,
            Entry {
                ballot: B1,
                value: data("b"),
            },
        ),
        (
            3,
            Entry {
                ballot: B1,
                value: data("c"),
            },
        ),
    ];
    assert_eq!(
        r.ready().messages,
        vec![msg(
            1,
            3,
            MessageBody::Decided {
                decided: 3,
                entries
            }
        )]
    );

    r.compact(2, Bytes::from_static(b"state@2"))
        .expect("compact");
    let snap = Snapshot {
        slot: 2,
        data: Bytes::from_static(b"state@2"),
    };
    let ready = drive(&mut r);
    assert_eq!(
        ready.persist,
        Persist {
            snapshot: Some(snap),
            ..Persist::default()
        }
    );
    r.step(msg(3, 1, MessageBody::Learn { from_slot: 1 }))
        .expect("step");
    assert_eq!(
        r.ready().messages,
        vec![msg(
            1,
            3,
            MessageBody::InstallSnapshot {
                slot: 2,
                data: Bytes::from_static(b"state@2")
            }
        )]
    );
}

#[test]
fn installed_snapshot_comes_before_later_decided_entries() {
    let mut r = replica(3);
    r.step(msg(
        1,
        3,
        MessageBody::InstallSnapshot {
            slot: 2,
            data: Bytes::from_static(b"s"),
        },
    ))
    .expect("step");
    let snap = Snapshot {
        slot: 2,
        data: Bytes::from_static(b"s"),
    };
    let ready = r.ready();
    assert_eq!(ready.snapshot, Some(snap.clone()));
    assert_eq!(
        ready.persist,
        Persist {
            snapshot: Some(snap),
            decided: Some(2),
            ..Persist::default()
        }
    );
    assert_eq!(r.decided(), 2);
}

#[test]
fn compacting_past_the_decided_index_is_refused() {
    let mut r = replica(1);
    match r.compact(1, Bytes::new()) {
        Err(Error::CompactBeyondDecided {
            requested: 1,
            decided: 0,
        }) => {}
        other => panic!("expected CompactBeyondDecided, got {other:?}"),
    }
}

#[test]
fn leader_steps_down_without_a_majority_and_reports_unknown_outcomes() {
    let mut r = leader();
    let id = r.propose(Bytes::from_static(b"a")).expect("propose");
    drive(&mut r);
    let mut outcomes = Vec::new();
    for _ in 0..10 {
        r.tick().expect("tick");
        outcomes.extend(drive(&mut r).outcomes);
        if !r.is_leader() {
            break;
        }
    }
    assert!(!r.is_leader(), "no peer answered for an election timeout");
    assert_eq!(
        outcomes,
        vec![Outcome {
            id,
            result: Err(paxlog_consensus::ProposalLost::Unknown)
        }]
    );
}

#[test]
fn restart_keeps_promise_and_never_reuses_a_ballot() {
    let mut r = replica(1);
    r.tick().expect("tick");
    r.tick().expect("tick");
    drive(&mut r);
    let storage = r.into_storage();
    let config = Config {
        id: 1,
        voters: vec![1, 2, 3],
        heartbeat_ticks: 1,
        election_ticks_min: 2,
        election_ticks_max: 3,
        ..Config::default()
    };
    let mut r = Replica::new(config, storage).expect("restart");
    assert_eq!(r.status().promised, B1);
    r.tick().expect("tick");
    r.tick().expect("tick");
    assert_eq!(r.ready().persist.promised, Some(Ballot::new(2, 1)));
}

#[test]
fn same_seed_same_outputs() {
    let run = || {
        let mut r = leader();
        let mut out = Vec::new();
        for i in 0..20u64 {
            if i % 3 == 0 {
                let _ = r.propose(Bytes::from(i.to_be_bytes().to_vec()));
            }
            r.tick().expect("tick");
            out.push(drive(&mut r));
        }
        out
    };
    assert_eq!(run(), run());
}

#[test]
fn invalid_configs_are_refused() {
    let bad = [
        Config {
            id: 0,
            ..Config::default()
        },
        Config {
            id: 1,
            voters: vec![2, 3],
            ..Config::default()
        },
        Config {
            id: 1,
            voters: vec![1, 1, 2],
            ..Config::default()
        },
        Config {
            heartbeat_ticks: 20,
            ..Config::default()
        },
        Config {
            max_inflight: 0,
            ..Config::default()
        },
    ];
    for config in bad {
        assert!(
            Replica::new(config.clone(), MemStorage::new()).is_err(),
            "{config:?} accepted"
        );
    }
}

#[test]
fn mem_storage_passes_the_conformance_suite() {
    paxlog_consensus::conformance::run(MemStorage::new, |s| s);
}

#[test]
fn leader_reports_each_followers_decided_index_as_last_reported() {
    let follower = replica(2);
    assert_eq!(
        follower.followers().count(),
        0,
        "only a leader tracks followers"
    );
    let mut r = leader();
    assert_eq!(
        r.followers().collect::<Vec<_>>(),
        vec![(2, Some(0)), (3, None)],
        "2 reported its decided index in its promise, 3 has not reported"
    );
    let id = r.propose(Bytes::from_static(b"a")).expect("propose");
    drive(&mut r);
    let accepted = MessageBody::Accepted {
        ballot: B1,
        decided: 0,
        slots: vec![1],
    };
    r.step(msg(2, 1, accepted)).expect("step");
    // The bookkeeping adds nothing to what the replica asks of its driver.
    assert_eq!(
        drive(&mut r),
        Ready {
            number: 4,
            persist: Persist {
                decided: Some(1),
                ..Persist::default()
            },
            decided: vec![(1, data("a"))],
            outcomes: vec![Outcome { id, result: Ok(()) }],
            ..Ready::default()
        }
    );
    let ack = |ballot, decided| MessageBody::HeartbeatAck { ballot, decided };
    r.step(msg(3, 1, ack(B1, 1))).expect("step");
    r.step(msg(2, 1, ack(B1, 1))).expect("step");
    r.step(msg(2, 1, ack(B1, 0))).expect("a late, older report");
    r.step(msg(3, 1, ack(Ballot::new(0, 3), 7)))
        .expect("a report for another ballot");
    assert_eq!(
        r.followers().collect::<Vec<_>>(),
        vec![(2, Some(1)), (3, Some(1))]
    );
    assert!(!r.has_ready());
}

#[test]
fn a_leader_hands_over_to_a_caught_up_peer_with_timeout_now_and_steps_down() {
    let mut r = leader();
    let a = r.propose(Bytes::from_static(b"a")).expect("propose");
    drive(&mut r);
    // Node 2 answers (its promise made this leader): while handing over to it, new
    // proposals wait; the one in flight is finished first.
    r.transfer_leadership(2).expect("leader");
    assert_eq!(r.transferring_to(), Some(2));
    assert_eq!(r.propose(Bytes::from_static(b"x")), Err(ProposeError::Busy));
    r.step(msg(
        2,
        1,
        MessageBody::Accepted {
            ballot: B1,
            decided: 0,
            slots: vec![1],
        },
    ))
    .expect("step");
    let ready = drive(&mut r);
    assert_eq!(
        ready.outcomes,
        vec![Outcome {
            id: a,
            result: Ok(())
        }]
    );
    assert!(r.is_leader(), "node 2 has not reported slot 1 decided yet");
    // Its heartbeat answer shows it has everything decided: hand over.
    r.step(msg(
        2,
        1,
        MessageBody::HeartbeatAck {
            ballot: B1,
            decided: 1,
        },
    ))
    .expect("step");
    assert_eq!(
        r.ready(),
        Ready {
            number: 5,
            messages: vec![msg(1, 2, MessageBody::TimeoutNow { ballot: B1 })],
            leader: Some(LeaderChange {
                leader: None,
                ballot: B1,
                is_self: false,
            }),
            ..Ready::default()
        }
    );
    assert!(!r.is_leader());
    assert_eq!(
        r.transfer_leadership(3).map_err(|e| e.to_string()),
        Err("not the leader".to_owned())
    );
}

#[test]
fn a_hand_over_to_a_silent_peer_holds_no_write_back_and_gives_up() {
    let mut r = leader();
    // Node 3 was never heard from.
    r.transfer_leadership(3).expect("leader");
    r.propose(Bytes::from_static(b"a")).expect("writes go on");
    for _ in 0..3 {
        r.tick().expect("tick");
        // Node 2 keeps answering, so the leader keeps its majority.
        r.step(msg(
            2,
            1,
            MessageBody::HeartbeatAck {
                ballot: B1,
                decided: 0,
            },
        ))
        .expect("step");
        drive(&mut r);
    }
    assert!(r.is_leader());
    assert_eq!(
        r.transferring_to(),
        None,
        "gave up after election_ticks_max"
    );
}

#[test]
fn timeout_now_from_the_followed_leader_starts_a_transfer_election_at_once() {
    let mut r = replica(2);
    r.step(msg(
        1,
        2,
        MessageBody::Heartbeat {
            ballot: B1,
            decided: 0,
            last_slot: 0,
        },
    ))
    .expect("follow 1");
    drive(&mut r);
    // From someone it does not follow, or at another ballot: ignored.
    r.step(msg(3, 2, MessageBody::TimeoutNow { ballot: B1 }))
        .expect("step");
    r.step(msg(
        1,
        2,
        MessageBody::TimeoutNow {
            ballot: Ballot::new(0, 1),
        },
    ))
    .expect("step");
    assert!(!r.has_ready());
    r.step(msg(1, 2, MessageBody::TimeoutNow { ballot: B1 }))
        .expect("step");
    let ready = r.ready();
    let b = Ballot::new(2, 2);
    assert_eq!(ready.persist.promised, Some(b));
    let prepares: Vec<u64> = ready
        .messages
        .iter()
        .filter(|m| {
            m.body
                == MessageBody::Prepare {
                    ballot: b,
                    from_slot: 1,
                    transfer: true,
                }
        })
        .map(|m| m.to)
        .collect();
    assert_eq!(prepares, vec![1, 3]);
}

#[test]
fn a_transfer_prepare_is_promised_even_while_the_old_leader_is_fresh() {
    let follow = |r: &mut Replica<MemStorage>| {
        r.step(msg(
            1,
            3,
            MessageBody::Heartbeat {
                ballot: B1,
                decided: 0,
                last_slot: 0,
            },
        ))
        .expect("follow 1");
        drive(r);
    };
    let prepare = |transfer| MessageBody::Prepare {
        ballot: Ballot::new(2, 2),
        from_slot: 1,
        transfer,
    };
    // A plain candidacy is ignored: node 3 heard its leader just now.
    let mut r = replica(3);
    follow(&mut r);
    r.step(msg(2, 3, prepare(false))).expect("step");
    assert!(!r.has_ready());
    // One the leader asked for is promised.
    let mut r = replica(3);
    follow(&mut r);
    r.step(msg(2, 3, prepare(true))).expect("step");
    let ready = drive(&mut r);
    assert_eq!(ready.persist.promised, Some(Ballot::new(2, 2)));
}
