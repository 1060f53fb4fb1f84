//! The vocabulary of the protocol: nodes, slots, ballots, values and log entries.

use bytes::Bytes;
use std::fmt;

/// Identifies a replica (a broker node). Never zero: zero means "nobody" on the wire.
pub type NodeId = u64;

/// A position in the replicated log. Slots start at 1; slot 0 means "none yet".
pub type Slot = u64;

/// A Paxos ballot (proposal number): `(round, node)`, totally ordered by round, then node.
///
/// Two nodes never share a ballot because the node id is part of it, and a node never reuses
/// a round because it persists the ballot it promised before it sends a `Prepare` with it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ballot {
    /// Monotonic round number; compared first.
    pub round: u64,
    /// The node that owns this ballot; breaks ties between rounds.
    pub node: NodeId,
}

impl Ballot {
    /// The ballot every replica starts with: lower than any ballot a node can create.
    pub const ZERO: Ballot = Ballot { round: 0, node: 0 };

    /// Creates a ballot.
    pub const fn new(round: u64, node: NodeId) -> Self {
        Self { round, node }
    }
}

impl fmt::Display for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.round, self.node)
    }
}

/// The value decided for a slot: either an opaque payload or a no-op that a new leader uses
/// to fill a gap it found no value for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Value {
    /// Fills a slot without effect on the state machine.
    Noop,
    /// An application payload (a record batch, a metadata command, ...), opaque to consensus.
    Data(Bytes),
}

impl Value {
    /// The payload's size in bytes (0 for a no-op); used to bound message sizes.
    pub fn len(&self) -> usize {
        match self {
            Value::Noop => 0,
            Value::Data(b) => b.len(),
        }
    }

    /// Whether the value carries no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An accepted log entry: the value an acceptor accepted for a slot, and under which ballot.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    /// The ballot under which the value was accepted.
    pub ballot: Ballot,
    /// The accepted value.
    pub value: Value,
}

/// A snapshot of the state machine covering every slot up to and including `slot`.
///
/// Consensus treats `data` as opaque: the application produces it when it compacts the log
/// ([`crate::Replica::compact`]) and installs it when a lagging replica receives one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The last slot the snapshot covers.
    pub slot: Slot,
    /// The application's serialized state as of `slot`.
    pub data: Bytes,
}

/// Names a proposal made on this replica while it led with `ballot`: the slot it was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProposalId {
    /// The leader ballot the proposal was made under.
    pub ballot: Ballot,
    /// The slot the proposal was placed in.
    pub slot: Slot,
}
