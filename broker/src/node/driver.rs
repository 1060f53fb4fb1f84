//! The replica driver: the one place that executes `Ready`s — persist (one synced write for
//! every group), then send, then apply — for the metadata group and every local partition.

use super::group::{Group, Kind, MetaEffect};
use super::view::{GroupStatus, View};
use super::Command;
use crate::config::NodeId;
use crate::error::Fatal;
use crate::metadata::{METADATA_GROUP, MetaCommand, MetadataState, PartitionInfo};
use crate::partition::codec::PartitionCommand;
use crate::storage::{Db, GroupCommit, GroupStore};
use crate::transport::{Inbound, PeerHub};
use paxlog_consensus::{Config as ReplicaConfig, Replica, Storage as _, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Timing and identity of the driver.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// This node.
    pub node: NodeId,
    /// Every broker of the cluster (the metadata group's voters).
    pub members: Vec<NodeId>,
    /// Length of one consensus tick.
    pub tick: Duration,
}

impl DriverConfig {
    /// Defaults for a node: 10 ms ticks.
    pub fn new(node: NodeId, members: Vec<NodeId>) -> Self {
        Self { node, members, tick: Duration::from_millis(10) }
    }

    /// The replica configuration of `group`. The preferred leader times out first, so it
    /// usually wins the first election and leadership spreads as placement intends.
    fn replica(&self, group: u64, voters: Vec<NodeId>, preferred: NodeId, repairing: bool) -> ReplicaConfig {
        let fast = preferred == self.node;
        ReplicaConfig {
            id: self.node,
            voters,
            heartbeat_ticks: 5,
            election_ticks_min: if fast { 15 } else { 40 },
            election_ticks_max: if fast { 30 } else { 80 },
            retransmit_ticks: 10,
            max_inflight: 1024,
            max_batch_entries: 256,
            seed: self.node.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ group,
            repairing,
        }
    }
}

/// Executes every local group's `Ready`s. Owns all replicas; services talk to it through
/// [`super::DriverHandle`] and read its published state from [`View`].
#[derive(Debug)]
pub struct Driver {
    cfg: DriverConfig,
    db: Arc<Db>,
    hub: Arc<PeerHub>,
    view: Arc<View>,
    groups: BTreeMap<u64, Group>,
    inbound: mpsc::Receiver<Inbound>,
    commands: mpsc::Receiver<Command>,
}

fn fatal(action: &'static str, e: impl std::fmt::Display) -> Fatal {
    Fatal::Replication(format!("{action}: {e}"))
}

impl Driver {
    /// Recovers the metadata group and every local partition from storage. Blocking: call
    /// from `spawn_blocking`.
    pub fn open(
        cfg: DriverConfig,
        db: Arc<Db>,
        hub: Arc<PeerHub>,
        inbound: mpsc::Receiver<Inbound>,
        commands: mpsc::Receiver<Command>,
    ) -> Result<(Driver, Arc<View>), Fatal> {
        let meta_store = GroupStore::new(db.clone(), METADATA_GROUP);
        let mut meta = MetadataState::new(cfg.members.clone());
        let init = meta_store.initial_state().map_err(|e| fatal("reading metadata", e))?;
        for (slot, entry) in meta_store.entries(1, init.decided).map_err(|e| fatal("reading metadata", e))? {
            if let Value::Data(bytes) = entry.value {
                let cmd = MetaCommand::decode(&bytes).map_err(|e| fatal("decoding metadata", e))?;
                meta.apply(slot, cmd);
            }
        }
        let preferred = cfg.members.iter().copied().min().unwrap_or(cfg.node);
        let meta_replica = Replica::new(cfg.replica(METADATA_GROUP, cfg.members.clone(), preferred, false), meta_store)
            .map_err(|e| fatal("starting the metadata replica", e))?;
        let hosted = meta.hosted_by(cfg.node);
        let view = Arc::new(View::new(meta.clone()));
        let mut driver = Driver { cfg, db, hub, view: view.clone(), groups: BTreeMap::new(), inbound, commands };
        driver.groups.insert(METADATA_GROUP, Group::new(METADATA_GROUP, meta_replica, Kind::Meta(meta)));
        for p in hosted {
            driver.open_partition(&p)?;
        }
        driver.publish_all();
        Ok((driver, view))
    }

    /// Opens a local partition replica: checks every stored batch's CRC first; a replica
    /// whose data is corrupt is wiped and rejoins without a vote until it has caught up.
    fn open_partition(&mut self, p: &PartitionInfo) -> Result<(), Fatal> {
        let store = GroupStore::new(self.db.clone(), p.group);
        let repairing = match self.db.verify_group(p.group) {
            Ok(_) => false,
            Err(e) => {
                tracing::error!(node = self.cfg.node, partition = p.group, error = %e,
                    "corrupt partition data: wiping this replica; it rejoins without a vote and catches up from its peers");
                self.db.wipe_group(p.group).map_err(|e| fatal("wiping a corrupt partition", e))?;
                true
            }
        };
        let init = store.initial_state().map_err(|e| fatal("reading a partition", e))?;
        // Offsets: continue from the last indexed batch, re-indexing decided slots after it.
        let (mut next_offset, mut from_slot) = match self.db.last_indexed(p.group).map_err(|e| fatal("reading the offset index", e))? {
            Some(last) => (last.end_offset(), last.slot + 1),
            None => (0, 1),
        };
        let mut index = GroupCommit::new();
        for (slot, entry) in store.entries(from_slot, init.decided).map_err(|e| fatal("reading a partition", e))? {
            if let Value::Data(bytes) = entry.value {
                let PartitionCommand::Append(batch) = PartitionCommand::decode_bytes(bytes)
                    .map_err(|e| fatal("decoding a stored batch", e))?;
                let count = batch.records.len() as u32;
                index.index(p.group, next_offset, slot, count);
                next_offset += count as u64;
            }
            from_slot = slot + 1;
        }
        let _ = from_slot;
        self.db.commit(index, false).map_err(|e| fatal("rebuilding the offset index", e))?;
        let preferred = p.replicas.first().copied().unwrap_or(self.cfg.node);
        let config = self.cfg.replica(p.group, p.replicas.clone(), preferred, repairing);
        let replica = Replica::new(config, store).map_err(|e| fatal("starting a partition replica", e))?;
        self.groups.insert(p.group, Group::new(p.group, replica, Kind::Partition { next_offset }));
        Ok(())
    }

    /// Runs until `shutdown` turns true, or a fatal storage error.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), Fatal> {
        let mut ticker = tokio::time::interval(self.cfg.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => return Ok(()),
                Some(m) = self.inbound.recv() => self.on_inbound(m),
                Some(c) = self.commands.recv() => self.on_command(c),
                _ = ticker.tick() => self.tick_all(),
            }
            // Take everything already queued, so one fsync covers it all (group commit).
            while let Ok(m) = self.inbound.try_recv() {
                self.on_inbound(m);
            }
            while let Ok(c) = self.commands.try_recv() {
                self.on_command(c);
            }
            self.flush().await?;
        }
    }

    fn on_inbound(&mut self, m: Inbound) {
        let Some(g) = self.groups.get_mut(&m.group) else { return };
        if g.stopped.is_some() {
            return;
        }
        if let Err(e) = g.replica.step(m.message) {
            let id = g.id;
            self.stop_group(id, e.to_string());
        }
    }

    fn on_command(&mut self, c: Command) {
        match c {
            Command::Propose { group, payload, reply } => match self.groups.get_mut(&group) {
                Some(g) => g.propose(payload, reply),
                None => {
                    let _ = reply.send(Err(super::ProposeFailure::NotHosted));
                }
            },
        }
    }

    fn tick_all(&mut self) {
        let mut failed = Vec::new();
        for g in self.groups.values_mut().filter(|g| g.stopped.is_none()) {
            if let Err(e) = g.replica.tick() {
                failed.push((g.id, e.to_string()));
            }
        }
        for (id, why) in failed {
            self.stop_group(id, why);
        }
    }

    fn stop_group(&mut self, id: u64, why: String) {
        tracing::error!(node = self.cfg.node, partition = id, reason = %why, "replica stopped; this broker no longer serves the partition");
        if let Some(g) = self.groups.get_mut(&id) {
            g.stopped = Some(why.clone());
            g.fail_all(&why);
        }
        self.view.update_group(id, |s| {
            let mut s = s?.clone();
            s.stopped = Some(why);
            Some(s)
        });
    }

    /// Executes the `Ready`s of every group, in rounds until none has more.
    async fn flush(&mut self) -> Result<(), Fatal> {
        for _ in 0..8 {
            let readies: Vec<_> = self
                .groups
                .values_mut()
                .filter(|g| g.stopped.is_none() && g.replica.has_ready())
                .map(|g| (g.id, g.replica.ready()))
                .collect();
            if readies.is_empty() {
                return Ok(());
            }
            // 1. Persist: one synced write for every group's changes.
            let mut readies = readies;
            let mut commit = GroupCommit::new();
            for (id, r) in &mut readies {
                if !r.persist.is_empty() {
                    commit.persist(*id, std::mem::take(&mut r.persist));
                }
            }
            if !commit.is_empty() {
                let db = self.db.clone();
                tokio::task::spawn_blocking(move || db.commit(commit, true))
                    .await
                    .map_err(|e| fatal("group commit task", e))?
                    .map_err(|e| fatal("group commit", e))?;
            }
            // 2. Send, 3. apply; outcomes are answered once the offset index is written.
            let mut index = GroupCommit::new();
            let mut effects = Vec::new();
            let mut answers = Vec::new();
            let mut failed = Vec::new();
            for (id, ready) in readies {
                let Some(g) = self.groups.get_mut(&id) else { continue };
                if let Err(e) = g.replica.persisted(ready.number) {
                    failed.push((id, e.to_string()));
                    continue;
                }
                for m in ready.messages {
                    self.hub.send(id, m);
                }
                if let Some(change) = ready.leader {
                    tracing::info!(node = self.cfg.node, partition = id, ballot = %change.ballot,
                        leader = ?change.leader, "leadership changed");
                }
                for (slot, value) in ready.decided {
                    match g.apply(slot, value, &mut index) {
                        Ok(Some(effect)) => effects.push(effect),
                        Ok(None) => {}
                        Err(why) => {
                            failed.push((id, why));
                            break;
                        }
                    }
                }
                answers.push((id, ready.outcomes));
            }
            if !index.is_empty() {
                // Not synced: the index is rebuilt from the log on restart.
                self.db.commit(index, false).map_err(|e| fatal("writing the offset index", e))?;
            }
            for (id, outcomes) in answers {
                if let Some(g) = self.groups.get_mut(&id) {
                    for o in outcomes {
                        g.answer(o);
                    }
                }
            }
            for (id, why) in failed {
                self.stop_group(id, why);
            }
            self.apply_effects(effects)?;
            self.publish_all();
        }
        Ok(())
    }

    /// Opens replicas of new local partitions, closes those of deleted topics.
    fn apply_effects(&mut self, effects: Vec<MetaEffect>) -> Result<(), Fatal> {
        if effects.is_empty() {
            return Ok(());
        }
        for effect in effects {
            match effect {
                MetaEffect::Created(topic) => {
                    let node = self.cfg.node;
                    for p in topic.partitions.iter().filter(|p| p.replicas.contains(&node)) {
                        if !self.groups.contains_key(&p.group) {
                            self.open_partition(p)?;
                        }
                    }
                }
                MetaEffect::Deleted(topic) => {
                    for p in &topic.partitions {
                        if let Some(mut g) = self.groups.remove(&p.group) {
                            g.fail_all("the topic was deleted");
                            self.view.remove_group(p.group);
                            self.db.wipe_group(p.group).map_err(|e| fatal("deleting a topic's data", e))?;
                        }
                    }
                }
            }
        }
        if let Some(Group { kind: Kind::Meta(meta), .. }) = self.groups.get(&METADATA_GROUP) {
            self.view.set_metadata(meta.clone());
        }
        Ok(())
    }

    /// Publishes every group's leader, decided index and high watermark.
    fn publish_all(&mut self) {
        for g in self.groups.values() {
            let hwm = g.high_watermark();
            g.hwm.send_if_modified(|v| {
                let changed = *v != hwm;
                *v = hwm;
                changed
            });
            let status = g.replica.status();
            let rx = g.hwm.subscribe();
            let log_start = self.db.log_start_offset(g.id).unwrap_or(0);
            let stopped = g.stopped.clone();
            self.view.update_group(g.id, move |old| match old {
                Some(s) if s.leader == status.leader && s.decided == status.decided && s.stopped == stopped => None,
                _ => Some(GroupStatus { leader: status.leader, decided: status.decided, high_watermark: rx, log_start, stopped }),
            });
        }
    }
}
