//! Poll skip: within one consumer's reading of a partition (between position restarts),
//! consecutive reads jumped over an offset that holds a record (acknowledged or read
//! elsewhere).

use super::{Index, Violation, poll_runs};

/// Flags gaps between consecutive reads that known records fall into.
pub fn check(ix: &Index<'_>, out: &mut Vec<Violation>) {
    for (process, partition, run) in poll_runs(ix) {
        let mut prev: Option<(u64, usize)> = None;
        for (op, offsets) in run {
            for o in offsets {
                if let Some((p, p_op)) = prev
                    && o > p + 1
                {
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
                prev = Some((o, op));
            }
        }
    }
}
