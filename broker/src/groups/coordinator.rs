//! A group's live membership at its coordinator: who is in, who heartbeats, which
//! generation they hold. Pure state (times are passed in); the service proposes the
//! generations it produces and applies them once decided.

use super::assign::{Assignment, Strategy, assign};
use super::record::{GroupOp, GroupRecord, MemberRecord};
use std::collections::BTreeMap;

/// Why a group request was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// Bad group name.
    #[error(
        "invalid group name {0:?}: use 1 to 249 characters among letters, digits, '.', '_' and '-'"
    )]
    InvalidName(String),
    /// The member is not (or no longer) in the group.
    #[error(
        "member {0:?} is not in the group (it left or its session expired): join again without a member id"
    )]
    UnknownMember(String),
    /// The request carries an older generation.
    #[error(
        "generation {got} is stale: the group is at generation {current}; join again to get the current assignment"
    )]
    StaleGeneration {
        /// The request's generation.
        got: u64,
        /// The group's.
        current: u64,
    },
    /// The member must rejoin to learn the new generation.
    #[error("the group is rebalancing (now generation {0}): join again to get the new assignment")]
    Rebalancing(u64),
    /// A commit for a partition the member does not own.
    #[error(
        "member {member:?} does not own {topic}/{partition} in generation {generation}: commit only partitions assigned to you"
    )]
    NotOwner {
        /// Member id.
        member: String,
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
        /// Generation.
        generation: u64,
    },
    /// A commit without membership while the group has members.
    #[error(
        "group has {0} active members: this needs an empty group (stop its consumers, or wait for their sessions to expire)"
    )]
    GroupActive(usize),
    /// No such group.
    #[error("unknown group {0:?}: it has no members and no committed offsets")]
    UnknownGroup(String),
    /// A bad request field.
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// A member as the coordinator tracks it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveMember {
    /// Its replicated part.
    pub record: MemberRecord,
    /// Last time it was heard from (ms since the epoch, coordinator clock).
    pub last_heard_ms: i64,
    /// The newest generation whose assignment it was given (by joining): it has given up
    /// every partition that generation took from it.
    pub acked: u64,
}

/// A group's membership at the coordinator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveGroup {
    /// Group name.
    pub name: String,
    /// The current generation.
    pub generation: u64,
    /// Strategy of the current generation.
    pub strategy: Strategy,
    /// Members by id.
    pub members: BTreeMap<String, LiveMember>,
}

/// What a join did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Joined {
    /// The member's id (new if it joined without one).
    pub member_id: String,
    /// Whether membership or subscriptions changed, so a new generation is needed.
    pub changed: bool,
}

impl LiveGroup {
    /// The membership a replicated record describes; every member counts as just heard
    /// from (a new coordinator gives them a full session to show up).
    pub fn from_record(name: &str, record: &GroupRecord, now_ms: i64) -> Self {
        Self {
            name: name.to_owned(),
            generation: record.generation,
            strategy: Strategy::from_name(&record.strategy),
            members: record
                .members
                .iter()
                .map(|m| {
                    let live = LiveMember {
                        record: m.clone(),
                        last_heard_ms: now_ms,
                        acked: record.generation,
                    };
                    (m.id.clone(), live)
                })
                .collect(),
        }
    }

    /// Removes members whose session expired; returns their ids.
    pub fn expire(&mut self, now_ms: i64) -> Vec<String> {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| now_ms - m.last_heard_ms > i64::from(m.record.session_timeout_ms))
            .map(|m| m.record.id.clone())
            .collect();
        for id in &gone {
            self.members.remove(id);
        }
        gone
    }

    /// Joins `member_id` (`None`: a new member, given `new_id`).
    pub fn join(
        &mut self,
        member_id: Option<&str>,
        new_id: String,
        topics: Vec<String>,
        session_timeout_ms: u32,
        client_address: String,
        now_ms: i64,
    ) -> Result<Joined, GroupError> {
        let id = match member_id {
            None => new_id,
            Some(id) if self.members.contains_key(id) => id.to_owned(),
            Some(id) => return Err(GroupError::UnknownMember(id.to_owned())),
        };
        let mut topics = topics;
        topics.sort();
        topics.dedup();
        let current = self.generation;
        let changed = match self.members.get_mut(&id) {
            Some(m) => {
                m.last_heard_ms = now_ms;
                m.acked = current;
                m.record.session_timeout_ms = session_timeout_ms;
                let changed = m.record.topics != topics;
                m.record.topics = topics;
                changed
            }
            None => {
                let record = MemberRecord {
                    id: id.clone(),
                    topics,
                    assignment: BTreeMap::new(),
                    session_timeout_ms,
                    client_address,
                };
                let live = LiveMember {
                    record,
                    last_heard_ms: now_ms,
                    acked: 0,
                };
                self.members.insert(id.clone(), live);
                true
            }
        };
        Ok(Joined {
            member_id: id,
            changed,
        })
    }

    /// The next generation's operation for the current members, assigned over topics of
    /// `partitions` (topic → partition count), sticky to the current assignment.
    ///
    /// Cooperative: a partition that moves from one member to another is taken from its
    /// owner in this generation but given to its new owner only in a later one, once every
    /// member has rejoined (see [`LiveGroup::handover_due`]): no two members ever hold a
    /// partition at once, and members whose partitions do not move keep consuming.
    pub fn next_generation(
        &self,
        partitions: &BTreeMap<String, u32>,
        strategy: Strategy,
    ) -> GroupOp {
        let subscriptions = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.record.topics.clone()))
            .collect();
        let previous: Assignment = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.record.assignment.clone()))
            .collect();
        let target = assign(&subscriptions, partitions, &previous, strategy);
        let owner_of = |topic: &str, p: u32| {
            previous
                .iter()
                .find(|(_, a)| a.get(topic).is_some_and(|ps| ps.contains(&p)))
                .map(|(id, _)| id.clone())
        };
        let members = self
            .members
            .values()
            .map(|m| {
                let id = &m.record.id;
                let assignment: BTreeMap<String, Vec<u32>> = target
                    .get(id)
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(topic, ps)| {
                        let free: Vec<u32> = ps
                            .into_iter()
                            .filter(|p| owner_of(&topic, *p).is_none_or(|o| &o == id))
                            .collect();
                        (topic, free)
                    })
                    .filter(|(_, ps)| !ps.is_empty())
                    .collect();
                MemberRecord {
                    assignment,
                    ..m.record.clone()
                }
            })
            .collect();
        GroupOp::Generation {
            group: self.name.clone(),
            generation: self.generation + 1,
            strategy: strategy.name().to_owned(),
            members,
        }
    }

    /// Whether a generation is due to hand out partitions taken from their owners: every
    /// member has rejoined since (so none still reads them) and some subscribed partition
    /// of `partitions` has no owner.
    pub fn handover_due(&self, partitions: &BTreeMap<String, u32>) -> bool {
        if self.members.is_empty() || self.members.values().any(|m| m.acked < self.generation) {
            return false;
        }
        let mut owned = std::collections::BTreeSet::new();
        for m in self.members.values() {
            for (topic, ps) in &m.record.assignment {
                owned.extend(ps.iter().map(|p| (topic.clone(), *p)));
            }
        }
        self.members
            .values()
            .flat_map(|m| m.record.topics.iter())
            .filter_map(|t| partitions.get(t).map(|n| (t, *n)))
            .any(|(t, n)| (0..n).any(|p| !owned.contains(&(t.clone(), p))))
    }

    /// Takes a decided generation in (keeps the heartbeat times of members still in);
    /// `joiner`, the member whose join made it, is given it in its answer.
    pub fn apply_generation(&mut self, op: &GroupOp, now_ms: i64, joiner: Option<&str>) {
        let GroupOp::Generation {
            generation,
            strategy,
            members,
            ..
        } = op
        else {
            return;
        };
        if *generation <= self.generation {
            return;
        }
        self.generation = *generation;
        self.strategy = Strategy::from_name(strategy);
        let before: BTreeMap<String, (i64, u64)> = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), (m.last_heard_ms, m.acked)))
            .collect();
        self.members = members
            .iter()
            .map(|m| {
                let (heard, acked) = before.get(&m.id).copied().unwrap_or((now_ms, 0));
                let acked = if joiner == Some(m.id.as_str()) {
                    *generation
                } else {
                    acked
                };
                let live = LiveMember {
                    record: m.clone(),
                    last_heard_ms: heard,
                    acked,
                };
                (m.id.clone(), live)
            })
            .collect();
    }

    /// A heartbeat: refreshes the member's session if it holds the current generation.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        generation: u64,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        let current = self.generation;
        let m = self
            .members
            .get_mut(member_id)
            .ok_or_else(|| GroupError::UnknownMember(member_id.to_owned()))?;
        m.last_heard_ms = now_ms;
        if generation != current {
            return Err(GroupError::Rebalancing(current));
        }
        Ok(())
    }

    /// Removes a member; `UnknownMember` if it was not in.
    pub fn leave(&mut self, member_id: &str) -> Result<(), GroupError> {
        self.members
            .remove(member_id)
            .map(|_| ())
            .ok_or_else(|| GroupError::UnknownMember(member_id.to_owned()))
    }

    /// Checks a commit of `partitions` by `member_id` in `generation`. An empty member id
    /// with generation 0 is a commit from outside the group (standalone consumers),
    /// accepted only while the group has no members.
    pub fn check_commit(
        &mut self,
        member_id: &str,
        generation: u64,
        partitions: &[(String, u32)],
        now_ms: i64,
    ) -> Result<(), GroupError> {
        if member_id.is_empty() && generation == 0 {
            return match self.members.len() {
                0 => Ok(()),
                n => Err(GroupError::GroupActive(n)),
            };
        }
        let current = self.generation;
        let m = self
            .members
            .get_mut(member_id)
            .ok_or_else(|| GroupError::UnknownMember(member_id.to_owned()))?;
        if generation != current {
            return Err(GroupError::StaleGeneration {
                got: generation,
                current,
            });
        }
        m.last_heard_ms = now_ms;
        for (topic, partition) in partitions {
            let owns = m
                .record
                .assignment
                .get(topic)
                .is_some_and(|ps| ps.contains(partition));
            if !owns {
                return Err(GroupError::NotOwner {
                    member: member_id.to_owned(),
                    topic: topic.clone(),
                    partition: *partition,
                    generation,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group() -> LiveGroup {
        LiveGroup::from_record("g", &GroupRecord::default(), 0)
    }

    fn partitions() -> BTreeMap<String, u32> {
        [("t".to_owned(), 6)].into()
    }

    fn join(g: &mut LiveGroup, id: Option<&str>, new: &str, now: i64) -> Joined {
        g.join(
            id,
            new.to_owned(),
            vec!["t".into()],
            1_000,
            String::new(),
            now,
        )
        .expect("join")
    }

    fn bump(g: &mut LiveGroup, now: i64, joiner: &str) -> u64 {
        let op = g.next_generation(&partitions(), Strategy::Range);
        g.apply_generation(&op, now, Some(joiner));
        g.generation
    }

    fn owned(g: &LiveGroup, m: &str) -> Vec<u32> {
        g.members[m]
            .record
            .assignment
            .get("t")
            .cloned()
            .unwrap_or_default()
    }

    #[test]
    fn partitions_move_only_after_their_owner_gave_them_up() {
        let mut g = group();
        assert!(join(&mut g, None, "a", 0).changed);
        assert_eq!(bump(&mut g, 0, "a"), 1);
        assert_eq!(owned(&g, "a"), [0, 1, 2, 3, 4, 5]);
        // b joins: a is told to give up half, b gets nothing while a may still read them.
        assert!(join(&mut g, None, "b", 10).changed);
        assert_eq!(bump(&mut g, 10, "b"), 2);
        assert_eq!(owned(&g, "a").len(), 3);
        assert!(owned(&g, "b").is_empty(), "{:?}", g.members["b"]);
        assert!(!g.handover_due(&partitions()), "a has not rejoined yet");
        assert_eq!(g.heartbeat("a", 1, 20), Err(GroupError::Rebalancing(2)));
        // a rejoins (nothing changed for it): now the freed partitions can go to b.
        assert!(!join(&mut g, Some("a"), "x", 30).changed);
        assert!(g.handover_due(&partitions()));
        assert_eq!(bump(&mut g, 30, "a"), 3);
        let (a, b) = (owned(&g, "a"), owned(&g, "b"));
        assert_eq!((a.len(), b.len()), (3, 3));
        assert!(a.iter().all(|p| !b.contains(p)), "{a:?} {b:?}");
        assert_eq!(g.heartbeat("b", 2, 40), Err(GroupError::Rebalancing(3)));
        assert!(!join(&mut g, Some("b"), "x", 50).changed);
        assert!(!g.handover_due(&partitions()), "everything is owned");
        assert_eq!(g.heartbeat("a", 3, 60), Ok(()));
        // b stops heartbeating: expired after its session; its partitions are free at once.
        assert_eq!(g.expire(1_051), vec!["b".to_owned()]);
        assert_eq!(bump(&mut g, 1_051, "a"), 4);
        assert_eq!(owned(&g, "a"), [0, 1, 2, 3, 4, 5]);
        assert_eq!(
            g.heartbeat("b", 3, 1_060),
            Err(GroupError::UnknownMember("b".into()))
        );
        assert_eq!(g.leave("a"), Ok(()));
        assert_eq!(g.leave("a"), Err(GroupError::UnknownMember("a".into())));
    }

    #[test]
    fn commits_are_fenced_by_member_generation_and_ownership() {
        let mut g = group();
        join(&mut g, None, "a", 0);
        join(&mut g, None, "b", 0);
        bump(&mut g, 0, "b");
        let a_owns: Vec<(String, u32)> = g.members["a"].record.assignment["t"]
            .iter()
            .map(|p| ("t".to_owned(), *p))
            .collect();
        assert_eq!(g.check_commit("a", 1, &a_owns, 1), Ok(()));
        assert!(matches!(
            g.check_commit("a", 0, &a_owns, 1),
            Err(GroupError::StaleGeneration { current: 1, .. })
        ));
        let b_owns = ("t".to_owned(), g.members["b"].record.assignment["t"][0]);
        assert!(matches!(
            g.check_commit("a", 1, &[b_owns], 1),
            Err(GroupError::NotOwner { .. })
        ));
        assert_eq!(
            g.check_commit("", 0, &a_owns, 1),
            Err(GroupError::GroupActive(2))
        );
        assert!(matches!(
            g.check_commit("zz", 1, &a_owns, 1),
            Err(GroupError::UnknownMember(_))
        ));
    }

    #[test]
    fn a_new_coordinator_continues_the_generation() {
        let mut g = group();
        join(&mut g, None, "a", 0);
        let op = g.next_generation(&partitions(), Strategy::RoundRobin);
        g.apply_generation(&op, 0, Some("a"));
        let mut record = GroupRecord::default();
        record.apply(1, &op);
        let restored = LiveGroup::from_record("g", &record, 500);
        assert_eq!(restored.generation, 1);
        assert_eq!(restored.strategy, Strategy::RoundRobin);
        assert_eq!(
            restored.members["a"].record.assignment,
            g.members["a"].record.assignment
        );
        assert_eq!(restored.members["a"].last_heard_ms, 500);
    }
}
