//! Hand-made histories: a clean one passes, and each anomaly is flagged by exactly its
//! invariant.

use super::check;
use crate::history::{Function, History, Op, OpType, OpValue, Polled};

struct Builder {
    ops: Vec<Op>,
}

impl Builder {
    fn new() -> Self {
        Self { ops: Vec::new() }
    }

    fn push(&mut self, process: u64, kind: OpType, f: Function, value: OpValue) -> &mut Self {
        let time = self.ops.len() as u64;
        self.ops.push(Op {
            process,
            kind,
            f,
            value,
            time,
        });
        self
    }

    /// A send of `value` by `process`, acknowledged at `partition`/`offset`.
    fn sent(&mut self, process: u64, value: &str, partition: u32, offset: u64) -> &mut Self {
        let v = OpValue {
            key: Some("k".into()),
            value: Some(value.into()),
            ..OpValue::default()
        };
        self.push(process, OpType::Invoke, Function::Send, v.clone());
        let ok = OpValue {
            partition: Some(partition),
            offset: Some(offset),
            ..v
        };
        self.push(process, OpType::Ok, Function::Send, ok)
    }

    /// A send that ended `kind` (fail or info).
    fn send_ended(&mut self, process: u64, value: &str, kind: OpType) -> &mut Self {
        let v = OpValue {
            value: Some(value.into()),
            ..OpValue::default()
        };
        self.push(process, OpType::Invoke, Function::Send, v.clone());
        self.push(process, kind, Function::Send, v)
    }

    /// A poll by `process` returning `(partition, offset, value)`s.
    fn polled(&mut self, process: u64, records: &[(u32, u64, &str)]) -> &mut Self {
        let v = OpValue {
            records: as_polled(records),
            ..OpValue::default()
        };
        self.push(process, OpType::Invoke, Function::Poll, OpValue::default());
        self.push(process, OpType::Ok, Function::Poll, v)
    }

    /// Node `node`'s own log of partition 0, read at the end.
    fn replica(&mut self, node: u64, records: &[(u32, u64, &str)]) -> &mut Self {
        let v = OpValue {
            records: as_polled(records),
            node: Some(node),
            ..OpValue::default()
        };
        self.push(200 + node, OpType::Ok, Function::Poll, v)
    }

    /// The group's committed offsets as read back at the end.
    fn fetched_offsets(&mut self, offsets: &[(u32, u64)]) -> &mut Self {
        let v = OpValue {
            offsets: offsets.to_vec(),
            group: Some("g".into()),
            ..OpValue::default()
        };
        self.push(300, OpType::Ok, Function::FetchOffsets, v)
    }

    fn assigned(&mut self, process: u64) -> &mut Self {
        self.push(process, OpType::Ok, Function::Assign, OpValue::default())
    }

    fn committed(&mut self, process: u64, offsets: &[(u32, u64)]) -> &mut Self {
        let v = OpValue {
            offsets: offsets.to_vec(),
            group: Some("g".into()),
            ..OpValue::default()
        };
        self.push(process, OpType::Ok, Function::Commit, v)
    }

    fn invariants(&self) -> Vec<&'static str> {
        let history = History {
            ops: self.ops.clone(),
        };
        check(&history).into_iter().map(|v| v.invariant).collect()
    }
}

fn as_polled(records: &[(u32, u64, &str)]) -> Vec<Polled> {
    records
        .iter()
        .map(|(p, o, v)| Polled {
            partition: *p,
            offset: *o,
            value: (*v).to_owned(),
        })
        .collect()
}

/// Three sends to partition 0 read back in order by one consumer.
fn clean() -> Builder {
    let mut b = Builder::new();
    b.sent(1, "1-0", 0, 0)
        .sent(1, "1-1", 0, 1)
        .sent(1, "1-2", 0, 2)
        .polled(9, &[(0, 0, "1-0"), (0, 1, "1-1")])
        .polled(9, &[(0, 2, "1-2")])
        .committed(9, &[(0, 3)]);
    b
}

#[test]
fn a_clean_history_has_no_violations() {
    assert_eq!(clean().invariants(), Vec::<&str>::new());
}

#[test]
fn an_unknown_send_may_appear_once_or_not_at_all() {
    let mut b = clean();
    b.send_ended(2, "2-0", OpType::Info);
    assert_eq!(b.invariants(), Vec::<&str>::new());
    b.polled(9, &[(0, 3, "2-0")]);
    assert_eq!(b.invariants(), Vec::<&str>::new());
}

#[test]
fn each_anomaly_is_flagged_by_its_invariant() {
    // Lost: acknowledged at 0/3, a read went to 0/4 without it.
    let mut b = clean();
    b.sent(1, "1-3", 0, 3)
        .sent(1, "1-4", 0, 4)
        .polled(8, &[(0, 4, "1-4")]);
    assert!(b.invariants().contains(&"lost"), "{:?}", b.invariants());

    // Unseen: acknowledged, reads never got there.
    let mut b = clean();
    b.sent(1, "1-3", 0, 3);
    assert_eq!(b.invariants(), ["unseen"]);

    // Duplicate: one value at two offsets.
    let mut b = clean();
    b.polled(
        8,
        &[(0, 0, "1-0"), (0, 1, "1-1"), (0, 2, "1-2"), (0, 3, "1-1")],
    );
    assert!(
        b.invariants().contains(&"duplicate"),
        "{:?}",
        b.invariants()
    );

    // Inconsistent offsets: one offset, two values.
    let mut b = clean();
    b.polled(8, &[(0, 1, "other")]);
    assert!(
        b.invariants().contains(&"inconsistent_offsets"),
        "{:?}",
        b.invariants()
    );

    // Non-monotonic send: a producer acknowledged backwards.
    let mut b = Builder::new();
    b.sent(1, "a", 0, 5)
        .sent(1, "b", 0, 4)
        .polled(9, &[(0, 4, "b"), (0, 5, "a")]);
    assert_eq!(b.invariants(), ["nonmonotonic_send"]);

    // Non-monotonic poll: a consumer read backwards without a position restart...
    let mut b = clean();
    b.polled(9, &[(0, 1, "1-1")]);
    assert_eq!(b.invariants(), ["nonmonotonic_poll"]);
    // ...which is fine after a reassignment.
    let mut b = clean();
    b.assigned(9).polled(9, &[(0, 1, "1-1")]);
    assert_eq!(b.invariants(), Vec::<&str>::new());

    // Poll skip: a consumer jumped over a record that exists.
    let mut b = clean();
    b.sent(1, "1-3", 0, 3).sent(1, "1-4", 0, 4);
    b.polled(9, &[(0, 4, "1-4")]).polled(7, &[(0, 3, "1-3")]);
    assert_eq!(b.invariants(), ["poll_skip"]);

    // Aborted read: a failed send was read.
    let mut b = clean();
    b.send_ended(2, "2-0", OpType::Fail)
        .polled(9, &[(0, 3, "2-0")]);
    assert_eq!(b.invariants(), ["aborted_read"]);

    // Committed offset going backwards.
    let mut b = clean();
    b.committed(9, &[(0, 1)]);
    assert_eq!(b.invariants(), ["commit_backwards"]);

    // Lost commit: the committed offset read back is below an acknowledged commit.
    let mut b = clean();
    b.fetched_offsets(&[(0, 3)]);
    assert_eq!(b.invariants(), Vec::<&str>::new());
    b.fetched_offsets(&[(0, 2)]);
    assert_eq!(b.invariants(), ["commit_lost"]);

    // Replicas diverge: node 2's log holds another value at 0/2 (also an inconsistent
    // offset for the clients' view), while identical replica logs are fine.
    let mut b = clean();
    b.replica(1, &[(0, 0, "1-0"), (0, 1, "1-1"), (0, 2, "1-2")])
        .replica(2, &[(0, 0, "1-0"), (0, 1, "1-1"), (0, 2, "1-2")]);
    assert_eq!(b.invariants(), Vec::<&str>::new());
    b.replica(3, &[(0, 0, "1-0"), (0, 1, "1-1"), (0, 2, "x")]);
    assert!(
        b.invariants().contains(&"replicas_diverge"),
        "{:?}",
        b.invariants()
    );
}
