//! A consumer's membership in its group, and the group requests it makes.

use super::{ConsumerConfig, TopicPartition};
use crate::connection::{CallKind, Connection};
use crate::error::Error;
use paxlog_proto::v1::{self as pb, ErrorCode, groups_client::GroupsClient};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// This consumer's place in its group.
#[derive(Clone, Debug)]
pub(super) struct Membership {
    pub(super) group: String,
    pub(super) topics: Vec<String>,
    pub(super) member_id: String,
    pub(super) generation: u64,
    pub(super) assignment: Vec<TopicPartition>,
    heartbeat_every: Duration,
    last_heartbeat: Instant,
    /// The coordinator said the group moved on (or forgot this member).
    pub(super) needs_rejoin: bool,
}

impl Membership {
    /// Joins (or rejoins, keeping `member_id`); a forgotten member joins afresh.
    pub(super) async fn join(
        conn: &Connection,
        config: &ConsumerConfig,
        group: String,
        topics: Vec<String>,
        member_id: Option<String>,
    ) -> Result<Membership, Error> {
        let mut member_id = member_id.unwrap_or_default();
        loop {
            let request = pb::JoinGroupRequest {
                group: group.clone(),
                member_id: member_id.clone(),
                topics: topics.clone(),
                session_timeout_ms: config.session_timeout.as_millis() as u32,
                strategy: config.strategy as i32,
            };
            let result = conn
                .call_leader(
                    CallKind::Group(group.clone()),
                    config.request_timeout,
                    |ch| {
                        let request = request.clone();
                        async move { GroupsClient::new(ch).join_group(request).await }
                    },
                )
                .await;
            match result {
                Ok(r) => {
                    let assignment = r
                        .assignment
                        .iter()
                        .flat_map(|tp| tp.partitions.iter().map(|p| (tp.topic.clone(), *p)))
                        .collect();
                    tracing::info!(%group, member = %r.member_id, generation = r.generation,
                        ?assignment, "joined the group");
                    return Ok(Membership {
                        group,
                        topics,
                        member_id: r.member_id,
                        generation: r.generation,
                        assignment,
                        heartbeat_every: Duration::from_millis(u64::from(
                            r.heartbeat_interval_ms.max(100),
                        )),
                        last_heartbeat: Instant::now(),
                        needs_rejoin: false,
                    });
                }
                Err(e)
                    if e.server_code() == Some(ErrorCode::UnknownMember)
                        && !member_id.is_empty() =>
                {
                    member_id.clear();
                }
                Err(e) => return Err(e.with_what(format!("join group {group:?}"))),
            }
        }
    }

    pub(super) fn heartbeat_due(&self) -> bool {
        self.last_heartbeat.elapsed() >= self.heartbeat_every
    }

    /// Heartbeats; `Ok(true)` while the generation holds, `Ok(false)` (and `needs_rejoin`)
    /// when the member must join again.
    pub(super) async fn heartbeat(
        &mut self,
        conn: &Connection,
        config: &ConsumerConfig,
    ) -> Result<bool, Error> {
        let request = pb::HeartbeatRequest {
            group: self.group.clone(),
            member_id: self.member_id.clone(),
            generation: self.generation,
        };
        let result = conn
            .call_leader(
                CallKind::Group(self.group.clone()),
                config.request_timeout,
                |ch| {
                    let request = request.clone();
                    async move { GroupsClient::new(ch).heartbeat(request).await }
                },
            )
            .await;
        self.last_heartbeat = Instant::now();
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    e.server_code(),
                    Some(
                        ErrorCode::RebalanceInProgress
                            | ErrorCode::UnknownMember
                            | ErrorCode::StaleGeneration
                    )
                ) =>
            {
                self.needs_rejoin = true;
                Ok(false)
            }
            Err(e) => Err(e.with_what(format!("heartbeat to group {:?}", self.group))),
        }
    }

    /// Leaves the group (an already forgotten member counts as gone).
    pub(super) async fn leave(
        self,
        conn: &Connection,
        config: &ConsumerConfig,
    ) -> Result<(), Error> {
        let request = pb::LeaveGroupRequest {
            group: self.group.clone(),
            member_id: self.member_id.clone(),
        };
        let result = conn
            .call_leader(
                CallKind::Group(self.group.clone()),
                config.request_timeout,
                |ch| {
                    let request = request.clone();
                    async move { GroupsClient::new(ch).leave_group(request).await }
                },
            )
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.server_code() == Some(ErrorCode::UnknownMember) => Ok(()),
            Err(e) => Err(e.with_what(format!("leave group {:?}", self.group))),
        }
    }
}

/// Commits `offsets` for `member_id` in `generation` (empty and 0: outside the group).
pub(super) async fn commit(
    conn: &Connection,
    config: &ConsumerConfig,
    group: &str,
    member_id: &str,
    generation: u64,
    offsets: &[(TopicPartition, u64)],
) -> Result<(), Error> {
    let request = pb::CommitOffsetsRequest {
        group: group.to_owned(),
        member_id: member_id.to_owned(),
        generation,
        offsets: offsets
            .iter()
            .map(|((topic, partition), offset)| pb::OffsetCommit {
                topic: topic.clone(),
                partition: *partition,
                offset: *offset,
                metadata: String::new(),
            })
            .collect(),
    };
    conn.call_leader(
        CallKind::Group(group.to_owned()),
        config.request_timeout,
        |ch| {
            let request = request.clone();
            async move { GroupsClient::new(ch).commit_offsets(request).await }
        },
    )
    .await
    .map(|_| ())
    .map_err(|e| e.with_what(format!("commit offsets of group {group:?}")))
}

/// The group's committed offsets of `partitions`.
pub(super) async fn fetch_offsets(
    conn: &Connection,
    config: &ConsumerConfig,
    group: &str,
    partitions: &[TopicPartition],
) -> Result<BTreeMap<TopicPartition, u64>, Error> {
    let mut by_topic: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for (t, p) in partitions {
        by_topic.entry(t.clone()).or_default().push(*p);
    }
    let request = pb::FetchOffsetsRequest {
        group: group.to_owned(),
        partitions: by_topic
            .into_iter()
            .map(|(topic, partitions)| pb::TopicPartitions { topic, partitions })
            .collect(),
    };
    let response = conn
        .call_leader(
            CallKind::Group(group.to_owned()),
            config.request_timeout,
            |ch| {
                let request = request.clone();
                async move { GroupsClient::new(ch).fetch_offsets(request).await }
            },
        )
        .await
        .map_err(|e| e.with_what(format!("fetch offsets of group {group:?}")))?;
    Ok(response
        .offsets
        .into_iter()
        .map(|o| ((o.topic, o.partition), o.offset))
        .collect())
}
