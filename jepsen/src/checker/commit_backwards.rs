//! Committed offset going backwards: a group's acknowledged commits of a partition, in
//! the order they completed, decrease (only an explicit reset may do that, and resets are
//! not part of these histories).

use super::{Index, Violation};
use crate::history::{Function, OpType};
use std::collections::BTreeMap;

/// Flags acknowledged commits lower than an earlier acknowledged one.
pub fn check(ix: &Index<'_>, out: &mut Vec<Violation>) {
    let mut high: BTreeMap<(String, u32), (u64, usize)> = BTreeMap::new();
    for (i, op) in ix.ops().iter().enumerate() {
        if op.f != Function::Commit || op.kind != OpType::Ok {
            continue;
        }
        let group = op.value.group.clone().unwrap_or_default();
        for (partition, offset) in &op.value.offsets {
            let key = (group.clone(), *partition);
            match high.get(&key) {
                Some((h, h_op)) if offset < h => out.push(Violation {
                    invariant: "commit_backwards",
                    description: format!(
                        "group {group:?} committed {partition}@{offset} after {partition}@{h}"
                    ),
                    ops: vec![*h_op, i],
                }),
                _ => {
                    high.insert(key, (*offset, i));
                }
            }
        }
    }
}
