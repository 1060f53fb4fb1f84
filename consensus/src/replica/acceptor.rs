//! The acceptor role: promises, accepts, and following a leader.

use super::{Replica, Role};
use crate::message::MessageBody;
use crate::storage::{Storage, StorageError};
use crate::types::{Ballot, Entry, NodeId, Slot};

impl<S: Storage> Replica<S> {
    /// Whether a recently heard leader other than `candidate` is still alive, in which case a
    /// `Prepare` is ignored: a node that was cut off must not depose a working leader.
    ///
    /// Recently: within three heartbeat intervals (at most `election_ticks_min`). Not the
    /// whole `election_ticks_min`: replicas differ in it (a partition's preferred leader
    /// times out first), and a candidate whose `Prepare` arrives inside the others' window
    /// is ignored and waits a whole further timeout; `paxlog-bench failover` saw that as
    /// kills taking 1.0-1.3 s to a new leader instead of about 0.5 s.
    fn leader_is_fresh(&self, candidate: NodeId) -> bool {
        let window = self
            .config
            .heartbeat_ticks
            .saturating_mul(3)
            .min(self.config.election_ticks_min);
        match (self.leader, self.last_leader_contact) {
            (Some((leader, _)), Some(at)) => {
                leader != candidate && self.now.saturating_sub(at) < window
            }
            _ => matches!(self.role, Role::Leader(_)) && candidate != self.config.id,
        }
    }

    pub(super) fn on_prepare(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        from_slot: Slot,
        transfer: bool,
    ) -> Result<(), StorageError> {
        if self.repair.is_some() {
            return Ok(()); // lost or corrupt storage: no vote until repaired
        }
        self.max_round_seen = self.max_round_seen.max(ballot.round);
        if ballot < self.promised {
            return self.send(
                from,
                MessageBody::Nack {
                    ballot,
                    promised: self.promised,
                },
            );
        }
        if ballot > self.promised {
            if !transfer && self.leader_is_fresh(from) {
                return Ok(());
            }
            self.persist_promise(ballot);
            let own = matches!(&self.role, Role::Leader(l) if l.ballot == ballot)
                || matches!(&self.role, Role::Candidate(c) if c.ballot == ballot);
            if !own {
                self.become_follower(None);
                self.reset_election_timer();
            }
        }
        let floor = from_slot.max(self.decided + 1);
        let entries = self
            .log
            .range(floor..)
            .map(|(s, le)| (*s, le.entry.clone()))
            .collect();
        self.send(
            from,
            MessageBody::Promise {
                ballot,
                decided: self.decided,
                entries,
            },
        )
    }

    /// Handles the ballot of a message from a leader: rejects it if stale, otherwise follows
    /// that leader. Returns whether the message may be acted on.
    fn follow(&mut self, from: NodeId, ballot: Ballot) -> Result<bool, StorageError> {
        if ballot < self.promised {
            self.send(
                from,
                MessageBody::Nack {
                    ballot,
                    promised: self.promised,
                },
            )?;
            return Ok(false);
        }
        self.max_round_seen = self.max_round_seen.max(ballot.round);
        let own = matches!(&self.role, Role::Leader(l) if l.ballot == ballot);
        if !own {
            if !matches!(self.role, Role::Follower) || self.leader != Some((from, ballot)) {
                self.become_follower(Some((from, ballot)));
            }
            self.last_leader_contact = Some(self.now);
            self.election_elapsed = 0;
        }
        if ballot > self.hint_ballot {
            self.hint_ballot = ballot;
            self.hint_decided = 0;
        }
        Ok(true)
    }

    /// Takes note of the leader's decided index and log end, then learns what it can.
    fn leader_progress(&mut self, from: NodeId, ballot: Ballot, decided: Slot, last_slot: Slot) {
        if ballot == self.hint_ballot {
            self.hint_decided = self.hint_decided.max(decided);
        }
        if decided > self.known_decided {
            self.known_decided = decided;
            self.learn_from = Some(from);
        }
        if let Some(None) = self.repair {
            self.repair = Some(Some(last_slot.max(decided)));
        }
        self.advance_decided();
    }

    pub(super) fn on_accept(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        decided: Slot,
        entries: Vec<(Slot, Entry)>,
    ) -> Result<(), StorageError> {
        let last = entries.last().map_or(0, |(s, _)| *s);
        if self.repair.is_some() {
            // Not a voter: only learn how far the leader is.
            if ballot >= self.promised {
                self.follow(from, ballot)?;
                self.leader_progress(from, ballot, decided, last);
                self.maybe_learn()?;
            }
            return Ok(());
        }
        if !self.follow(from, ballot)? {
            return Ok(());
        }
        if ballot > self.promised {
            self.persist_promise(ballot);
        }
        let mut slots = Vec::with_capacity(entries.len());
        for (slot, entry) in entries {
            slots.push(slot);
            if slot <= self.decided || self.log.get(&slot).is_some_and(|le| le.decided) {
                continue; // already decided here, and by safety with this very value
            }
            self.store_entry(slot, entry, false);
        }
        self.leader_progress(from, ballot, decided, last);
        self.send(
            from,
            MessageBody::Accepted {
                ballot,
                decided: self.decided,
                slots,
            },
        )?;
        self.maybe_learn()
    }

    pub(super) fn on_heartbeat(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        decided: Slot,
        last_slot: Slot,
    ) -> Result<(), StorageError> {
        if !self.follow(from, ballot)? {
            return Ok(());
        }
        self.leader_progress(from, ballot, decided, last_slot);
        self.send(
            from,
            MessageBody::HeartbeatAck {
                ballot,
                decided: self.decided,
            },
        )?;
        self.maybe_learn()
    }
}
