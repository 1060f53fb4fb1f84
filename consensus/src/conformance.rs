//! A conformance suite every [`Storage`] implementation must pass: the in-memory store runs
//! it in this crate's tests, the broker's RocksDB store in the broker's.
//!
//! Each check takes a factory for empty storage and a way to "reopen" one (for RocksDB, close
//! and open the same directory), and panics with a message naming the broken property.

use crate::storage::{Persist, Storage};
use crate::types::{Ballot, Entry, Snapshot, Value};
use bytes::Bytes;

fn entry(round: u64, data: &'static [u8]) -> Entry {
    Entry {
        ballot: Ballot::new(round, 1),
        value: Value::Data(Bytes::from_static(data)),
    }
}

/// Runs every check. `new` makes empty storage; `reopen` simulates a restart.
pub fn run<S: Storage>(mut new: impl FnMut() -> S, mut reopen: impl FnMut(S) -> S) {
    empty_storage_starts_at_zero(new());
    writes_survive_reopen(new(), &mut reopen);
    last_write_of_a_slot_wins(new());
    promised_and_decided_never_go_backwards(new());
    snapshot_drops_covered_entries(new(), &mut reopen);
    ranges_skip_holes(new());
}

fn empty_storage_starts_at_zero<S: Storage>(s: S) {
    let init = s.initial_state().expect("initial_state");
    assert_eq!(
        init.promised,
        Ballot::ZERO,
        "empty storage: promised must be ZERO"
    );
    assert_eq!(init.decided, 0, "empty storage: decided must be 0");
    assert_eq!(init.last_slot, 0, "empty storage: last_slot must be 0");
    assert!(init.snapshot.is_none(), "empty storage: no snapshot");
}

fn writes_survive_reopen<S: Storage>(mut s: S, reopen: &mut impl FnMut(S) -> S) {
    let p = Persist {
        promised: Some(Ballot::new(3, 2)),
        entries: vec![(1, entry(3, b"a")), (2, entry(3, b"b"))],
        decided: Some(1),
        snapshot: None,
    };
    s.write(&p).expect("write");
    let s = reopen(s);
    let init = s.initial_state().expect("initial_state");
    assert_eq!(
        init.promised,
        Ballot::new(3, 2),
        "promised ballot lost across reopen"
    );
    assert_eq!(init.decided, 1, "decided index lost across reopen");
    assert_eq!(init.last_slot, 2, "last_slot wrong after reopen");
    assert_eq!(
        s.entries(1, 2).expect("entries"),
        vec![(1, entry(3, b"a")), (2, entry(3, b"b"))],
        "entries lost or changed across reopen"
    );
}

fn last_write_of_a_slot_wins<S: Storage>(mut s: S) {
    let p = Persist {
        entries: vec![(5, entry(1, b"old")), (5, entry(2, b"new"))],
        ..Persist::default()
    };
    s.write(&p).expect("write");
    assert_eq!(
        s.entries(5, 5).expect("entries"),
        vec![(5, entry(2, b"new"))],
        "last write must win"
    );
    s.write(&Persist {
        entries: vec![(5, entry(4, b"newer"))],
        ..Persist::default()
    })
    .expect("write");
    assert_eq!(
        s.entries(5, 5).expect("entries"),
        vec![(5, entry(4, b"newer"))],
        "overwrite failed"
    );
}

fn promised_and_decided_never_go_backwards<S: Storage>(mut s: S) {
    s.write(&Persist {
        promised: Some(Ballot::new(5, 1)),
        decided: Some(4),
        ..Persist::default()
    })
    .expect("write");
    s.write(&Persist {
        promised: Some(Ballot::new(2, 3)),
        decided: Some(2),
        ..Persist::default()
    })
    .expect("write");
    let init = s.initial_state().expect("initial_state");
    assert_eq!(
        init.promised,
        Ballot::new(5, 1),
        "promised ballot went backwards"
    );
    assert_eq!(init.decided, 4, "decided index went backwards");
}

fn snapshot_drops_covered_entries<S: Storage>(mut s: S, reopen: &mut impl FnMut(S) -> S) {
    let entries = (1..=6).map(|i| (i, entry(1, b"x"))).collect();
    s.write(&Persist {
        entries,
        decided: Some(6),
        ..Persist::default()
    })
    .expect("write");
    let snap = Snapshot {
        slot: 4,
        data: Bytes::from_static(b"state@4"),
    };
    s.write(&Persist {
        snapshot: Some(snap.clone()),
        entries: vec![(3, entry(2, b"covered")), (7, entry(2, b"kept"))],
        ..Persist::default()
    })
    .expect("write");
    let s = reopen(s);
    let init = s.initial_state().expect("initial_state");
    assert_eq!(init.snapshot, Some(snap), "snapshot lost across reopen");
    assert_eq!(init.last_slot, 7);
    let got: Vec<u64> = s
        .entries(1, 10)
        .expect("entries")
        .into_iter()
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        got,
        vec![5, 6, 7],
        "entries covered by the snapshot must be gone, others kept"
    );
}

fn ranges_skip_holes<S: Storage>(mut s: S) {
    let p = Persist {
        entries: vec![
            (2, entry(1, b"b")),
            (4, entry(1, b"d")),
            (9, entry(1, b"i")),
        ],
        ..Persist::default()
    };
    s.write(&p).expect("write");
    let got: Vec<u64> = s
        .entries(1, 8)
        .expect("entries")
        .into_iter()
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        got,
        vec![2, 4],
        "range must return present slots in order, inclusive bounds"
    );
    assert!(
        s.entries(5, 3).expect("entries").is_empty(),
        "empty range when from > to"
    );
}
