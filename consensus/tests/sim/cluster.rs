//! The simulated cluster: nodes, network and clients, advanced one step at a time by one
//! seeded random number generator, so that a seed (and the parameters) replay a run exactly.
//!
//! A step is one event (deliver a message, tick a node, a client proposal, a fault), and the
//! checker runs after each. Executing the `Ready`s that events produce is in `driver.rs`,
//! injecting faults in `faults.rs`, the phases of a run in `run.rs`.

use super::checker::Checker;
use super::client::Client;
use super::network::{Network, Packet};
use super::node::Node;
use super::params::Params;
use super::trace::{Event, Trace};
use paxlog_consensus::{Config, NodeId};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::fmt;
use std::ops::AddAssign;

/// Per mille of steps in which a node ticks: a message delayed by `d` steps takes about
/// `d / 3` ticks.
pub const TICK_PER_MILLE: u32 = 333;

/// A violated property, described for people.
pub type Violation = String;

/// Counters of what a run exercised, summed over runs to show coverage.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Schedules run.
    pub runs: u64,
    /// Steps taken.
    pub steps: u64,
    /// Node ticks.
    pub ticks: u64,
    /// Messages delivered.
    pub delivered: u64,
    /// Old messages the network delivered again.
    pub replays: u64,
    /// Crashes, and those that lost at least one `Ready` taken but not written.
    pub crashes: u64,
    /// Crashes that lost a `Ready` (taken from the replica, not written).
    pub lost_readys: u64,
    /// Crashes that also lost the storage.
    pub wipes: u64,
    /// Partitions made.
    pub partitions: u64,
    /// Compactions.
    pub compactions: u64,
    /// Snapshots installed from a peer.
    pub installs: u64,
    /// Times a replica became leader.
    pub elections: u64,
    /// Proposals acknowledged.
    pub acked: u64,
    /// Slots decided.
    pub slots: u64,
    /// Ticks the slowest liveness phase needed.
    pub max_liveness_ticks: u64,
}

impl AddAssign<&Stats> for Stats {
    fn add_assign(&mut self, o: &Stats) {
        self.runs += o.runs;
        self.steps += o.steps;
        self.ticks += o.ticks;
        self.delivered += o.delivered;
        self.replays += o.replays;
        self.crashes += o.crashes;
        self.lost_readys += o.lost_readys;
        self.wipes += o.wipes;
        self.partitions += o.partitions;
        self.compactions += o.compactions;
        self.installs += o.installs;
        self.elections += o.elections;
        self.acked += o.acked;
        self.slots += o.slots;
        self.max_liveness_ticks = self.max_liveness_ticks.max(o.max_liveness_ticks);
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} runs, {} steps, {} ticks, {} messages ({} replayed), {} crashes ({} lost a Ready, \
             {} the disk), {} partitions, {} compactions, {} snapshot installs, {} elections, \
             {} acked, {} slots; slowest recovery {} ticks",
            self.runs,
            self.steps,
            self.ticks,
            self.delivered,
            self.replays,
            self.crashes,
            self.lost_readys,
            self.wipes,
            self.partitions,
            self.compactions,
            self.installs,
            self.elections,
            self.acked,
            self.slots,
            self.max_liveness_ticks
        )
    }
}

/// Everything of one simulated run.
#[derive(Debug)]
pub struct Cluster {
    /// The seed that drives the run.
    pub seed: u64,
    /// Its parameters.
    pub params: Params,
    /// The only source of randomness.
    pub rng: ChaCha8Rng,
    /// Steps taken; the network's clock.
    pub now: u64,
    /// Nodes; node `id` at index `id - 1`.
    pub nodes: Vec<Node>,
    /// Messages in flight and topology.
    pub net: Network,
    /// Clients.
    pub clients: Vec<Client>,
    /// Global history and invariants.
    pub checker: Checker,
    /// Recent events.
    pub trace: Trace,
    /// Whether random faults fire (the fault phase).
    pub faults: bool,
    /// Whether idle clients start new values.
    pub workload: bool,
    /// Counters.
    pub stats: Stats,
}

impl Cluster {
    /// A cluster of fresh replicas, as `params` describe, driven by `seed`.
    pub fn new(seed: u64, params: Params) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = params.nodes as NodeId;
        let voters: Vec<NodeId> = (1..=n).collect();
        let nodes = voters
            .iter()
            .map(|&id| {
                Node::new(Config {
                    id,
                    voters: voters.clone(),
                    heartbeat_ticks: params.heartbeat,
                    election_ticks_min: params.election_min,
                    election_ticks_max: params.election_max,
                    retransmit_ticks: params.retransmit,
                    max_inflight: params.max_inflight as usize,
                    max_batch_entries: params.max_batch as usize,
                    seed: rng.random(),
                    repairing: false,
                    planted_skip_recovery: false,
                })
            })
            .collect();
        let clients = (0..params.clients)
            .map(|c| Client::new(c, rng.random_range(1..=n)))
            .collect();
        let mut net = Network::new(params.drop, params.dup, params.max_delay, params.late);
        net.record = params.replay > 0;
        Cluster {
            seed,
            params,
            rng,
            now: 0,
            nodes,
            net,
            clients,
            checker: Checker::default(),
            trace: Trace::new(200),
            faults: false,
            workload: true,
            stats: Stats {
                runs: 1,
                ..Stats::default()
            },
        }
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u32) -> bool {
        per_mille > 0 && self.rng.random_range(0..1000) < per_mille
    }

    /// Node ids, in order.
    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// Records an event.
    pub fn event(&mut self, event: Event) {
        self.trace.push(self.now, event);
    }

    /// One step: faults (in the fault phase), maybe a client action, maybe a delayed
    /// persist, every message due now, then ticks. Invariants are checked after each event.
    pub fn step(&mut self) -> Result<(), Violation> {
        self.now += 1;
        self.stats.steps += 1;
        if self.faults {
            self.random_faults()?;
        }
        if self.chance(self.params.propose) {
            self.client_acts()?;
            self.check_step()?;
        }
        let holding: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| !self.nodes[i].held.is_empty())
            .collect();
        if !holding.is_empty() && self.rng.random_range(0..4) == 0 {
            let i = holding[self.rng.random_range(0..holding.len())];
            self.execute(i)?;
            self.drain(i)?;
            self.check_step()?;
        }
        for packet in self.net.take_due(self.now, &mut self.rng) {
            self.deliver(packet)?;
            self.check_step()?;
        }
        self.tick()?;
        self.check_step()
    }

    /// Delivers one message, unless its link is blocked or its receiver is down.
    pub fn deliver(&mut self, packet: Packet) -> Result<(), Violation> {
        let msg = packet.msg;
        let (from, to) = (msg.from, msg.to);
        if self.net.is_blocked(from, to) {
            self.event(Event::Lost(msg, "partition"));
            return Ok(());
        }
        let i = (to - 1) as usize;
        let Some(replica) = self.nodes[i].replica() else {
            self.event(Event::Lost(msg, "receiver down"));
            return Ok(());
        };
        let result = replica.step(msg.clone());
        self.stats.delivered += 1;
        self.net.delivered(&msg);
        self.event(Event::Deliver(msg));
        result.map_err(|e| format!("node {to}: step failed: {e}"))?;
        self.drain(i)
    }

    /// Each running node ticks with probability `TICK_PER_MILLE` (independently, so clocks
    /// drift), or all of them together in lock-step mode.
    pub fn tick(&mut self) -> Result<(), Violation> {
        let all = self.params.lockstep == 1 && self.chance(TICK_PER_MILLE);
        for i in 0..self.nodes.len() {
            if !(all || (self.params.lockstep == 0 && self.chance(TICK_PER_MILLE))) {
                continue;
            }
            let id = self.nodes[i].id;
            if let Some(replica) = self.nodes[i].replica() {
                replica
                    .tick()
                    .map_err(|e| format!("node {id}: tick failed: {e}"))?;
                self.stats.ticks += 1;
                self.event(Event::Tick(id));
                self.drain(i)?;
                self.check_step()?;
            }
        }
        Ok(())
    }

    /// A random client starts a value (when the workload runs) and proposes it to the node
    /// it believes leads.
    fn client_acts(&mut self) -> Result<(), Violation> {
        if self.clients.is_empty() {
            return Ok(());
        }
        let c = self.rng.random_range(0..self.clients.len());
        if self.workload {
            self.clients[c].start_op();
        }
        if !self.clients[c].wants_to_propose() {
            return Ok(());
        }
        let (target, n) = (self.clients[c].target, self.nodes.len());
        let value = self.clients[c]
            .op
            .clone()
            .expect("wants_to_propose implies a value");
        let i = (target - 1) as usize;
        let Some(replica) = self.nodes[i].replica() else {
            self.clients[c].node_crashed(target, n, &mut self.rng);
            return Ok(());
        };
        let result = replica.propose(value.clone());
        self.event(Event::Propose {
            client: c,
            node: target,
            result: result.map_err(|e| e.to_string()),
        });
        if let Ok(id) = result {
            self.checker.proposed(id, value)?;
        }
        self.clients[c].proposed(target, result, n, &mut self.rng);
        self.drain(i)
    }

    /// Invariants of every step: a running replica that holds no unexecuted `Ready` has
    /// handed out exactly the slots it says are decided.
    pub fn check_step(&self) -> Result<(), Violation> {
        for node in &self.nodes {
            let Some(replica) = node.replica_ref() else {
                continue;
            };
            if node.held.is_empty() && replica.decided() != node.app.applied() {
                return Err(format!(
                    "node {}: replica says {} decided but handed out slots up to {}",
                    node.id,
                    replica.decided(),
                    node.app.applied()
                ));
            }
        }
        Ok(())
    }
}
