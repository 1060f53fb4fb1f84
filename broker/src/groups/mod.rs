//! Consumer groups: membership, partition assignment and committed offsets.
//!
//! ```text
//!   group "g" ──crc32 % partitions──▶ partition p of the internal topic __consumer_offsets
//!   coordinator of "g" = leader of p (NOT_COORDINATOR with its address elsewhere)
//!     Join / Heartbeat / Leave ─▶ live membership (memory, coordinator only)
//!          membership changed ─▶ GroupOp::Generation (assignment) ─▶ Paxos in p ─▶ answer
//!     CommitOffsets (member, generation checked) ─▶ GroupOp::Commit ─▶ Paxos in p ─▶ answer
//!   every replica of p applies GroupOps to GroupRecords (consumer_offsets column family)
//! ```
//!
//! Generations and assignments are replicated, so a new coordinator (after a leader
//! change of p) continues the same generation with the same members: they keep consuming
//! and committing, and are evicted only if they stop heartbeating. Commits from another
//! generation are refused; committed offsets only move forward except by an explicit
//! reset.

pub mod assign;
pub mod coordinator;
pub mod record;

pub use assign::{Assignment, Strategy};
pub use coordinator::{GroupError, LiveGroup};
pub use record::{Committed, GroupOp, GroupRecord, MemberRecord, record_key};

/// The internal topic holding every group's generations and committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Partitions of [`OFFSETS_TOPIC`]: groups spread over this many coordinators.
pub const OFFSETS_PARTITIONS: u32 = 4;

/// Session timeout when a member asks for none, in ms.
pub const DEFAULT_SESSION_TIMEOUT_MS: u32 = 10_000;

/// Shortest and longest session timeout a member may ask for, in ms.
pub const SESSION_TIMEOUT_RANGE_MS: (u32, u32) = (1_000, 300_000);

/// Longest group name (as topics).
pub const MAX_GROUP_NAME: usize = 249;

/// The partition of [`OFFSETS_TOPIC`] that holds `group`.
pub fn offsets_partition(group: &str, partitions: u32) -> u32 {
    crc32fast::hash(group.as_bytes()) % partitions.max(1)
}

/// Checks a group name: 1 to 249 characters of `[A-Za-z0-9._-]`.
pub fn validate_group_name(name: &str) -> Result<(), GroupError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_GROUP_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(GroupError::InvalidName(name.to_owned()))
    }
}
