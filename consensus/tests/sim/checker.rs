//! The safety invariants, checked as evidence arrives (every applied value, every snapshot,
//! every restart, every acknowledgement), so a violation stops the run at the step that
//! caused it.
//!
//! The checker keeps history across crashes: what any replica ever applied, or rebuilt from
//! its storage, stays the decided value of that slot for the rest of the run.

use super::app::App;
use bytes::Bytes;
use paxlog_consensus::{Ballot, NodeId, ProposalId, Slot, Value};
use std::collections::BTreeMap;

/// Global history of one run.
#[derive(Debug, Default)]
pub struct Checker {
    /// Slot → the value decided there, from every replica and all time.
    chosen: BTreeMap<Slot, Value>,
    /// Every proposal any replica accepted from a client, with its value.
    proposals: BTreeMap<ProposalId, Bytes>,
    /// Proposals acknowledged with `Outcome` `Ok`.
    acked: BTreeMap<ProposalId, Bytes>,
    /// Leader ballots: who led with each, in which incarnation.
    leaders: BTreeMap<Ballot, (NodeId, u64)>,
}

impl Checker {
    /// **Agreement**: at most one value is decided per slot, across all replicas and all
    /// time. Called for every value a replica applies, finds in an installed snapshot, or
    /// rebuilds from its storage after a restart.
    pub fn decided(&mut self, node: NodeId, slot: Slot, value: &Value) -> Result<(), String> {
        match self.chosen.get(&slot) {
            Some(v) if v != value => Err(format!(
                "agreement: node {node} decided {} for slot {slot}, which already had {}",
                show(value),
                show(v)
            )),
            Some(_) => Ok(()),
            None => {
                self.chosen.insert(slot, value.clone());
                Ok(())
            }
        }
    }

    /// Agreement for a whole state (an installed snapshot, a rebuilt application): every
    /// value must match what was decided for its slot.
    pub fn state(&mut self, node: NodeId, app: &App, what: &str) -> Result<(), String> {
        for (i, v) in app.values().iter().enumerate() {
            self.decided(node, i as Slot + 1, v)
                .map_err(|e| format!("{what}: {e}"))?;
        }
        Ok(())
    }

    /// **Unique proposals**: a replica never hands out the same proposal id twice, which
    /// would mean a leader ballot was reused (for example after a restart).
    pub fn proposed(&mut self, id: ProposalId, value: Bytes) -> Result<(), String> {
        if let Some(old) = self.proposals.insert(id, value.clone()) {
            return Err(format!(
                "proposal id {id:?} given twice: first for {:?}, then for {:?}",
                old, value
            ));
        }
        Ok(())
    }

    /// **Acknowledged means decided**: an `Ok` outcome for `id` on `node` means the value is
    /// decided in `id.slot`, and the replica has already handed that slot out for applying.
    pub fn acked(&mut self, node: NodeId, id: ProposalId, app: &App) -> Result<(), String> {
        let Some(value) = self.proposals.get(&id).cloned() else {
            return Err(format!(
                "node {node} acknowledged {id:?}, which no client proposed"
            ));
        };
        let want = Value::Data(value.clone());
        match self.chosen.get(&id.slot) {
            Some(v) if *v == want => {}
            other => {
                return Err(format!(
                    "acknowledged {id:?} ({}) but slot {} holds {}",
                    show(&want),
                    id.slot,
                    other.map_or("nothing decided".into(), show)
                ));
            }
        }
        if app.value(id.slot) != Some(&want) {
            return Err(format!(
                "node {node} acknowledged {id:?} before handing out slot {} (applied up to {})",
                id.slot,
                app.applied()
            ));
        }
        self.acked.insert(id, value);
        Ok(())
    }

    /// **One leader per ballot**: a ballot leads at most once, on one node, in one
    /// incarnation (ballots are never reused, even across restarts).
    pub fn leader(&mut self, node: NodeId, incarnation: u64, ballot: Ballot) -> Result<(), String> {
        if ballot.node != node {
            return Err(format!(
                "node {node} leads with ballot {ballot}, which belongs to another"
            ));
        }
        match self.leaders.insert(ballot, (node, incarnation)) {
            Some(prev) if prev != (node, incarnation) => Err(format!(
                "ballot {ballot} led twice: by node {} (incarnation {}), then node {node} \
                 (incarnation {incarnation})",
                prev.0, prev.1
            )),
            _ => Ok(()),
        }
    }

    /// **Nothing acknowledged is lost, decided prefixes agree** (end of run): every replica's
    /// applied state is the same gapless prefix of the decided history, and holds every
    /// acknowledged value in its slot.
    pub fn final_state(&self, apps: &[(NodeId, &App)]) -> Result<(), String> {
        for (node, app) in apps {
            for (i, v) in app.values().iter().enumerate() {
                let slot = i as Slot + 1;
                if self.chosen.get(&slot) != Some(v) {
                    return Err(format!("node {node} applied {} at slot {slot}", show(v)));
                }
            }
            for (id, value) in &self.acked {
                if app.value(id.slot) != Some(&Value::Data(value.clone())) {
                    return Err(format!(
                        "acknowledged {id:?} ({value:?}) lost on node {node} (applied {})",
                        app.applied()
                    ));
                }
            }
        }
        if let Some(((a, x), (b, y))) = apps
            .iter()
            .zip(apps.iter().skip(1))
            .find(|(x, y)| x.1 != y.1)
        {
            return Err(format!(
                "final states differ: node {a} applied {} slots, node {b} applied {}",
                x.applied(),
                y.applied()
            ));
        }
        Ok(())
    }

    /// Highest slot known decided.
    pub fn max_slot(&self) -> Slot {
        self.chosen.keys().next_back().copied().unwrap_or(0)
    }
}

/// A value, short, for messages.
pub fn show(v: &Value) -> String {
    match v {
        Value::Noop => "noop".into(),
        Value::Data(b) => format!("{:?}", String::from_utf8_lossy(b)),
    }
}
