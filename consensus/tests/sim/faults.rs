//! Faults: crashes and restarts, partitions and healing, replays of old messages, and log
//! compaction (not a fault, but it is what makes lagging replicas need snapshots, so it is
//! scheduled the same way).
//!
//! Random faults fire per step in the fault phase; the named scenarios call the same
//! functions directly.

use super::cluster::{Cluster, Violation};
use super::trace::Event;
use paxlog_consensus::NodeId;
use rand::Rng;
use rand::seq::SliceRandom;

impl Cluster {
    /// Fires each kind of fault with its per-step probability.
    pub fn random_faults(&mut self) -> Result<(), Violation> {
        if self.chance(self.params.restart) {
            let down: Vec<usize> = (0..self.nodes.len())
                .filter(|&i| !self.nodes[i].is_up())
                .collect();
            if !down.is_empty() {
                let i = down[self.rng.random_range(0..down.len())];
                self.restart(i)?;
                self.check_step()?;
            }
        }
        if self.chance(self.params.partition) {
            self.random_partition();
        }
        if self.chance(self.params.heal) && !self.net.blocked().is_empty() {
            self.heal();
        }
        if self.chance(self.params.replay)
            && let Some((link, count)) = self.net.replay(self.now, &mut self.rng)
        {
            self.stats.replays += count as u64;
            self.event(Event::Replay(link, count));
        }
        if self.chance(self.params.transfer) {
            self.random_transfer()?;
            self.check_step()?;
        }
        if self.chance(self.params.compact) {
            let i = self.rng.random_range(0..self.nodes.len());
            self.compact(i)?;
            self.check_step()?;
        }
        Ok(())
    }

    /// Crashes node `i`, which had written `written` of the `held` `Ready`s it was executing.
    /// Clients waiting on it learn nothing more: they retry elsewhere.
    pub fn crash(&mut self, i: usize, written: usize, held: usize) {
        let id = self.nodes[i].id;
        self.nodes[i].crash();
        self.stats.crashes += 1;
        let n = self.nodes.len();
        for c in &mut self.clients {
            c.node_crashed(id, n, &mut self.rng);
        }
        self.event(Event::Crash {
            node: id,
            written,
            held,
        });
    }

    /// Crashes node `id` between steps, losing any `Ready` it holds unexecuted.
    pub fn crash_node(&mut self, id: NodeId) {
        let i = (id - 1) as usize;
        if self.nodes[i].is_up() {
            let held = self.nodes[i].held.len();
            self.crash(i, 0, held);
        }
    }

    /// Restarts crashed node `i` from its storage: the application is rebuilt from the
    /// stored snapshot and decided entries, and all of it must agree with history.
    pub fn restart(&mut self, i: usize) -> Result<(), Violation> {
        let seed = self.rng.random();
        let node = &mut self.nodes[i];
        node.restart(seed)?;
        let (id, applied) = (node.id, node.app.applied());
        self.checker
            .state(id, &self.nodes[i].app, "state rebuilt from storage")?;
        self.event(Event::Restart { node: id, applied });
        self.drain(i)
    }

    /// Restarts every crashed node.
    pub fn restart_all(&mut self) -> Result<(), Violation> {
        for i in 0..self.nodes.len() {
            if !self.nodes[i].is_up() {
                self.restart(i)?;
            }
        }
        Ok(())
    }

    /// Replaces the topology by a random one: a split into two sides of any sizes, one
    /// isolated node, or a random set of one-way link failures.
    pub fn random_partition(&mut self) {
        let mut ids = self.ids();
        match self.rng.random_range(0..3) {
            0 => {
                ids.shuffle(&mut self.rng);
                let cut = self.rng.random_range(1..ids.len());
                let all = self.ids();
                self.net.split(&ids[..cut], &all);
            }
            1 => {
                let lone = ids[self.rng.random_range(0..ids.len())];
                self.net.split(&[lone], &ids);
            }
            _ => {
                let mut links = Vec::new();
                for &a in &ids {
                    for &b in &ids {
                        if a != b && self.rng.random_range(0..10) < 3 {
                            links.push((a, b));
                        }
                    }
                }
                self.net.set_blocked(links);
            }
        }
        self.stats.partitions += 1;
        self.event(Event::Topology(self.net.blocked()));
    }

    /// Cuts `side` off from the other nodes, both ways.
    pub fn isolate(&mut self, side: &[NodeId]) {
        let all = self.ids();
        self.net.split(side, &all);
        self.stats.partitions += 1;
        self.event(Event::Topology(self.net.blocked()));
    }

    /// Link `from -> to` reconnects and sends again the last messages delivered over it
    /// (those the network remembers: see `Network::record`). Returns how many.
    pub fn reconnect(&mut self, from: NodeId, to: NodeId) -> usize {
        let count = self.net.resend((from, to), self.now, &mut self.rng);
        self.stats.replays += count as u64;
        self.event(Event::Replay((from, to), count));
        count
    }

    /// Repairs every link.
    pub fn heal(&mut self) {
        self.net.heal();
        self.event(Event::Topology(Vec::new()));
    }

    /// Node `i` (if running) compacts its log up to a random applied slot, with its
    /// application's state as the snapshot.
    /// The leader (if any node leads) hands leadership to a random peer.
    pub fn random_transfer(&mut self) -> Result<(), Violation> {
        let Some(i) = (0..self.nodes.len())
            .find(|&i| self.nodes[i].replica_ref().is_some_and(|r| r.is_leader()))
        else {
            return Ok(());
        };
        let others: Vec<NodeId> = self
            .ids()
            .into_iter()
            .filter(|&n| n != self.nodes[i].id)
            .collect();
        let to = others[self.rng.random_range(0..others.len())];
        self.transfer(i, to)
    }

    /// Node `i`, if it leads, hands leadership to `to`.
    pub fn transfer(&mut self, i: usize, to: NodeId) -> Result<(), Violation> {
        let id = self.nodes[i].id;
        let Some(replica) = self.nodes[i].replica() else {
            return Ok(());
        };
        if replica.transfer_leadership(to).is_ok() {
            self.event(Event::Transfer { node: id, to });
        }
        self.drain(i)
    }

    pub fn compact(&mut self, i: usize) -> Result<(), Violation> {
        let applied = self.nodes[i].app.applied();
        if !self.nodes[i].is_up() || applied == 0 {
            return Ok(());
        }
        let up_to = self.rng.random_range(applied.div_ceil(2)..=applied);
        let data = self.nodes[i].app.snapshot(up_to);
        let id = self.nodes[i].id;
        let replica = self.nodes[i].replica().expect("checked up");
        replica
            .compact(up_to, data)
            .map_err(|e| format!("node {id}: compact failed: {e}"))?;
        self.stats.compactions += 1;
        self.event(Event::Compact {
            node: id,
            slot: up_to,
        });
        self.drain(i)
    }
}
