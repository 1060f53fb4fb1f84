//! Server-side partition assignment: every partition of a subscribed topic to exactly one
//! subscribed member, balanced (per topic, member counts differ by at most one), and
//! sticky (a member keeps what it owned as far as balance allows), so a membership change
//! moves only the partitions it must.
//!
//! ```text
//!   per topic: eligible members (subscribed), sorted ─▶ quotas ⌊P/M⌋ or ⌈P/M⌉
//!     1. keep previous owners' partitions up to their quota
//!     2. hand out the rest: RANGE fills members in order with contiguous partitions,
//!        ROUND_ROBIN deals them one by one
//! ```

use std::collections::{BTreeMap, BTreeSet};

/// How free partitions are spread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Contiguous ranges per member.
    Range,
    /// Dealt one by one.
    RoundRobin,
}

impl Strategy {
    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Range => "range",
            Strategy::RoundRobin => "round_robin",
        }
    }

    /// From the stored name (range for anything unknown).
    pub fn from_name(name: &str) -> Self {
        match name {
            "round_robin" => Strategy::RoundRobin,
            _ => Strategy::Range,
        }
    }
}

/// member → topic → partitions (ascending).
pub type Assignment = BTreeMap<String, BTreeMap<String, Vec<u32>>>;

/// Assigns the partitions of every topic some member subscribes to. `subscriptions`:
/// member → topics; `partitions`: topic → partition count (topics missing there are
/// skipped); `previous`: the last generation's assignment.
pub fn assign(
    subscriptions: &BTreeMap<String, Vec<String>>,
    partitions: &BTreeMap<String, u32>,
    previous: &Assignment,
    strategy: Strategy,
) -> Assignment {
    let mut out: Assignment = subscriptions
        .keys()
        .map(|m| (m.clone(), BTreeMap::new()))
        .collect();
    let topics: BTreeSet<&String> = subscriptions.values().flatten().collect();
    for topic in topics {
        let Some(&count) = partitions.get(topic) else {
            continue;
        };
        let members: Vec<&String> = subscriptions
            .iter()
            .filter(|(_, ts)| ts.contains(topic))
            .map(|(m, _)| m)
            .collect();
        if members.is_empty() || count == 0 {
            continue;
        }
        let n = members.len() as u32;
        let base = count / n;
        // `count % n` members hold one more than the base share. Previous owners that
        // held more than the base keep one extra first, in member order.
        let mut extra_left = count % n;
        let mut targets = Vec::with_capacity(members.len());
        let mut owned: BTreeMap<&String, Vec<u32>> = BTreeMap::new();
        let mut taken = BTreeSet::new();
        for m in &members {
            let kept: Vec<u32> = previous
                .get(*m)
                .and_then(|t| t.get(topic))
                .map(|ps| {
                    ps.iter()
                        .copied()
                        .filter(|p| *p < count && !taken.contains(p))
                        .collect()
                })
                .unwrap_or_default();
            let mut target = base;
            if kept.len() as u32 > base && extra_left > 0 {
                target += 1;
                extra_left -= 1;
            }
            let keep: Vec<u32> = kept.into_iter().take(target as usize).collect();
            taken.extend(keep.iter().copied());
            owned.insert(m, keep);
            targets.push(target);
        }
        // The extras not taken by previous owners go to the first members still at base.
        for target in targets.iter_mut() {
            if extra_left == 0 {
                break;
            }
            if *target == base {
                *target += 1;
                extra_left -= 1;
            }
        }
        let caps = targets;
        let free: Vec<u32> = (0..count).filter(|p| !taken.contains(p)).collect();
        let mut free = free.into_iter();
        match strategy {
            Strategy::Range => {
                for (i, m) in members.iter().enumerate() {
                    let list = owned.get_mut(m).expect("member present");
                    while (list.len() as u32) < caps[i] {
                        match free.next() {
                            Some(p) => list.push(p),
                            None => break,
                        }
                    }
                }
            }
            Strategy::RoundRobin => {
                let mut progress = true;
                while progress {
                    progress = false;
                    for (i, m) in members.iter().enumerate() {
                        let list = owned.get_mut(m).expect("member present");
                        if (list.len() as u32) < caps[i]
                            && let Some(p) = free.next()
                        {
                            list.push(p);
                            progress = true;
                        }
                    }
                }
            }
        }
        for (m, mut list) in owned {
            list.sort_unstable();
            if !list.is_empty() {
                out.get_mut(m)
                    .expect("member present")
                    .insert(topic.clone(), list);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::{any, proptest};

    fn subs(members: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        members
            .iter()
            .map(|(m, ts)| (m.to_string(), ts.iter().map(|t| t.to_string()).collect()))
            .collect()
    }

    fn check_valid(a: &Assignment, s: &BTreeMap<String, Vec<String>>, p: &BTreeMap<String, u32>) {
        for (topic, &count) in p {
            let eligible: Vec<&String> = s
                .iter()
                .filter(|(_, ts)| ts.contains(topic))
                .map(|(m, _)| m)
                .collect();
            if eligible.is_empty() {
                continue;
            }
            let mut seen = vec![0; count as usize];
            let mut sizes = Vec::new();
            for m in &eligible {
                let list = a[*m].get(topic).cloned().unwrap_or_default();
                sizes.push(list.len());
                for part in list {
                    seen[part as usize] += 1;
                }
            }
            assert!(seen.iter().all(|n| *n == 1), "{topic}: {seen:?} in {a:?}");
            let lo = sizes.iter().min().expect("eligible members");
            let hi = sizes.iter().max().expect("eligible members");
            assert!(hi - lo <= 1, "{topic}: unbalanced {a:?}");
        }
    }

    #[test]
    fn range_and_round_robin_spread_six_partitions_over_three() {
        let s = subs(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]);
        let p = [("t".to_string(), 6)].into();
        let a = assign(&s, &p, &Assignment::new(), Strategy::Range);
        assert_eq!(a["a"]["t"], [0, 1]);
        assert_eq!(a["c"]["t"], [4, 5]);
        let r = assign(&s, &p, &Assignment::new(), Strategy::RoundRobin);
        assert_eq!(r["a"]["t"], [0, 3]);
        assert_eq!(r["b"]["t"], [1, 4]);
        check_valid(&a, &s, &p);
        check_valid(&r, &s, &p);
    }

    #[test]
    fn a_membership_change_moves_only_what_it_must() {
        let p: BTreeMap<String, u32> = [("t".to_string(), 6)].into();
        let three = subs(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]);
        let first = assign(&three, &p, &Assignment::new(), Strategy::Range);
        // c leaves: a and b keep theirs and split c's.
        let two = subs(&[("a", &["t"]), ("b", &["t"])]);
        let second = assign(&two, &p, &first, Strategy::Range);
        check_valid(&second, &two, &p);
        for m in ["a", "b"] {
            for part in &first[m]["t"] {
                assert!(second[m]["t"].contains(part), "{m} lost {part}: {second:?}");
            }
        }
        // c comes back: it takes one from each, the rest stays.
        let third = assign(&three, &p, &second, Strategy::Range);
        check_valid(&third, &three, &p);
        let moved: usize = ["a", "b"]
            .iter()
            .map(|m| {
                second[*m]["t"]
                    .iter()
                    .filter(|x| !third[*m]["t"].contains(x))
                    .count()
            })
            .sum();
        assert_eq!(moved, 2, "{second:?} -> {third:?}");
    }

    proptest! {
        #[test]
        fn every_partition_has_one_owner_and_shares_are_balanced(
            members in 1usize..6,
            counts in proptest::collection::vec(0u32..13, 1..4),
            subs_bits in proptest::collection::vec(any::<u8>(), 6),
            drop in 0usize..6,
            round_robin in any::<bool>(),
        ) {
            let topics: Vec<String> = (0..counts.len()).map(|i| format!("t{i}")).collect();
            let p: BTreeMap<String, u32> = topics.iter().cloned().zip(counts.iter().copied()).collect();
            let s: BTreeMap<String, Vec<String>> = (0..members)
                .map(|m| {
                    let ts = topics.iter().enumerate()
                        .filter(|(i, _)| subs_bits[m] >> i & 1 == 1 || *i == 0)
                        .map(|(_, t)| t.clone())
                        .collect();
                    (format!("m{m}"), ts)
                })
                .collect();
            let strategy = if round_robin { Strategy::RoundRobin } else { Strategy::Range };
            let first = assign(&s, &p, &Assignment::new(), strategy);
            check_valid(&first, &s, &p);
            let mut fewer = s.clone();
            if fewer.len() > 1 {
                let victim = format!("m{}", drop % members);
                fewer.remove(&victim);
            }
            let second = assign(&fewer, &p, &first, strategy);
            check_valid(&second, &fewer, &p);
            let back = assign(&s, &p, &second, strategy);
            check_valid(&back, &s, &p);
        }
    }
}
