//! `paxlog.v1.Admin`: topics, through the metadata group.

use super::{ClientApi, timeout_of};
use crate::error::Error;
use crate::metadata::{Applied, METADATA_GROUP, MetaCommand, Topic};
use crate::node::{ProposeFailure, Proposed};
use crate::security::{Action, Principal};
use paxlog_proto::v1::{self as pb, admin_server::Admin};
use std::time::Duration;
use tonic::{Request, Response, Status};

/// Replicas per partition when CreateTopic asks for 0: survives one broker failure.
pub const DEFAULT_REPLICATION: u32 = 3;

impl ClientApi {
    /// Proposes a metadata command on the metadata leader and waits until it is applied.
    pub(super) async fn change_metadata(
        &self,
        cmd: MetaCommand,
        timeout: Duration,
    ) -> Result<Applied, Error> {
        self.inner.view.metadata().check(&cmd)?;
        let propose = self.inner.driver.propose(METADATA_GROUP, cmd.encode());
        match tokio::time::timeout(timeout, propose).await {
            Err(_) => Err(Error::Timeout(timeout.as_millis() as u64)),
            Ok(Ok(Proposed::Meta(applied))) => Ok(applied),
            Ok(Ok(Proposed::Append(_) | Proposed::Done)) => {
                Err(Error::InvalidRequest("not a metadata result".into()))
            }
            Ok(Err(e)) => Err(self.propose_error(e)),
        }
    }

    pub(super) fn propose_error(&self, e: ProposeFailure) -> Error {
        match e {
            ProposeFailure::NotLeader { leader } => self.not_leader(leader),
            ProposeFailure::Busy => Error::Busy,
            ProposeFailure::Recovering => Error::Recovering,
            ProposeFailure::Producer(e) => Error::Producer(e),
            ProposeFailure::Unknown => Error::OutcomeUnknown,
            ProposeFailure::NotHosted => self.not_leader(None),
            ProposeFailure::Stopped(why) => Error::ReplicaStopped(why),
            ProposeFailure::ShuttingDown => Error::ShuttingDown,
            ProposeFailure::HandOverGaveUp(to) => Error::HandOverGaveUp(to),
        }
    }

    /// Waits (up to `timeout`) until every locally hosted partition of `topic` has a leader,
    /// so that a publish right after `create` finds one.
    async fn await_leaders(&self, topic: &Topic, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut updates = self.inner.view.metadata_updates();
        loop {
            let ready = topic.partitions.iter().all(|p| {
                !p.replicas.contains(&self.inner.node) || self.leader_of(p.group).is_some()
            });
            if ready || tokio::time::Instant::now() >= deadline {
                return;
            }
            // Leadership shows in the view on the driver's next publish; poll briefly.
            let _ = tokio::time::timeout(Duration::from_millis(20), updates.changed()).await;
        }
    }

    pub(super) fn describe(&self, topic: &Topic) -> pb::TopicDescription {
        pb::TopicDescription {
            name: topic.name.clone(),
            replication_factor: topic.replication,
            config: topic.settings().effective().into_iter().collect(),
            partitions: topic
                .partitions
                .iter()
                .map(|p| {
                    let status = self.inner.view.group(p.group);
                    let hwm = status.as_ref().map_or(0, |s| *s.high_watermark.borrow());
                    pb::PartitionDescription {
                        partition: p.index,
                        leader: status.as_ref().and_then(|s| s.leader).unwrap_or(0),
                        replicas: p.replicas.clone(),
                        decided_index: status.as_ref().map_or(0, |s| s.decided),
                        log_start_offset: status.as_ref().map_or(0, |s| s.log_start),
                        log_end_offset: hwm,
                    }
                })
                .collect(),
        }
    }
}

#[tonic::async_trait]
impl Admin for ClientApi {
    async fn create_topic(
        &self,
        request: Request<pb::CreateTopicRequest>,
    ) -> Result<Response<pb::CreateTopicResponse>, Status> {
        let caller = Principal::of(&request)?;
        let r = request.into_inner();
        caller.require(Action::Admin, &r.name)?;
        let timeout = timeout_of(r.timeout_ms);
        let cmd = MetaCommand::CreateTopic {
            name: r.name,
            partitions: r.partitions,
            // 0: the default, three copies (or every broker of a smaller cluster).
            replication: match r.replication_factor {
                0 => (self.inner.members.len() as u32).min(DEFAULT_REPLICATION),
                n => n,
            },
            config: r.config.into_iter().collect(),
        };
        match self.change_metadata(cmd, timeout).await? {
            Applied::Created(topic) => {
                self.await_leaders(&topic, timeout).await;
                Ok(Response::new(pb::CreateTopicResponse {
                    error: None,
                    topic: Some(self.describe(&topic)),
                }))
            }
            Applied::Refused(e) => Err(Error::Meta(e).into()),
            Applied::Deleted(_) | Applied::Producer { .. } | Applied::Trigger(_) => {
                Err(Error::InvalidRequest("unexpected result".into()).into())
            }
        }
    }

    async fn delete_topic(
        &self,
        request: Request<pb::DeleteTopicRequest>,
    ) -> Result<Response<pb::DeleteTopicResponse>, Status> {
        let caller = Principal::of(&request)?;
        let r = request.into_inner();
        caller.require(Action::Admin, &r.name)?;
        if r.name == crate::groups::OFFSETS_TOPIC {
            return Err(Error::InvalidRequest(format!(
                "{} is internal: it holds every consumer group's committed offsets",
                r.name
            ))
            .into());
        }
        let cmd = MetaCommand::DeleteTopic { name: r.name };
        match self.change_metadata(cmd, timeout_of(r.timeout_ms)).await? {
            Applied::Deleted(_) => Ok(Response::new(pb::DeleteTopicResponse { error: None })),
            Applied::Refused(e) => Err(Error::Meta(e).into()),
            Applied::Created(_) | Applied::Producer { .. } | Applied::Trigger(_) => {
                Err(Error::InvalidRequest("unexpected result".into()).into())
            }
        }
    }

    async fn list_topics(
        &self,
        _request: Request<pb::ListTopicsRequest>,
    ) -> Result<Response<pb::ListTopicsResponse>, Status> {
        let topics = self
            .inner
            .view
            .metadata()
            .topics()
            .map(|t| pb::TopicSummary {
                name: t.name.clone(),
                partitions: t.partitions.len() as u32,
                replication_factor: t.replication,
            })
            .collect();
        Ok(Response::new(pb::ListTopicsResponse {
            error: None,
            topics,
        }))
    }

    async fn describe_topic(
        &self,
        request: Request<pb::DescribeTopicRequest>,
    ) -> Result<Response<pb::DescribeTopicResponse>, Status> {
        let topic = self.topic(&request.into_inner().name)?;
        Ok(Response::new(pb::DescribeTopicResponse {
            error: None,
            topic: Some(self.describe(&topic)),
        }))
    }

    async fn elect_leader(
        &self,
        request: Request<pb::ElectLeaderRequest>,
    ) -> Result<Response<pb::ElectLeaderResponse>, Status> {
        let caller = Principal::of(&request)?;
        let r = request.into_inner();
        caller.require(Action::Admin, &r.topic)?;
        let topic = self.topic(&r.topic)?;
        let p = self.partition(&topic, r.partition)?;
        if !p.replicas.contains(&r.node_id) {
            return Err(Error::InvalidRequest(format!(
                "node {} holds no replica of {}/{}: pick one of its replicas {:?}",
                r.node_id, r.topic, r.partition, p.replicas
            ))
            .into());
        }
        let timeout = timeout_of(r.timeout_ms);
        let transfer = self.inner.driver.transfer(p.group, r.node_id);
        match tokio::time::timeout(timeout, transfer).await {
            Err(_) => Err(Error::Timeout(timeout.as_millis() as u64).into()),
            Ok(Err(e)) => Err(self.propose_error(e).into()),
            Ok(Ok(())) => Ok(Response::new(pb::ElectLeaderResponse {
                error: None,
                leader: r.node_id,
            })),
        }
    }
}
