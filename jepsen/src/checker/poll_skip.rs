//! Poll skip: within one consumer's reading of a partition (between position restarts),
//! consecutive reads jumped over an offset that holds a record (acknowledged or read
//! elsewhere).

use super::{Index, Violation, read_steps};

/// Flags gaps between consecutive reads that known records fall into.
pub fn check(ix: &Index<'_>, out: &mut Vec<Violation>) {
    for (process, partition, (p, p_op), (o, op)) in read_steps(ix) {
        if o <= p + 1 {
            continue;
        }
        let skipped: Vec<u64> = ix
            .at
            .range((partition, p + 1)..(partition, o))
            .map(|((_, off), _)| *off)
            .collect();
        if !skipped.is_empty() {
            out.push(Violation {
                invariant: "poll_skip",
                description: format!(
                    "process {process} read {partition}/{o} right after {partition}/{p}, skipping {skipped:?}"
                ),
                ops: vec![p_op, op],
            });
        }
    }
}
