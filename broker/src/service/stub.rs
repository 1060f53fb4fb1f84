//! Placeholder implementations of the `paxlog.v1` client services: every RPC answers
//! `UNIMPLEMENTED` with a message naming the RPC. Replaced service by service later (the
//! peer service already was: it is [`crate::transport::PeerService`]).

use crate::error::Error;
use paxlog_proto::v1::{self as pb, admin_server, consumer_server, groups_server};
use paxlog_proto::v1::{metadata_server, producer_server};
use tonic::{Request, Response, Status};

/// Serves the `paxlog.v1` client services with `UNIMPLEMENTED` answers.
#[derive(Clone, Copy, Debug, Default)]
pub struct Unimplemented;

fn not_yet<T>(rpc: &'static str) -> Result<T, Status> {
    Err(Error::NotImplemented { rpc }.into())
}

/// Implements the unary methods of one service trait as `not_yet` answers.
macro_rules! unary_stubs {
    ($trait:path, $service:literal { $($method:ident($req:ty) -> $res:ty = $rpc:literal;)* }) => {
        #[tonic::async_trait]
        impl $trait for Unimplemented {
            $(
                async fn $method(&self, _request: Request<$req>) -> Result<Response<$res>, Status> {
                    not_yet(concat!($service, "/", $rpc))
                }
            )*
        }
    };
}

unary_stubs!(admin_server::Admin, "paxlog.v1.Admin" {
    create_topic(pb::CreateTopicRequest) -> pb::CreateTopicResponse = "CreateTopic";
    delete_topic(pb::DeleteTopicRequest) -> pb::DeleteTopicResponse = "DeleteTopic";
    list_topics(pb::ListTopicsRequest) -> pb::ListTopicsResponse = "ListTopics";
    describe_topic(pb::DescribeTopicRequest) -> pb::DescribeTopicResponse = "DescribeTopic";
});

unary_stubs!(metadata_server::Metadata, "paxlog.v1.Metadata" {
    get_metadata(pb::GetMetadataRequest) -> pb::GetMetadataResponse = "GetMetadata";
});

unary_stubs!(producer_server::Producer, "paxlog.v1.Producer" {
    init_producer(pb::InitProducerRequest) -> pb::InitProducerResponse = "InitProducer";
    publish(pb::PublishRequest) -> pb::PublishResponse = "Publish";
});

unary_stubs!(groups_server::Groups, "paxlog.v1.Groups" {
    join_group(pb::JoinGroupRequest) -> pb::JoinGroupResponse = "JoinGroup";
    heartbeat(pb::HeartbeatRequest) -> pb::HeartbeatResponse = "Heartbeat";
    leave_group(pb::LeaveGroupRequest) -> pb::LeaveGroupResponse = "LeaveGroup";
    commit_offsets(pb::CommitOffsetsRequest) -> pb::CommitOffsetsResponse = "CommitOffsets";
    fetch_offsets(pb::FetchOffsetsRequest) -> pb::FetchOffsetsResponse = "FetchOffsets";
    list_groups(pb::ListGroupsRequest) -> pb::ListGroupsResponse = "ListGroups";
    describe_group(pb::DescribeGroupRequest) -> pb::DescribeGroupResponse = "DescribeGroup";
});

#[tonic::async_trait]
impl consumer_server::Consumer for Unimplemented {
    type SubscribeStream = tokio_stream::Empty<Result<pb::SubscribeResponse, Status>>;

    async fn fetch(
        &self,
        _request: Request<pb::FetchRequest>,
    ) -> Result<Response<pb::FetchResponse>, Status> {
        not_yet("paxlog.v1.Consumer/Fetch")
    }

    async fn subscribe(
        &self,
        _request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        not_yet("paxlog.v1.Consumer/Subscribe")
    }
}
