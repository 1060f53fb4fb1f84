//! Unseen at the end: a send was acknowledged but no read ever returned it, and reads
//! never reached its offset (the final read should have).

use super::{Index, Violation};

/// Flags acknowledged sends no read reached.
pub fn check(ix: &Index<'_>, out: &mut Vec<Violation>) {
    for (value, (partition, offset, op)) in &ix.acked {
        let passed = ix.read_up_to.get(partition).is_some_and(|top| top > offset);
        if !passed && !ix.was_read(value) {
            out.push(Violation {
                invariant: "unseen",
                description: format!(
                    "{value:?} was acknowledged at {partition}/{offset} but no read got that far"
                ),
                ops: vec![*op],
            });
        }
    }
}
