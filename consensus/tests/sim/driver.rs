//! Executes a replica's `Ready`s exactly as the driver contract in `paxlog_consensus` says:
//! write `persist`, call `persisted(number)`, send `messages`, install `snapshot`, apply
//! `decided` in order, answer `outcomes`.
//!
//! Three liberties the contract allows are taken, because a real driver takes them:
//! `Ready`s may be held and persisted later, several at once (group commit, with one
//! `persisted` covering them all); the node may crash while executing them — before writing
//! any, or after writing some — losing the rest, including their messages; and messages that
//! [`may_precede_persist`](paxlog_consensus::MessageBody::may_precede_persist) are sent as
//! soon as their `Ready` is taken, before anything of it is written (so a crash can follow
//! them).

use super::cluster::{Cluster, Violation};
use super::trace::Event;
use paxlog_consensus::{Ready, Storage};
use rand::Rng;

/// More `Ready`s than this from one input means the replica never settles.
const MAX_READY_ROUNDS: usize = 10_000;

impl Cluster {
    /// Takes every `Ready` node `i` has and executes them (unless lazy persistence holds them
    /// back for a later step).
    pub fn drain(&mut self, i: usize) -> Result<(), Violation> {
        for _ in 0..MAX_READY_ROUNDS {
            let node = &mut self.nodes[i];
            let id = node.id;
            let Some(replica) = node.replica() else {
                return Ok(());
            };
            if replica.has_ready() {
                let mut ready = replica.ready();
                if ready.number != node.last_ready + 1 {
                    return Err(format!(
                        "node {id}: Ready number {} follows {}",
                        ready.number, node.last_ready
                    ));
                }
                node.last_ready = ready.number;
                let early = ready.take_early_messages();
                node.held.push(ready);
                for m in early {
                    self.send_checked(i, m)?;
                }
            }
            if self.nodes[i].held.is_empty() {
                return Ok(());
            }
            if self.faults && self.chance(self.params.lazy) {
                return Ok(());
            }
            self.execute(i)?;
        }
        Err(format!(
            "node {}: Ready loop does not settle",
            self.nodes[i].id
        ))
    }

    /// Executes the `Ready`s node `i` holds, or crashes it midway (fault phase only).
    pub fn execute(&mut self, i: usize) -> Result<(), Violation> {
        let held = std::mem::take(&mut self.nodes[i].held);
        let Some(last) = held.last().map(|r| r.number) else {
            return Ok(());
        };
        let id = self.nodes[i].id;
        let scripted = self.nodes[i].crash_next.take();
        if scripted.is_some() || (self.faults && self.chance(self.params.crash)) {
            let written = match scripted {
                Some(n) => n.min(held.len()),
                None => self.rng.random_range(0..=held.len()),
            };
            let replica = self.nodes[i]
                .replica()
                .expect("only running nodes hold Readys");
            for ready in &held[..written] {
                replica
                    .storage_mut()
                    .write(&ready.persist)
                    .map_err(|e| format!("node {id}: {e}"))?;
            }
            self.stats.lost_readys += u64::from(written < held.len());
            self.crash(i, written, held.len());
            if !self.nodes.iter().any(|n| n.repairing) && self.chance(self.params.wipe) {
                self.nodes[i].wipe();
                self.stats.wipes += 1;
                self.event(Event::Wipe(id));
            }
            if self.chance(self.params.bounce) {
                // A supervisor restarts it at once: in-flight messages meet the restarted
                // replica, which has only what it wrote.
                self.restart(i)?;
            }
            return Ok(());
        }
        let replica = self.nodes[i]
            .replica()
            .expect("only running nodes hold Readys");
        for ready in &held {
            replica
                .storage_mut()
                .write(&ready.persist)
                .map_err(|e| format!("node {id}: {e}"))?;
        }
        // Repaired once the replica says so and what it wrote up to then is durable (checked
        // before `persisted`, which may run on and finish the repair in a later `Ready`).
        let repaired = !replica.status().repairing;
        self.nodes[i].repairing &= !repaired;
        let replica = self.nodes[i].replica().expect("still running");
        replica
            .persisted(last)
            .map_err(|e| format!("node {id}: persisted failed: {e}"))?;
        for ready in &held {
            for m in &ready.messages {
                self.send_checked(i, m.clone())?;
            }
        }
        for ready in held {
            self.apply(i, ready)?;
        }
        Ok(())
    }

    /// Puts node `i`'s message on the network, after checking its addresses.
    fn send_checked(&mut self, i: usize, m: paxlog_consensus::Message) -> Result<(), Violation> {
        let id = self.nodes[i].id;
        if m.from != id || m.to == id || !self.nodes[i].config.voters.contains(&m.to) {
            return Err(format!("node {id} sends a misaddressed message: {m:?}"));
        }
        self.net.send(m, self.now, &mut self.rng);
        Ok(())
    }

    /// The application side of a `Ready`: leadership, snapshot, decided values, outcomes.
    fn apply(&mut self, i: usize, ready: Ready) -> Result<(), Violation> {
        let (id, incarnation) = (self.nodes[i].id, self.nodes[i].incarnation);
        if let Some(change) = ready.leader {
            self.event(Event::Leader {
                node: id,
                leader: change.leader,
                ballot: change.ballot,
            });
            if change.is_self != (change.leader == Some(id)) {
                return Err(format!("node {id}: inconsistent leader change {change:?}"));
            }
            if change.is_self {
                self.checker.leader(id, incarnation, change.ballot)?;
                self.stats.elections += 1;
            }
        }
        if let Some(snap) = &ready.snapshot {
            let node = &mut self.nodes[i];
            node.app
                .install(snap)
                .map_err(|e| format!("node {id}: {e}"))?;
            node.installs += 1;
            self.stats.installs += 1;
            self.checker
                .state(id, &self.nodes[i].app, "installed snapshot")?;
            self.event(Event::Install {
                node: id,
                slot: snap.slot,
            });
        }
        if let (Some(first), Some(last)) = (ready.decided.first(), ready.decided.last()) {
            let (from, to) = (first.0, last.0);
            for (slot, value) in ready.decided {
                self.checker.decided(id, slot, &value)?;
                self.nodes[i]
                    .app
                    .apply(slot, value)
                    .map_err(|e| format!("node {id}: {e}"))?;
            }
            self.event(Event::Applied { node: id, from, to });
        }
        for outcome in ready.outcomes {
            let ok = outcome.result.is_ok();
            if ok {
                self.checker.acked(id, outcome.id, &self.nodes[i].app)?;
                self.stats.acked += 1;
            }
            let waiter = self
                .clients
                .iter()
                .position(|c| c.waiting == Some((id, outcome.id)));
            if let Some(c) = waiter {
                self.clients[c].outcome(ok);
                self.event(Event::Outcome {
                    client: c,
                    node: id,
                    id: outcome.id,
                    ok,
                });
            }
        }
        Ok(())
    }
}
