//! `paxlog.v1.Groups`: consumer group membership, assignment and committed offsets, at
//! the group's coordinator (see [`crate::groups`]).

use super::{ClientApi, DEFAULT_TIMEOUT, now_ms};
use crate::error::Error;
use crate::groups::{
    self, Committed, GroupError, GroupOp, GroupRecord, LiveGroup, OFFSETS_PARTITIONS,
    OFFSETS_TOPIC, Strategy, record_key,
};
use crate::metadata::{Applied, MetaCommand, PartitionInfo, Topic, TopicConfig};
use crate::node::{ProposeFailure, Proposed};
use crate::partition::codec::PartitionCommand;
use crate::security::{Action, Principal};
use crate::storage::KvSpace;
use paxlog_proto::v1::{self as pb, groups_server::Groups};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tonic::{Request, Response, Status};

/// Live membership of the groups this broker coordinates, one lock per group (held
/// across the proposal of a generation or a commit, so a group's changes are serial).
pub(super) type LiveGroups =
    std::sync::Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<Option<LiveGroup>>>>>;

/// A locked slot of [`LiveGroups`].
type LiveLock = tokio::sync::OwnedMutexGuard<Option<LiveGroup>>;

/// Offsets as a request carries them, as a group operation stores them.
fn committed(offsets: Vec<pb::OffsetCommit>, now: i64) -> Vec<(String, u32, Committed)> {
    offsets
        .into_iter()
        .map(|o| {
            let c = Committed {
                offset: o.offset,
                metadata: o.metadata,
                timestamp_ms: now,
            };
            (o.topic, o.partition, c)
        })
        .collect()
}

impl ClientApi {
    /// The internal offsets topic, created (through the metadata leader) on first use.
    async fn offsets_topic(&self) -> Result<Topic, Error> {
        if let Some(t) = self.inner.view.metadata().topic(OFFSETS_TOPIC) {
            return Ok(t.clone());
        }
        let brokers = self.inner.members.len() as u32;
        let config: TopicConfig = [("retention.ms".to_owned(), "-1".to_owned())].into();
        let cmd = MetaCommand::CreateTopic {
            name: OFFSETS_TOPIC.to_owned(),
            partitions: OFFSETS_PARTITIONS,
            replication: brokers.min(3),
            config,
        };
        match self.change_metadata(cmd, DEFAULT_TIMEOUT).await {
            Ok(Applied::Created(t)) => Ok(t),
            // Created meanwhile by another request.
            Ok(_) | Err(Error::Meta(crate::metadata::MetaError::TopicExists(_))) => self
                .inner
                .view
                .metadata()
                .topic(OFFSETS_TOPIC)
                .cloned()
                .ok_or_else(|| Error::UnknownTopic(OFFSETS_TOPIC.to_owned())),
            Err(e) => Err(e),
        }
    }

    /// The offsets partition of `group`, if this broker coordinates it (leads it and has
    /// applied everything before its leadership); else who does.
    async fn coordinate(&self, group: &str) -> Result<PartitionInfo, Error> {
        groups::validate_group_name(group)?;
        let topic = self.offsets_topic().await?;
        let index = groups::offsets_partition(group, topic.partitions.len() as u32);
        let p = self.partition(&topic, index)?;
        let status = self.inner.view.group(p.group);
        let leader = status.as_ref().and_then(|s| s.leader);
        match (
            leader == Some(self.inner.node),
            status.is_some_and(|s| s.ready),
        ) {
            (true, true) => Ok(p),
            (true, false) => Err(Error::Recovering),
            (false, _) => {
                // A broker that does not host the partition points at its preferred leader.
                let hint = leader.or_else(|| p.replicas.first().copied());
                let coordinator = hint
                    .filter(|id| *id != self.inner.node)
                    .and_then(|id| self.inner.members.get(&id).map(|a| (id, a.clone())));
                Err(Error::NotCoordinator { coordinator })
            }
        }
    }

    /// `group`'s replicated record as this replica applied it.
    /// Every group record of the offsets partition whose Paxos group is `partition_group`,
    /// with the group's name, as applied on this broker.
    pub(super) fn group_records(
        &self,
        partition_group: u64,
    ) -> Result<Vec<(String, GroupRecord)>, Error> {
        let stored = self
            .inner
            .db
            .scan_prefix(KvSpace::ConsumerOffsets, &partition_group.to_be_bytes())?;
        stored
            .into_iter()
            .map(|(key, value)| {
                let name = String::from_utf8_lossy(key.get(8..).unwrap_or_default()).into_owned();
                let record = GroupRecord::decode(&value)
                    .map_err(|e| Error::InvalidRequest(format!("stored group record: {e}")))?;
                Ok((name, record))
            })
            .collect()
    }

    fn group_record(&self, p: &PartitionInfo, group: &str) -> Result<Option<GroupRecord>, Error> {
        let Some(bytes) = self
            .inner
            .db
            .get(KvSpace::ConsumerOffsets, &record_key(p.group, group))?
        else {
            return Ok(None);
        };
        GroupRecord::decode(&bytes)
            .map(Some)
            .map_err(|e| Error::InvalidRequest(format!("stored group record: {e}")))
    }

    /// `group`'s live membership, locked: the lock is held across the proposals of one
    /// request, so a group's changes are serial. Returns the time of the request too.
    async fn lock_live(&self, group: &str) -> (LiveLock, i64) {
        let lock = {
            let mut all = self
                .inner
                .live_groups
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            all.entry(group.to_owned()).or_default().clone()
        };
        (lock.lock_owned().await, now_ms())
    }

    /// The live membership in `slot`, (re)loaded from the record when this broker has none
    /// or an older one (another coordinator moved the group on meanwhile).
    fn load_live<'a>(
        &self,
        slot: &'a mut Option<LiveGroup>,
        p: &PartitionInfo,
        group: &str,
        now: i64,
    ) -> Result<&'a mut LiveGroup, Error> {
        let record = self.group_record(p, group)?.unwrap_or_default();
        if slot
            .as_ref()
            .is_none_or(|live| live.generation < record.generation)
        {
            return Ok(slot.insert(LiveGroup::from_record(group, &record, now)));
        }
        Ok(slot.get_or_insert_with(|| LiveGroup::from_record(group, &record, now)))
    }

    /// Checks that every offset names an existing partition and carries at most 4 KiB of
    /// metadata.
    fn check_offsets(&self, offsets: &[pb::OffsetCommit]) -> Result<(), Error> {
        let meta = self.inner.view.metadata();
        for o in offsets {
            if o.metadata.len() > 4096 {
                let why = format!(
                    "metadata of {}/{} is {} bytes; at most 4096",
                    o.topic,
                    o.partition,
                    o.metadata.len()
                );
                return Err(Error::Group(GroupError::Invalid(why)));
            }
            let topic = meta
                .topic(&o.topic)
                .ok_or_else(|| Error::UnknownTopic(o.topic.clone()))?;
            self.partition(topic, o.partition)?;
        }
        Ok(())
    }

    /// Proposes a group operation in offsets partition `p` and waits until it is applied.
    async fn write_group_op(&self, p: &PartitionInfo, op: &GroupOp) -> Result<(), Error> {
        let payload = PartitionCommand::Group(op.encode()).encode();
        let propose = self.inner.driver.propose(p.group, payload);
        match tokio::time::timeout(DEFAULT_TIMEOUT, propose).await {
            Err(_) => Err(Error::Timeout(DEFAULT_TIMEOUT.as_millis() as u64)),
            Ok(Ok(Proposed::Done)) => Ok(()),
            Ok(Ok(_)) => Err(Error::InvalidRequest("not a group result".into())),
            Ok(Err(ProposeFailure::NotLeader { leader })) => {
                let coordinator =
                    leader.and_then(|id| self.inner.members.get(&id).map(|a| (id, a.clone())));
                Err(Error::NotCoordinator { coordinator })
            }
            Ok(Err(e)) => Err(self.propose_error(e)),
        }
    }

    /// Expires silent members and, if membership changed or partitions taken from their
    /// owners can be handed over, writes the next generation (`joiner`: the member whose
    /// join this is, which gets the new generation in its answer).
    async fn settle(
        &self,
        p: &PartitionInfo,
        live: &mut LiveGroup,
        (changed, joiner): (bool, Option<&str>),
        strategy: Option<Strategy>,
        now: i64,
    ) -> Result<(), Error> {
        let expired = live.expire(now);
        let counts = self.partition_counts(live);
        if !changed && expired.is_empty() && !live.handover_due(&counts) {
            return Ok(());
        }
        if !expired.is_empty() {
            tracing::info!(node = self.inner.node, group = %live.name, members = ?expired,
                "members' sessions expired");
        }
        let strategy = strategy.unwrap_or(live.strategy);
        let op = live.next_generation(&counts, strategy);
        self.write_group_op(p, &op).await?;
        live.apply_generation(&op, now, joiner);
        tracing::info!(node = self.inner.node, group = %live.name, generation = live.generation,
            members = live.members.len(), "group generation");
        Ok(())
    }

    /// Partition counts of the topics the group's members subscribe to (unknown topics
    /// get nothing until they exist).
    fn partition_counts(&self, live: &LiveGroup) -> BTreeMap<String, u32> {
        let meta = self.inner.view.metadata();
        live.members
            .values()
            .flat_map(|m| m.record.topics.iter())
            .filter_map(|t| {
                meta.topic(t)
                    .map(|topic| (t.clone(), topic.partitions.len() as u32))
            })
            .collect()
    }

    fn assignment_of(live: &LiveGroup, member: &str) -> Vec<pb::TopicPartitions> {
        live.members
            .get(member)
            .map(|m| {
                m.record
                    .assignment
                    .iter()
                    .map(|(topic, partitions)| pb::TopicPartitions {
                        topic: topic.clone(),
                        partitions: partitions.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Lag rows of `group` over every partition of its members' topics and of every topic
    /// it has committed offsets for.
    fn lag_rows(&self, live: &LiveGroup, record: &GroupRecord) -> Vec<pb::PartitionLag> {
        let meta = self.inner.view.metadata();
        let mut topics: Vec<String> = record.offsets.keys().cloned().collect();
        topics.extend(live.members.values().flat_map(|m| m.record.topics.clone()));
        topics.sort();
        topics.dedup();
        let mut rows = Vec::new();
        for topic in topics {
            let Some(t) = meta.topic(&topic) else {
                continue;
            };
            for p in &t.partitions {
                let status = self.inner.view.group(p.group);
                let end = status.as_ref().map_or(0, |s| *s.high_watermark.borrow());
                let start = status.as_ref().map_or(0, |s| s.log_start);
                let committed = record.committed(&topic, p.index).map(|c| c.offset);
                let owner = live
                    .members
                    .values()
                    .find(|m| {
                        m.record
                            .assignment
                            .get(&topic)
                            .is_some_and(|ps| ps.contains(&p.index))
                    })
                    .map(|m| m.record.id.clone())
                    .unwrap_or_default();
                let from = committed.unwrap_or(start).max(start);
                let lag = end.saturating_sub(from);
                // Age of the oldest record not consumed yet (read from this replica).
                let lag_ms = match lag {
                    0 => 0,
                    _ => self
                        .inner
                        .db
                        .read_records(p.group, from, end, 1)
                        .ok()
                        .and_then(|r| r.records.first().map(|(_, rec)| rec.timestamp_ms))
                        .map_or(0, |ts| u64::try_from(now_ms() - ts).unwrap_or(0)),
                };
                rows.push(pb::PartitionLag {
                    topic: topic.clone(),
                    partition: p.index,
                    committed_offset: committed,
                    end_offset: end,
                    lag,
                    member_id: owner,
                    lag_ms,
                });
            }
        }
        rows
    }
}

fn strategy_of(s: i32) -> Strategy {
    match pb::AssignmentStrategy::try_from(s) {
        Ok(pb::AssignmentStrategy::RoundRobin) => Strategy::RoundRobin,
        _ => Strategy::Range,
    }
}

fn strategy_to_wire(s: Strategy) -> pb::AssignmentStrategy {
    match s {
        Strategy::Range => pb::AssignmentStrategy::Range,
        Strategy::RoundRobin => pb::AssignmentStrategy::RoundRobin,
    }
}

fn state_of(live: &LiveGroup) -> pb::GroupState {
    if live.members.is_empty() {
        pb::GroupState::Empty
    } else {
        pb::GroupState::Stable
    }
}

#[tonic::async_trait]
impl Groups for ClientApi {
    async fn join_group(
        &self,
        request: Request<pb::JoinGroupRequest>,
    ) -> Result<Response<pb::JoinGroupResponse>, Status> {
        let address = request
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let caller = Principal::of(&request)?;
        let r = request.into_inner();
        for topic in &r.topics {
            caller.require(Action::Consume, topic)?;
        }
        let session = match r.session_timeout_ms {
            0 => groups::DEFAULT_SESSION_TIMEOUT_MS,
            ms => ms,
        };
        let (lo, hi) = groups::SESSION_TIMEOUT_RANGE_MS;
        if !(lo..=hi).contains(&session) {
            let why = format!("session_timeout_ms {session} is outside {lo}..={hi}");
            return Err(Error::Group(GroupError::Invalid(why)).into());
        }
        if r.topics.is_empty() {
            let why = "a member must subscribe to at least one topic".to_owned();
            return Err(Error::Group(GroupError::Invalid(why)).into());
        }
        let p = self.coordinate(&r.group).await?;
        let (mut slot, now) = self.lock_live(&r.group).await;
        let live = self.load_live(&mut slot, &p, &r.group, now)?;
        let new_id = format!(
            "{}-{}-{}",
            r.group,
            self.inner.node,
            self.inner.member_ids.fetch_add(1, Ordering::Relaxed) ^ (now as u64) << 16
        );
        let member_id = (!r.member_id.is_empty()).then_some(r.member_id.as_str());
        let joined = live
            .join(member_id, new_id, r.topics, session, address, now)
            .map_err(Error::Group)?;
        let strategy = strategy_of(r.strategy);
        let first = live.generation == 0;
        let changed = joined.changed || first;
        let joiner = Some(joined.member_id.as_str());
        self.settle(&p, live, (changed, joiner), Some(strategy), now)
            .await?;
        Ok(Response::new(pb::JoinGroupResponse {
            error: None,
            assignment: Self::assignment_of(live, &joined.member_id),
            member_id: joined.member_id,
            generation: live.generation,
            heartbeat_interval_ms: (session / 3).max(100),
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        Principal::of(&request)?.require_any(Action::Consume)?;
        let r = request.into_inner();
        let p = self.coordinate(&r.group).await?;
        let (mut slot, now) = self.lock_live(&r.group).await;
        let live = self.load_live(&mut slot, &p, &r.group, now)?;
        // Heard from first, so its own silence until now does not expire it.
        let heard = live.heartbeat(&r.member_id, r.generation, now);
        self.settle(&p, live, (false, None), None, now).await?;
        heard.map_err(Error::Group)?;
        if live.generation != r.generation {
            return Err(Error::Group(GroupError::Rebalancing(live.generation)).into());
        }
        Ok(Response::new(pb::HeartbeatResponse { error: None }))
    }

    async fn leave_group(
        &self,
        request: Request<pb::LeaveGroupRequest>,
    ) -> Result<Response<pb::LeaveGroupResponse>, Status> {
        Principal::of(&request)?.require_any(Action::Consume)?;
        let r = request.into_inner();
        let p = self.coordinate(&r.group).await?;
        let (mut slot, now) = self.lock_live(&r.group).await;
        let live = self.load_live(&mut slot, &p, &r.group, now)?;
        live.leave(&r.member_id).map_err(Error::Group)?;
        self.settle(&p, live, (true, None), None, now).await?;
        Ok(Response::new(pb::LeaveGroupResponse { error: None }))
    }

    async fn commit_offsets(
        &self,
        request: Request<pb::CommitOffsetsRequest>,
    ) -> Result<Response<pb::CommitOffsetsResponse>, Status> {
        let caller = Principal::of(&request)?;
        let r = request.into_inner();
        for offset in &r.offsets {
            caller.require(Action::Consume, &offset.topic)?;
        }
        self.check_offsets(&r.offsets)?;
        let p = self.coordinate(&r.group).await?;
        let (mut slot, now) = self.lock_live(&r.group).await;
        let live = self.load_live(&mut slot, &p, &r.group, now)?;
        let partitions: Vec<(String, u32)> = r
            .offsets
            .iter()
            .map(|o| (o.topic.clone(), o.partition))
            .collect();
        live.check_commit(&r.member_id, r.generation, &partitions, now)
            .map_err(Error::Group)?;
        let op = GroupOp::Commit {
            group: r.group.clone(),
            offsets: committed(r.offsets, now),
        };
        self.write_group_op(&p, &op).await?;
        Ok(Response::new(pb::CommitOffsetsResponse { error: None }))
    }

    async fn fetch_offsets(
        &self,
        request: Request<pb::FetchOffsetsRequest>,
    ) -> Result<Response<pb::FetchOffsetsResponse>, Status> {
        let caller = Principal::of(&request)?;
        let r = request.into_inner();
        caller.require_any(Action::Consume)?;
        for wanted in &r.partitions {
            caller.require(Action::Consume, &wanted.topic)?;
        }
        let p = self.coordinate(&r.group).await?;
        let record = self.group_record(&p, &r.group)?.unwrap_or_default();
        let wanted = |topic: &str, partition: u32| {
            r.partitions.is_empty()
                || r.partitions
                    .iter()
                    .any(|tp| tp.topic == topic && tp.partitions.contains(&partition))
        };
        let offsets = record
            .offsets
            .iter()
            .flat_map(|(topic, ps)| ps.iter().map(move |(p, c)| (topic, *p, c)))
            .filter(|(topic, p, _)| wanted(topic, *p))
            .map(|(topic, partition, c)| pb::CommittedOffset {
                topic: topic.clone(),
                partition,
                offset: c.offset,
                metadata: c.metadata.clone(),
                commit_timestamp_ms: c.timestamp_ms,
            })
            .collect();
        Ok(Response::new(pb::FetchOffsetsResponse {
            error: None,
            offsets,
        }))
    }

    async fn list_groups(
        &self,
        _request: Request<pb::ListGroupsRequest>,
    ) -> Result<Response<pb::ListGroupsResponse>, Status> {
        // Every group this broker holds a replica of; with replication below the broker
        // count, ask each broker and merge.
        let Some(topic) = self.inner.view.metadata().topic(OFFSETS_TOPIC).cloned() else {
            return Ok(Response::new(pb::ListGroupsResponse::default()));
        };
        let mut out = BTreeMap::new();
        for p in &topic.partitions {
            for (name, record) in self.group_records(p.group)? {
                let state = if record.members.is_empty() {
                    pb::GroupState::Empty
                } else {
                    pb::GroupState::Stable
                };
                out.insert(
                    name.clone(),
                    pb::GroupSummary {
                        group: name,
                        state: state as i32,
                        members: record.members.len() as u32,
                    },
                );
            }
        }
        Ok(Response::new(pb::ListGroupsResponse {
            error: None,
            groups: out.into_values().collect(),
        }))
    }

    async fn reset_offsets(
        &self,
        request: Request<pb::ResetOffsetsRequest>,
    ) -> Result<Response<pb::ResetOffsetsResponse>, Status> {
        let caller = Principal::of(&request)?;
        let r = request.into_inner();
        for offset in &r.offsets {
            caller.require(Action::Admin, &offset.topic)?;
        }
        self.check_offsets(&r.offsets)?;
        let p = self.coordinate(&r.group).await?;
        let (mut slot, now) = self.lock_live(&r.group).await;
        let live = self.load_live(&mut slot, &p, &r.group, now)?;
        self.settle(&p, live, (false, None), None, now).await?;
        if !live.members.is_empty() {
            return Err(Error::Group(GroupError::GroupActive(live.members.len())).into());
        }
        let op = GroupOp::Reset {
            group: r.group.clone(),
            offsets: committed(r.offsets, now),
        };
        self.write_group_op(&p, &op).await?;
        Ok(Response::new(pb::ResetOffsetsResponse { error: None }))
    }

    async fn describe_group(
        &self,
        request: Request<pb::DescribeGroupRequest>,
    ) -> Result<Response<pb::DescribeGroupResponse>, Status> {
        let r = request.into_inner();
        let p = self.coordinate(&r.group).await?;
        let (mut slot, now) = self.lock_live(&r.group).await;
        let Some(record) = self.group_record(&p, &r.group)? else {
            return Err(Error::Group(GroupError::UnknownGroup(r.group)).into());
        };
        let live = self.load_live(&mut slot, &p, &r.group, now)?;
        self.settle(&p, live, (false, None), None, now).await?;
        let record = self.group_record(&p, &r.group)?.unwrap_or(record);
        let members = live
            .members
            .values()
            .map(|m| pb::GroupMember {
                member_id: m.record.id.clone(),
                client_address: m.record.client_address.clone(),
                assignment: Self::assignment_of(live, &m.record.id),
                last_heartbeat_ms: m.last_heard_ms,
            })
            .collect();
        Ok(Response::new(pb::DescribeGroupResponse {
            error: None,
            group: r.group,
            state: state_of(live) as i32,
            generation: live.generation,
            strategy: strategy_to_wire(live.strategy) as i32,
            coordinator: self.inner.node,
            members,
            partitions: self.lag_rows(live, &record),
        }))
    }
}
