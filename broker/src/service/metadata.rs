//! `paxlog.v1.Metadata`: brokers, topics and partition leaders as this broker knows them.

use super::ClientApi;
use crate::metadata::METADATA_GROUP;
use paxlog_proto::v1::{self as pb, metadata_server::Metadata};
use tonic::{Request, Response, Status};

#[tonic::async_trait]
impl Metadata for ClientApi {
    async fn get_metadata(
        &self,
        request: Request<pb::GetMetadataRequest>,
    ) -> Result<Response<pb::GetMetadataResponse>, Status> {
        let wanted = request.into_inner().topics;
        let meta = self.inner.view.metadata();
        let brokers = self
            .inner
            .members
            .iter()
            .map(|(id, address)| pb::Broker { id: *id, address: address.clone() })
            .collect();
        let mut topics: Vec<pb::TopicMetadata> = meta
            .topics()
            .filter(|t| wanted.is_empty() || wanted.contains(&t.name))
            .map(|t| pb::TopicMetadata {
                name: t.name.clone(),
                error: None,
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| pb::PartitionMetadata {
                        partition: p.index,
                        leader: self.leader_of(p.group).unwrap_or(0),
                        replicas: p.replicas.clone(),
                    })
                    .collect(),
            })
            .collect();
        for name in wanted.iter().filter(|n| meta.topic(n).is_none()) {
            let status = Status::from(crate::error::Error::UnknownTopic(name.clone()));
            topics.push(pb::TopicMetadata {
                name: name.clone(),
                error: Some(pb::Error {
                    code: pb::ErrorCode::UnknownTopic as i32,
                    message: status.message().to_owned(),
                    leader: None,
                }),
                partitions: Vec::new(),
            });
        }
        Ok(Response::new(pb::GetMetadataResponse {
            error: None,
            brokers,
            topics,
            metadata_leader: self.leader_of(METADATA_GROUP).unwrap_or(0),
        }))
    }
}
