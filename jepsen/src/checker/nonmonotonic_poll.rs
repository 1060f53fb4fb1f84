//! Non-monotonic poll: within one consumer's reading of a partition (between position
//! restarts), offsets must increase.

use super::{Index, Violation, poll_runs};

/// Flags reads that go backwards or repeat within a run of polls.
pub fn check(ix: &Index<'_>, out: &mut Vec<Violation>) {
    for (process, partition, run) in poll_runs(ix) {
        let mut prev: Option<(u64, usize)> = None;
        for (op, offsets) in run {
            for o in offsets {
                if let Some((p, p_op)) = prev
                    && o <= p
                {
                    out.push(Violation {
                        invariant: "nonmonotonic_poll",
                        description: format!(
                            "process {process} read {partition}/{o} after {partition}/{p}"
                        ),
                        ops: vec![p_op, op],
                    });
                }
                prev = Some((o, op));
            }
        }
    }
}
