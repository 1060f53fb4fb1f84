//! One Paxos group inside the driver: its replica, what applying its decided values means,
//! and the proposals waiting for an outcome.

use crate::config::NodeId;
use crate::metadata::{self, MetaCommand, MetadataState};
use crate::partition::codec::PartitionCommand;
use crate::storage::{GroupCommit, GroupStore};
use paxlog_consensus::{Outcome, ProposalId, Replica, Slot, Value};
use std::collections::BTreeMap;
use tokio::sync::{oneshot, watch};

/// Where a published batch landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendResult {
    /// Offset of the batch's first record.
    pub base_offset: u64,
    /// Records in the batch.
    pub count: u32,
}

/// The applied outcome of a proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Proposed {
    /// A metadata command was applied (possibly refused by the state machine).
    Meta(metadata::Applied),
    /// A record batch was appended.
    Append(AppendResult),
}

/// Why a proposal has no applied outcome.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposeFailure {
    /// This broker does not lead the group (nothing was written).
    #[error("not the leader of this partition")]
    NotLeader {
        /// The leader this broker follows, if known.
        leader: Option<NodeId>,
    },
    /// Too many proposals in flight (nothing was written).
    #[error("the partition leader is busy: too many writes in flight")]
    Busy,
    /// Leadership changed before the write was decided: it may or may not be stored.
    #[error("leadership changed before the write was decided: its outcome is unknown")]
    Unknown,
    /// This broker hosts no replica of the group.
    #[error("this broker hosts no replica of that partition")]
    NotHosted,
    /// The replica stopped.
    #[error("the replica of this partition stopped: {0}")]
    Stopped(String),
    /// The node is shutting down.
    #[error("the broker is shutting down")]
    ShuttingDown,
}

/// What applying a group's values means.
#[derive(Debug)]
pub(super) enum Kind {
    /// The metadata group.
    Meta(MetadataState),
    /// A partition: offsets are assigned at apply time.
    Partition {
        /// The next offset to assign (the high watermark).
        next_offset: u64,
    },
}

/// A side effect of applying metadata, for the driver to carry out.
#[derive(Debug)]
pub(super) enum MetaEffect {
    Created(metadata::Topic),
    Deleted(metadata::Topic),
}

type Reply = oneshot::Sender<Result<Proposed, ProposeFailure>>;

/// One Paxos group in the driver.
#[derive(Debug)]
pub(super) struct Group {
    pub(super) id: u64,
    pub(super) replica: Replica<GroupStore>,
    pub(super) kind: Kind,
    pub(super) hwm: watch::Sender<u64>,
    pub(super) stopped: Option<String>,
    waiting: BTreeMap<Slot, (ProposalId, Reply)>,
    results: BTreeMap<Slot, Proposed>,
}

impl Group {
    pub(super) fn new(id: u64, replica: Replica<GroupStore>, kind: Kind) -> Self {
        let start = match &kind {
            Kind::Partition { next_offset } => *next_offset,
            Kind::Meta(_) => 0,
        };
        let (hwm, _) = watch::channel(start);
        Self {
            id,
            replica,
            kind,
            hwm,
            stopped: None,
            waiting: BTreeMap::new(),
            results: BTreeMap::new(),
        }
    }

    pub(super) fn propose(&mut self, payload: bytes::Bytes, reply: Reply) {
        if let Some(why) = &self.stopped {
            let _ = reply.send(Err(ProposeFailure::Stopped(why.clone())));
            return;
        }
        match self.replica.propose(payload) {
            Ok(id) => {
                self.waiting.insert(id.slot, (id, reply));
            }
            Err(paxlog_consensus::ProposeError::NotLeader { leader }) => {
                let _ = reply.send(Err(ProposeFailure::NotLeader { leader }));
            }
            Err(paxlog_consensus::ProposeError::Busy) => {
                let _ = reply.send(Err(ProposeFailure::Busy));
            }
            Err(paxlog_consensus::ProposeError::Stopped) => {
                let _ = reply.send(Err(ProposeFailure::Stopped("storage failure".into())));
            }
        }
    }

    /// Applies a decided value. Index writes go to `index`.
    pub(super) fn apply(
        &mut self,
        slot: Slot,
        value: Value,
        index: &mut GroupCommit,
    ) -> Result<Option<MetaEffect>, String> {
        let Value::Data(bytes) = value else { return Ok(None) };
        let waiting = self.waiting.contains_key(&slot);
        match &mut self.kind {
            Kind::Meta(state) => {
                let cmd = MetaCommand::decode(&bytes)
                    .map_err(|e| format!("metadata slot {slot} is unreadable: {e}"))?;
                let applied = state.apply(slot, cmd);
                let effect = match &applied {
                    metadata::Applied::Created(t) => Some(MetaEffect::Created(t.clone())),
                    metadata::Applied::Deleted(t) => Some(MetaEffect::Deleted(t.clone())),
                    metadata::Applied::Refused(_) => None,
                };
                if waiting {
                    self.results.insert(slot, Proposed::Meta(applied));
                }
                Ok(effect)
            }
            Kind::Partition { next_offset } => {
                let cmd = PartitionCommand::decode_bytes(bytes)
                    .map_err(|e| format!("partition {} slot {slot} is unreadable: {e}", self.id))?;
                let PartitionCommand::Append(batch) = cmd;
                let count = batch.records.len() as u32;
                let base_offset = *next_offset;
                index.index(self.id, base_offset, slot, count);
                *next_offset += count as u64;
                if waiting {
                    self.results.insert(slot, Proposed::Append(AppendResult { base_offset, count }));
                }
                Ok(None)
            }
        }
    }

    /// Answers the proposer of an outcome.
    pub(super) fn answer(&mut self, outcome: Outcome) {
        let Some((id, reply)) = self.waiting.remove(&outcome.id.slot) else { return };
        if id != outcome.id {
            self.waiting.insert(outcome.id.slot, (id, reply));
            return;
        }
        let result = self.results.remove(&id.slot);
        let answer = match (outcome.result, result) {
            (Ok(()), Some(applied)) => Ok(applied),
            (Ok(()), None) => Ok(Proposed::Append(AppendResult { base_offset: 0, count: 0 })),
            (Err(_), _) => Err(ProposeFailure::Unknown),
        };
        let _ = reply.send(answer);
    }

    /// Fails every waiting proposal (the replica stopped).
    pub(super) fn fail_all(&mut self, why: &str) {
        for (_, (_, reply)) in std::mem::take(&mut self.waiting) {
            let _ = reply.send(Err(ProposeFailure::Stopped(why.to_owned())));
        }
        self.results.clear();
    }

    /// The next offset to assign (partitions), 0 for metadata.
    pub(super) fn high_watermark(&self) -> u64 {
        match &self.kind {
            Kind::Partition { next_offset } => *next_offset,
            Kind::Meta(_) => 0,
        }
    }
}
