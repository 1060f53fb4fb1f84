//! Lost commit: at the end of a run the group's committed offsets are read back; each must
//! be at least every offset an acknowledged commit stored for that partition (commits are
//! replicated like records: an acknowledged one must survive every fault).

use super::{Index, Violation};
use crate::history::{Function, OpType};
use std::collections::BTreeMap;

/// Flags committed offsets read back below an acknowledged commit.
pub fn check(ix: &Index<'_>, out: &mut Vec<Violation>) {
    let mut acked: BTreeMap<(String, u32), (u64, usize)> = BTreeMap::new();
    for (i, op) in ix.ops().iter().enumerate() {
        let group = op.value.group.clone().unwrap_or_default();
        match (op.f, op.kind) {
            (Function::Commit, OpType::Ok) => {
                for (p, o) in &op.value.offsets {
                    let e = acked.entry((group.clone(), *p)).or_insert((*o, i));
                    if *o > e.0 {
                        *e = (*o, i);
                    }
                }
            }
            (Function::FetchOffsets, OpType::Ok) => {
                let read: BTreeMap<u32, u64> = op.value.offsets.iter().copied().collect();
                for ((g, p), (o, c_op)) in acked.iter().filter(|((g, _), _)| *g == group) {
                    let now = read.get(p).copied();
                    if now.is_none_or(|n| n < *o) {
                        out.push(Violation {
                            invariant: "commit_lost",
                            description: format!(
                                "group {g:?} partition {p}: commit of {o} was acknowledged, committed offset read back: {now:?}"
                            ),
                            ops: vec![*c_op, i],
                        });
                    }
                }
            }
            _ => {}
        }
    }
}
