//! Scripted control for the named scenarios: tick one chosen node, deliver or drop chosen
//! messages, propose on a chosen node. Everything still goes through the same driver and
//! checker as the random schedules; only the choices are made by the test instead of the
//! random number generator.

use super::cluster::{Cluster, Violation};
use paxlog_consensus::{Message, NodeId, ProposalId};

impl Cluster {
    /// Ticks node `id` once (if up) and executes what it produces.
    pub fn tick_node(&mut self, id: NodeId) -> Result<(), Violation> {
        let i = (id - 1) as usize;
        if let Some(replica) = self.nodes[i].replica() {
            replica
                .tick()
                .map_err(|e| format!("node {id}: tick failed: {e}"))?;
            self.stats.ticks += 1;
            self.event(super::trace::Event::Tick(id));
            self.drain(i)?;
        }
        self.check_step()
    }

    /// Ticks node `id` until `until` holds for the cluster, at most `max` times.
    pub fn tick_node_until(
        &mut self,
        id: NodeId,
        max: u64,
        until: impl Fn(&Cluster) -> bool,
    ) -> Result<(), Violation> {
        for _ in 0..max {
            if until(self) {
                return Ok(());
            }
            self.tick_node(id)?;
        }
        if until(self) {
            Ok(())
        } else {
            Err(format!("scenario: node {id} ticked {max} times in vain"))
        }
    }

    /// Delivers at once every message in flight that `pred` selects, in the order sent,
    /// then again those their receivers sent in reply, while any match. Returns how many.
    pub fn deliver_where(&mut self, pred: impl Fn(&Message) -> bool) -> Result<usize, Violation> {
        let mut count = 0;
        loop {
            let batch = self.net.extract(&pred);
            if batch.is_empty() {
                return Ok(count);
            }
            count += batch.len();
            for packet in batch {
                self.deliver(packet)?;
                self.check_step()?;
            }
        }
    }

    /// Loses every message in flight that `pred` selects. Returns how many.
    pub fn drop_where(&mut self, pred: impl Fn(&Message) -> bool) -> usize {
        self.net.extract(pred).len()
    }

    /// Makes node `id` crash while it executes its next `Ready`s, after writing `written`
    /// of them (0: the `Ready` is lost whole, persist and messages).
    pub fn crash_during_next_ready(&mut self, id: NodeId, written: usize) {
        self.nodes[(id - 1) as usize].crash_next = Some(written);
    }

    /// Proposes `value` on node `id` directly (no client waits for the outcome, but an `Ok`
    /// outcome is still checked).
    pub fn propose_to(&mut self, id: NodeId, value: &str) -> Result<ProposalId, Violation> {
        let i = (id - 1) as usize;
        let replica = self.nodes[i]
            .replica()
            .ok_or(format!("node {id} is down"))?;
        let value = bytes::Bytes::copy_from_slice(value.as_bytes());
        let proposal = replica
            .propose(value.clone())
            .map_err(|e| format!("node {id}: {e}"))?;
        self.checker.proposed(proposal, value)?;
        self.drain(i)?;
        Ok(proposal)
    }
}

impl Cluster {
    /// Takes random steps until `done` holds, failing after `max` steps.
    pub fn run_until(
        &mut self,
        max: u64,
        what: &str,
        done: impl Fn(&Cluster) -> bool,
    ) -> Result<(), Violation> {
        for _ in 0..max {
            if done(self) {
                return Ok(());
            }
            self.step()?;
        }
        if done(self) {
            Ok(())
        } else {
            Err(format!("scenario: {what} not reached in {max} steps"))
        }
    }

    /// The node that believes it leads, if any (the first, if several do).
    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .find(|n| n.replica_ref().is_some_and(|r| r.is_leader()))
            .map(|n| n.id)
    }

    /// Node `id`'s decided index (0 while down).
    pub fn decided_on(&self, id: NodeId) -> u64 {
        self.nodes[(id - 1) as usize]
            .replica_ref()
            .map_or(0, |r| r.decided())
    }

    /// Node `id`'s role: `"leader"`, `"candidate"`, `"follower"` or `"down"`.
    pub fn role_of(&self, id: NodeId) -> &'static str {
        self.nodes[(id - 1) as usize]
            .replica_ref()
            .map_or("down", |r| r.status().role)
    }

    /// Runs the workload until every running node decided `slots` slots, then lets the
    /// clients finish and the running nodes agree on one decided index; returns the leader.
    pub fn settle(&mut self, slots: u64) -> Result<NodeId, Violation> {
        self.workload = true;
        self.run_until(50_000, "slots decided on every running node", |c| {
            c.nodes
                .iter()
                .filter(|n| n.is_up())
                .all(|n| c.decided_on(n.id) >= slots)
        })?;
        self.workload = false;
        self.run_until(50_000, "idle clients and equal decided indexes", |c| {
            let up: Vec<u64> = c
                .nodes
                .iter()
                .filter(|n| n.is_up())
                .map(|n| c.decided_on(n.id))
                .collect();
            c.leader().is_some()
                && c.clients.iter().all(|cl| cl.op.is_none())
                && up.windows(2).all(|w| w[0] == w[1])
        })?;
        self.leader()
            .ok_or_else(|| "scenario: no leader after settling".into())
    }

    /// Ends a scenario: calm (everyone restarted), convergence within the liveness bound,
    /// final checks.
    pub fn finish(&mut self) -> Result<(), Violation> {
        self.calm(0)?;
        self.converge()?;
        self.final_check()
    }
}

/// Selects the messages between members of `set` only.
pub fn among(set: Vec<NodeId>) -> impl Fn(&Message) -> bool {
    move |m| set.contains(&m.from) && set.contains(&m.to)
}
