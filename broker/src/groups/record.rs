//! A consumer group's replicated state: what the coordinator writes through the group's
//! partition of the internal offsets topic, and what every replica of that partition
//! computes from it.
//!
//! ```text
//!   coordinator ──GroupOp::Generation{..} / Commit{..} / Reset{..}──▶ propose (JSON)
//!   every replica, at apply:  GroupRecord::apply(slot, op) ──▶ ConsumerOffsets CF
//! ```
//!
//! Applying is deterministic and skips operations at or below the record's last applied
//! slot, so replaying the log after a restart changes nothing. Commits never move an
//! offset backwards; only an explicit reset does.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One partition's committed position.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    /// The next offset to consume.
    pub offset: u64,
    /// Application data stored with it.
    #[serde(default)]
    pub metadata: String,
    /// When the commit was decided (coordinator clock, ms since the epoch).
    pub timestamp_ms: i64,
}

/// A member as of a generation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// Member id.
    pub id: String,
    /// Topics it subscribes to.
    pub topics: Vec<String>,
    /// Its partitions: topic → partition numbers, ascending.
    pub assignment: BTreeMap<String, Vec<u32>>,
    /// Its session timeout in ms.
    pub session_timeout_ms: u32,
    /// The address it connected from.
    #[serde(default)]
    pub client_address: String,
}

/// An operation on a group, as stored in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum GroupOp {
    /// A new generation: its members and their assignment.
    Generation {
        /// Group name.
        group: String,
        /// The new generation.
        generation: u64,
        /// Assignment strategy in use (`range` or `round_robin`).
        strategy: String,
        /// Members and what they own.
        members: Vec<MemberRecord>,
    },
    /// Offsets committed by a member (never moves an offset backwards).
    Commit {
        /// Group name.
        group: String,
        /// `(topic, partition, committed)`.
        offsets: Vec<(String, u32, Committed)>,
    },
    /// Offsets set by an administrator (may move backwards).
    Reset {
        /// Group name.
        group: String,
        /// `(topic, partition, committed)`.
        offsets: Vec<(String, u32, Committed)>,
    },
}

impl GroupOp {
    /// The group the operation is about.
    pub fn group(&self) -> &str {
        match self {
            GroupOp::Generation { group, .. }
            | GroupOp::Commit { group, .. }
            | GroupOp::Reset { group, .. } => group,
        }
    }

    /// The stored form.
    pub fn encode(&self) -> bytes::Bytes {
        // Strings and integers only: serializing cannot fail.
        bytes::Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Reads the stored form.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}

/// A group's replicated state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    /// The current generation (0: never had members).
    pub generation: u64,
    /// Strategy of the current generation.
    pub strategy: String,
    /// Members of the current generation.
    pub members: Vec<MemberRecord>,
    /// Committed offsets: topic → partition → position.
    pub offsets: BTreeMap<String, BTreeMap<u32, Committed>>,
    /// The last slot applied to this record.
    pub last_slot: u64,
}

impl GroupRecord {
    /// Applies `op` decided in `slot`; returns whether anything changed.
    pub fn apply(&mut self, slot: u64, op: &GroupOp) -> bool {
        if slot <= self.last_slot {
            return false;
        }
        self.last_slot = slot;
        match op {
            GroupOp::Generation {
                generation,
                strategy,
                members,
                ..
            } => {
                if *generation > self.generation {
                    self.generation = *generation;
                    self.strategy = strategy.clone();
                    self.members = members.clone();
                }
            }
            GroupOp::Commit { offsets, .. } => {
                for (topic, partition, c) in offsets {
                    let slot = self
                        .offsets
                        .entry(topic.clone())
                        .or_default()
                        .entry(*partition)
                        .or_default();
                    if c.offset >= slot.offset {
                        *slot = c.clone();
                    }
                }
            }
            GroupOp::Reset { offsets, .. } => {
                for (topic, partition, c) in offsets {
                    self.offsets
                        .entry(topic.clone())
                        .or_default()
                        .insert(*partition, c.clone());
                }
            }
        }
        true
    }

    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads the stored form.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }

    /// The committed position of `topic`/`partition`, if any.
    pub fn committed(&self, topic: &str, partition: u32) -> Option<&Committed> {
        self.offsets.get(topic)?.get(&partition)
    }
}

/// The key of `group`'s record in the `consumer_offsets` column family: the offsets
/// partition's Paxos group id, then the name.
pub fn record_key(offsets_group: u64, group: &str) -> Vec<u8> {
    let mut key = offsets_group.to_be_bytes().to_vec();
    key.extend_from_slice(group.as_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(offset: u64) -> GroupOp {
        GroupOp::Commit {
            group: "g".into(),
            offsets: vec![(
                "t".into(),
                0,
                Committed {
                    offset,
                    ..Default::default()
                },
            )],
        }
    }

    #[test]
    fn commits_never_go_backwards_resets_do_and_replays_change_nothing() {
        let mut r = GroupRecord::default();
        assert!(r.apply(1, &commit(10)));
        assert!(r.apply(2, &commit(7)));
        assert_eq!(r.committed("t", 0).map(|c| c.offset), Some(10));
        let reset = GroupOp::Reset {
            group: "g".into(),
            offsets: vec![("t".into(), 0, Committed::default())],
        };
        assert!(r.apply(3, &reset));
        assert_eq!(r.committed("t", 0).map(|c| c.offset), Some(0));
        // Replaying slots 1..=3 (a restart) changes nothing.
        let before = r.clone();
        assert!(!r.apply(1, &commit(10)));
        assert!(!r.apply(3, &reset));
        assert_eq!(r, before);
        let op = GroupOp::Generation {
            group: "g".into(),
            generation: 4,
            strategy: "range".into(),
            members: vec![MemberRecord {
                id: "m1".into(),
                ..Default::default()
            }],
        };
        assert!(r.apply(4, &op));
        assert_eq!(r.generation, 4);
        assert_eq!(GroupOp::decode(&op.encode()), Ok(op));
        assert_eq!(GroupRecord::decode(&r.encode()), Ok(r));
    }
}
