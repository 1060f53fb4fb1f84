//! One Multi-Paxos replica: acceptor, proposer (candidate and leader) and learner in one
//! deterministic state machine. See the crate docs for the driver contract.

mod acceptor;
mod learner;
mod proposer;

use crate::config::Config;
use crate::error::{Error, ProposeError, TransferError};
use crate::message::{Message, MessageBody};
use crate::ready::{LeaderChange, Outcome, ProposalLost, Ready};
use crate::storage::{Storage, StorageError};
use crate::types::{Ballot, Entry, NodeId, ProposalId, Slot, Snapshot, Value};
use bytes::Bytes;
use proposer::{Candidate, Leader};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// An entry above the decided index, and whether it is known to be decided (slots can be
/// learned out of order; the decided index only moves over a contiguous prefix).
#[derive(Clone, Debug)]
struct LogEntry {
    entry: Entry,
    decided: bool,
}

/// What part of the protocol this replica plays now.
#[derive(Debug)]
enum Role {
    Follower,
    Candidate(Candidate),
    Leader(Box<Leader>),
}

/// A replica's state as seen from outside, for status pages and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// This replica.
    pub id: NodeId,
    /// `"leader"`, `"candidate"` or `"follower"`.
    pub role: &'static str,
    /// The leader this replica follows (itself when leading).
    pub leader: Option<NodeId>,
    /// The highest ballot promised.
    pub promised: Ballot,
    /// Every slot up to this one is decided.
    pub decided: Slot,
    /// The highest slot this replica holds an entry for.
    pub last_slot: Slot,
    /// Whether the replica abstains from voting until its repair completes.
    pub repairing: bool,
}

/// A Multi-Paxos replica of one group. Feed it events (`step`, `tick`, `propose`), then
/// execute what `ready` hands back, following the contract in the crate docs.
#[derive(Debug)]
pub struct Replica<S: Storage> {
    config: Config,
    storage: S,
    rng: ChaCha8Rng,
    quorum: usize,
    /// Set once storage failed: every later call fails.
    stopped: bool,

    // Durable state, mirrored.
    promised: Ballot,
    decided: Slot,
    snapshot: Option<Snapshot>,
    /// Entries above `decided`.
    log: BTreeMap<Slot, LogEntry>,
    /// Entries handed to the driver for persistence but not confirmed yet, with the number of
    /// the `Ready` that carries them: reads must see them before storage has them.
    unstable: BTreeMap<Slot, (u64, Entry)>,

    role: Role,
    /// The leader followed and its ballot.
    leader: Option<(NodeId, Ballot)>,
    /// Highest round seen in any ballot; a new candidacy goes above it.
    max_round_seen: u64,

    // Time.
    now: u64,
    election_elapsed: u64,
    election_timeout: u64,
    /// Failed elections in a row; widens the randomized timeout (back-off under contention).
    contention: u64,
    last_leader_contact: Option<u64>,

    // Learning.
    /// Decided index the current leader announced, valid for entries accepted under `hint_ballot`.
    hint_ballot: Ballot,
    hint_decided: Slot,
    /// Highest decided index known anywhere, and who has it.
    known_decided: Slot,
    learn_from: Option<NodeId>,
    learn_sent: Option<(Slot, u64)>,
    /// `Some(watermark)` while repairing: votes again once decided reaches the watermark
    /// (`None` inside until a leader tells how far its log goes).
    repair: Option<Option<Slot>>,

    /// Local proposals awaiting an outcome, by slot.
    proposals: BTreeMap<Slot, ProposalId>,

    // Output being accumulated for the next `Ready`.
    out: Ready,
    ready_seq: u64,
    /// Replies of this replica's acceptor to itself, released when the `Ready` carrying the
    /// state they vouch for is persisted.
    deferred: Vec<(u64, MessageBody)>,
}

impl<S: Storage> Replica<S> {
    /// Starts a replica from what `storage` holds.
    pub fn new(config: Config, storage: S) -> Result<Self, Error> {
        config.validate()?;
        let init = storage.initial_state()?;
        let snap_slot = init.snapshot.as_ref().map_or(0, |s| s.slot);
        let decided = init.decided.max(snap_slot);
        let log = storage
            .entries(decided + 1, init.last_slot)?
            .into_iter()
            .map(|(s, entry)| {
                (
                    s,
                    LogEntry {
                        entry,
                        decided: false,
                    },
                )
            })
            .collect();
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ config.id.rotate_left(32));
        let election_timeout =
            rng.random_range(config.election_ticks_min..config.election_ticks_max);
        Ok(Self {
            quorum: config.quorum(),
            repair: config.repairing.then_some(None),
            rng,
            stopped: false,
            promised: init.promised,
            decided,
            snapshot: init.snapshot,
            log,
            unstable: BTreeMap::new(),
            role: Role::Follower,
            leader: None,
            max_round_seen: init.promised.round,
            now: 0,
            election_elapsed: 0,
            election_timeout,
            contention: 0,
            last_leader_contact: None,
            hint_ballot: Ballot::ZERO,
            hint_decided: 0,
            known_decided: decided,
            learn_from: None,
            learn_sent: None,
            proposals: BTreeMap::new(),
            out: Ready::default(),
            ready_seq: 0,
            deferred: Vec::new(),
            config,
            storage,
        })
    }

    /// Feeds a message from a peer.
    pub fn step(&mut self, msg: Message) -> Result<(), Error> {
        self.check_running()?;
        if msg.to != self.config.id || !self.config.voters.contains(&msg.from) {
            return Ok(()); // misrouted or from a stranger: not ours to act on
        }
        self.handle(msg.from, msg.body).map_err(|e| self.fail(e))
    }

    /// Advances logical time by one tick: elections, heartbeats, retransmissions.
    pub fn tick(&mut self) -> Result<(), Error> {
        self.check_running()?;
        self.now += 1;
        self.on_tick().map_err(|e| self.fail(e))
    }

    /// Proposes a value. Only the leader accepts proposals; the outcome arrives in a later
    /// `Ready` (`Ok` when decided, or unknown if leadership is lost first).
    pub fn propose(&mut self, value: Bytes) -> Result<ProposalId, ProposeError> {
        if self.stopped {
            return Err(ProposeError::Stopped);
        }
        self.propose_value(Value::Data(value))
    }

    /// Hands leadership to `to`: while `to` answers (heard within `election_ticks_min`),
    /// the leader takes no new proposals (they get [`ProposeError::Busy`]); once every
    /// slot it proposed is decided and `to` reported that decided index, it tells `to` to
    /// run for leader at once (`TimeoutNow`) and becomes a follower. Gives up, leading on
    /// as before, if that has not happened within `election_ticks_max` ticks (a target
    /// that is down never holds writes back). Leadership is only ever won through
    /// phase 1, so a transfer cannot break safety; it only saves the wait for a timeout.
    pub fn transfer_leadership(&mut self, to: NodeId) -> Result<(), TransferError> {
        if self.stopped {
            return Err(TransferError::Stopped);
        }
        if to == self.config.id || !self.config.voters.contains(&to) {
            return Err(TransferError::NotAPeer(to));
        }
        let now = self.now;
        let Role::Leader(l) = &mut self.role else {
            return Err(TransferError::NotLeader);
        };
        l.transfer = Some((to, now));
        self.maybe_hand_over()
            .map_err(|e| TransferError::Fatal(self.fail(e).to_string()))
    }

    /// Whether `ready` has anything for the driver.
    pub fn has_ready(&self) -> bool {
        !self.out.is_empty()
            || self.pending_accepts()
            || self.deferred.iter().any(|(n, _)| *n > self.ready_seq)
    }

    /// Takes what the driver must do now. Call `persisted(ready.number)` once its `persist`
    /// is durable, even when it is empty.
    pub fn ready(&mut self) -> Ready {
        self.flush_accepts();
        self.ready_seq += 1;
        let mut ready = std::mem::take(&mut self.out);
        ready.number = self.ready_seq;
        ready
    }

    /// Tells the replica that the `persist` of every `Ready` up to `number` is durable.
    pub fn persisted(&mut self, number: u64) -> Result<(), Error> {
        self.check_running()?;
        self.unstable.retain(|_, (n, _)| *n > number);
        let (due, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.deferred)
            .into_iter()
            .partition(|(n, _)| *n <= number);
        self.deferred = keep;
        for (_, body) in due {
            self.handle(self.config.id, body)
                .map_err(|e| self.fail(e))?;
        }
        Ok(())
    }

    /// Compacts the log: the application's state `data` covers every slot up to `up_to`,
    /// so entries up to there may be dropped. Lagging peers get the snapshot instead.
    pub fn compact(&mut self, up_to: Slot, data: Bytes) -> Result<(), Error> {
        self.check_running()?;
        if up_to > self.decided {
            return Err(Error::CompactBeyondDecided {
                requested: up_to,
                decided: self.decided,
            });
        }
        if up_to <= self.snapshot_slot() {
            return Ok(());
        }
        let snap = Snapshot { slot: up_to, data };
        self.unstable = self.unstable.split_off(&(up_to + 1));
        self.snapshot = Some(snap.clone());
        self.out.persist.snapshot = Some(snap);
        Ok(())
    }

    /// This replica's id.
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// The leader this replica follows (itself when leading), if known.
    pub fn leader(&self) -> Option<NodeId> {
        match self.role {
            Role::Leader(_) => Some(self.config.id),
            _ => self.leader.map(|(n, _)| n),
        }
    }

    /// Whether this replica leads and accepts proposals.
    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader(_))
    }

    /// Every slot up to this one is decided.
    pub fn decided(&self) -> Slot {
        self.decided
    }

    /// While leading: each follower and the decided index it last reported to this leader
    /// (in its promise, `Accepted` or `HeartbeatAck`), `None` until it has reported. Empty
    /// when not leading. For observability (replication lag): read-only, it changes nothing
    /// in the protocol, and it is as fresh as the follower's last answer (about one
    /// heartbeat interval when idle).
    pub fn followers(&self) -> impl Iterator<Item = (NodeId, Option<Slot>)> + '_ {
        let leader = match &self.role {
            Role::Leader(l) => Some(l),
            _ => None,
        };
        leader.into_iter().flat_map(|l| l.followers())
    }

    /// The peer this leader is handing leadership to, while it does
    /// ([`Replica::transfer_leadership`]).
    pub fn transferring_to(&self) -> Option<NodeId> {
        match &self.role {
            Role::Leader(l) => l.transfer.map(|(to, _)| to),
            _ => None,
        }
    }

    /// A summary of the replica's state.
    pub fn status(&self) -> Status {
        Status {
            id: self.config.id,
            role: match self.role {
                Role::Follower => "follower",
                Role::Candidate(_) => "candidate",
                Role::Leader(_) => "leader",
            },
            leader: self.leader(),
            promised: self.promised,
            decided: self.decided,
            last_slot: self.last_slot(),
            repairing: self.repair.is_some(),
        }
    }

    /// The storage, for reads by the application.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// The storage, for the driver to write `Ready::persist`.
    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.storage
    }

    /// Gives the storage back (a simulated crash rebuilds the replica from it).
    pub fn into_storage(self) -> S {
        self.storage
    }

    // ----- internals shared by the roles -----

    fn check_running(&self) -> Result<(), Error> {
        if self.stopped {
            return Err(Error::Fatal(StorageError(
                "replica stopped after an earlier storage failure".into(),
            )));
        }
        Ok(())
    }

    fn fail(&mut self, e: StorageError) -> Error {
        self.stopped = true;
        Error::Fatal(e)
    }

    fn handle(&mut self, from: NodeId, body: MessageBody) -> Result<(), StorageError> {
        match body {
            MessageBody::Prepare {
                ballot,
                from_slot,
                transfer,
            } => self.on_prepare(from, ballot, from_slot, transfer),
            MessageBody::TimeoutNow { ballot } => self.on_timeout_now(from, ballot),
            MessageBody::Promise {
                ballot,
                decided,
                entries,
            } => self.on_promise(from, ballot, decided, entries),
            MessageBody::Nack { ballot, promised } => self.on_nack(ballot, promised),
            MessageBody::Accept {
                ballot,
                decided,
                entries,
            } => self.on_accept(from, ballot, decided, entries),
            MessageBody::Accepted {
                ballot,
                decided,
                slots,
            } => self.on_accepted(from, ballot, decided, &slots),
            MessageBody::Heartbeat {
                ballot,
                decided,
                last_slot,
            } => self.on_heartbeat(from, ballot, decided, last_slot),
            MessageBody::HeartbeatAck { ballot, decided } => {
                self.on_heartbeat_ack(from, ballot, decided)
            }
            MessageBody::Learn { from_slot } => self.on_learn(from, from_slot),
            MessageBody::Decided { decided, entries } => self.on_decided(from, decided, entries),
            MessageBody::InstallSnapshot { slot, data } => self.on_snapshot(from, slot, data),
        }
    }

    /// Sends `body`: to a peer through the next `Ready`, to itself at once (requests) or once
    /// persisted (replies, which vouch for state the pending `Ready` makes durable).
    fn send(&mut self, to: NodeId, body: MessageBody) -> Result<(), StorageError> {
        if to != self.config.id {
            if let Role::Leader(l) = &mut self.role {
                l.sent_to(to, self.now);
            }
            self.out.messages.push(Message {
                from: self.config.id,
                to,
                body,
            });
            return Ok(());
        }
        match body {
            MessageBody::Promise { .. }
            | MessageBody::Accepted { .. }
            | MessageBody::Nack { .. }
            | MessageBody::HeartbeatAck { .. } => {
                self.deferred.push((self.ready_seq + 1, body));
                Ok(())
            }
            other => self.handle(self.config.id, other),
        }
    }

    fn peers(&self) -> Vec<NodeId> {
        self.config
            .voters
            .iter()
            .copied()
            .filter(|&n| n != self.config.id)
            .collect()
    }

    fn snapshot_slot(&self) -> Slot {
        self.snapshot.as_ref().map_or(0, |s| s.slot)
    }

    fn last_slot(&self) -> Slot {
        self.log
            .keys()
            .next_back()
            .copied()
            .unwrap_or(self.decided)
            .max(self.decided)
    }

    fn persist_promise(&mut self, ballot: Ballot) {
        self.promised = ballot;
        self.max_round_seen = self.max_round_seen.max(ballot.round);
        self.out.persist.promised = Some(ballot);
    }

    /// Records an entry in the log and in the next `persist`.
    fn store_entry(&mut self, slot: Slot, entry: Entry, decided: bool) {
        self.unstable
            .insert(slot, (self.ready_seq + 1, entry.clone()));
        self.out.persist.entries.push((slot, entry.clone()));
        self.log.insert(slot, LogEntry { entry, decided });
    }

    fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        let (min, max) = (
            self.config.election_ticks_min,
            self.config.election_ticks_max,
        );
        let spread = (max - min) * (1 + self.contention.min(3));
        self.election_timeout = min + self.rng.random_range(0..spread);
    }

    fn announce_leader(&mut self) {
        let (leader, ballot) = match &self.role {
            Role::Leader(l) => (Some(self.config.id), l.ballot),
            _ => (
                self.leader.map(|(n, _)| n),
                self.leader.map_or(self.promised, |(_, b)| b),
            ),
        };
        let change = LeaderChange {
            leader,
            ballot,
            is_self: leader == Some(self.config.id),
        };
        if self.out.leader != Some(change) {
            self.out.leader = Some(change);
        }
    }

    /// Follows `leader` (or nobody) as a follower. A leader or candidate gives up its role;
    /// proposals it had placed get an unknown outcome, since a later leader may decide them.
    fn become_follower(&mut self, leader: Option<(NodeId, Ballot)>) {
        let was_leading = !matches!(self.role, Role::Follower);
        if was_leading {
            self.role = Role::Follower;
            for (_, id) in std::mem::take(&mut self.proposals) {
                self.out.outcomes.push(Outcome {
                    id,
                    result: Err(ProposalLost::Unknown),
                });
            }
        }
        if was_leading || self.leader != leader {
            self.leader = leader;
            self.announce_leader();
        }
        if leader.is_some() {
            self.contention = 0;
        }
    }

    /// Moves the decided index over every contiguous decided slot, handing them to the
    /// application in order.
    fn advance_decided(&mut self) {
        let start = self.decided;
        loop {
            let next = self.decided + 1;
            let Some(le) = self.log.get(&next) else { break };
            let by_hint = next <= self.hint_decided && le.entry.ballot == self.hint_ballot;
            if !(le.decided || by_hint) {
                break;
            }
            let Some(le) = self.log.remove(&next) else {
                break;
            };
            self.decided = next;
            if let Some(id) = self.proposals.remove(&next) {
                // Learned values already settled their proposals (as unknown); what remains was
                // decided by a quorum under the proposal's own ballot.
                let result = if le.entry.ballot == id.ballot {
                    Ok(())
                } else {
                    Err(ProposalLost::Unknown)
                };
                self.out.outcomes.push(Outcome { id, result });
            }
            self.out.decided.push((next, le.entry.value));
        }
        if self.decided != start {
            self.out.persist.decided = Some(self.decided);
            self.known_decided = self.known_decided.max(self.decided);
            if let Some(Some(watermark)) = self.repair
                && self.decided >= watermark
            {
                self.finish_repair();
            }
        }
    }

    fn finish_repair(&mut self) {
        self.repair = None;
        if let Some((_, ballot)) = self.leader
            && ballot > self.promised
        {
            self.persist_promise(ballot);
        }
    }
}
