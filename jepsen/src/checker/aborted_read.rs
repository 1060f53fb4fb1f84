//! Aborted read: a send that certainly failed (`fail`) was read: the broker said no, and
//! stored it anyway.

use super::{Index, Violation};

/// Flags failed sends that a read returned.
pub fn check(ix: &Index<'_>, out: &mut Vec<Violation>) {
    for (value, op) in &ix.failed {
        if ix.was_read(value) {
            out.push(Violation {
                invariant: "aborted_read",
                description: format!("{value:?} failed, yet a read returned it"),
                ops: vec![*op],
            });
        }
    }
}
