//! Inconsistent offsets: one offset of a partition holds two different values (two
//! replicas, or two reads, disagree about the log).

use super::{Index, Violation};

/// Flags offsets observed with more than one value.
pub fn check(ix: &Index<'_>, out: &mut Vec<Violation>) {
    for ((partition, offset), values) in ix.at.iter().filter(|(_, vs)| vs.len() > 1) {
        let names: Vec<&str> = values.keys().map(String::as_str).collect();
        out.push(Violation {
            invariant: "inconsistent_offsets",
            description: format!("{partition}/{offset} holds {names:?}"),
            ops: values.values().copied().collect(),
        });
    }
}
