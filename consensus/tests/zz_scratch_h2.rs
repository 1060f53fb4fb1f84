use bytes::Bytes;
use paxlog_consensus::*;

fn replica(id: u64) -> Replica<MemStorage> {
    let config = Config { id, voters: vec![1, 2, 3, 4, 5], heartbeat_ticks: 1, election_ticks_min: 2, election_ticks_max: 3, retransmit_ticks: 4, ..Config::default() };
    Replica::new(config, MemStorage::new()).expect("valid config")
}
fn msg(from: u64, to: u64, body: MessageBody) -> Message { Message { from, to, body } }
fn drive(r: &mut Replica<MemStorage>) -> Ready {
    let ready = r.ready();
    r.storage_mut().write(&ready.persist).expect("write");
    r.persisted(ready.number).expect("persisted");
    ready
}
fn data(s: &'static str) -> Value { Value::Data(Bytes::from_static(s.as_bytes())) }

#[test]
fn h2() {
    let b0 = Ballot::new(1, 3); // an old leader 3 decided slot 1 = "u"
    let u = Entry { ballot: b0, value: data("u") };
    // F (2) has slot 1 decided.
    let mut f = replica(2);
    f.step(msg(3, 2, MessageBody::Accept { ballot: b0, decided: 0, entries: vec![(1, u.clone())] })).unwrap();
    drive(&mut f);
    f.step(msg(3, 2, MessageBody::Heartbeat { ballot: b0, decided: 1, last_slot: 1 })).unwrap();
    let r = drive(&mut f);
    assert_eq!(r.decided, vec![(1, data("u"))]);
    // L (1) lacks slot 1; elects itself with promises from 2 and 4 (decided 1 at 2).
    let mut l = replica(1);
    l.step(msg(3, 1, MessageBody::Heartbeat { ballot: b0, decided: 0, last_slot: 0 })).unwrap();
    drive(&mut l);
    for _ in 0..10 { l.tick().unwrap(); if l.has_ready() { break; } }
    let r = drive(&mut l);
    let b = r.persist.promised.unwrap();
    println!("L ballot {b}");
    l.step(msg(2, 1, MessageBody::Promise { ballot: b, decided: 1, entries: vec![] })).unwrap();
    l.step(msg(4, 1, MessageBody::Promise { ballot: b, decided: 0, entries: vec![] })).unwrap();
    let r = drive(&mut l);
    assert!(l.is_leader(), "{r:?}");
    println!("L ready after election: {:?}", r.messages);
    // L proposes v_b at slot 2; F accepts it.
    let id = l.propose(Bytes::from_static(b"vb")).unwrap();
    assert_eq!(id.slot, 2);
    let r = drive(&mut l);
    let acc = r.messages.iter().find(|m| m.to == 2 && matches!(m.body, MessageBody::Accept { .. })).unwrap().clone();
    // F must not currently consider its leader fresh... it follows 3; accept at higher ballot b is fine.
    f.step(acc).unwrap();
    let r = drive(&mut f);
    println!("F after accept: {:?} decided {:?}", r.messages, r.decided);
    // Meanwhile leader 4 (ballot 5.4) decided slot 2 = noop with 3, 4, 5. L learns it from 4 (answer to its Learn).
    let b1 = Ballot::new(5, 4);
    l.step(msg(4, 1, MessageBody::Decided { decided: 2, entries: vec![(1, u.clone()), (2, Entry { ballot: b1, value: Value::Noop })] })).unwrap();
    let r = drive(&mut l);
    println!("L decided {:?}, is_leader {}", r.decided, l.is_leader());
    // L's heartbeat reaches F.
    for _ in 0..3 { l.tick().unwrap(); }
    let r = drive(&mut l);
    let hb = r.messages.iter().find(|m| m.to == 2).unwrap().clone();
    println!("L -> F: {hb:?}");
    f.step(hb).unwrap();
    let r = drive(&mut f);
    println!("F decided {:?}", r.decided);
    assert_ne!(r.decided, vec![(2, data("vb"))], "F decided L's own proposal for slot 2, but slot 2 is a noop");
}
