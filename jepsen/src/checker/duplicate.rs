//! Duplicate: one value (one send) stored at two offsets.

use super::{Index, Violation};
use std::collections::BTreeMap;

/// Flags values observed (read or acknowledged) at more than one offset.
pub fn check(ix: &Index<'_>, out: &mut Vec<Violation>) {
    type Place = ((u32, u64), usize);
    let mut places: BTreeMap<&str, Vec<Place>> = BTreeMap::new();
    for (at, values) in &ix.at {
        for (v, op) in values {
            places.entry(v).or_default().push((*at, *op));
        }
    }
    for (value, at) in places.into_iter().filter(|(_, at)| at.len() > 1) {
        let where_: Vec<String> = at.iter().map(|((p, o), _)| format!("{p}/{o}")).collect();
        out.push(Violation {
            invariant: "duplicate",
            description: format!("{value:?} is stored at {}", where_.join(" and ")),
            ops: at.iter().map(|(_, op)| *op).collect(),
        });
    }
}
