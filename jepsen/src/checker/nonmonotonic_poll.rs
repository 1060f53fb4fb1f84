//! Non-monotonic poll: within one consumer's reading of a partition (between position
//! restarts: assign, crash), an offset read is not above the one read before it.

use super::{Index, Violation, read_steps};

/// Flags reads that go backwards (or repeat) without a position restart.
pub fn check(ix: &Index<'_>, out: &mut Vec<Violation>) {
    for (process, partition, (p, p_op), (o, op)) in read_steps(ix) {
        if o <= p {
            out.push(Violation {
                invariant: "nonmonotonic_poll",
                description: format!(
                    "process {process} read {partition}/{o} after {partition}/{p}"
                ),
                ops: vec![p_op, op],
            });
        }
    }
}
