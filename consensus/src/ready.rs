//! What a replica hands to its driver after it was fed events.

use crate::message::Message;
use crate::storage::Persist;
use crate::types::{Ballot, NodeId, ProposalId, Slot, Snapshot, Value};

/// Everything the driver must do after feeding events to a replica, in this order:
///
/// 1. write [`Ready::persist`] durably ([`crate::Storage::write`]), then call
///    [`crate::Replica::persisted`] with [`Ready::number`];
/// 2. send [`Ready::messages`];
/// 3. install [`Ready::snapshot`] (if any) in the state machine, then apply
///    [`Ready::decided`] in order;
/// 4. answer the proposers in [`Ready::outcomes`].
///
/// A failed write is fatal: the driver stops the replica.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// Sequence number of this `Ready`, starting at 1; passed back to `persisted`.
    pub number: u64,
    /// What to make durable before anything else.
    pub persist: Persist,
    /// Messages to send once `persist` is durable; those whose body says
    /// [`may_precede_persist`](crate::MessageBody::may_precede_persist) may go before.
    pub messages: Vec<Message>,
    /// A snapshot to install in the state machine before applying `decided`.
    pub snapshot: Option<Snapshot>,
    /// Newly decided slots, contiguous and in order, following the previous `Ready`'s.
    pub decided: Vec<(Slot, Value)>,
    /// Outcomes of proposals made on this replica.
    pub outcomes: Vec<Outcome>,
    /// Set when the replica's view of leadership changed.
    pub leader: Option<LeaderChange>,
}

impl Ready {
    /// Takes out the messages that may be sent before `persist` is durable
    /// ([`MessageBody::may_precede_persist`](crate::MessageBody::may_precede_persist));
    /// the rest stay in `messages`.
    pub fn take_early_messages(&mut self) -> Vec<Message> {
        let (early, rest) = std::mem::take(&mut self.messages)
            .into_iter()
            .partition(|m| m.body.may_precede_persist());
        self.messages = rest;
        early
    }

    /// Whether the driver has nothing to do.
    pub fn is_empty(&self) -> bool {
        self.persist.is_empty()
            && self.messages.is_empty()
            && self.snapshot.is_none()
            && self.decided.is_empty()
            && self.outcomes.is_empty()
            && self.leader.is_none()
    }
}

/// The outcome of a proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The proposal.
    pub id: ProposalId,
    /// `Ok` once the proposal is decided in `id.slot` (it is in this or an earlier `decided`).
    pub result: Result<(), ProposalLost>,
}

/// Why a proposal has no definite outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposalLost {
    /// Leadership was lost before the proposal was decided. It may still be decided by a later
    /// leader, or not: the outcome is unknown, and a client must retry idempotently.
    #[error("leadership lost before the proposal was decided; its outcome is unknown")]
    Unknown,
}

/// The replica's new view of leadership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaderChange {
    /// The leader this replica now follows, `None` while an election is under way.
    pub leader: Option<NodeId>,
    /// The ballot of that leadership (or the highest ballot known).
    pub ballot: Ballot,
    /// Whether this replica is the leader.
    pub is_self: bool,
}
