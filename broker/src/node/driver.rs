//! The replica driver: the one place that executes `Ready`s — persist (one synced write for
//! every group), then send, then apply — for the metadata group and every local partition.

use super::Command;
use super::group::{Effect, Group, Kind, PartitionState, producer_key};
use super::view::{GroupStatus, View};
use crate::config::NodeId;
use crate::error::Fatal;
use crate::metadata::{METADATA_GROUP, MetaCommand, MetadataState, PartitionInfo, TopicSettings};
use crate::metrics::{GroupProgress, NodeMetrics, PartitionLabels};
use crate::partition::codec::PartitionCommand;
use crate::partition::producers::{ProducerState, ProducerTable};
use crate::partition::snapshot::PartitionSnapshot;
use crate::storage::{Db, GroupCommit, GroupStore, IndexEntry, KvSpace};
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
    /// Ticks between two retention checks of a partition this node leads.
    pub retention_check_ticks: u64,
    /// Where the driver reports commits, leaders and offsets.
    pub metrics: Arc<NodeMetrics>,
    /// The harness's planted consensus bug (`PAXLOG_PLANTED_BUG=skip-recovery`); see
    /// `ReplicaConfig::planted_skip_recovery`. Off unless that variable says so.
    pub planted_skip_recovery: bool,
}

impl DriverConfig {
    /// Defaults for a node: 10 ms ticks.
    pub fn new(node: NodeId, members: Vec<NodeId>) -> Self {
        Self {
            node,
            members,
            tick: Duration::from_millis(10),
            retention_check_ticks: 100,
            metrics: Arc::new(NodeMetrics::unregistered()),
            planted_skip_recovery: crate::planted::is(crate::planted::Bug::SkipRecovery),
        }
    }

    /// The replica configuration of `group`. The preferred leader times out first, so it
    /// usually wins the first election and leadership spreads as placement intends.
    fn replica(&self, group: u64, voters: Vec<NodeId>, preferred: NodeId) -> ReplicaConfig {
        let fast = preferred == self.node;
        ReplicaConfig {
            id: self.node,
            voters,
            heartbeat_ticks: 5,
            // 6 heartbeats missed at least; the preferred leader's range ends before the
            // others' begins, so it usually wins.
            election_ticks_min: if fast { 15 } else { 30 },
            election_ticks_max: if fast { 30 } else { 60 },
            retransmit_ticks: 10,
            max_inflight: 1024,
            max_batch_entries: 256,
            seed: self.node.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ group,
            repairing: false,
            planted_skip_recovery: self.planted_skip_recovery,
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
    ticks: u64,
    /// Waiting for this node to lead nothing (see [`Command::HandOff`]).
    handing_off: Option<tokio::sync::oneshot::Sender<()>>,
    /// Transfers asked for by ElectLeader: group, target, who waits.
    transfers: Vec<(u64, u64, Transferred)>,
}

/// Where an ElectLeader transfer's outcome goes.
type Transferred = tokio::sync::oneshot::Sender<Result<(), super::ProposeFailure>>;

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
        // Every broker holds the metadata and serves it to everyone: damaged metadata stops
        // the node (a partition's damaged replica only takes itself out, see below).
        db.verify_group(METADATA_GROUP).map_err(|e| {
            fatal(
                "checking the metadata group (the node stops: restore this data directory or replace the node)",
                e,
            )
        })?;
        let mut meta = MetadataState::new(cfg.members.clone());
        let init = meta_store
            .initial_state()
            .map_err(|e| fatal("reading metadata", e))?;
        for (slot, entry) in meta_store
            .entries(1, init.decided)
            .map_err(|e| fatal("reading metadata", e))?
        {
            if let Value::Data(bytes) = entry.value {
                let cmd = MetaCommand::decode(&bytes).map_err(|e| fatal("decoding metadata", e))?;
                meta.apply(slot, cmd);
            }
        }
        let preferred = cfg.members.iter().copied().min().unwrap_or(cfg.node);
        let meta_replica = Replica::new(
            cfg.replica(METADATA_GROUP, cfg.members.clone(), preferred),
            meta_store,
        )
        .map_err(|e| fatal("starting the metadata replica", e))?;
        let hosted: Vec<_> = meta
            .hosted_by(cfg.node)
            .into_iter()
            .map(|p| {
                let (topic, settings) = settings_of(&meta, p.group);
                (p, topic, settings)
            })
            .collect();
        let view = Arc::new(View::new(meta.clone()));
        let mut driver = Driver {
            cfg,
            db,
            hub,
            view: view.clone(),
            groups: BTreeMap::new(),
            inbound,
            commands,
            ticks: 0,
            handing_off: None,
            transfers: Vec::new(),
        };
        let mut meta_group = Group::new(METADATA_GROUP, meta_replica, Kind::Meta(meta));
        meta_group.obs = driver.cfg.metrics.replica(
            driver.cfg.node,
            METADATA_GROUP,
            PartitionLabels::metadata(),
        );
        driver.groups.insert(METADATA_GROUP, meta_group);
        for (p, topic, settings) in hosted {
            driver.open_partition(&p, &topic, settings)?;
        }
        driver.publish_all();
        Ok((driver, view))
    }

    /// Opens a local partition replica: checks every stored batch's CRC first; a replica
    /// whose data is corrupt is wiped and rejoins without a vote until it has caught up.
    fn open_partition(
        &mut self,
        p: &PartitionInfo,
        topic: &str,
        settings: TopicSettings,
    ) -> Result<(), Fatal> {
        let store = GroupStore::new(self.db.clone(), p.group);
        let report = self.db.verify_group(p.group);
        if let Err(e) = &report {
            // Never serve or vote with bad data. Rejoining empty without a vote is not yet
            // safe (the consensus simulation breaks Config::repairing), so the replica is
            // taken out of service and the data kept for inspection; the partition's other
            // replicas go on serving it.
            let why = format!("corrupt data found: {e}");
            tracing::error!(node = self.cfg.node, partition = p.group, error = %e,
                "corrupt data found: this replica is out of service (not serving, not voting); the other replicas keep serving the partition; \
                 its other partitions are unaffected; repairing a replica in place comes with membership changes");
            self.view.update_group(p.group, |_| {
                Some(GroupStatus {
                    leader: None,
                    decided: 0,
                    high_watermark: watch::channel(0).1,
                    log_start: 0,
                    stopped: Some(why),
                    ready: false,
                })
            });
            return Ok(());
        }
        let init = store
            .initial_state()
            .map_err(|e| fatal("reading a partition", e))?;
        // Offsets: continue from the last indexed batch, re-indexing decided slots after it.
        let (mut next_offset, mut from_slot) = match self
            .db
            .last_indexed(p.group)
            .map_err(|e| fatal("reading the offset index", e))?
        {
            Some(last) => (last.end_offset(), last.slot + 1),
            None => (0, 1),
        };
        let mut producers = ProducerTable::new();
        for (key, value) in self
            .db
            .scan_prefix(KvSpace::Producers, &p.group.to_be_bytes())
            .map_err(|e| fatal("reading producer state", e))?
        {
            let id = key
                .get(8..16)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| fatal("reading producer state", "a key is not group | id"))?;
            let state =
                ProducerState::decode(&value).map_err(|e| fatal("decoding producer state", e))?;
            producers.insert(id, state);
        }
        let mut groups = BTreeMap::new();
        for (key, value) in self
            .db
            .scan_prefix(KvSpace::ConsumerOffsets, &p.group.to_be_bytes())
            .map_err(|e| fatal("reading consumer groups", e))?
        {
            let name = String::from_utf8_lossy(key.get(8..).unwrap_or_default()).into_owned();
            let record = crate::groups::GroupRecord::decode(&value)
                .map_err(|e| fatal("decoding a consumer group", e))?;
            groups.insert(name, record);
        }
        // Re-apply what the index missed: offsets, producer state (a monotone merge, so
        // batches folded in before the crash change nothing) and group operations (each
        // record skips slots it already applied).
        let mut index = GroupCommit::new();
        for (slot, entry) in store
            .entries(from_slot, init.decided)
            .map_err(|e| fatal("reading a partition", e))?
        {
            let command = match entry.value {
                Value::Data(bytes) => Some(
                    PartitionCommand::decode_bytes(bytes)
                        .map_err(|e| fatal("decoding a stored batch", e))?,
                ),
                Value::Noop => None,
            };
            if let Some(PartitionCommand::Group(op)) = &command {
                let op = crate::groups::GroupOp::decode(op)
                    .map_err(|e| fatal("decoding a group operation", e))?;
                super::group::apply_group_op(p.group, &mut groups, slot, &op, &mut index);
            }
            if let Some(PartitionCommand::Append(batch)) = command {
                let count = batch.records.len() as u32;
                index.index(p.group, next_offset, slot, count);
                if let Some(seq) = batch.producer {
                    let meta = crate::partition::producers::BatchMeta {
                        base_sequence: seq.base_sequence,
                        count,
                        base_offset: next_offset,
                    };
                    let state = producers.entry(seq.producer_id).or_default();
                    if state.record(seq.epoch, meta) {
                        index.put(
                            KvSpace::Producers,
                            producer_key(p.group, seq.producer_id),
                            &state.encode(),
                        );
                    }
                }
                next_offset += count as u64;
            }
            from_slot = slot + 1;
        }
        let _ = from_slot;
        self.db
            .commit(index, false)
            .map_err(|e| fatal("rebuilding the offset index", e))?;
        let preferred = p.replicas.first().copied().unwrap_or(self.cfg.node);
        let config = self.cfg.replica(p.group, p.replicas.clone(), preferred);
        let replica =
            Replica::new(config, store).map_err(|e| fatal("starting a partition replica", e))?;
        let log_bytes = report.map_or(0, |r| r.bytes);
        let log_start = self
            .db
            .log_start_offset(p.group)
            .map_err(|e| fatal("reading a partition's log start", e))?;
        let mut state =
            PartitionState::new((log_start, next_offset), producers, log_bytes, settings);
        state.groups = groups;
        let mut group = Group::new(p.group, replica, Kind::Partition(state));
        let labels = PartitionLabels {
            topic: topic.to_owned(),
            partition: p.index,
        };
        group.obs = self.cfg.metrics.replica(self.cfg.node, p.group, labels);
        self.groups.insert(p.group, group);
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
        let Some(g) = self.groups.get_mut(&m.group) else {
            return;
        };
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
            Command::Propose {
                group,
                payload,
                idempotent,
                reply,
            } => {
                let epoch = idempotent.and_then(|batch| {
                    self.metadata()
                        .and_then(|m| m.producer_epoch(batch.seq.producer_id))
                });
                match self.groups.get_mut(&group) {
                    Some(g) => g.propose(payload, idempotent.map(|b| (b, epoch)), reply),
                    None => {
                        let _ = reply.send(Err(super::ProposeFailure::NotHosted));
                    }
                }
            }
            Command::Transfer { group, to, reply } => {
                let Some(g) = self.groups.get_mut(&group).filter(|g| g.stopped.is_none()) else {
                    let _ = reply.send(Err(super::ProposeFailure::NotHosted));
                    return;
                };
                if g.replica.leader() == Some(to) {
                    let _ = reply.send(Ok(()));
                    return;
                }
                match g.replica.transfer_leadership(to) {
                    Ok(()) => self.transfers.push((group, to, reply)),
                    Err(paxlog_consensus::TransferError::NotLeader) => {
                        let leader = g.replica.leader();
                        let _ = reply.send(Err(super::ProposeFailure::NotLeader { leader }));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(super::ProposeFailure::Stopped(e.to_string())));
                    }
                }
            }
            Command::HandOff { reply } => {
                self.handing_off = Some(reply);
                self.hand_off_all();
            }
        }
    }

    /// Asks every replica this node leads to hand leadership to the peer that reported
    /// the highest decided index (the one with least to catch up); answers the pending
    /// [`Command::HandOff`] once nothing is led here. Called again each tick: a transfer
    /// that gave up (target unreachable) is tried again, maybe with another target.
    fn hand_off_all(&mut self) {
        if self.handing_off.is_none() {
            return;
        }
        let mut leading = 0;
        for g in self.groups.values_mut().filter(|g| g.stopped.is_none()) {
            if !g.replica.is_leader() {
                continue;
            }
            leading += 1;
            let best = g
                .replica
                .followers()
                .max_by_key(|(id, decided)| (*decided, std::cmp::Reverse(*id)))
                .map(|(id, _)| id);
            if let Some(to) = best
                && g.replica.transferring_to().is_none()
            {
                match g.replica.transfer_leadership(to) {
                    Ok(()) => {
                        tracing::info!(
                            node = self.cfg.node,
                            partition = g.id,
                            to,
                            "handing leadership over"
                        )
                    }
                    Err(e) => {
                        tracing::warn!(node = self.cfg.node, partition = g.id, to, error = %e, "cannot hand leadership over")
                    }
                }
            }
        }
        if leading == 0
            && let Some(reply) = self.handing_off.take()
        {
            let _ = reply.send(());
        }
    }

    /// The applied cluster metadata.
    fn metadata(&self) -> Option<&MetadataState> {
        match self.groups.get(&METADATA_GROUP).map(|g| &g.kind) {
            Some(Kind::Meta(meta)) => Some(meta),
            _ => None,
        }
    }

    fn tick_all(&mut self) {
        self.ticks += 1;
        let check_retention = self
            .ticks
            .is_multiple_of(self.cfg.retention_check_ticks.max(1));
        let mut failed = Vec::new();
        for g in self.groups.values_mut().filter(|g| g.stopped.is_none()) {
            if let Err(e) = g.replica.tick() {
                failed.push((g.id, e.to_string()));
                continue;
            }
            g.propose_barrier_if_needed();
            if check_retention && let Err(e) = self::retention_check(&self.db, g) {
                failed.push((g.id, e.to_string()));
            }
        }
        for (id, why) in failed {
            self.stop_group(id, why);
        }
        self.hand_off_all();
        self.settle_transfers();
    }

    /// Answers the ElectLeader transfers that ended: the target leads, or this node leads
    /// on because the hand-over gave up (the target never caught up).
    fn settle_transfers(&mut self) {
        for (group, to, reply) in std::mem::take(&mut self.transfers) {
            let outcome = match self.groups.get(&group) {
                None => Some(Err(super::ProposeFailure::NotHosted)),
                Some(g) if g.stopped.is_some() => Some(Err(super::ProposeFailure::Stopped(
                    g.stopped.clone().unwrap_or_default(),
                ))),
                Some(g) if g.replica.leader() == Some(to) => Some(Ok(())),
                Some(g) if g.replica.is_leader() && g.replica.transferring_to().is_none() => {
                    Some(Err(super::ProposeFailure::HandOverGaveUp(to)))
                }
                Some(_) => None,
            };
            match outcome {
                Some(outcome) => {
                    let _ = reply.send(outcome);
                }
                None if !reply.is_closed() => self.transfers.push((group, to, reply)),
                None => {} // the caller stopped waiting
            }
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
            // 0. A leader's Accepts go out before its own fsync (safe: see
            //    `MessageBody::may_precede_persist`), so the followers' fsyncs overlap it.
            let mut readies = readies;
            for (id, r) in &mut readies {
                for m in r.take_early_messages() {
                    self.hub.send(*id, m);
                }
            }
            // 1. Persist: one synced write for every group's changes.
            let mut commit = GroupCommit::new();
            let mut installs = Vec::new();
            let mut failed = Vec::new();
            for (id, r) in &mut readies {
                if let Some(snapshot) = &r.persist.snapshot {
                    // A partition snapshot: the log then starts after it (a replica that
                    // installs one may hold nothing it covers); one a peer sent also brings
                    // the producer state, persisted with it.
                    match snapshot_of(*id, &snapshot.data) {
                        Ok(state) => {
                            let marker = IndexEntry {
                                base_offset: state.next_offset,
                                slot: snapshot.slot,
                                count: 0,
                            };
                            commit.trim_marker(*id, marker);
                            if r.snapshot.is_some() {
                                for (producer, p) in &state.producers {
                                    commit.put(
                                        KvSpace::Producers,
                                        producer_key(*id, *producer),
                                        &p.encode(),
                                    );
                                }
                                installs.push((*id, state));
                            }
                        }
                        Err(why) => {
                            failed.push((*id, why));
                            continue;
                        }
                    }
                }
                if !r.persist.is_empty() {
                    commit.persist(*id, std::mem::take(&mut r.persist));
                }
            }
            readies.retain(|(id, _)| !failed.iter().any(|(f, _)| f == id));
            if !commit.is_empty() {
                let db = self.db.clone();
                let started = std::time::Instant::now();
                let stats = tokio::task::spawn_blocking(move || db.commit(commit, true))
                    .await
                    .map_err(|e| fatal("group commit task", e))?
                    .map_err(|e| fatal("group commit", e))?;
                self.cfg
                    .metrics
                    .commit(started.elapsed().as_secs_f64(), stats.groups, stats.bytes);
            }
            // 2. Send, 3. apply; outcomes are answered once the offset index is written.
            let mut index = GroupCommit::new();
            let mut effects = Vec::new();
            let mut answers = Vec::new();
            for (id, ready) in readies {
                let Some(g) = self.groups.get_mut(&id) else {
                    continue;
                };
                let _span = g.obs.span().clone().entered();
                if let Err(e) = g.replica.persisted(ready.number) {
                    failed.push((id, e.to_string()));
                    continue;
                }
                for m in ready.messages {
                    self.hub.send(id, m);
                }
                if let Some(change) = ready.leader {
                    g.obs.leader_change(&change);
                    tracing::info!(node = self.cfg.node, partition = id, ballot = %change.ballot,
                        leader = ?change.leader, "leadership changed");
                    g.on_leader_change(change.is_self);
                }
                if ready.snapshot.is_some()
                    && let Some(pos) = installs.iter().position(|(g, _)| *g == id)
                {
                    let (_, state) = installs.swap_remove(pos);
                    tracing::info!(
                        node = self.cfg.node,
                        partition = id,
                        next_offset = state.next_offset,
                        "snapshot installed from the leader"
                    );
                    g.install_snapshot(&state);
                }
                g.propose_barrier_if_needed();
                if let (Some(first), Some(last)) = (ready.decided.first(), ready.decided.last()) {
                    tracing::debug!(
                        node = self.cfg.node,
                        partition = id,
                        first = first.0,
                        last = last.0,
                        snapshot = ready.snapshot.is_some(),
                        "applying decided slots"
                    );
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
                self.db
                    .commit(index, false)
                    .map_err(|e| fatal("writing the offset index", e))?;
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

    /// Opens replicas of new local partitions, closes those of deleted topics, trims
    /// partitions.
    fn apply_effects(&mut self, effects: Vec<Effect>) -> Result<(), Fatal> {
        if effects.is_empty() {
            return Ok(());
        }
        let mut metadata_changed = false;
        for effect in effects {
            match effect {
                Effect::Trim {
                    group,
                    up_to_offset,
                } => self.trim(group, up_to_offset),
                Effect::Created(topic) => {
                    metadata_changed = true;
                    let node = self.cfg.node;
                    let settings = topic.settings();
                    for p in topic
                        .partitions
                        .iter()
                        .filter(|p| p.replicas.contains(&node))
                    {
                        if !self.groups.contains_key(&p.group) {
                            self.open_partition(p, &topic.name, settings)?;
                        }
                    }
                }
                Effect::Deleted(topic) => {
                    metadata_changed = true;
                    let node = self.cfg.node;
                    for p in topic
                        .partitions
                        .iter()
                        .filter(|p| p.replicas.contains(&node))
                    {
                        if let Some(mut g) = self.groups.remove(&p.group) {
                            g.fail_all("the topic was deleted");
                            g.obs.remove();
                        }
                        // Also a replica taken out of service: its data goes with the topic.
                        self.view.remove_group(p.group);
                        self.db
                            .wipe_group(p.group)
                            .map_err(|e| fatal("deleting a topic's data", e))?;
                    }
                }
            }
        }
        if metadata_changed && let Some(meta) = self.metadata() {
            self.view.set_metadata(meta.clone());
        }
        Ok(())
    }

    /// Carries out a decided retention trim: compacts the replica to the last batch wholly
    /// below `up_to_offset`; the snapshot's persist deletes the log and index up to it.
    fn trim(&mut self, group: u64, up_to_offset: u64) {
        let Some(g) = self.groups.get_mut(&group) else {
            return;
        };
        let Kind::Partition(p) = &mut g.kind else {
            return;
        };
        let cut = match self.db.trim_cut(group, up_to_offset) {
            Ok(Some(cut)) => cut,
            Ok(None) => return,
            Err(e) => {
                self.stop_group(group, format!("planning a retention trim: {e}"));
                return;
            }
        };
        let snapshot = PartitionSnapshot {
            next_offset: cut.last.end_offset(),
            producers: p.producers.clone(),
        };
        p.log_bytes = p.log_bytes.saturating_sub(cut.bytes);
        p.log_start = cut.last.end_offset();
        if let Err(e) = g.replica.compact(cut.last.slot, snapshot.encode()) {
            self.stop_group(group, format!("compacting after a retention trim: {e}"));
            return;
        }
        tracing::info!(
            node = self.cfg.node,
            partition = group,
            slot = cut.last.slot,
            log_start_offset = cut.last.end_offset(),
            bytes = cut.bytes,
            "retention trimmed the partition"
        );
    }

    /// Publishes every group's leader, decided index and high watermark (metadata changes
    /// other than topics, such as producer ids, are published here too).
    fn publish_all(&mut self) {
        if let Some(meta) = self.metadata()
            && meta.applied != *self.view.metadata_updates().borrow()
        {
            self.view.set_metadata(meta.clone());
        }
        for g in self.groups.values_mut() {
            let hwm = g.high_watermark();
            g.hwm.send_if_modified(|v| {
                let changed = *v != hwm;
                *v = hwm;
                changed
            });
            let status = g.replica.status();
            let rx = g.hwm.subscribe();
            let log_start = g.log_start();
            let ready = g.ready();
            let stopped = g.stopped.clone();
            let progress = GroupProgress {
                high_watermark: hwm,
                log_start,
                in_flight: g.in_flight(),
            };
            g.obs.observe(&status, progress, g.replica.followers());
            self.view.update_group(g.id, move |old| match old {
                Some(s)
                    if s.leader == status.leader
                        && s.decided == status.decided
                        && s.log_start == log_start
                        && s.ready == ready
                        && s.stopped == stopped =>
                {
                    None
                }
                _ => Some(GroupStatus {
                    leader: status.leader,
                    decided: status.decided,
                    high_watermark: rx,
                    log_start,
                    stopped,
                    ready,
                }),
            });
        }
    }
}

/// The name and settings of the topic partition `group` belongs to.
fn settings_of(meta: &MetadataState, group: u64) -> (String, TopicSettings) {
    meta.topics()
        .find(|t| t.partitions.iter().any(|p| p.group == group))
        .map(|t| (t.name.clone(), t.settings()))
        .unwrap_or_default()
}

/// Decodes the snapshot of partition `group`; the metadata group never compacts.
fn snapshot_of(group: u64, data: &[u8]) -> Result<PartitionSnapshot, String> {
    if group == METADATA_GROUP {
        return Err("the metadata group got a snapshot, which this build never takes".into());
    }
    PartitionSnapshot::decode(data).map_err(|e| format!("unreadable partition snapshot: {e}"))
}

/// The leader's retention check of one partition: proposes a trim when front batches are
/// past the topic's limits (see [`crate::partition::retention`]).
fn retention_check(db: &Db, g: &mut Group) -> Result<(), crate::storage::StorageError> {
    let Kind::Partition(p) = &g.kind else {
        return Ok(());
    };
    let leading = g.replica.leader() == Some(g.replica.id());
    if !leading
        || p.barrier != super::group::Barrier::Open
        || p.trim_in_flight.is_some()
        || p.settings.retains_forever()
    {
        return Ok(());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let Some(up_to_offset) = db.retention_cut(g.id, p.log_bytes, now, &p.settings)? else {
        return Ok(());
    };
    let slot = g.propose_internal(&PartitionCommand::Trim { up_to_offset });
    if let Kind::Partition(p) = &mut g.kind {
        p.trim_in_flight = slot;
    }
    Ok(())
}
