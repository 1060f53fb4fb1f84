//! Lost acknowledged write: a send was acknowledged at an offset, reads went past that
//! offset in its partition, and no read ever returned it.

use super::{Index, Violation};

/// Flags acknowledged sends that reads passed without returning them.
pub fn check(ix: &Index<'_>, out: &mut Vec<Violation>) {
    for (value, (partition, offset, op)) in &ix.acked {
        let passed = ix.read_up_to.get(partition).is_some_and(|top| top > offset);
        if passed && !ix.was_read(value) {
            out.push(Violation {
                invariant: "lost",
                description: format!(
                    "{value:?} was acknowledged at {partition}/{offset}, reads went past it, none returned it"
                ),
                ops: vec![*op],
            });
        }
    }
}
