//! One Paxos group inside the driver: its replica, what applying its decided values means,
//! and the proposals waiting for an outcome.
//!
//! A partition's leader also decides which idempotent batches to propose
//! ([`crate::partition::producers`]): only once its [`PartitionCommand::Barrier`] is
//! applied, against the applied producer state plus its own batches in flight.

use crate::config::NodeId;
use crate::groups::{GroupOp, GroupRecord, record_key};
use crate::metadata::{self, MetaCommand, MetadataState, TopicSettings};
use crate::partition::codec::{PartitionCommand, ProducerSeq};
use crate::partition::producers::{
    Admission, BatchMeta, InFlight, ProducerError, ProducerTable, admit,
};
use crate::partition::snapshot::PartitionSnapshot;
use crate::storage::{GroupCommit, GroupStore, KvSpace};
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
    /// A partition command without a result of its own (trim, barrier) was applied.
    Done,
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
    /// A new leader has not yet applied what earlier leaders may have had decided, so it
    /// cannot check idempotent sequences yet (nothing was written).
    #[error("the partition's new leader is still recovering")]
    Recovering,
    /// The idempotent batch was refused (nothing was written).
    #[error(transparent)]
    Producer(#[from] ProducerError),
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
    /// A leadership transfer gave up: the target did not catch up in time.
    #[error("node {0} did not catch up in time to take over")]
    HandOverGaveUp(NodeId),
}

/// An idempotent batch's identity, checked by the leader before it is proposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdempotentBatch {
    /// Producer, epoch and first sequence.
    pub seq: ProducerSeq,
    /// Records in the batch.
    pub count: u32,
}

/// Whether a partition's leader may admit idempotent batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Barrier {
    /// Not leading.
    Closed,
    /// Leading; the barrier still has to be proposed.
    Needed,
    /// Proposed in this slot, not applied yet.
    Proposed(Slot),
    /// Applied: admission is open.
    Open,
}

/// A partition's replicated state machine, plus what its leader tracks.
#[derive(Debug)]
pub(super) struct PartitionState {
    /// The next offset to assign (the high watermark).
    pub(super) next_offset: u64,
    /// Idempotent producers' sequences.
    pub(super) producers: ProducerTable,
    /// About how many bytes the log holds (for size-based retention).
    pub(super) log_bytes: u64,
    /// The first offset still stored (kept here so the driver need not read it from
    /// RocksDB every round).
    pub(super) log_start: u64,
    /// Consumer groups whose records live here (partitions of the offsets topic only).
    pub(super) groups: BTreeMap<String, GroupRecord>,
    /// The topic's settings.
    pub(super) settings: TopicSettings,
    /// Leader only: whether idempotent batches may be admitted.
    pub(super) barrier: Barrier,
    /// Leader only: idempotent batches proposed and not answered, by producer id.
    in_flight: BTreeMap<u64, Vec<InFlight>>,
    /// Leader only: the slot of a retention trim proposed and not answered.
    pub(super) trim_in_flight: Option<Slot>,
}

impl PartitionState {
    /// A partition continuing at `next_offset`.
    pub(super) fn new(
        (log_start, next_offset): (u64, u64),
        producers: ProducerTable,
        log_bytes: u64,
        settings: TopicSettings,
    ) -> Self {
        Self {
            next_offset,
            producers,
            log_bytes,
            log_start,
            groups: BTreeMap::new(),
            settings,
            barrier: Barrier::Closed,
            in_flight: BTreeMap::new(),
            trim_in_flight: None,
        }
    }
}

/// What applying a group's values means.
#[derive(Debug)]
pub(super) enum Kind {
    /// The metadata group.
    Meta(MetadataState),
    /// A partition: offsets are assigned at apply time.
    Partition(PartitionState),
}

/// A side effect of applying a value, for the driver to carry out once the apply-time
/// writes of its round are committed.
#[derive(Debug)]
pub(super) enum Effect {
    /// A topic was created: open its local replicas.
    Created(metadata::Topic),
    /// A topic was deleted: close its local replicas.
    Deleted(metadata::Topic),
    /// Retention: trim partition `group` up to this offset.
    Trim { group: u64, up_to_offset: u64 },
}

type Reply = oneshot::Sender<Result<Proposed, ProposeFailure>>;

/// Applies a decided consumer group operation of offsets partition `group` to its record,
/// persisting the record (with the round's other apply-time writes) if it changed.
pub(super) fn apply_group_op(
    group: u64,
    records: &mut BTreeMap<String, GroupRecord>,
    slot: Slot,
    op: &GroupOp,
    index: &mut GroupCommit,
) {
    let name = op.group();
    let record = records.entry(name.to_owned()).or_default();
    if record.apply(slot, op) {
        index.put(
            KvSpace::ConsumerOffsets,
            record_key(group, name),
            &record.encode(),
        );
    }
}

/// The key of a producer's state in [`KvSpace::Producers`].
pub(super) fn producer_key(group: u64, producer_id: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&group.to_be_bytes());
    key[8..].copy_from_slice(&producer_id.to_be_bytes());
    key
}

/// One Paxos group in the driver.
#[derive(Debug)]
pub(super) struct Group {
    pub(super) id: u64,
    pub(super) replica: Replica<GroupStore>,
    pub(super) kind: Kind,
    pub(super) hwm: watch::Sender<u64>,
    pub(super) stopped: Option<String>,
    /// Its series and tracing span (named by the driver once it knows the topic).
    pub(super) obs: crate::metrics::ReplicaObserver,
    /// Proposals waiting for an outcome; retries of an idempotent batch in flight wait on
    /// the same slot.
    waiting: BTreeMap<Slot, (ProposalId, Vec<Reply>)>,
    results: BTreeMap<Slot, Proposed>,
}

impl Group {
    pub(super) fn new(id: u64, replica: Replica<GroupStore>, kind: Kind) -> Self {
        let start = match &kind {
            Kind::Partition(p) => p.next_offset,
            Kind::Meta(_) => 0,
        };
        let (hwm, _) = watch::channel(start);
        Self {
            id,
            replica,
            kind,
            hwm,
            stopped: None,
            obs: Default::default(),
            waiting: BTreeMap::new(),
            results: BTreeMap::new(),
        }
    }

    /// Proposes `payload`; `idempotent` batches are checked against the producer state
    /// first (see the module docs). `metadata_epoch` is the newest epoch the cluster
    /// metadata knows for the batch's producer id.
    pub(super) fn propose(
        &mut self,
        payload: bytes::Bytes,
        idempotent: Option<(IdempotentBatch, Option<u32>)>,
        reply: Reply,
    ) {
        if let Some(why) = &self.stopped {
            let _ = reply.send(Err(ProposeFailure::Stopped(why.clone())));
            return;
        }
        let leading = self.replica.leader() == Some(self.replica.id());
        let Some((batch, metadata_epoch)) = idempotent.filter(|_| leading) else {
            self.propose_now(payload, reply);
            return;
        };
        let Kind::Partition(p) = &mut self.kind else {
            self.propose_now(payload, reply);
            return;
        };
        if p.barrier != Barrier::Open {
            let _ = reply.send(Err(ProposeFailure::Recovering));
            return;
        }
        let id = batch.seq.producer_id;
        let flying = p.in_flight.get(&id).map_or(&[][..], |v| &v[..]);
        let admission = match admit(
            p.producers.get(&id),
            flying,
            metadata_epoch,
            batch.seq,
            batch.count,
        ) {
            Admission::Written { .. } | Admission::InFlight { .. }
                if crate::planted::is(crate::planted::Bug::NoDedup) =>
            {
                Admission::Fresh
            }
            admission => admission,
        };
        match admission {
            Admission::Fresh => {}
            Admission::Written { base_offset } => {
                let applied = AppendResult {
                    base_offset,
                    count: batch.count,
                };
                let _ = reply.send(Ok(Proposed::Append(applied)));
                return;
            }
            Admission::InFlight { slot } => {
                match self.waiting.get_mut(&slot) {
                    Some((_, replies)) => replies.push(reply),
                    None => {
                        let _ = reply.send(Err(ProposeFailure::Unknown));
                    }
                }
                return;
            }
            Admission::Refused(e) => {
                let _ = reply.send(Err(e.into()));
                return;
            }
        }
        if let Some(slot) = self.propose_now(payload, reply)
            && let Kind::Partition(p) = &mut self.kind
        {
            p.in_flight.entry(id).or_default().push(InFlight {
                epoch: batch.seq.epoch,
                base_sequence: batch.seq.base_sequence,
                count: batch.count,
                slot,
            });
        }
    }

    /// Proposes `payload` without checks; returns its slot if the replica took it.
    fn propose_now(&mut self, payload: bytes::Bytes, reply: Reply) -> Option<Slot> {
        match self.replica.propose(payload) {
            Ok(id) => {
                self.waiting.insert(id.slot, (id, vec![reply]));
                Some(id.slot)
            }
            Err(paxlog_consensus::ProposeError::NotLeader { leader }) => {
                let _ = reply.send(Err(ProposeFailure::NotLeader { leader }));
                None
            }
            Err(paxlog_consensus::ProposeError::Busy) => {
                let _ = reply.send(Err(ProposeFailure::Busy));
                None
            }
            Err(paxlog_consensus::ProposeError::Stopped) => {
                let _ = reply.send(Err(ProposeFailure::Stopped("storage failure".into())));
                None
            }
        }
    }

    /// A partition command of the leader's own (barrier, trim); its answer is not awaited.
    pub(super) fn propose_internal(&mut self, command: &PartitionCommand) -> Option<Slot> {
        let (reply, _) = oneshot::channel();
        self.propose_now(command.encode(), reply)
    }

    /// Leadership changed: a partition's leader-only tracking starts over. A new leader
    /// needs a barrier before it admits idempotent batches.
    pub(super) fn on_leader_change(&mut self, is_self: bool) {
        if let Kind::Partition(p) = &mut self.kind {
            p.barrier = if is_self {
                Barrier::Needed
            } else {
                Barrier::Closed
            };
            p.in_flight.clear();
            p.trim_in_flight = None;
        }
    }

    /// Proposes the barrier if this partition's new leader still needs one.
    pub(super) fn propose_barrier_if_needed(&mut self) {
        let needed = matches!(&self.kind, Kind::Partition(p) if p.barrier == Barrier::Needed);
        if needed && self.stopped.is_none() {
            let slot = self.propose_internal(&PartitionCommand::Barrier);
            if let (Some(slot), Kind::Partition(p)) = (slot, &mut self.kind) {
                p.barrier = Barrier::Proposed(slot);
            }
        }
    }

    /// Applies a decided value. Apply-time writes (offset index, producer state) go to
    /// `index`.
    pub(super) fn apply(
        &mut self,
        slot: Slot,
        value: Value,
        index: &mut GroupCommit,
    ) -> Result<Option<Effect>, String> {
        let Value::Data(bytes) = value else {
            return Ok(None);
        };
        let waiting = self.waiting.contains_key(&slot);
        match &mut self.kind {
            Kind::Meta(state) => {
                let cmd = MetaCommand::decode(&bytes)
                    .map_err(|e| format!("metadata slot {slot} is unreadable: {e}"))?;
                let applied = state.apply(slot, cmd);
                let effect = match &applied {
                    metadata::Applied::Created(t) => Some(Effect::Created(t.clone())),
                    metadata::Applied::Deleted(t) => Some(Effect::Deleted(t.clone())),
                    metadata::Applied::Producer { .. }
                    | metadata::Applied::Trigger(_)
                    | metadata::Applied::Refused(_) => None,
                };
                if waiting {
                    self.results.insert(slot, Proposed::Meta(applied));
                }
                Ok(effect)
            }
            Kind::Partition(p) => {
                let size = crate::storage::layout::stored_entry_len(bytes.len());
                let cmd = PartitionCommand::decode_bytes(bytes)
                    .map_err(|e| format!("partition {} slot {slot} is unreadable: {e}", self.id))?;
                let mut effect = None;
                let result = match cmd {
                    PartitionCommand::Append(batch) => {
                        let count = batch.records.len() as u32;
                        let base_offset = p.next_offset;
                        index.index(self.id, base_offset, slot, count);
                        p.next_offset += count as u64;
                        p.log_bytes += size;
                        if let Some(seq) = batch.producer {
                            let meta = BatchMeta {
                                base_sequence: seq.base_sequence,
                                count,
                                base_offset,
                            };
                            let state = p.producers.entry(seq.producer_id).or_default();
                            if state.record(seq.epoch, meta) {
                                let key = producer_key(self.id, seq.producer_id);
                                index.put(KvSpace::Producers, key, &state.encode());
                            }
                        }
                        Proposed::Append(AppendResult { base_offset, count })
                    }
                    PartitionCommand::Trim { up_to_offset } => {
                        effect = Some(Effect::Trim {
                            group: self.id,
                            up_to_offset,
                        });
                        Proposed::Done
                    }
                    PartitionCommand::Barrier => {
                        if p.barrier == Barrier::Proposed(slot) {
                            p.barrier = Barrier::Open;
                        }
                        Proposed::Done
                    }
                    PartitionCommand::Group(op) => {
                        let op = GroupOp::decode(&op).map_err(|e| {
                            format!("partition {} slot {slot}: group operation: {e}", self.id)
                        })?;
                        apply_group_op(self.id, &mut p.groups, slot, &op, index);
                        Proposed::Done
                    }
                };
                if waiting {
                    self.results.insert(slot, result);
                }
                Ok(effect)
            }
        }
    }

    /// Installs a snapshot a peer sent (it replaces everything up to its slot).
    pub(super) fn install_snapshot(&mut self, snapshot: &PartitionSnapshot) {
        if let Kind::Partition(p) = &mut self.kind {
            p.next_offset = snapshot.next_offset;
            p.log_start = snapshot.next_offset;
            p.log_bytes = 0;
            for (id, state) in &snapshot.producers {
                let mine = p.producers.entry(*id).or_default();
                for batch in &state.batches {
                    mine.record(state.epoch, *batch);
                }
                if state.batches.is_empty() {
                    mine.epoch = mine.epoch.max(state.epoch);
                }
            }
        }
    }

    /// Answers the proposer of an outcome.
    pub(super) fn answer(&mut self, outcome: Outcome) {
        let slot = outcome.id.slot;
        if let Kind::Partition(p) = &mut self.kind {
            for flying in p.in_flight.values_mut() {
                flying.retain(|f| f.slot != slot);
            }
            p.in_flight.retain(|_, v| !v.is_empty());
            if p.trim_in_flight == Some(slot) {
                p.trim_in_flight = None;
            }
        }
        let Some((id, replies)) = self.waiting.remove(&slot) else {
            return;
        };
        if id != outcome.id {
            self.waiting.insert(slot, (id, replies));
            return;
        }
        let result = self.results.remove(&id.slot);
        let answer = match (outcome.result, result) {
            (Ok(()), Some(applied)) => Ok(applied),
            // Decided, but not applied here: applying it failed and this replica stops. The
            // write is stored (elsewhere at least), at offsets this replica never assigned,
            // so the client must not be told any.
            (Ok(()), None) => Err(ProposeFailure::Unknown),
            (Err(_), _) => Err(ProposeFailure::Unknown),
        };
        for reply in replies {
            let _ = reply.send(answer.clone());
        }
    }

    /// Fails every waiting proposal (the replica stopped).
    pub(super) fn fail_all(&mut self, why: &str) {
        for (_, (_, replies)) in std::mem::take(&mut self.waiting) {
            for reply in replies {
                let _ = reply.send(Err(ProposeFailure::Stopped(why.to_owned())));
            }
        }
        self.results.clear();
        self.on_leader_change(false);
    }

    /// Whether this replica leads a partition and has applied its barrier (so its
    /// applied state holds everything earlier leaders may have had decided).
    pub(super) fn ready(&self) -> bool {
        matches!(&self.kind, Kind::Partition(p) if p.barrier == Barrier::Open)
            && self.replica.leader() == Some(self.replica.id())
    }

    /// Proposals made here that wait for their outcome.
    pub(super) fn in_flight(&self) -> usize {
        self.waiting.len()
    }

    /// The first offset still stored (partitions), 0 for metadata.
    pub(super) fn log_start(&self) -> u64 {
        match &self.kind {
            Kind::Partition(p) => p.log_start,
            Kind::Meta(_) => 0,
        }
    }

    /// The next offset to assign (partitions), 0 for metadata.
    pub(super) fn high_watermark(&self) -> u64 {
        match &self.kind {
            Kind::Partition(p) => p.next_offset,
            Kind::Meta(_) => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::codec::{AppendBatch, Record};
    use crate::storage::Db;
    use paxlog_consensus::{Ballot, Config};
    use std::sync::Arc;

    fn partition() -> (tempfile::TempDir, Group) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Arc::new(Db::open(dir.path(), 1).expect("open"));
        let config = Config {
            id: 1,
            voters: vec![1],
            ..Config::default()
        };
        let replica = Replica::new(config, GroupStore::new(db, 1)).expect("replica");
        (
            dir,
            Group::new(
                1,
                replica,
                Kind::Partition(PartitionState::new(
                    (0, 5),
                    ProducerTable::new(),
                    0,
                    TopicSettings::default(),
                )),
            ),
        )
    }

    fn wait(
        g: &mut Group,
        slot: Slot,
    ) -> (
        ProposalId,
        oneshot::Receiver<Result<Proposed, ProposeFailure>>,
    ) {
        let id = ProposalId {
            ballot: Ballot::new(1, 1),
            slot,
        };
        let (reply, rx) = oneshot::channel();
        g.waiting.insert(slot, (id, vec![reply]));
        (id, rx)
    }

    #[test]
    fn an_applied_batch_is_acknowledged_with_the_offsets_it_got() {
        let (_dir, mut g) = partition();
        let (id, mut rx) = wait(&mut g, 7);
        let batch = AppendBatch {
            producer: None,
            records: vec![Record::default(); 3],
        };
        let value = Value::Data(PartitionCommand::Append(batch).encode());
        g.apply(7, value, &mut GroupCommit::new()).expect("apply");
        g.answer(Outcome { id, result: Ok(()) });
        let applied = AppendResult {
            base_offset: 5,
            count: 3,
        };
        assert_eq!(
            rx.try_recv().expect("answered"),
            Ok(Proposed::Append(applied))
        );
        assert_eq!(g.high_watermark(), 8);
    }

    /// Regression: a decided proposal whose apply failed (an unreadable batch stops the
    /// replica) was acknowledged as written at offset 0.
    #[test]
    fn a_decided_proposal_that_was_not_applied_gets_no_offsets() {
        let (_dir, mut g) = partition();
        let (id, mut rx) = wait(&mut g, 7);
        let unreadable = Value::Data(bytes::Bytes::from_static(b"\x09garbage"));
        assert!(g.apply(7, unreadable, &mut GroupCommit::new()).is_err());
        g.answer(Outcome { id, result: Ok(()) });
        assert_eq!(
            rx.try_recv().expect("answered"),
            Err(ProposeFailure::Unknown)
        );
    }
}
