//! Replicas diverge: at the end of a run every replica's decided log of a partition is
//! read on its own (polls tagged with the replica's node); two replicas holding different
//! values at one offset means the decided logs diverged, whatever clients saw.

use super::{Index, Violation};
use crate::history::{Function, OpType};
use std::collections::BTreeMap;

/// What each node holds at one offset: node → (value, op index).
type Held<'a> = BTreeMap<u64, (&'a str, usize)>;

/// Flags offsets where two replicas' logs hold different values.
pub fn check(ix: &Index<'_>, out: &mut Vec<Violation>) {
    let mut logs: BTreeMap<(u32, u64), Held<'_>> = BTreeMap::new();
    for (i, op) in ix.ops().iter().enumerate() {
        let (Function::Poll, OpType::Ok, Some(node)) = (op.f, op.kind, op.value.node) else {
            continue;
        };
        for r in &op.value.records {
            logs.entry((r.partition, r.offset))
                .or_default()
                .insert(node, (r.value.as_str(), i));
        }
    }
    for ((partition, offset), by_node) in logs {
        let mut values = by_node.values().map(|(v, _)| *v).collect::<Vec<_>>();
        values.dedup();
        if values.len() > 1 {
            let held: Vec<String> = by_node
                .iter()
                .map(|(node, (v, _))| format!("node {node}: {v:?}"))
                .collect();
            out.push(Violation {
                invariant: "replicas_diverge",
                description: format!("{partition}/{offset}: {}", held.join(", ")),
                ops: by_node.values().map(|(_, i)| *i).collect(),
            });
        }
    }
}
