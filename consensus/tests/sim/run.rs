//! The phases of a run — faults, calm, convergence, final checks — and the failure report
//! that names the seed and the command replaying it.

use super::app::App;
use super::cluster::{Cluster, Stats, Violation};
use super::params::Params;
use super::trace::Event;
use paxlog_consensus::NodeId;
use rand::Rng;
use rand::seq::SliceRandom;
use std::fmt;

/// The liveness bound: once faults stop, the cluster must converge within this many ticks
/// per node (`LIVENESS_TICKS_PER_NODE × nodes` ticks in all). With election timeouts of
/// 15..30 ticks that is over sixty election timeouts per node: generous for electing a
/// leader and finishing every client's value, and enough for a replica that missed a
/// thousand slots to learn them one at a time (`max_batch_entries = 1`).
pub const LIVENESS_TICKS_PER_NODE: u64 = 2_000;

/// Once calm, messages are still delayed (and so reordered) by up to this many steps.
pub const CALM_MAX_DELAY: u64 = 3;

/// A failed run: what broke, where, and how to replay it.
#[derive(Debug)]
pub struct Failure {
    /// The seed of the run.
    pub seed: u64,
    /// Its parameters.
    pub params: Params,
    /// The step at which the violation was seen.
    pub step: u64,
    /// The violated property.
    pub reason: Violation,
    /// The last events before it.
    pub trace: Vec<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "simulation failed at step {}: {}",
            self.step, self.reason
        )?;
        writeln!(f, "  seed:   {}", self.seed)?;
        writeln!(f, "  params: {}", self.params)?;
        writeln!(
            f,
            "  replay: SIM_SEED={} SIM_PARAMS='{}' cargo test -p paxlog-consensus --test \
             simulation -- --exact replay --nocapture",
            self.seed, self.params
        )?;
        writeln!(f, "  (add SIM_TRACE=1 to print every event)")?;
        writeln!(f, "  last {} events:", self.trace.len())?;
        for line in &self.trace {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

/// Runs one schedule: the fault phase, then calm until convergence, then the final checks.
pub fn run(seed: u64, params: &Params) -> Result<Stats, Box<Failure>> {
    let mut cluster = Cluster::new(seed, params.clone());
    match cluster.run_schedule() {
        Ok(()) => Ok(cluster.stats.clone()),
        Err(reason) => Err(cluster.failure(reason)),
    }
}

impl Cluster {
    /// The failure report for `reason`, with the last events.
    pub fn failure(&self, reason: Violation) -> Box<Failure> {
        Box::new(Failure {
            seed: self.seed,
            params: self.params.clone(),
            step: self.now,
            reason,
            trace: self.trace.last(60),
        })
    }

    /// Panics with the failure report if `result` is a violation (for the scenarios).
    pub fn ok<T>(&self, result: Result<T, Violation>) -> T {
        match result {
            Ok(v) => v,
            Err(reason) => panic!("{}", self.failure(reason)),
        }
    }

    /// Fault phase for `params.steps` steps, then [`Cluster::calm`], [`Cluster::converge`]
    /// and [`Cluster::final_check`].
    pub fn run_schedule(&mut self) -> Result<(), Violation> {
        self.faults = true;
        for _ in 0..self.params.steps {
            self.step()?;
        }
        // Half the time a random minority stays down at first: a majority alone must make
        // progress. Then everyone is back and must catch up.
        // A repairing node does not vote: it counts against the minority that may be down.
        let repairing = self.nodes.iter().filter(|n| n.repairing).count();
        let minority = ((self.nodes.len() - 1) / 2).saturating_sub(repairing);
        let keep_down = if self.rng.random_range(0..2) == 0 || minority == 0 {
            0
        } else {
            self.rng.random_range(1..=minority)
        };
        self.calm(keep_down)?;
        self.converge()?;
        if keep_down > 0 {
            self.restart_all()?;
            for c in &mut self.clients {
                c.start_op();
            }
            self.converge()?;
        }
        self.final_check()
    }

    /// Ends the fault phase: heals the network, stops drops and duplicates, shortens delays,
    /// restarts every crashed node, executes every held `Ready`, then crashes `keep_down`
    /// random nodes (at most a minority) for good, and gives every client a value to get
    /// acknowledged.
    pub fn calm(&mut self, keep_down: usize) -> Result<(), Violation> {
        self.faults = false;
        self.net.heal();
        self.net.drop = 0;
        self.net.dup = 0;
        self.net.late = 0;
        self.net.max_delay = self.net.max_delay.min(CALM_MAX_DELAY);
        self.net.cap_delays(self.now + CALM_MAX_DELAY);
        self.event(Event::Calm);
        self.restart_all()?;
        for i in 0..self.nodes.len() {
            self.execute(i)?;
            self.drain(i)?;
        }
        let mut ids = self.ids();
        ids.shuffle(&mut self.rng);
        for &id in &ids[..keep_down] {
            self.crash_node(id);
        }
        self.workload = false;
        for c in &mut self.clients {
            c.start_op();
        }
        self.check_step()
    }

    /// Steps until [`Cluster::converged`], failing if that takes more than the liveness
    /// bound of ticks.
    pub fn converge(&mut self) -> Result<(), Violation> {
        let start = self.stats.ticks;
        let budget = LIVENESS_TICKS_PER_NODE * self.nodes.len() as u64;
        loop {
            if let Some(()) = self.converged() {
                let used = self.stats.ticks - start;
                self.stats.max_liveness_ticks = self.stats.max_liveness_ticks.max(used);
                return Ok(());
            }
            if self.stats.ticks - start > budget {
                return Err(format!(
                    "liveness: not converged after {budget} ticks: {}",
                    self.progress()
                ));
            }
            self.step()?;
        }
    }

    /// `Some` once a leader exists that every running node follows, every client's value is
    /// acknowledged, and all running replicas have decided and applied the same slots.
    pub fn converged(&self) -> Option<()> {
        if self.clients.iter().any(|c| c.op.is_some()) {
            return None;
        }
        let leader = self
            .nodes
            .iter()
            .find(|n| n.replica_ref().is_some_and(|r| r.is_leader()))?
            .id;
        let decided = self.nodes[(leader - 1) as usize].replica_ref()?.decided();
        for node in self.nodes.iter().filter(|n| n.is_up()) {
            let r = node.replica_ref()?;
            let agrees = r.leader() == Some(leader) && r.decided() == decided;
            if !agrees || !node.held.is_empty() || node.app.applied() != decided {
                return None;
            }
        }
        Some(())
    }

    /// What each node and client is at, for a liveness failure.
    fn progress(&self) -> String {
        let mut out = Vec::new();
        for n in &self.nodes {
            match n.replica_ref() {
                Some(r) => {
                    let s = r.status();
                    out.push(format!(
                        "node {}: {} leader={:?} promised={} decided={} last={} repairing={}",
                        n.id, s.role, s.leader, s.promised, s.decided, s.last_slot, s.repairing
                    ));
                }
                None => out.push(format!("node {}: down", n.id)),
            }
        }
        for c in &self.clients {
            out.push(format!(
                "client {}: op={:?} waiting={:?} target={}",
                c.id, c.op, c.waiting, c.target
            ));
        }
        format!(
            "{} messages in flight; {}",
            self.net.in_flight(),
            out.join("; ")
        )
    }

    /// End of run: every replica's application equals what it would rebuild from its
    /// storage, all agree with each other and with history, and hold every acknowledged
    /// value.
    pub fn final_check(&mut self) -> Result<(), Violation> {
        for node in &self.nodes {
            let Some(replica) = node.replica_ref() else {
                continue;
            };
            let rebuilt =
                App::rebuild(replica.storage()).map_err(|e| format!("node {}: {e}", node.id))?;
            if rebuilt != node.app {
                return Err(format!(
                    "node {}: storage rebuilds {} slots, application applied {}",
                    node.id,
                    rebuilt.applied(),
                    node.app.applied()
                ));
            }
        }
        let apps: Vec<(NodeId, &App)> = self
            .nodes
            .iter()
            .filter(|n| n.is_up())
            .map(|n| (n.id, &n.app))
            .collect();
        self.checker.final_state(&apps)?;
        self.stats.slots = self.checker.max_slot();
        Ok(())
    }
}
