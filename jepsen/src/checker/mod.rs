//! The checker: one invariant per file, each `fn check(&Index, &mut Vec<Violation>)`.
//!
//! ```text
//!   History ─▶ Index (acked / failed / unknown sends; what polls observed, where)
//!     ├─ lost                  acked, never read, though reads passed its offset
//!     ├─ unseen                acked, never read, reads never got that far
//!     ├─ duplicate             one value at two offsets
//!     ├─ inconsistent_offsets  one offset, two values
//!     ├─ nonmonotonic_send     a producer's acks going backwards in a partition
//!     ├─ nonmonotonic_poll     a consumer's reads going backwards in a partition
//!     ├─ poll_skip             a consumer jumped over records that exist
//!     ├─ aborted_read          a failed send was read
//!     ├─ commit_backwards      a group's committed offset went backwards
//!     ├─ commit_lost           an acknowledged commit is missing when read back
//!     └─ replicas_diverge      two replicas' decided logs differ at an offset
//! ```
//!
//! A send whose outcome is unknown (`info`) is neither lost nor failed: it may appear
//! once, or not at all.

mod aborted_read;
mod commit_backwards;
mod commit_lost;
mod duplicate;
mod inconsistent_offsets;
mod lost;
mod nonmonotonic_poll;
mod nonmonotonic_send;
mod poll_skip;
mod replicas_diverge;
mod unseen;

#[cfg(test)]
mod tests;

use crate::history::{Function, History, Op, OpType};
use std::collections::{BTreeMap, BTreeSet};

/// A broken invariant, with the operations that show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The invariant's name (its file).
    pub invariant: &'static str,
    /// What happened.
    pub description: String,
    /// Indexes of the operations involved in the history.
    pub ops: Vec<usize>,
}

/// What the checkers look up, computed once.
#[derive(Debug, Default)]
pub struct Index<'h> {
    /// The history.
    pub history: Option<&'h History>,
    /// Acknowledged sends: value → (partition, offset, op index).
    pub acked: BTreeMap<String, (u32, u64, usize)>,
    /// Values of sends that certainly failed → op index.
    pub failed: BTreeMap<String, usize>,
    /// Values of sends whose outcome is unknown.
    pub unknown: BTreeSet<String>,
    /// (partition, offset) → values observed there, each with the first op showing it.
    pub at: BTreeMap<(u32, u64), BTreeMap<String, usize>>,
    /// Highest offset any poll observed, per partition.
    pub read_up_to: BTreeMap<u32, u64>,
    /// Values some poll returned.
    pub read: BTreeSet<String>,
}

impl<'h> Index<'h> {
    /// Indexes `history`.
    pub fn new(history: &'h History) -> Index<'h> {
        let mut ix = Index {
            history: Some(history),
            ..Index::default()
        };
        for (i, op) in history.ops.iter().enumerate() {
            match (op.f, op.kind) {
                (Function::Send, OpType::Ok) => {
                    if let (Some(v), Some(p), Some(o)) =
                        (&op.value.value, op.value.partition, op.value.offset)
                    {
                        ix.acked.insert(v.clone(), (p, o, i));
                        ix.at
                            .entry((p, o))
                            .or_default()
                            .entry(v.clone())
                            .or_insert(i);
                    }
                }
                (Function::Send, OpType::Fail) => {
                    if let Some(v) = &op.value.value {
                        ix.failed.insert(v.clone(), i);
                    }
                }
                (Function::Send, OpType::Info) => {
                    if let Some(v) = &op.value.value {
                        ix.unknown.insert(v.clone());
                    }
                }
                (Function::Poll, OpType::Ok) => {
                    for r in &op.value.records {
                        ix.at
                            .entry((r.partition, r.offset))
                            .or_default()
                            .entry(r.value.clone())
                            .or_insert(i);
                        let top = ix.read_up_to.entry(r.partition).or_default();
                        *top = (*top).max(r.offset);
                        ix.read.insert(r.value.clone());
                    }
                }
                _ => {}
            }
        }
        ix
    }

    /// The history's operations.
    pub fn ops(&self) -> &'h [Op] {
        self.history.map_or(&[], |h| &h.ops[..])
    }

    /// Whether some poll read `value`.
    pub fn was_read(&self, value: &str) -> bool {
        self.read.contains(value)
    }
}

/// Every invariant's violations, in invariant order.
pub fn check(history: &History) -> Vec<Violation> {
    let ix = Index::new(history);
    let mut out = Vec::new();
    lost::check(&ix, &mut out);
    unseen::check(&ix, &mut out);
    duplicate::check(&ix, &mut out);
    inconsistent_offsets::check(&ix, &mut out);
    nonmonotonic_send::check(&ix, &mut out);
    nonmonotonic_poll::check(&ix, &mut out);
    poll_skip::check(&ix, &mut out);
    aborted_read::check(&ix, &mut out);
    commit_backwards::check(&ix, &mut out);
    commit_lost::check(&ix, &mut out);
    replicas_diverge::check(&ix, &mut out);
    out
}

/// One poll's offsets of one partition, with the poll's op index.
pub(crate) type PollStep = (usize, Vec<u64>);

/// A process's consecutive polls of one partition: `(process, partition, steps)`.
pub(crate) type PollRun = (u64, u32, Vec<PollStep>);

/// Each process's polls of each partition, split where its positions restart (assign,
/// crash), in history order.
pub(crate) fn poll_runs(ix: &Index<'_>) -> Vec<PollRun> {
    let mut current: BTreeMap<(u64, u32), Vec<PollStep>> = BTreeMap::new();
    let mut done = Vec::new();
    for (i, op) in ix.ops().iter().enumerate() {
        match (op.f, op.kind) {
            (Function::Assign | Function::Crash, OpType::Ok | OpType::Info) => {
                let keys: Vec<(u64, u32)> = current
                    .keys()
                    .filter(|(proc, _)| *proc == op.process)
                    .copied()
                    .collect();
                for k in keys {
                    if let Some(run) = current.remove(&k) {
                        done.push((k.0, k.1, run));
                    }
                }
            }
            (Function::Poll, OpType::Ok) => {
                let mut by_partition: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
                for r in &op.value.records {
                    by_partition.entry(r.partition).or_default().push(r.offset);
                }
                for (p, offsets) in by_partition {
                    current
                        .entry((op.process, p))
                        .or_default()
                        .push((i, offsets));
                }
            }
            _ => {}
        }
    }
    done.extend(current.into_iter().map(|((proc, p), run)| (proc, p, run)));
    done
}

/// One read following another in a [`PollRun`]: `(process, partition, (offset, op) before,
/// (offset, op) now)`.
pub(crate) type ReadStep = (u64, u32, (u64, usize), (u64, usize));

/// Every pair of consecutive reads of a partition by one process (between position
/// restarts), in order.
pub(crate) fn read_steps(ix: &Index<'_>) -> Vec<ReadStep> {
    let mut steps = Vec::new();
    for (process, partition, run) in poll_runs(ix) {
        let mut prev: Option<(u64, usize)> = None;
        for (op, offsets) in run {
            for o in offsets {
                if let Some(p) = prev {
                    steps.push((process, partition, p, (o, op)));
                }
                prev = Some((o, op));
            }
        }
    }
    steps
}
