//! Non-monotonic send: a producer's acknowledged sends to one partition, in the order they
//! completed, got offsets that go backwards (its own order was not kept).

use super::{Index, Violation};
use crate::history::{Function, OpType};
use std::collections::BTreeMap;

/// Flags a process's acknowledgements whose offsets decrease within a partition.
pub fn check(ix: &Index<'_>, out: &mut Vec<Violation>) {
    let mut last: BTreeMap<(u64, u32), (u64, usize)> = BTreeMap::new();
    for (i, op) in ix.ops().iter().enumerate() {
        if op.f != Function::Send || op.kind != OpType::Ok {
            continue;
        }
        let (Some(p), Some(o)) = (op.value.partition, op.value.offset) else {
            continue;
        };
        if let Some((prev, prev_op)) = last.insert((op.process, p), (o, i))
            && o <= prev
        {
            out.push(Violation {
                invariant: "nonmonotonic_send",
                description: format!(
                    "process {} was acknowledged at {p}/{o} after {p}/{prev}",
                    op.process
                ),
                ops: vec![prev_op, i],
            });
        }
    }
}
