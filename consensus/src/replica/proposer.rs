//! The proposer roles: a candidate running phase 1 once for the whole undecided suffix, and
//! a leader running pipelined, batched phase 2.

use super::{Replica, Role};
use crate::error::ProposeError;
use crate::message::MessageBody;
use crate::storage::{Storage, StorageError};
use crate::types::{Ballot, Entry, NodeId, ProposalId, Slot, Value};
use std::collections::BTreeMap;

/// Phase 1 in progress.
#[derive(Debug)]
pub(super) struct Candidate {
    pub(super) ballot: Ballot,
    /// Promises received: the acceptor's decided index and its accepted entries.
    promises: BTreeMap<NodeId, (Slot, Vec<(Slot, Entry)>)>,
}

/// A slot the leader proposed and has not seen decided yet.
#[derive(Debug)]
struct InFlight {
    entry: Entry,
    acks: Vec<NodeId>,
    sent_at: u64,
}

/// What the leader tracks of each peer.
#[derive(Debug, Default, Clone, Copy)]
struct PeerState {
    last_heard: u64,
    last_sent: u64,
    /// The peer's decided index as it last reported it (promise, `Accepted`,
    /// `HeartbeatAck`). Read only by [`Replica::followers`]; the protocol never uses it.
    decided: Option<Slot>,
}

/// Phase 2: the leader's state.
#[derive(Debug)]
pub(super) struct Leader {
    pub(super) ballot: Ballot,
    next_slot: Slot,
    inflight: BTreeMap<Slot, InFlight>,
    /// Proposed since the last `Ready`, sent as one batched `Accept` per peer.
    pending: Vec<(Slot, Entry)>,
    peers: BTreeMap<NodeId, PeerState>,
    since: u64,
    /// The decided index when last seen moving, and when. A leader that learns nothing of
    /// its prefix for an election timeout (its teacher died) runs phase 1 again.
    learned: (Slot, u64),
    /// Handing leadership to this peer, since this tick (see
    /// [`Replica::transfer_leadership`]).
    pub(super) transfer: Option<(NodeId, u64)>,
}

impl Leader {
    /// Whether a hand-over is under way to a peer heard from within `window` ticks: only
    /// then are proposals held back (so that a hand-over to a peer that is down never
    /// stops writes; it just gives up).
    pub(super) fn handing_over(&self, now: u64, window: u64) -> bool {
        self.transfer.is_some_and(|(to, _)| {
            self.peers
                .get(&to)
                .is_some_and(|p| p.decided.is_some() && now.saturating_sub(p.last_heard) < window)
        })
    }

    /// Each peer and the decided index it last reported (see [`Replica::followers`]).
    pub(super) fn followers(&self) -> impl Iterator<Item = (NodeId, Option<Slot>)> + '_ {
        self.peers.iter().map(|(id, p)| (*id, p.decided))
    }

    /// Takes note of the decided index `peer` reported.
    fn reported(&mut self, peer: NodeId, decided: Slot, now: u64) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.last_heard = now;
            p.decided = Some(p.decided.map_or(decided, |d| d.max(decided)));
        }
    }

    pub(super) fn sent_to(&mut self, peer: NodeId, now: u64) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.last_sent = now;
        }
    }

    /// Whether learning that `slot` was decided with `value` shows that a higher ballot has
    /// decided where this leader proposed another value, or has not proposed yet. Such a
    /// leader must step down: followers take its decided index as proof that the entries
    /// they accepted under its ballot are decided, which would no longer hold.
    pub(super) fn superseded_by(&self, slot: Slot, value: &Value) -> bool {
        slot >= self.next_slot
            || self
                .inflight
                .get(&slot)
                .is_some_and(|f| f.entry.value != *value)
    }

    /// Whether a snapshot up to `slot` covers a slot this leader proposed and has not seen
    /// decided (its value cannot be compared), or one it has not proposed yet.
    pub(super) fn superseded_by_snapshot(&self, slot: Slot) -> bool {
        slot >= self.next_slot || self.inflight.range(..=slot).next().is_some()
    }
}

impl<S: Storage> Replica<S> {
    pub(super) fn on_tick(&mut self) -> Result<(), StorageError> {
        if matches!(self.role, Role::Leader(_)) {
            self.leader_tick()?;
        } else {
            self.election_elapsed += 1;
            if self.election_elapsed >= self.election_timeout && self.repair.is_none() {
                if matches!(self.role, Role::Candidate(_)) {
                    self.contention += 1; // the last candidacy failed: widen the back-off
                }
                self.start_election(false)?;
            }
        }
        self.maybe_learn()
    }

    /// `TimeoutNow` from the leader this replica follows: run for leader now.
    pub(super) fn on_timeout_now(
        &mut self,
        from: NodeId,
        ballot: Ballot,
    ) -> Result<(), StorageError> {
        let follows = matches!(self.role, Role::Follower) && self.leader == Some((from, ballot));
        if !follows || self.repair.is_some() {
            return Ok(()); // stale, or this replica may not vote
        }
        self.start_election(true)
    }

    /// While handing over: once every proposed slot is decided and the target reported
    /// that decided index, sends it `TimeoutNow` and steps down; past the deadline, leads
    /// on.
    pub(super) fn maybe_hand_over(&mut self) -> Result<(), StorageError> {
        let (now, decided, give_up) = (self.now, self.decided, self.config.election_ticks_max);
        let Role::Leader(l) = &mut self.role else {
            return Ok(());
        };
        let Some((to, since)) = l.transfer else {
            return Ok(());
        };
        if now.saturating_sub(since) >= give_up {
            l.transfer = None;
            return Ok(());
        }
        let settled = l.inflight.is_empty() && l.pending.is_empty();
        let caught_up = l.peers.get(&to).and_then(|p| p.decided) >= Some(decided);
        if !(settled && caught_up) {
            return Ok(());
        }
        let ballot = l.ballot;
        self.send(to, MessageBody::TimeoutNow { ballot })?;
        self.become_follower(None);
        self.reset_election_timer();
        Ok(())
    }

    fn start_election(&mut self, transfer: bool) -> Result<(), StorageError> {
        let round = self.max_round_seen.max(self.promised.round) + 1;
        let ballot = Ballot::new(round, self.config.id);
        // Persisted before the `Prepare` leaves (same `Ready`): a restarted node never reuses it.
        self.persist_promise(ballot);
        self.role = Role::Candidate(Candidate {
            ballot,
            promises: BTreeMap::new(),
        });
        if self.leader.take().is_some() {
            self.announce_leader();
        }
        self.reset_election_timer();
        let from_slot = self.decided + 1;
        for to in self.config.voters.clone() {
            self.send(
                to,
                MessageBody::Prepare {
                    ballot,
                    from_slot,
                    transfer,
                },
            )?;
        }
        Ok(())
    }

    pub(super) fn on_promise(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        decided: Slot,
        entries: Vec<(Slot, Entry)>,
    ) -> Result<(), StorageError> {
        let Role::Candidate(c) = &mut self.role else {
            return Ok(());
        };
        if c.ballot != ballot {
            return Ok(());
        }
        c.promises.insert(from, (decided, entries));
        if c.promises.len() >= self.quorum {
            self.become_leader()?;
        }
        Ok(())
    }

    /// Phase 1 succeeded: adopt, for every slot above what is known decided, the value
    /// accepted under the highest ballot in the quorum (or a no-op), and propose it anew.
    fn become_leader(&mut self) -> Result<(), StorageError> {
        let Role::Candidate(c) = std::mem::replace(&mut self.role, Role::Follower) else {
            return Ok(());
        };
        let ballot = c.ballot;
        let (mut known, mut best_from) = (self.decided, None);
        for (node, (decided, _)) in &c.promises {
            if *decided > known {
                (known, best_from) = (*decided, Some(*node));
            }
        }
        let mut chosen: BTreeMap<Slot, Entry> = BTreeMap::new();
        for (_, entries) in c.promises.values() {
            for (slot, entry) in entries {
                if *slot > known && chosen.get(slot).is_none_or(|e| e.ballot < entry.ballot) {
                    chosen.insert(*slot, entry.clone());
                }
            }
        }
        let last = chosen
            .keys()
            .next_back()
            .copied()
            .unwrap_or(known)
            .max(known);
        if self.config.planted_skip_recovery {
            chosen.clear();
        }
        let peers = self
            .peers()
            .into_iter()
            .map(|p| {
                (
                    p,
                    PeerState {
                        last_heard: self.now,
                        last_sent: self.now,
                        decided: c.promises.get(&p).map(|(decided, _)| *decided),
                    },
                )
            })
            .collect();
        let mut leader = Leader {
            ballot,
            next_slot: last + 1,
            inflight: BTreeMap::new(),
            pending: Vec::new(),
            peers,
            since: self.now,
            learned: (self.decided, self.now),
            transfer: None,
        };
        for slot in known + 1..=last {
            let value = chosen.remove(&slot).map_or(Value::Noop, |e| e.value);
            let entry = Entry { ballot, value };
            leader.inflight.insert(
                slot,
                InFlight {
                    entry: entry.clone(),
                    acks: Vec::new(),
                    sent_at: self.now,
                },
            );
            leader.pending.push((slot, entry));
        }
        let idle = leader.pending.is_empty();
        self.role = Role::Leader(Box::new(leader));
        self.leader = None;
        self.contention = 0;
        self.announce_leader();
        if known > self.decided {
            // Learn from a replica of this quorum, which answered just now: the one an older
            // report named may be gone.
            self.known_decided = self.known_decided.max(known);
            self.learn_from = best_from;
            self.learn_sent = None;
        }
        if idle {
            self.broadcast_heartbeat()?; // make the new leadership known at once
        }
        self.maybe_learn()
    }

    pub(super) fn on_nack(&mut self, ballot: Ballot, promised: Ballot) -> Result<(), StorageError> {
        self.max_round_seen = self.max_round_seen.max(promised.round);
        let mine = match &self.role {
            Role::Candidate(c) => c.ballot,
            Role::Leader(l) => l.ballot,
            Role::Follower => return Ok(()),
        };
        if ballot == mine && promised > mine {
            if matches!(self.role, Role::Leader(_)) {
                // A peer promised a higher ballot, typically a follower whose election timer
                // fired early and whose `Prepare` the others ignored: run phase 1 again above
                // it at once (the others still follow this node and promise), instead of
                // leaving the group without a leader for an election timeout.
                self.become_follower(None);
                return self.start_election(false);
            }
            self.contention += 1;
            self.become_follower(None);
            self.reset_election_timer();
        }
        Ok(())
    }

    pub(super) fn on_accepted(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        decided: Slot,
        slots: &[Slot],
    ) -> Result<(), StorageError> {
        let quorum = self.quorum;
        let Role::Leader(l) = &mut self.role else {
            return Ok(());
        };
        if l.ballot != ballot {
            return Ok(());
        }
        l.reported(from, decided, self.now);
        let mut chosen = Vec::new();
        for slot in slots {
            if let Some(f) = l.inflight.get_mut(slot) {
                if !f.acks.contains(&from) {
                    f.acks.push(from);
                }
                if f.acks.len() >= quorum
                    && let Some(f) = l.inflight.remove(slot)
                {
                    chosen.push((*slot, f.entry));
                }
            }
        }
        if chosen.is_empty() {
            return Ok(());
        }
        for (slot, entry) in chosen {
            match self.log.get_mut(&slot) {
                Some(le) => le.decided = true,
                None if slot > self.decided => {
                    self.log.insert(
                        slot,
                        super::LogEntry {
                            entry,
                            decided: true,
                        },
                    );
                }
                None => {}
            }
        }
        self.advance_decided();
        Ok(())
    }

    pub(super) fn on_heartbeat_ack(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        decided: Slot,
    ) -> Result<(), StorageError> {
        if let Role::Leader(l) = &mut self.role
            && l.ballot == ballot
        {
            l.reported(from, decided, self.now);
        }
        self.maybe_hand_over()
    }

    pub(super) fn propose_value(&mut self, value: Value) -> Result<ProposalId, ProposeError> {
        let max_inflight = self.config.max_inflight;
        let (now, window) = (self.now, self.config.election_ticks_min);
        let Role::Leader(l) = &mut self.role else {
            return Err(ProposeError::NotLeader {
                leader: self.leader.map(|(n, _)| n),
            });
        };
        if l.inflight.len() >= max_inflight || l.handing_over(now, window) {
            return Err(ProposeError::Busy);
        }
        let slot = l.next_slot;
        l.next_slot += 1;
        let entry = Entry {
            ballot: l.ballot,
            value,
        };
        l.inflight.insert(
            slot,
            InFlight {
                entry: entry.clone(),
                acks: Vec::new(),
                sent_at: self.now,
            },
        );
        l.pending.push((slot, entry));
        let id = ProposalId {
            ballot: l.ballot,
            slot,
        };
        self.proposals.insert(slot, id);
        Ok(id)
    }

    pub(super) fn pending_accepts(&self) -> bool {
        matches!(&self.role, Role::Leader(l) if !l.pending.is_empty())
    }

    /// Sends what was proposed since the last `Ready` as batched `Accept`s to every voter,
    /// this replica included (its own acceptance is persisted in the same `Ready`).
    pub(super) fn flush_accepts(&mut self) {
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        if l.pending.is_empty() {
            return;
        }
        let ballot = l.ballot;
        let pending = std::mem::take(&mut l.pending);
        // Self first, so the leader's own acceptance is in this `Ready`'s persist.
        let mut voters = vec![self.config.id];
        voters.extend(self.peers());
        for chunk in pending.chunks(self.config.max_batch_entries) {
            for &to in &voters {
                let body = MessageBody::Accept {
                    ballot,
                    decided: self.decided,
                    entries: chunk.to_vec(),
                };
                // A leader's own Accept touches no storage read, so it cannot fail.
                let _ = self.send(to, body);
            }
        }
    }

    fn broadcast_heartbeat(&mut self) -> Result<(), StorageError> {
        let Role::Leader(l) = &self.role else {
            return Ok(());
        };
        let ballot = l.ballot;
        let last_slot = l.next_slot - 1;
        for to in self.peers() {
            self.send(
                to,
                MessageBody::Heartbeat {
                    ballot,
                    decided: self.decided,
                    last_slot,
                },
            )?;
        }
        Ok(())
    }

    fn leader_tick(&mut self) -> Result<(), StorageError> {
        let now = self.now;
        let (quorum, cfg) = (self.quorum, self.config.clone());
        let (decided, behind) = (self.decided, self.decided < self.known_decided);
        let Role::Leader(l) = &mut self.role else {
            return Ok(());
        };

        // Slots up to the quorum's decided index are learned, not re-proposed; if the one
        // replica that knew them is gone, only a new phase 1 (without it) recovers them.
        if l.learned.0 != decided {
            l.learned = (decided, now);
        }
        if behind && now.saturating_sub(l.learned.1) >= cfg.election_ticks_max {
            self.become_follower(None);
            return self.start_election(false);
        }
        if l.transfer.is_some() {
            self.maybe_hand_over()?;
            if !matches!(self.role, Role::Leader(_)) {
                return Ok(());
            }
        }
        let Role::Leader(l) = &mut self.role else {
            return Ok(());
        };

        // Step down when a majority has not been heard from for an election timeout.
        let heard = 1 + l
            .peers
            .values()
            .filter(|p| now.saturating_sub(p.last_heard) < cfg.election_ticks_max)
            .count();
        if heard < quorum && now.saturating_sub(l.since) >= cfg.election_ticks_max {
            self.become_follower(None);
            self.reset_election_timer();
            return Ok(());
        }

        // Retransmit unacknowledged accepts, batched per peer.
        let mut resend: BTreeMap<NodeId, Vec<(Slot, Entry)>> = BTreeMap::new();
        for (slot, f) in l.inflight.iter_mut() {
            if now.saturating_sub(f.sent_at) < cfg.retransmit_ticks {
                continue;
            }
            f.sent_at = now;
            for peer in l.peers.keys() {
                if !f.acks.contains(peer) {
                    resend
                        .entry(*peer)
                        .or_default()
                        .push((*slot, f.entry.clone()));
                }
            }
            if !f.acks.contains(&cfg.id) {
                resend
                    .entry(cfg.id)
                    .or_default()
                    .push((*slot, f.entry.clone()));
            }
        }
        let ballot = l.ballot;
        let last_slot = l.next_slot - 1;
        let idle: Vec<NodeId> = l
            .peers
            .iter()
            .filter(|(p, s)| {
                !resend.contains_key(p) && now.saturating_sub(s.last_sent) >= cfg.heartbeat_ticks
            })
            .map(|(p, _)| *p)
            .collect();
        for (to, entries) in resend {
            for chunk in entries.chunks(cfg.max_batch_entries) {
                let body = MessageBody::Accept {
                    ballot,
                    decided: self.decided,
                    entries: chunk.to_vec(),
                };
                self.send(to, body)?;
            }
        }
        for to in idle {
            self.send(
                to,
                MessageBody::Heartbeat {
                    ballot,
                    decided: self.decided,
                    last_slot,
                },
            )?;
        }
        Ok(())
    }
}
