//! The learner role: catching up on decided values and snapshots, and serving them to
//! lagging peers.

use super::{LogEntry, Replica, Role};
use crate::message::MessageBody;
use crate::ready::{Outcome, ProposalLost};
use crate::storage::{Storage, StorageError};
use crate::types::{Entry, NodeId, Slot, Snapshot};
use bytes::Bytes;

impl<S: Storage> Replica<S> {
    /// Asks for decided values when some replica is known to be further; at most once per
    /// retransmission period for the same gap.
    pub(super) fn maybe_learn(&mut self) -> Result<(), StorageError> {
        let behind = self.known_decided.max(self.hint_decided) > self.decided;
        let Some(target) = self.learn_from.or(self.leader.map(|(n, _)| n)) else {
            return Ok(());
        };
        if !behind || target == self.config.id {
            return Ok(());
        }
        let from_slot = self.decided + 1;
        if let Some((slot, at)) = self.learn_sent
            && slot == from_slot
            && self.now.saturating_sub(at) < self.config.retransmit_ticks
        {
            return Ok(());
        }
        self.learn_sent = Some((from_slot, self.now));
        self.send(target, MessageBody::Learn { from_slot })
    }

    /// Decided entries from `from` to `to`, from memory where not yet persisted, else storage.
    fn decided_entries(&self, from: Slot, to: Slot) -> Result<Vec<(Slot, Entry)>, StorageError> {
        let mut stored = self.storage.entries(from, to)?;
        let pending: Vec<_> = self.unstable.range(from..=to).collect();
        if !pending.is_empty() {
            let mut merged: std::collections::BTreeMap<Slot, Entry> = stored.into_iter().collect();
            for (slot, (_, entry)) in pending {
                merged.insert(*slot, entry.clone());
            }
            stored = merged.into_iter().collect();
        }
        // Only a gapless run from `from` is useful to the learner.
        let run = stored
            .iter()
            .zip(from..)
            .take_while(|((s, _), want)| s == want)
            .count();
        stored.truncate(run);
        Ok(stored)
    }

    pub(super) fn on_learn(&mut self, from: NodeId, from_slot: Slot) -> Result<(), StorageError> {
        let from_slot = from_slot.max(1);
        if from_slot <= self.snapshot_slot()
            && let Some(snap) = self.snapshot.clone()
        {
            return self.send(
                from,
                MessageBody::InstallSnapshot {
                    slot: snap.slot,
                    data: snap.data,
                },
            );
        }
        if from_slot > self.decided {
            return Ok(()); // nothing to teach
        }
        let to = self
            .decided
            .min(from_slot + self.config.max_batch_entries as u64 - 1);
        let entries = self.decided_entries(from_slot, to)?;
        if entries.is_empty() {
            return Ok(());
        }
        self.send(
            from,
            MessageBody::Decided {
                decided: self.decided,
                entries,
            },
        )
    }

    pub(super) fn on_decided(
        &mut self,
        from: NodeId,
        decided: Slot,
        entries: Vec<(Slot, Entry)>,
    ) -> Result<(), StorageError> {
        if decided > self.known_decided {
            self.known_decided = decided;
            self.learn_from = Some(from);
        }
        let got_any = !entries.is_empty();
        for (slot, mut entry) in entries {
            if slot <= self.decided || slot > decided {
                continue;
            }
            if matches!(&self.role, Role::Leader(l) if l.superseded_by(slot, &entry.value)) {
                self.become_follower(None);
                self.reset_election_timer();
            }
            match self.log.get(&slot) {
                Some(LogEntry { decided: true, .. }) => continue,
                // Never lower the ballot an acceptor reports for a slot: a new leader's
                // choice relies on the highest accepted ballot of every quorum.
                Some(le) => entry.ballot = entry.ballot.max(le.entry.ballot),
                None => {}
            }
            if let Some(id) = self.proposals.remove(&slot) {
                // Decided elsewhere: whether our value won is not known here.
                self.out.outcomes.push(Outcome {
                    id,
                    result: Err(ProposalLost::Unknown),
                });
            }
            self.store_entry(slot, entry, true);
        }
        self.advance_decided();
        if got_any {
            self.learn_sent = None; // progress: ask for the next batch right away
        }
        self.maybe_learn()
    }

    pub(super) fn on_snapshot(
        &mut self,
        from: NodeId,
        slot: Slot,
        data: Bytes,
    ) -> Result<(), StorageError> {
        if slot <= self.decided {
            return Ok(());
        }
        if matches!(&self.role, Role::Leader(l) if l.superseded_by_snapshot(slot)) {
            self.become_follower(None);
            self.reset_election_timer();
        }
        let snap = Snapshot { slot, data };
        self.log = self.log.split_off(&(slot + 1));
        self.unstable = self.unstable.split_off(&(slot + 1));
        let covered: Vec<Slot> = self.proposals.range(..=slot).map(|(s, _)| *s).collect();
        for s in covered {
            if let Some(id) = self.proposals.remove(&s) {
                self.out.outcomes.push(Outcome {
                    id,
                    result: Err(ProposalLost::Unknown),
                });
            }
        }
        // The snapshot is installed before `decided` is applied: drop what it covers.
        self.out.decided.retain(|(s, _)| *s > slot);
        self.out.snapshot = Some(snap.clone());
        self.out.persist.snapshot = Some(snap.clone());
        self.snapshot = Some(snap);
        self.decided = slot;
        self.out.persist.decided = Some(slot);
        if slot > self.known_decided {
            self.known_decided = slot;
            self.learn_from = Some(from);
        }
        self.learn_sent = None;
        self.advance_decided();
        self.maybe_learn()
    }
}
