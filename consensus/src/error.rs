//! Errors of the consensus crate: what a caller can act on, and what is fatal.

use crate::config::ConfigError;
use crate::storage::StorageError;
use crate::types::NodeId;

/// Why a proposal was refused at once (it was given no slot; retrying is safe).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// This replica does not lead; `leader` is the one it follows, if known.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader this replica follows, if any.
        leader: Option<NodeId>,
    },
    /// The leader has `max_inflight` undecided slots: back off and retry.
    #[error("too many undecided proposals in flight; retry after some are decided")]
    Busy,
    /// The replica stopped after a storage failure.
    #[error("replica stopped after a storage failure")]
    Stopped,
}

/// Why [`Replica::transfer_leadership`](crate::Replica::transfer_leadership) did not
/// start.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    /// Only the leader can hand leadership over.
    #[error("not the leader")]
    NotLeader,
    /// The target is this replica or not a voter of the group.
    #[error("node {0} is not another voter of this group")]
    NotAPeer(NodeId),
    /// The replica stopped after a storage failure.
    #[error("replica stopped after a storage failure")]
    Stopped,
    /// Storage failed while handing over; the replica stopped.
    #[error("replica stopped: {0}")]
    Fatal(String),
}

/// Errors of a replica's operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Storage failed; the replica has stopped and must not be used again.
    #[error("fatal: {0}")]
    Fatal(#[from] StorageError),
    /// `compact` was asked to trim past the decided index.
    #[error("cannot compact up to slot {requested}: only slots up to {decided} are decided")]
    CompactBeyondDecided {
        /// Slot asked for.
        requested: u64,
        /// The decided index.
        decided: u64,
    },
}
